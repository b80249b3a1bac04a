"""Per-key limits (SPEC section 5), checked before the upstream is called.

- `rpm`: no more than `rpm` requests in any 60-second window (an exact sliding log).
- `tpm`: tokens in the last minute, estimated from this minute's and the previous minute's
  totals weighted by overlap (the usual sliding-window counter), plus this request's prompt.
- `monthly_budget`: what the key has spent this calendar month (UTC), from the usage ledger.

In one process the counters live in memory. With `ALICERCE_REDIS_URL` they live in Redis, so
every worker and replica shares them; Redis's own clock is used, so servers' clocks may differ.
Keys without limits cost nothing here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from alicerce.errors import QuotaExceeded, RateLimited
from alicerce.keys import Principal

WINDOW_S = 60.0


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0


class LimitBackend(Protocol):
    async def take_request(self, key_id: str, rpm: int) -> Verdict: ...

    async def tokens_in_window(self, key_id: str) -> float: ...

    async def add_tokens(self, key_id: str, tokens: int) -> None: ...

    async def spent(self, key_id: str, month: str, initial: Callable[[], Decimal]) -> Decimal: ...

    async def add_spent(self, key_id: str, month: str, amount: Decimal) -> None: ...

    async def close(self) -> None: ...


def _weighted(previous: float, current: float, now: float) -> float:
    elapsed = (now % WINDOW_S) / WINDOW_S
    return previous * (1 - elapsed) + current


class MemoryBackend:
    def __init__(self) -> None:
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[tuple[str, int], int] = {}
        self._spent: dict[tuple[str, str], Decimal] = {}

    async def take_request(self, key_id: str, rpm: int) -> Verdict:
        now = time.monotonic()
        log = self._requests.setdefault(key_id, deque())
        while log and log[0] <= now - WINDOW_S:
            log.popleft()
        if len(log) >= rpm:
            return Verdict(False, log[0] + WINDOW_S - now)
        log.append(now)
        return Verdict(True)

    async def tokens_in_window(self, key_id: str) -> float:
        now = time.time()
        minute = int(now // WINDOW_S)
        previous = self._tokens.get((key_id, minute - 1), 0)
        return _weighted(previous, self._tokens.get((key_id, minute), 0), now)

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        minute = int(time.time() // WINDOW_S)
        self._tokens[(key_id, minute)] = self._tokens.get((key_id, minute), 0) + tokens
        for old in [k for k in self._tokens if k[1] < minute - 1]:
            del self._tokens[old]

    async def spent(self, key_id: str, month: str, initial: Callable[[], Decimal]) -> Decimal:
        if (key_id, month) not in self._spent:
            self._spent[(key_id, month)] = await asyncio.to_thread(initial)
        return self._spent[(key_id, month)]

    async def add_spent(self, key_id: str, month: str, amount: Decimal) -> None:
        if (key_id, month) in self._spent:  # otherwise the first read loads it from the ledger
            self._spent[(key_id, month)] += amount

    async def close(self) -> None:
        pass


# Atomically: drop entries older than the window, admit if there is room, else say when.
_TAKE_REQUEST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""

# Tokens of this minute and the previous one, with Redis's clock.
_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local minute = math.floor(now / 60)
local current = tonumber(redis.call('GET', KEYS[1] .. ':' .. minute) or '0')
local previous = tonumber(redis.call('GET', KEYS[1] .. ':' .. (minute - 1)) or '0')
return {tostring(now), tostring(previous), tostring(current)}
"""

_ADD_TOKENS = """
local t = redis.call('TIME')
local key = KEYS[1] .. ':' .. math.floor(tonumber(t[1]) / 60)
redis.call('INCRBY', key, ARGV[1])
redis.call('EXPIRE', key, 180)
return 1
"""


class RedisBackend:
    def __init__(self, url: str, prefix: str = "alicerce") -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix
        self._take = self._redis.register_script(_TAKE_REQUEST)
        self._tokens = self._redis.register_script(_TOKENS)
        self._add_tokens = self._redis.register_script(_ADD_TOKENS)
        self._sequence = 0

    async def take_request(self, key_id: str, rpm: int) -> Verdict:
        self._sequence += 1
        member = f"{time.time_ns()}:{id(self)}:{self._sequence}"
        wait = float(
            await self._take(keys=[f"{self._prefix}:rpm:{key_id}"], args=[WINDOW_S, rpm, member])
        )
        return Verdict(wait == 0, wait)

    async def tokens_in_window(self, key_id: str) -> float:
        now, previous, current = await self._tokens(keys=[f"{self._prefix}:tpm:{key_id}"])
        return _weighted(float(previous), float(current), float(now))

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        await self._add_tokens(keys=[f"{self._prefix}:tpm:{key_id}"], args=[tokens])

    async def spent(self, key_id: str, month: str, initial: Callable[[], Decimal]) -> Decimal:
        name = f"{self._prefix}:spent:{key_id}:{month}"
        value = await self._redis.get(name)
        if value is None:  # first use this month anywhere: start from the ledger
            await self._redis.set(
                name, str(await asyncio.to_thread(initial)), nx=True, ex=40 * 86400
            )
            value = await self._redis.get(name)
        return Decimal(value.decode() if isinstance(value, bytes) else str(value))

    async def add_spent(self, key_id: str, month: str, amount: Decimal) -> None:
        name = f"{self._prefix}:spent:{key_id}:{month}"
        if await self._redis.exists(name):
            await self._redis.incrbyfloat(name, float(amount))

    async def close(self) -> None:
        await self._redis.aclose()


class Limiter:
    def __init__(self, backend: LimitBackend, spent_since: Callable[[str, datetime], Decimal]):
        self._backend = backend
        self._spent_since = spent_since
        self._pending: set[asyncio.Task[Any]] = set()

    @staticmethod
    def applies(principal: Principal) -> bool:
        return (
            principal.rpm is not None
            or principal.tpm is not None
            or principal.monthly_budget is not None
        )

    async def admit(self, principal: Principal, prompt_tokens: int) -> None:
        """Raises the contract's 429 when the key is over a limit; counts the request."""
        if not self.applies(principal):
            return
        key = principal.key_id
        if principal.monthly_budget is not None:
            start = month_start()
            spent = await self._backend.spent(
                key, start.strftime("%Y-%m"), lambda: self._spent_since(key, start)
            )
            if spent >= principal.monthly_budget:
                raise QuotaExceeded(
                    f"This key has used its monthly budget of {principal.monthly_budget}.",
                )
        if principal.tpm is not None:
            used = await self._backend.tokens_in_window(key)
            if used + prompt_tokens > principal.tpm:
                raise RateLimited(
                    f"Rate limit reached: {principal.tpm} tokens per minute for this key.",
                    retry_after=WINDOW_S - time.time() % WINDOW_S,
                    code="tokens_per_minute_exceeded",
                )
        if principal.rpm is not None:
            verdict = await self._backend.take_request(key, principal.rpm)
            if not verdict.allowed:
                raise RateLimited(
                    f"Rate limit reached: {principal.rpm} requests per minute for this key.",
                    retry_after=verdict.retry_after,
                    code="requests_per_minute_exceeded",
                )

    def settle(self, principal: Principal, tokens: int, amount: Decimal) -> None:
        """Counts what a finished request used (in the background: never delays it)."""
        if not self.applies(principal) or (not tokens and not amount):
            return
        task = asyncio.get_running_loop().create_task(self._settle(principal, tokens, amount))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self, principal: Principal, tokens: int, amount: Decimal) -> None:
        if principal.tpm is not None and tokens:
            await self._backend.add_tokens(principal.key_id, tokens)
        if principal.monthly_budget is not None and amount:
            await self._backend.add_spent(principal.key_id, month_start().strftime("%Y-%m"), amount)

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._backend.close()
