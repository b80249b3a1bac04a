"""Per-key limits (SPEC section 5), checked before the upstream is called.

- `rpm`: no more than `rpm` requests in any 60-second window (an exact sliding log).
- `tpm`: tokens in the last minute, estimated from this minute's and the previous minute's
  totals weighted by overlap (the usual sliding-window counter), plus this request's prompt.
  An admitted request reserves its worst case (its prompt and the longest answer it may get)
  in the same atomic step, and settles to what it used when it ends: requests in flight count
  against the ones that follow, so concurrent requests overrun `tpm` by at most one request.
- `monthly_budget`: what the key has spent this calendar month (UTC), from the usage ledger,
  plus what the requests in flight have reserved. Admission reserves a request's worst-case
  cost (`inference/reservation.py`) in the same atomic step that checks the budget, and the
  ledger settles it to the real cost when the request ends; so concurrent requests cannot all
  pass a check made before any of them is charged. A request is admitted while anything of the
  budget is left, so the budget is overrun by at most the last admitted request's own cost.

In one process the counters live in memory. With `ALICERCE_REDIS_URL` they live in Redis
(`redis_limits.py`), so every worker and replica shares them; Redis's own clock is used, so
servers' clocks may differ.
Keys without limits cost nothing here; `rpm` and `tpm` are checked together in one step (one
Redis round trip), which also tells where the key stands: the `x-ratelimit-*` headers
(`rate_headers`) of its answers and of its 429s.

When Redis cannot be reached (docs/decisions.md, "When Redis goes away"): a key with a monthly
budget is refused with a 503 `limits_unavailable` (money first: never admitted unchecked); a
key with only `rpm`/`tpm` is counted by this process alone until Redis answers again (each
replica then allows the whole limit); a key without limits never needs Redis. What a request
could not settle in Redis is retried in the background for a while.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Protocol

from alicerce.errors import LimitsUnavailable, QuotaExceeded, RateLimited
from alicerce.keys import Principal

log = logging.getLogger("alicerce.limits")

WINDOW_S = 60.0
RETRY_AFTER_S = 5  # a budget key's 503 while Redis is unreachable
# A settlement Redis refused is tried again after these pauses (about two minutes in all), then
# given up: what it held stays counted until the counter expires (over-counting, never under).
_SETTLE_RETRIES_S = (0.5, 1, 2, 4, 8, 15, 30, 60)
Refusal = Literal["tokens", "requests"]  # over tpm, over rpm


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class Counted(NamedTuple):
    """One admission as a backend counted it, in durations of its own clock (Redis's or this
    process's), atomically: a request refused for its tokens takes no request slot."""

    refused: Refusal | None  # None: admitted
    requests: int  # requests in the last minute, this one included when admitted
    requests_free_s: float  # until the oldest of them leaves the window
    requests_clear_s: float  # until the newest does: the window is empty again
    tokens_previous: float  # tokens counted in the previous minute
    tokens_current: float  # and in this one, before this request's reservation
    minute_elapsed_s: float  # how far into this minute
    minute: int = 0  # which minute (of the backend's clock) the reservation was counted in


def duration(seconds: float) -> str:
    """A duration as OpenAI's `x-ratelimit-reset-*` headers write it (Go's): `0s`, `12ms`,
    `1s`, `8.64s`, `6m0s`, `1m30.5s`, to the millisecond."""
    ms = round(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms" if ms > 0 else "0s"
    if ms < 60_000:
        return f"{ms / 1000:g}s"
    minutes, ms = divmod(ms, 60_000)
    if minutes < 60:
        return f"{minutes}m{ms / 1000:g}s"
    return f"{minutes // 60}h{minutes % 60}m{ms / 1000:g}s"


def rate_headers(principal: Principal, counted: Counted, prompt_tokens: int) -> dict[str, str]:
    """Where the key stands in its minute once a request is admitted or refused, as OpenAI's
    `x-ratelimit-*` headers say it, for the limits the key has. A reset is the time until the
    limit is back to its initial state (nothing counted), not until the next request may pass
    (that is a 429's `retry-after`). Built straight into the dict: this runs on every request
    of a limited key."""
    headers = {}
    rpm, tpm = principal.rpm, principal.tpm
    if rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, rpm - counted.requests))
        headers["x-ratelimit-reset-requests"] = duration(counted.requests_clear_s)
    if tpm is not None:
        elapsed, previous, current = (
            counted.minute_elapsed_s,
            counted.tokens_previous,
            counted.tokens_current,
        )
        if counted.refused is None:  # this request's estimate is spoken for
            current += prompt_tokens
        used = _weighted(previous, current, elapsed)
        # This minute's tokens weigh fully until it ends, then fade out over the next one.
        reset = 0.0
        if current:
            reset = 2 * WINDOW_S - elapsed
        elif previous:
            reset = WINDOW_S - elapsed
        headers["x-ratelimit-limit-tokens"] = str(tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, tpm - math.ceil(used)))
        headers["x-ratelimit-reset-tokens"] = duration(reset)
    return headers


class BackendUnavailable(Exception):
    """The shared counters (Redis) could not be reached or did not answer in time."""


class LimitBackend(Protocol):
    async def take(
        self, key_id: str, rpm: int | None, tpm: int | None, tokens: int, reserve: int = 0
    ) -> Counted:
        """Admits one request of `tokens` (its prompt, estimated) if it keeps the key within
        `tpm` tokens and `rpm` requests a minute (None: no such limit), counting it against
        `rpm` and adding `reserve` (its worst case) to this minute's tokens."""
        ...

    async def add_tokens(self, key_id: str, tokens: int, minute: int | None = None) -> None:
        """Adds `tokens` (negative to release a reservation) to `minute`'s count (None: this
        minute's); a minute out of the window already is left alone."""
        ...

    async def reserve(
        self,
        key_id: str,
        month: str,
        amount: Decimal,
        budget: Decimal,
        initial: Callable[[], Decimal],
    ) -> Decimal | None:
        """In one atomic step: if what the key has committed this month (spent and reserved;
        `initial()`, the ledger's total, when the month is new here) is below `budget`, adds
        `amount` to it and returns what it was; else None (refused, nothing added)."""
        ...

    async def add_spent(self, key_id: str, month: str, amount: Decimal) -> None:
        """Adds `amount` (negative when a reservation is released) to what the key committed."""
        ...

    async def reachable(self) -> bool:
        """Whether the backend answers now (for readiness: `/readyz`)."""
        ...

    async def close(self) -> None: ...


def _weighted(previous: float, current: float, elapsed_s: float) -> float:
    return previous * (1 - elapsed_s / WINDOW_S) + current


class MemoryBackend:
    def __init__(self) -> None:
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[tuple[str, int], int] = {}
        self._spent: dict[tuple[str, str], Decimal] = {}

    async def take(
        self, key_id: str, rpm: int | None, tpm: int | None, tokens: int, reserve: int = 0
    ) -> Counted:
        wall = time.time()
        elapsed = wall % WINDOW_S
        minute = int(wall // WINDOW_S)
        refused: Refusal | None = None
        previous = current = 0
        if tpm is not None:
            previous = self._tokens.get((key_id, minute - 1), 0)
            current = self._tokens.get((key_id, minute), 0)
            if _weighted(previous, current, elapsed) + tokens > tpm:
                refused = "tokens"
        count, free, clear = 0, 0.0, 0.0
        if rpm is not None:
            now = time.monotonic()  # the request log's own clock: immune to clock steps
            log = self._requests.setdefault(key_id, deque())
            while log and log[0] <= now - WINDOW_S:
                log.popleft()
            if refused is None:
                if len(log) < rpm:
                    log.append(now)
                else:
                    refused = "requests"
            if log:
                free, clear = log[0] + WINDOW_S - now, log[-1] + WINDOW_S - now
            count = len(log)
        if tpm is not None and refused is None and reserve:
            self._tokens[(key_id, minute)] = current + reserve  # no await since the check
        return Counted(refused, count, free, clear, previous, current, elapsed, minute)

    async def add_tokens(self, key_id: str, tokens: int, minute: int | None = None) -> None:
        now = int(time.time() // WINDOW_S)
        minute = now if minute is None else minute
        if minute >= now - 1:
            self._tokens[(key_id, minute)] = self._tokens.get((key_id, minute), 0) + tokens
        for old in [k for k in self._tokens if k[1] < now - 1]:
            del self._tokens[old]

    async def reserve(
        self,
        key_id: str,
        month: str,
        amount: Decimal,
        budget: Decimal,
        initial: Callable[[], Decimal],
    ) -> Decimal | None:
        if (key_id, month) not in self._spent:
            loaded = await asyncio.to_thread(initial)
            self._spent.setdefault((key_id, month), loaded)  # another task may have loaded it
        committed = self._spent[(key_id, month)]  # from here to the update: no await, atomic
        if committed >= budget:
            return None
        self._spent[(key_id, month)] = committed + amount
        return committed

    async def add_spent(self, key_id: str, month: str, amount: Decimal) -> None:
        if (key_id, month) in self._spent:  # otherwise the first read loads it from the ledger
            self._spent[(key_id, month)] += amount

    async def reachable(self) -> bool:
        return True

    async def close(self) -> None:
        pass


class Reservation(NamedTuple):
    """What an admitted request reserved of its key's budget and tpm, until it is settled."""

    month: str | None  # of the budget (None: no budget)
    amount: Decimal
    minute: int | None = None  # of the tpm counter the tokens were counted in (None: no tpm)
    tokens: int = 0
    local: bool = False  # rpm/tpm counted by this process alone (Redis was unreachable)


class Admission(NamedTuple):
    headers: dict[str, str] | None  # where the key stands (`x-ratelimit-*`), with rpm or tpm
    reserved: Reservation | None  # with a monthly budget


_FREE = Admission(None, None)


class Limiter:
    def __init__(
        self,
        backend: LimitBackend,
        spent_since: Callable[[str, datetime], Decimal],
        *,
        local: LimitBackend | None = None,
        on_unavailable: Callable[[], None] | None = None,
    ):
        """`local` counts rpm/tpm in this process while `backend` (Redis) is unreachable;
        `on_unavailable` is told of each request that met an unreachable backend (a metric)."""
        self._backend = backend
        self._local = local
        self._spent_since = spent_since
        self._on_unavailable = on_unavailable
        self._pending: set[asyncio.Task[Any]] = set()
        self._degraded = False  # the backend failed last time: said once, until it answers

    @staticmethod
    def applies(principal: Principal) -> bool:
        return (
            principal.rpm is not None
            or principal.tpm is not None
            or principal.monthly_budget is not None
        )

    def _failed(self, exc: BackendUnavailable) -> None:
        if self._on_unavailable is not None:
            self._on_unavailable()
        if not self._degraded:
            self._degraded = True
            log.error(
                "limits: Redis is unreachable (%s); keys with a monthly budget are refused "
                "(503 limits_unavailable), rpm and tpm are counted by this process alone",
                exc,
            )

    def _answered(self) -> None:
        if self._degraded:
            self._degraded = False
            log.warning("limits: Redis answers again; limits are shared again")

    async def admit(
        self,
        principal: Principal,
        prompt_tokens: int,
        cost: Decimal = Decimal(0),
        tokens: int | None = None,
    ) -> Admission:
        """Raises the contract's 429 when the key is over a limit; counts the request, and
        reserves its worst case: `cost` against a monthly budget, `tokens` (at least its
        prompt) against `tpm`. The reservation must be settled (`settle`) however the request
        ends. Raises `LimitsUnavailable` (503) for a key with a budget when Redis is
        unreachable."""
        if not self.applies(principal):
            return _FREE
        key = principal.key_id
        reserved = None
        if principal.monthly_budget is not None:
            start = month_start()
            month = start.strftime("%Y-%m")
            try:
                committed = await self._backend.reserve(
                    key,
                    month,
                    cost,
                    principal.monthly_budget,
                    lambda: self._spent_since(key, start),
                )
            except BackendUnavailable as exc:
                self._failed(exc)
                raise LimitsUnavailable(
                    "This key's budget cannot be checked right now (the limits store is "
                    "unreachable); try again shortly.",
                    retry_after=RETRY_AFTER_S,
                ) from None
            self._answered()
            if committed is None:
                raise QuotaExceeded(
                    f"This key has used its monthly budget of {principal.monthly_budget}.",
                )
            reserved = Reservation(month, cost)
        if principal.rpm is None and principal.tpm is None:
            return Admission(None, reserved)
        local = False
        try:
            worst = max(prompt_tokens, tokens or 0) if principal.tpm is not None else 0
            try:
                counted = await self._backend.take(
                    key, principal.rpm, principal.tpm, prompt_tokens, worst
                )
                self._answered()
            except BackendUnavailable as exc:
                if self._local is None:
                    raise LimitsUnavailable(
                        "This key's limits cannot be checked right now; try again shortly.",
                        retry_after=RETRY_AFTER_S,
                    ) from None
                self._failed(exc)
                local = True
                counted = await self._local.take(
                    key, principal.rpm, principal.tpm, prompt_tokens, worst
                )
        except BaseException:
            self.settle(principal, 0, Decimal(0), reserved)
            raise
        headers = rate_headers(principal, counted, worst or prompt_tokens)
        if counted.refused is not None:
            self.settle(principal, 0, Decimal(0), reserved)  # refused: it costs nothing
        if counted.refused == "tokens":
            raise RateLimited(
                f"Rate limit reached: {principal.tpm} tokens per minute for this key.",
                retry_after=WINDOW_S - counted.minute_elapsed_s,
                code="tokens_per_minute_exceeded",
                headers=headers,
            )
        if counted.refused == "requests":
            raise RateLimited(
                f"Rate limit reached: {principal.rpm} requests per minute for this key.",
                retry_after=counted.requests_free_s,
                code="requests_per_minute_exceeded",
                headers=headers,
            )
        if worst:
            reserved = Reservation(
                reserved.month if reserved else None,
                reserved.amount if reserved else Decimal(0),
                counted.minute,
                worst,
                local,
            )
        return Admission(headers, reserved)

    def settle(
        self,
        principal: Principal,
        tokens: int,
        amount: Decimal,
        reserved: Reservation | None = None,
    ) -> None:
        """Counts what a finished request used, and releases what it reserved (in the
        background: never delays it)."""
        if not self.applies(principal) or (not tokens and not amount and reserved is None):
            return
        task = asyncio.get_running_loop().create_task(
            self._settle(principal, tokens, amount, reserved)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(
        self, principal: Principal, tokens: int, amount: Decimal, reserved: Reservation | None
    ) -> None:
        key = principal.key_id
        if principal.tpm is not None:
            backend = self._local if reserved is not None and reserved.local else self._backend
            assert backend is not None
            await self._retrying(key, lambda: self._settle_tokens(backend, key, tokens, reserved))
        if principal.monthly_budget is None:
            return
        month = month_start().strftime("%Y-%m")
        booked = reserved.month if reserved is not None else None  # of the budget, when reserved
        held = reserved.amount if reserved is not None and booked is not None else Decimal(0)
        if booked is not None and booked != month:  # reserved last month
            last = -held
            await self._retrying(key, lambda: self._backend.add_spent(key, booked, last))
            held = Decimal(0)
        change = amount - held
        if change:
            await self._retrying(key, lambda: self._backend.add_spent(key, month, change))

    async def _retrying(self, key: str, step: Callable[[], Awaitable[None]]) -> None:
        """Runs one settlement step, again after pauses while Redis is unreachable."""
        for pause in (*_SETTLE_RETRIES_S, None):
            try:
                await step()
                return
            except BackendUnavailable as exc:
                if pause is None:
                    log.error("limits: key %s not settled, Redis still unreachable: %s", key, exc)
                    return
                await asyncio.sleep(pause)

    @staticmethod
    async def _settle_tokens(
        backend: LimitBackend, key: str, tokens: int, reserved: Reservation | None
    ) -> None:
        """The tokens used replace the tokens reserved: in the reservation's minute when the
        request ended in it, else the reservation leaves its minute and the use goes to this."""
        if reserved is None or not reserved.tokens or reserved.minute is None:
            if tokens:
                await backend.add_tokens(key, tokens)
            return
        if reserved.minute == int(time.time() // WINDOW_S) or not tokens:
            await backend.add_tokens(key, tokens - reserved.tokens, reserved.minute)
        else:
            await backend.add_tokens(key, -reserved.tokens, reserved.minute)
            await backend.add_tokens(key, tokens)

    async def reachable(self) -> bool:
        """Whether the counters' backend answers now (always, in this process's memory)."""
        return await self._backend.reachable()

    async def close(self) -> None:
        """Waits a little for settlements in flight; one still retrying against an unreachable
        Redis does not hold the shutdown."""
        if self._pending:
            _, waiting = await asyncio.wait(self._pending, timeout=2.0)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._backend.close()
