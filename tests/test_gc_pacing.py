"""A serving worker's garbage collections wait for it to be idle (alicerce/gc_pacing.py)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import httpx
import pytest

from alicerce.api.app import create_app
from alicerce.gc_pacing import MAX_PENDING_OBJECTS, GcPacer
from tests.conftest import test_settings as settings_in


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _garbage(count: int) -> None:
    for _ in range(count):
        _Cycle()


def test_a_busy_worker_does_not_collect_until_its_interval_and_an_idle_one_does() -> None:
    asyncio.run(_busy_then_idle())


async def _busy_then_idle() -> None:
    in_flight = 5
    pauses: list[tuple[str, float]] = []
    pacer = GcPacer(
        lambda: in_flight,
        max_interval_s=3600,
        observe=lambda trigger, s: pauses.append((trigger, s)),
        check_every_s=0.01,
    )
    pacer.start()
    try:
        assert not gc.isenabled()
        _garbage(5000)  # past CPython's threshold of 700 many times over
        await asyncio.sleep(0.1)
        assert pauses == [] and gc.get_count()[0] >= 5000  # nothing collected while busy
        in_flight = 0
        await asyncio.sleep(0.1)
        assert [trigger for trigger, _ in pauses] == ["idle"]
        assert gc.get_count()[0] < 700
        await asyncio.sleep(0.1)
        assert len(pauses) == 1  # idle, with nothing new: no collection
    finally:
        await pacer.stop()
    assert gc.isenabled()


def test_a_worker_that_is_never_idle_still_collects_at_its_interval() -> None:
    asyncio.run(_never_idle())


async def _never_idle() -> None:
    pauses: list[str] = []
    pacer = GcPacer(
        lambda: 1, max_interval_s=0.2, observe=lambda t, s: pauses.append(t), check_every_s=0.01
    )
    pacer.start()
    try:
        _garbage(2000)
        await asyncio.sleep(0.1)
        assert pauses == []
        await asyncio.sleep(0.25)
        assert pauses[:1] == ["interval"]
    finally:
        await pacer.stop()


def test_a_busy_worker_collects_early_past_its_object_bound(monkeypatch: Any) -> None:
    pacer = GcPacer(lambda: 1, max_interval_s=3600)
    monkeypatch.setattr(gc, "get_count", lambda: (MAX_PENDING_OBJECTS, 0, 0))
    assert pacer.due() == "objects"
    monkeypatch.setattr(gc, "get_count", lambda: (MAX_PENDING_OBJECTS - 1, 0, 0))
    assert pacer.due() is None


def test_zero_leaves_cpythons_own_schedule() -> None:
    async def run() -> None:
        pacer = GcPacer(lambda: 0, max_interval_s=0)
        pacer.start()
        assert gc.isenabled()
        await pacer.stop()

    asyncio.run(run())


@pytest.mark.parametrize("interval", [300.0, 0.0])
def test_the_app_paces_collections_while_it_serves_and_counts_them(
    tmp_path: Path, interval: float
) -> None:
    asyncio.run(_serve(tmp_path, interval))


async def _serve(tmp_path: Path, interval: float) -> None:
    app = create_app(settings_in(tmp_path, gc_max_interval_s=interval))
    async with app.app.router.lifespan_context(app.app):
        assert gc.isenabled() is (interval == 0)
        if interval:
            _garbage(2000)
            await asyncio.sleep(1.5)  # nothing in flight: the pacer's next check collects
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:
                text = (await client.get("/metrics")).text
            counts = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('alicerce_gc_pause_seconds_count{trigger="idle"}')
            ]
            assert counts and counts[0] >= 1
    assert gc.isenabled()
