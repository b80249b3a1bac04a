"""The limits' counters in Redis (`ALICERCE_REDIS_URL`): every worker and replica shares them.

The same steps as `limits.MemoryBackend`, each one Lua script (atomic in Redis, on Redis's own
clock, so servers' clocks may differ). Every Redis failure leaves as `BackendUnavailable`; what
it means for a request is the limiter's to decide (`limits.Limiter`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

from alicerce.limits import WINDOW_S, BackendUnavailable, Counted, Refusal

# `MemoryBackend.take` in one atomic step, on Redis's clock. KEYS: the request log (a sorted
# set of times), the prefix of the per-minute token counts; ARGV: the window, rpm (0: none), this
# request's member in the log, tpm (0: none), its tokens, its reservation. Numbers go back as
# strings: Redis would truncate Lua's floats to integers.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[4])
local elapsed = now % window
local minute = math.floor(now / window)
local refused, previous, current = '', 0, 0
if tpm > 0 then
  current = tonumber(redis.call('GET', KEYS[2] .. ':' .. minute) or '0')
  previous = tonumber(redis.call('GET', KEYS[2] .. ':' .. (minute - 1)) or '0')
  if previous * (1 - elapsed / window) + current + tonumber(ARGV[5]) > tpm then
    refused = 'tokens'
  end
end
local count, free, clear = 0, 0, 0
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  count = redis.call('ZCARD', KEYS[1])
  if refused == '' then
    if count < rpm then
      redis.call('ZADD', KEYS[1], now, ARGV[3])
      redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
      count = count + 1
    else
      refused = 'requests'
    end
  end
  if count > 0 then
    free = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]) + window - now
    clear = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) + window - now
  end
end
if tpm > 0 and refused == '' and tonumber(ARGV[6]) > 0 then
  redis.call('INCRBY', KEYS[2] .. ':' .. minute, ARGV[6])
  redis.call('EXPIRE', KEYS[2] .. ':' .. minute, 180)
end
return {refused, tostring(count), tostring(free), tostring(clear), tostring(previous),
        tostring(current), tostring(elapsed), tostring(minute)}
"""

# ARGV: the tokens to add (negative: a reservation released), the minute ('' : this one); a
# minute already out of the window is left alone.
_ADD_TOKENS = """
local t = redis.call('TIME')
local now = math.floor(tonumber(t[1]) / 60)
local minute = tonumber(ARGV[2]) or now
if minute < now - 1 then return 0 end
local key = KEYS[1] .. ':' .. minute
redis.call('INCRBY', key, ARGV[1])
redis.call('EXPIRE', key, 180)
return 1
"""


# `MemoryBackend.reserve` on Redis. KEYS: the key's committed amount this month; ARGV: the
# budget, the amount to reserve, the counter's lifetime. A missing counter answers 'missing'
# (the caller loads it from the ledger, with SET NX, and asks again). Every use extends its life,
# so it is rebuilt from the ledger only after a quiet spell, when no request can be in flight.
_RESERVE = """
local committed = redis.call('GET', KEYS[1])
if not committed then return 'missing' end
if tonumber(committed) >= tonumber(ARGV[1]) then return {'refused', committed} end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
return {'admitted', committed}
"""
_SPENT_TTL_S = 3600  # a counter unused this long is rebuilt from the ledger

_REFUSALS: dict[bytes, Refusal | None] = {b"": None, b"tokens": "tokens", b"requests": "requests"}


_REDIS_TIMEOUT_S = 2.0  # a Redis that stops answering fails a request in bounded time
_PING_TIMEOUT_S = 1.0  # readiness probes are short: Kubernetes' default timeout is 1 s


class RedisBackend:
    """Every Redis failure leaves it as `BackendUnavailable` (the limiter decides what it means)."""

    def __init__(self, url: str, prefix: str = "alicerce") -> None:
        import redis.asyncio as redis

        # RuntimeError too: under uvloop, a write to a connection the server just closed raises
        # it, not ConnectionError as asyncio does (MagicStack/uvloop#506; seen in tests: a
        # Redis cut while a connection opened was a 500 one time in about 30).
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError, RuntimeError)
        self._redis = redis.Redis.from_url(
            url, socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
        )
        self._prefix = prefix
        self._take = self._redis.register_script(_TAKE)
        self._add_tokens = self._redis.register_script(_ADD_TOKENS)
        self._reserve = self._redis.register_script(_RESERVE)
        self._sequence = 0

    async def take(
        self, key_id: str, rpm: int | None, tpm: int | None, tokens: int, reserve: int = 0
    ) -> Counted:
        self._sequence += 1
        member = f"{time.time_ns()}:{id(self)}:{self._sequence}"
        try:
            refused, count, free, clear, previous, current, elapsed, minute = await self._take(
                keys=[f"{self._prefix}:rpm:{key_id}", f"{self._prefix}:tpm:{key_id}"],
                args=[WINDOW_S, rpm or 0, member, tpm or 0, tokens, reserve],
            )
        except self._errors as exc:
            raise BackendUnavailable(f"Redis: {exc}") from exc
        return Counted(
            _REFUSALS[refused],
            int(count),
            float(free),
            float(clear),
            float(previous),
            float(current),
            float(elapsed),
            int(minute),
        )

    async def add_tokens(self, key_id: str, tokens: int, minute: int | None = None) -> None:
        where = "" if minute is None else minute
        try:
            await self._add_tokens(keys=[f"{self._prefix}:tpm:{key_id}"], args=[tokens, where])
        except self._errors as exc:
            raise BackendUnavailable(f"Redis: {exc}") from exc

    async def reserve(
        self,
        key_id: str,
        month: str,
        amount: Decimal,
        budget: Decimal,
        initial: Callable[[], Decimal],
    ) -> Decimal | None:
        name = f"{self._prefix}:spent:{key_id}:{month}"
        args: list[str | int] = [str(budget), str(amount), _SPENT_TTL_S]
        try:
            answer = await self._reserve(keys=[name], args=args)
            if answer == b"missing":  # first use in a while anywhere: start from the ledger
                loaded = await asyncio.to_thread(initial)
                await self._redis.set(name, str(loaded), nx=True, ex=_SPENT_TTL_S)
                answer = await self._reserve(keys=[name], args=args)
        except self._errors as exc:
            raise BackendUnavailable(f"Redis: {exc}") from exc
        outcome, committed = answer
        return Decimal(committed.decode()) if outcome == b"admitted" else None

    async def add_spent(self, key_id: str, month: str, amount: Decimal) -> None:
        name = f"{self._prefix}:spent:{key_id}:{month}"
        try:
            if await self._redis.exists(name):
                await self._redis.incrbyfloat(name, float(amount))
        except self._errors as exc:
            raise BackendUnavailable(f"Redis: {exc}") from exc

    async def reachable(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), _PING_TIMEOUT_S))
        except TimeoutError:
            return False
        except self._errors:
            return False

    async def close(self) -> None:
        await self._redis.aclose()
