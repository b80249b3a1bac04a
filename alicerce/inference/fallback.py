"""Trying upstreams in order: retries with backoff that honour `retry-after`, then fallbacks.

Only failures *before the first byte* move on: once an answer has begun, the client has it.
- Unavailable (connection refused, 429, 503): retried on the same upstream after a backoff of at
  least the upstream's `retry-after`, unless that is longer than the policy allows; then the
  next model is tried.
- Timeouts and other upstream failures (5xx, garbage, refused credentials): the next model.
- The client's own errors (400 from the upstream): raised at once; another model would refuse
  them too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from alicerce.errors import UpstreamError, UpstreamUnavailable
from alicerce.upstreams.registry import Target

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 1  # extra tries of the same upstream when it is unavailable
    base_backoff_s: float = 0.2
    max_backoff_s: float = 2.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry `attempt` (1-based), or None: do not retry."""
        if attempt > self.retries:
            return None
        delay = self.base_backoff_s * 2 ** (attempt - 1)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay if delay <= self.max_backoff_s else None


async def first_success(
    targets: list[Target],
    attempt: Callable[[Target], Awaitable[T]],
    policy: RetryPolicy,
) -> tuple[T, Target]:
    """The first answer any target gives, with the target that gave it."""
    last: UpstreamError | None = None
    for target in targets:
        tries = 0
        while True:
            try:
                return await attempt(target), target
            except UpstreamUnavailable as exc:
                last = exc
                tries += 1
                delay = policy.delay(tries, exc.retry_after)
                if delay is None:
                    break
                await asyncio.sleep(delay)
            except UpstreamError as exc:
                last = exc
                break
    assert last is not None, "no targets to try"
    raise last
