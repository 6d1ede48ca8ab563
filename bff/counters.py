"""Campaign counters: one `CounterStore` protocol with an in-process and a Redis backend.

A pool (a flash-sale item, say) has an `available` count, and each holder (a member) a `held` count
under a per-holder limit. `reserve` takes any quantity from both at once, or nothing. The counters
are a fast gate in front of the database, which stays the record: callers seed them lazily from it
(set-if-absent, so a restart or a second process never overwrites live counts) and a missing counter
is reported as UNSEEDED, never guessed. A backend that cannot answer raises `CounterUnavailable`.
"""

from __future__ import annotations

import enum
import math
import time
from typing import Protocol, cast, runtime_checkable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bff.cache import _escape_glob

# A release token is remembered this long, which outlives every outbox retry of the same release.
RELEASE_MARKER_TTL = 24 * 3600.0

# A refused connection fails at once whatever these say; they bound a Redis that is slow or a host
# that is loaded. Connecting is safe to wait for (no command was sent), so its timeout is the longer
# one, and a small pool keeps a burst of shoppers from opening a storm of sockets at once.
_SOCKET_TIMEOUT = 1.0
_CONNECT_TIMEOUT = 2.0
_POOL_SIZE = 16
_POOL_WAIT = 2.0
_HEALTH_CHECK_INTERVAL = 30
_SCAN_BATCH = 500
_REDIS_FAILURES = (RedisError, OSError)
_MEMORY_PURGE_AT = 100_000


class Outcome(enum.StrEnum):
    """What `reserve` did."""

    RESERVED = "RESERVED"
    SOLD_OUT = "SOLD_OUT"  # the pool has less than the quantity left
    LIMIT_REACHED = "LIMIT_REACHED"  # the holder would go over the limit
    UNSEEDED = "UNSEEDED"  # the pool or the holder has no counter yet: seed it from the database


class CounterUnavailable(RuntimeError):
    """The backend did not answer (Redis down or slow): refuse the purchase, never guess."""


@runtime_checkable
class CounterStore(Protocol):
    """Atomic stock-and-limit counters; implemented by MemoryCounterStore and RedisCounterStore."""

    # True when every process sees the same counters (Redis); an in-process store sees only its own.
    shared: bool

    async def reserve(self, pool: str, holder: str, quantity: int, limit: int) -> Outcome:
        """Take quantity from the pool and add it to the holder, both or neither (limit checked first)."""
        ...

    async def seed(self, pool: str, available: int, holder: str, held: int, ttl: float) -> None:
        """Set the pool's and the holder's counters where absent (existing counts win) for ttl seconds."""
        ...

    async def release(self, pool: str, holder: str, quantity: int, token: str) -> bool:
        """Give quantity back once per token (False if the token was used); missing counters stay missing."""
        ...

    async def counts(self, pool: str, holder: str) -> tuple[int | None, int | None]:
        """(available, held) as stored now, None where there is no counter."""
        ...

    async def forget(self, pool: str) -> None:
        """Drop the pool's available count, so the next reserve seeds it again (its stock was edited)."""
        ...

    async def ping(self) -> bool:
        """True when the backend is reachable."""
        ...

    async def clear(self) -> None:
        """Remove every counter under this store's prefix, and nothing else."""
        ...

    async def close(self) -> None:
        """Release the backend's resources."""
        ...


def _check_quantity(quantity: int) -> None:
    if quantity < 1:
        raise ValueError(f"quantity must be at least 1, got {quantity!r}")


def _check_seed(available: int, held: int, ttl: float) -> None:
    if available < 0 or held < 0:
        raise ValueError(f"counters cannot be seeded negative: available={available}, held={held}")
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"counter ttl must be a positive number of seconds, got {ttl!r}")


class MemoryCounterStore:
    """Counters in this process, expiring on the monotonic clock.

    No method awaits, so each runs to completion without interleaving: that is what makes reserve
    atomic under asyncio concurrency (not thread-safe, and not shared with other processes).
    """

    shared = False

    def __init__(self, prefix: str = "bff:") -> None:
        self.prefix = prefix  # kept so both backends are built alike; the store is private anyway
        self._values: dict[tuple[str, ...], tuple[int, float]] = {}
        self._markers: dict[tuple[str, str], float] = {}

    def _get(self, key: tuple[str, ...], now: float) -> int | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._values[key]
            return None
        return entry[0]

    def _add(self, key: tuple[str, ...], amount: int, now: float) -> None:
        # Like INCRBY on an existing key: the expiry is kept.
        entry = self._values.get(key)
        if entry is not None and entry[1] > now:
            self._values[key] = (max(0, entry[0] + amount), entry[1])

    def _purge(self, now: float) -> None:
        # Expired entries are otherwise only dropped when touched; bound the memory of a long sale.
        if len(self._values) + len(self._markers) < _MEMORY_PURGE_AT:
            return
        self._values = {k: v for k, v in self._values.items() if v[1] > now}
        self._markers = {k: v for k, v in self._markers.items() if v > now}

    async def reserve(self, pool: str, holder: str, quantity: int, limit: int) -> Outcome:
        """Take quantity from the pool and add it to the holder, both or neither (limit checked first)."""
        _check_quantity(quantity)
        now = time.monotonic()
        available = self._get(("avail", pool), now)
        held = self._get(("held", pool, holder), now)
        if available is None or held is None:
            return Outcome.UNSEEDED
        if held + quantity > limit:
            return Outcome.LIMIT_REACHED
        if available < quantity:
            return Outcome.SOLD_OUT
        self._add(("avail", pool), -quantity, now)
        self._add(("held", pool, holder), quantity, now)
        return Outcome.RESERVED

    async def seed(self, pool: str, available: int, holder: str, held: int, ttl: float) -> None:
        """Set the pool's and the holder's counters where absent (existing counts win) for ttl seconds."""
        _check_seed(available, held, ttl)
        now = time.monotonic()
        self._purge(now)
        for key, value in ((("avail", pool), available), (("held", pool, holder), held)):
            if self._get(key, now) is None:
                self._values[key] = (value, now + ttl)

    async def release(self, pool: str, holder: str, quantity: int, token: str) -> bool:
        """Give quantity back once per token (False if the token was used); missing counters stay missing."""
        _check_quantity(quantity)
        now = time.monotonic()
        marker = self._markers.get((pool, token))
        if marker is not None and marker > now:
            return False
        self._markers[(pool, token)] = now + RELEASE_MARKER_TTL
        self._add(("avail", pool), quantity, now)
        self._add(("held", pool, holder), -quantity, now)
        return True

    async def counts(self, pool: str, holder: str) -> tuple[int | None, int | None]:
        """(available, held) as stored now, None where there is no counter."""
        now = time.monotonic()
        return self._get(("avail", pool), now), self._get(("held", pool, holder), now)

    async def forget(self, pool: str) -> None:
        """Drop the pool's available count, so the next reserve seeds it again (its stock was edited)."""
        self._values.pop(("avail", pool), None)

    async def ping(self) -> bool:
        """Always True: the store is this process."""
        return True

    async def clear(self) -> None:
        """Remove every counter of this store."""
        self._values.clear()
        self._markers.clear()

    async def close(self) -> None:
        """Nothing to release; the store stays usable."""


# KEYS: available, held. ARGV: quantity, limit. The limit is checked before the stock, so a member
# at the limit hears LIMIT_REACHED even once the item is sold out. DECRBY/INCRBY keep the keys' TTL.
_RESERVE = """
local available = redis.call('GET', KEYS[1])
local held = redis.call('GET', KEYS[2])
if not available or not held then return 'UNSEEDED' end
local quantity = tonumber(ARGV[1])
if tonumber(held) + quantity > tonumber(ARGV[2]) then return 'LIMIT_REACHED' end
if tonumber(available) < quantity then return 'SOLD_OUT' end
redis.call('DECRBY', KEYS[1], quantity)
redis.call('INCRBY', KEYS[2], quantity)
return 'RESERVED'
"""

# KEYS: available, held, release marker. ARGV: quantity, marker TTL in ms. A counter that expired
# is not recreated: the next seed reads the database, which already counts this release.
_RELEASE = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then return 0 end
local quantity = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], quantity) end
if redis.call('EXISTS', KEYS[2]) == 1 then
  local left = redis.call('DECRBY', KEYS[2], quantity)
  if left < 0 then redis.call('INCRBY', KEYS[2], -left) end
end
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisCounterStore:
    """Counters in Redis, shared by every process: one Lua script reserves, one releases."""

    shared = True

    def __init__(self, url: str, prefix: str = "bff:") -> None:
        self.prefix = prefix
        # No retries: a reply lost after the script ran would reserve twice. A failure refuses the
        # purchase instead (the shopper can try again), which never oversells.
        self._pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=_POOL_SIZE,
            timeout=_POOL_WAIT,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            health_check_interval=_HEALTH_CHECK_INTERVAL,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis: Redis = Redis(connection_pool=self._pool)
        self._reserve = self._redis.register_script(_RESERVE)
        self._release = self._redis.register_script(_RELEASE)

    def _keys(self, pool: str, holder: str) -> list[str]:
        # The {pool} hash tag keeps a pool's keys in one cluster slot, as a multi-key script requires.
        base = f"{self.prefix}ctr:{{{pool}}}"
        return [f"{base}:avail", f"{base}:held:{holder}"]

    async def reserve(self, pool: str, holder: str, quantity: int, limit: int) -> Outcome:
        """Take quantity from the pool and add it to the holder, both or neither (limit checked first)."""
        _check_quantity(quantity)
        try:
            reply = await self._reserve(keys=self._keys(pool, holder), args=[quantity, limit])
        except _REDIS_FAILURES as exc:
            raise CounterUnavailable(f"reserve on {pool!r} failed: {type(exc).__name__}: {exc}") from exc
        return Outcome(cast(bytes, reply).decode())

    async def seed(self, pool: str, available: int, holder: str, held: int, ttl: float) -> None:
        """Set the pool's and the holder's counters where absent (existing counts win) for ttl seconds."""
        _check_seed(available, held, ttl)
        avail_key, held_key = self._keys(pool, holder)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(avail_key, available, nx=True, px=_ms(ttl))
                pipe.set(held_key, held, nx=True, px=_ms(ttl))
                await pipe.execute()
        except _REDIS_FAILURES as exc:
            raise CounterUnavailable(f"seed of {pool!r} failed: {type(exc).__name__}: {exc}") from exc

    async def release(self, pool: str, holder: str, quantity: int, token: str) -> bool:
        """Give quantity back once per token (False if the token was used); missing counters stay missing."""
        _check_quantity(quantity)
        keys = [*self._keys(pool, holder), f"{self.prefix}ctr:{{{pool}}}:rel:{token}"]
        try:
            reply = await self._release(keys=keys, args=[quantity, _ms(RELEASE_MARKER_TTL)])
        except _REDIS_FAILURES as exc:
            raise CounterUnavailable(f"release on {pool!r} failed: {type(exc).__name__}: {exc}") from exc
        return bool(reply)

    async def counts(self, pool: str, holder: str) -> tuple[int | None, int | None]:
        """(available, held) as stored now, None where there is no counter."""
        try:
            values = cast(list[bytes | None], await self._redis.mget(self._keys(pool, holder)))
        except _REDIS_FAILURES as exc:
            raise CounterUnavailable(f"read of {pool!r} failed: {type(exc).__name__}: {exc}") from exc
        available, held = (None if v is None else int(v) for v in values)
        return available, held

    async def forget(self, pool: str) -> None:
        """Drop the pool's available count, so the next reserve seeds it again (its stock was edited)."""
        try:
            await self._redis.delete(self._keys(pool, "")[0])
        except _REDIS_FAILURES as exc:
            raise CounterUnavailable(f"forget of {pool!r} failed: {type(exc).__name__}: {exc}") from exc

    async def ping(self) -> bool:
        """True when Redis answers PING; False (never an exception) otherwise."""
        try:
            return bool(await self._redis.ping())
        except _REDIS_FAILURES:
            return False

    async def clear(self) -> None:
        """Remove every counter under this store's prefix with SCAN + UNLINK (never FLUSHDB)."""
        batch: list[bytes] = []
        match = _escape_glob(f"{self.prefix}ctr:") + "*"
        async for key in self._redis.scan_iter(match=match, count=_SCAN_BATCH):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                await self._redis.unlink(*batch)
                batch = []
        if batch:
            await self._redis.unlink(*batch)

    async def close(self) -> None:
        """Close the client and its connection pool."""
        await self._redis.aclose()
        await self._pool.aclose()


def create_counters(redis_url: str | None, prefix: str = "bff:") -> CounterStore:
    """A RedisCounterStore when redis_url is given, else an in-process MemoryCounterStore."""
    if redis_url:
        return RedisCounterStore(redis_url, prefix=prefix)
    return MemoryCounterStore(prefix=prefix)
