"""The indexer's queue (`alicerce.knowledge.fair_queue`): accounts take turns, one job each."""

from __future__ import annotations

import asyncio
import threading

import pytest

from alicerce.knowledge.extract import ExtractionStopped, extract
from alicerce.knowledge.fair_queue import FairQueue


async def _take(queue: FairQueue[str]) -> tuple[str, str]:
    taken = await asyncio.wait_for(queue.get(), 1)
    assert taken is not None
    return taken


def test_accounts_take_turns_and_hold_one_job_at_a_time() -> None:
    async def scenario() -> None:
        queue: FairQueue[str] = FairQueue()
        for job in ("a1", "a2", "a3"):
            queue.put("a", job)
        queue.put("b", "b1")
        queue.put("c", "c1")
        first = [await _take(queue) for _ in range(3)]
        # a's second job waits for its first, although it was queued before b's and c's
        assert first == [("a", "a1"), ("b", "b1"), ("c", "c1")]
        waiting = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not waiting.done()
        queue.task_done("b")
        queue.task_done("a")
        assert await asyncio.wait_for(waiting, 1) == ("a", "a2")
        queue.task_done("c")
        queue.task_done("a")
        assert await _take(queue) == ("a", "a3")
        queue.task_done("a")
        await asyncio.wait_for(queue.join(), 1)

    asyncio.run(scenario())


def test_dropped_jobs_count_as_done_and_close_wakes_the_workers() -> None:
    async def scenario() -> None:
        queue: FairQueue[str] = FairQueue()
        queue.put("a", "deleted")
        queue.put("a", "kept")
        queue.put("b", "deleted-too")
        assert queue.drop(lambda job: job.startswith("deleted")) == 2
        assert queue.waiting() == 1
        assert await _take(queue) == ("a", "kept")
        queue.task_done("a")
        await asyncio.wait_for(queue.join(), 1)
        waiting = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.close()
        assert await asyncio.wait_for(waiting, 1) is None

    asyncio.run(scenario())


def test_a_stopped_reading_ends_at_the_next_block() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(ExtractionStopped):
        extract(b"one\n\ntwo\n\nthree", "a.txt", stop=stop)
