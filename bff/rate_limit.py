"""Rate limits by cost over a sliding window: in Redis (shared by every process) or in this process.

The window is the sliding-window counter: the current fixed window's total plus the previous one's,
weighted by how much of it still overlaps the sliding window. It needs two counters per key instead
of a log of every request, and errs by at most the previous window's unevenness.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may go ahead; when not, how many seconds until it may."""

    allowed: bool
    retry_after: float = 0.0


@runtime_checkable
class RateLimiter(Protocol):
    async def hit(self, key: str, cost: int, limit: int, window: float) -> Decision:
        """Charge `cost` to `key` if the total stays within `limit`, else refuse and charge nothing."""
        ...

    async def close(self) -> None: ...


def _sliding_total(previous: int, current: int, now: float, window: float) -> float:
    """The current window's total plus the share of the previous one the sliding window still covers."""
    return previous * (1.0 - (now % window) / window) + current


def _retry_after(now: float, window: float) -> float:
    """A hint for Retry-After: when the current window closes and the totals start to fade."""
    return window - (now % window)


class MemoryRateLimiter:
    """This process's limits (the embedded mode without Redis)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, key: str, cost: int, limit: int, window: float) -> Decision:
        now = self._clock()
        slot = math.floor(now / window)
        previous = self._counts.get((key, slot - 1), 0)
        current = self._counts.get((key, slot), 0)
        if _sliding_total(previous, current, now, window) + cost > limit:
            return Decision(False, _retry_after(now, window))
        self._counts[(key, slot)] = current + cost
        if len(self._counts) > 100_000:  # forget windows that no longer count
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= slot - 1}
        return Decision(True)

    async def close(self) -> None:
        self._counts.clear()


# KEYS[1] previous window, KEYS[2] current window; ARGV: cost, limit, now, window (seconds).
_HIT = """
local previous = tonumber(redis.call('GET', KEYS[1]) or '0')
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local cost, limit, now, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local elapsed = (now % window) / window
if previous * (1 - elapsed) + current + cost > limit then
  return 0
end
redis.call('INCRBY', KEYS[2], cost)
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 2000))
return 1
"""


class RedisRateLimiter:
    """Limits shared by every process through Redis; one Lua script checks and charges atomically."""

    def __init__(self, url: str, prefix: str = "bff:", clock: Clock = time.time) -> None:
        self.prefix = prefix
        self._clock = clock
        self._pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=16,
            timeout=1.0,
            socket_timeout=0.5,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 1),
        )
        self._redis: Redis = Redis(connection_pool=self._pool)
        self._hit = self._redis.register_script(_HIT)

    async def hit(self, key: str, cost: int, limit: int, window: float) -> Decision:
        now = self._clock()
        slot = math.floor(now / window)
        base = f"{self.prefix}rl:{{{key}}}"
        try:
            reply = await self._hit(
                keys=[f"{base}:{slot - 1}", f"{base}:{slot}"], args=[cost, limit, now, window]
            )
        except (RedisError, OSError):
            # Redis down: serve rather than refuse everyone; flash sales have their own guard.
            return Decision(True)
        return Decision(True) if int(cast(int, reply)) else Decision(False, _retry_after(now, window))

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()


def create_rate_limiter(redis_url: str | None, prefix: str) -> RateLimiter:
    """Redis-backed limits when REDIS_URL is set, else this process's."""
    return RedisRateLimiter(redis_url, prefix) if redis_url else MemoryRateLimiter()
