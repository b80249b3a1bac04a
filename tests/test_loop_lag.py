"""A worker's event loop times itself (alicerce/loop_lag.py): lateness that lasts is overload,
one slow callback is not."""

from __future__ import annotations

import asyncio
import time

from alicerce.loop_lag import SUSTAINED_TICKS, LoopLag


async def _states_while(block_s: float, blocks: int, settle_s: float) -> tuple[list[bool], bool]:
    """Runs `blocks` callbacks that each hold the loop `block_s`; what the monitor said after
    each, and whether it still says overloaded `settle_s` after the last."""
    lag = LoopLag(bound_s=0.02, interval_s=0.01)
    lag.start()
    seen: list[bool] = []
    try:
        await asyncio.sleep(0.05)
        for _ in range(blocks):
            time.sleep(block_s)  # noqa: ASYNC251 - a callback that keeps the CPU: the loop runs late
            await asyncio.sleep(0)  # let the due tick run
            await asyncio.sleep(0)
            seen.append(lag.overloaded)
        await asyncio.sleep(settle_s)
        return seen, lag.overloaded
    finally:
        lag.stop()


def test_a_loop_late_tick_after_tick_is_overloaded_and_recovers_at_once() -> None:
    seen, after = asyncio.run(_states_while(0.05, 6, 0.1))
    assert not any(seen[: SUSTAINED_TICKS - 1])  # not on the first late ticks
    assert all(seen[SUSTAINED_TICKS:])
    assert after is False  # the first tick on time ends it


def test_one_slow_callback_is_not_overload() -> None:
    seen, after = asyncio.run(_states_while(0.2, 1, 0.0))
    assert seen == [False] and after is False
