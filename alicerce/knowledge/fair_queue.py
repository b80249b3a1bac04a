"""The indexer's queue: jobs kept per account and handed out round-robin across accounts.

One queue for every account let one account's 11 MB CSV (22,000 chunks, 35 minutes) hold
another account's one-line document for all that time. Here each account has its own line, the
accounts with work take turns (the one served longest ago first), and an account with a job
being worked on is not served again until that job ends: of the indexer's workers, one account
holds at most one, so another account's document starts as soon as any worker is free, and
never waits behind more than one job per other account (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """`put(account, job)`; `get()`, `(account, job)` or None once closed; `task_done(account)`
    when that job ends."""

    def __init__(self) -> None:
        self._jobs: dict[str, deque[T]] = {}
        self._turns: deque[str] = deque()  # accounts with a job waiting and none running
        self._busy: set[str] = set()
        self._unfinished = 0
        self._changed = asyncio.Event()
        self._finished = asyncio.Event()
        self._finished.set()
        self._closed = False

    def put(self, account: str, job: T) -> None:
        line = self._jobs.setdefault(account, deque())
        line.append(job)
        if len(line) == 1 and account not in self._busy:
            self._turns.append(account)
        self._unfinished += 1
        self._finished.clear()
        self._changed.set()

    async def get(self) -> tuple[str, T] | None:
        """The next account's next job; None once `close()` was called."""
        while not self._turns and not self._closed:
            self._changed.clear()
            await self._changed.wait()
        if self._closed:
            return None
        account = self._turns.popleft()
        job = self._jobs[account].popleft()
        self._busy.add(account)
        return account, job

    def task_done(self, account: str) -> None:
        """The account's running job ended: its next job, if any, takes its turn."""
        self._busy.discard(account)
        if self._jobs.get(account):
            self._turns.append(account)
            self._changed.set()
        else:
            self._jobs.pop(account, None)
        self._finished_one()

    def drop(self, unwanted: Callable[[T], bool]) -> int:
        """Takes out the waiting jobs `unwanted` picks (a deleted document's); how many."""
        dropped = 0
        for account, line in list(self._jobs.items()):
            kept = deque(job for job in line if not unwanted(job))
            dropped += len(line) - len(kept)
            self._jobs[account] = kept
            if not kept and account in self._turns:
                self._turns.remove(account)
        for _ in range(dropped):
            self._finished_one()
        return dropped

    def close(self) -> None:
        """Wakes every `get()` with None; what waits stays in the database for the next start."""
        self._closed = True
        self._changed.set()

    def waiting(self) -> int:
        return sum(len(line) for line in self._jobs.values())

    async def join(self) -> None:
        """Returns once every job put has been done or dropped."""
        await self._finished.wait()

    def _finished_one(self) -> None:
        self._unfinished -= 1
        if self._unfinished <= 0:
            self._unfinished = 0
            self._finished.set()
