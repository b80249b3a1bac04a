"""Trying upstreams in order: retries with backoff that honour `retry-after`, then fallbacks.

Only failures *before the first byte* move on: once an answer has begun, the client has it.
- Unavailable (connection refused, 429, 503): retried on the same upstream after a backoff of at
  least the upstream's `retry-after`, unless that is longer than the policy allows; then the
  next model is tried.
- Timeouts and other upstream failures (5xx, garbage, refused credentials): the next model.
- The client's own errors (400 from the upstream): raised at once; another model would refuse
  them too.

Each failed try is logged here at warning (`alicerce.upstreams`), the upstream named by its
catalog id or its endpoint's host (never a key), with its status, the try's number and what
comes next; and handed to the ledger, which keeps it for the request's record and counts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from alicerce.errors import UpstreamError, UpstreamUnavailable
from alicerce.ledger import Call, FailedAttempt, UsageLedger
from alicerce.upstreams.registry import Target

T = TypeVar("T")
log = logging.getLogger("alicerce.upstreams")


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


def upstream_failed(
    request_id: str,
    target: Target,
    tries: int,
    exc: UpstreamError,
    then: Literal["retry", "fallback", "fail"],
    following: Target | None = None,
    delay: float | None = None,
    after: str | None = None,
) -> FailedAttempt:
    """A failed try, logged at warning: what failed, how, and what comes next (or `after`)."""
    failed = FailedAttempt(
        upstream=target.name,
        model=target.label,
        attempt=tries,
        status=exc.upstream_status,
        error=exc,
        then=then,
        next=following.name if following is not None else None,
        next_model=following.label if following is not None else None,
    )
    if log.isEnabledFor(logging.WARNING):
        if after is not None:
            pass
        elif then == "retry":
            after = f"retrying in {delay or 0:.2f} s"
        elif following is not None:
            after = f"falling back to {failed.next}"
        else:
            after = "no fallback left"
        log.warning(
            "upstream %s failed (attempt %d, request %s): %s; %s",
            failed.upstream,
            tries,
            request_id,
            exc.message,
            after,
            extra={
                "request_id": request_id,
                "upstream": failed.upstream,
                "attempt": tries,
                "upstream_status": failed.status,
                "error_code": exc.code,
                "then": then,
                "next_upstream": failed.next,
                "retry_in_s": delay,
            },
        )
    return failed


async def first_success(
    targets: list[Target],
    attempt: Callable[[Target], Awaitable[T]],
    policy: RetryPolicy,
    call: Call,
    ledger: UsageLedger,
) -> tuple[T, Target]:
    """The first answer any target gives, with the target that gave it; each failed try is
    logged, and kept in the ledger for `call`'s record."""
    last: UpstreamError | None = None
    for index, target in enumerate(targets):
        tries = 0
        while True:
            try:
                return await attempt(target), target
            except UpstreamUnavailable as exc:
                last = exc
                tries += 1
                delay = policy.delay(tries, exc.retry_after)
                if delay is None:
                    _moved_on(call, ledger, targets, index, tries, exc)
                    break
                retry = upstream_failed(call.request_id, target, tries, exc, "retry", delay=delay)
                ledger.attempt_failed(call, retry)
                await asyncio.sleep(delay)
            except UpstreamError as exc:
                last = exc
                _moved_on(call, ledger, targets, index, tries + 1, exc)
                break
    assert last is not None, "no targets to try"
    raise last


def _moved_on(
    call: Call,
    ledger: UsageLedger,
    targets: list[Target],
    index: int,
    tries: int,
    exc: UpstreamError,
) -> None:
    """Target `index` is given up on: the next one is tried, if there is one."""
    following = targets[index + 1] if index + 1 < len(targets) else None
    then: Literal["fallback", "fail"] = "fallback" if following is not None else "fail"
    failure = upstream_failed(call.request_id, targets[index], tries, exc, then, following)
    ledger.attempt_failed(call, failure)
