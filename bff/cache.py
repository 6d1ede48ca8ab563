"""The cache: one async `Cache` interface with an in-process and a Redis backend, plus small helpers.

Keys are str and values are bytes. Every key is stored under the cache's prefix, so several caches (or
test runs) can share one Redis database. The Redis backend degrades to misses and no-ops when Redis is
unreachable: the cache must never stop the BFF from serving from the database.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger("bff.cache")

# A Redis that is down or unreachable must cost a request milliseconds, not seconds: short socket
# timeouts, a small pool that callers queue on briefly, and a single retry only for broken
# connections (a pooled socket that died with a Redis restart), never for timeouts.
_SOCKET_TIMEOUT = 0.5
_CONNECT_TIMEOUT = 0.5
_POOL_SIZE = 32
_POOL_WAIT = 1.0
_HEALTH_CHECK_INTERVAL = 30
_SCAN_BATCH = 500

# OSError covers failures raised below redis-py's own wrapping (and the builtin TimeoutError).
_REDIS_FAILURES = (RedisError, OSError)


@runtime_checkable
class Cache(Protocol):
    """Async byte cache with TTLs and counters; implemented by MemoryCache and RedisCache."""

    async def get(self, key: str) -> bytes | None:
        """The value stored at key, or None on a miss."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values for keys in key order, None for each miss."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store value at key for ttl seconds (> 0)."""
        ...

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store every item for ttl seconds (> 0)."""
        ...

    async def delete(self, *keys: str) -> int:
        """Remove keys; return how many of them existed."""
        ...

    async def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add amount to the integer at key (created at 0, no TTL) and return the result."""
        ...

    async def ping(self) -> bool:
        """True when the backend is reachable."""
        ...

    async def clear(self) -> None:
        """Remove every key under this cache's prefix, and nothing else."""
        ...

    async def close(self) -> None:
        """Release the backend's resources."""
        ...


def _describe(exc: BaseException) -> str:
    # redis-py's repr hides the message (e.g. "network:TimeoutError"); the log needs both parts.
    return f"{type(exc).__name__}: {exc}"


def _check_ttl(ttl: float) -> None:
    # A zero, negative or infinite TTL is a caller bug, not a cache failure: fail loudly on every backend.
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"cache ttl must be a positive number of seconds, got {ttl!r}")


class MemoryCache:
    """In-process cache: TTLs on the monotonic clock, LRU-bounded to max_entries.

    No method awaits, so each one runs to completion without interleaving: that is what makes
    incr atomic and the store consistent under asyncio concurrency (not thread-safe).
    """

    def __init__(self, prefix: str = "bff:", max_entries: int = 50_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        # Each instance owns its store, so the prefix never has to be applied; it is kept so both
        # backends are built and described the same way.
        self.prefix = prefix
        self.max_entries = max_entries
        # key -> (value, expiry on time.monotonic() or None); order is least recently used first.
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()

    def _lookup(self, key: str, now: float) -> tuple[bytes, float | None] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires_at = entry[1]
        if expires_at is not None and expires_at <= now:
            # Expired entries are dropped lazily, when touched or when LRU eviction reaches them.
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    def _store(self, key: str, value: bytes, expires_at: float | None) -> None:
        self._data[key] = (value, expires_at)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        """The value stored at key, or None on a miss."""
        entry = self._lookup(key, time.monotonic())
        return None if entry is None else entry[0]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values for keys in key order, None for each miss."""
        now = time.monotonic()
        result: list[bytes | None] = []
        for key in keys:
            entry = self._lookup(key, now)
            result.append(None if entry is None else entry[0])
        return result

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store value at key for ttl seconds (> 0)."""
        _check_ttl(ttl)
        self._store(key, value, time.monotonic() + ttl)

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store every item for ttl seconds (> 0)."""
        _check_ttl(ttl)
        expires_at = time.monotonic() + ttl
        for key, value in items.items():
            self._store(key, value, expires_at)

    async def delete(self, *keys: str) -> int:
        """Remove keys; return how many of them existed."""
        now = time.monotonic()
        removed = 0
        for key in keys:
            if self._lookup(key, now) is not None:
                del self._data[key]
                removed += 1
        return removed

    async def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add amount to the integer at key (created at 0, no TTL) and return the result."""
        entry = self._lookup(key, time.monotonic())
        # Like Redis INCRBY: the value is stored as decimal bytes and an existing TTL is kept.
        current, expires_at = (0, None) if entry is None else (int(entry[0]), entry[1])
        result = current + amount
        self._store(key, b"%d" % result, expires_at)
        return result

    async def ping(self) -> bool:
        """Always True: the store is this process."""
        return True

    async def clear(self) -> None:
        """Remove every key of this cache (the store is private to the instance)."""
        self._data.clear()

    async def close(self) -> None:
        """Nothing to release; the cache stays usable."""


def _escape_glob(text: str) -> str:
    # SCAN MATCH takes a glob: a prefix containing *, ?, [ or ] must match itself literally.
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisCache:
    """Cache over redis.asyncio; get/set/delete failures are logged and degrade to misses and no-ops."""

    def __init__(self, url: str, prefix: str = "bff:") -> None:
        self.prefix = prefix
        self._pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=_POOL_SIZE,
            timeout=_POOL_WAIT,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            health_check_interval=_HEALTH_CHECK_INTERVAL,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._redis: Redis = Redis(connection_pool=self._pool)

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> bytes | None:
        """The value stored at key, or None on a miss or when Redis fails."""
        try:
            # decode_responses is off (the default), so replies are bytes, never str.
            value = cast(bytes | None, await self._redis.get(self._key(key)))
        except _REDIS_FAILURES as exc:
            log.warning("cache get %r failed, treating as miss: %s", key, _describe(exc))
            return None
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values for keys in key order (one MGET), all None when Redis fails."""
        if not keys:
            return []
        try:
            values = cast(list[bytes | None], await self._redis.mget([self._key(key) for key in keys]))
        except _REDIS_FAILURES as exc:
            log.warning("cache get_many of %d keys failed, treating as misses: %s", len(keys), _describe(exc))
            return [None] * len(keys)
        return values

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store value at key for ttl seconds (> 0); does nothing when Redis fails."""
        _check_ttl(ttl)
        try:
            await self._redis.set(self._key(key), value, px=_ttl_ms(ttl))
        except _REDIS_FAILURES as exc:
            log.warning("cache set %r failed, skipped: %s", key, _describe(exc))

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store every item for ttl seconds in one pipeline; does nothing when Redis fails."""
        _check_ttl(ttl)
        if not items:
            return
        px = _ttl_ms(ttl)
        try:
            # MSET cannot carry a TTL, so one non-transactional pipeline of SET PX: one round trip.
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(self._key(key), value, px=px)
                await pipe.execute()
        except _REDIS_FAILURES as exc:
            log.warning("cache set_many of %d keys failed, skipped: %s", len(items), _describe(exc))

    async def delete(self, *keys: str) -> int:
        """Remove keys; return how many existed (0 when Redis fails)."""
        if not keys:
            return 0
        try:
            removed: int = await self._redis.delete(*(self._key(key) for key in keys))
        except _REDIS_FAILURES as exc:
            log.warning("cache delete of %d keys failed, skipped: %s", len(keys), _describe(exc))
            return 0
        return removed

    async def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add amount to the integer at key (INCRBY); raises RedisError when Redis fails."""
        # Not degraded: a counter that silently returns a made-up value is worse than an error.
        result: int = await self._redis.incrby(self._key(key), amount)
        return result

    async def ping(self) -> bool:
        """True when Redis answers PING; False (never an exception) otherwise."""
        try:
            return bool(await self._redis.ping())
        except _REDIS_FAILURES:
            return False

    async def clear(self) -> None:
        """Remove every key under this cache's prefix with SCAN + UNLINK (never FLUSHDB)."""
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=_escape_glob(self.prefix) + "*", count=_SCAN_BATCH):
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


def _ttl_ms(ttl: float) -> int:
    # Round up so a sub-millisecond TTL still stores for 1 ms instead of PX 0 (an error in Redis).
    return max(1, math.ceil(ttl * 1000))


def create_cache(redis_url: str | None, prefix: str = "bff:") -> Cache:
    """A RedisCache when redis_url is given, else an in-process MemoryCache."""
    if redis_url:
        return RedisCache(redis_url, prefix=prefix)
    return MemoryCache(prefix=prefix)


async def get_json(cache: Cache, key: str) -> Any | None:
    """The JSON value stored at key, or None on a miss (a stored JSON null also reads as None)."""
    raw = await cache.get(key)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # A value written by another version or by hand must not break the request: treat it as a miss.
        log.warning("cache value at %r is not JSON, treating as miss: %s", key, exc)
        return None


async def set_json(cache: Cache, key: str, value: Any, ttl: float) -> None:
    """Store value as JSON (orjson, UTF-8) at key for ttl seconds."""
    await cache.set(key, orjson.dumps(value), ttl)


def _generation_key(name: str) -> str:
    return f"gen:{name}"


async def generation(cache: Cache, name: str) -> int:
    """The current generation of the key group name (0 when never bumped); embed it in the group's keys."""
    # In MemoryCache the counter is read before every use of its group's keys, so LRU always evicts those
    # keys before the counter; in Redis use a noeviction or volatile-* policy so counters are never evicted.
    raw = await cache.get(_generation_key(name))
    return 0 if raw is None else int(raw)


async def bump_generation(cache: Cache, name: str) -> int:
    """Move the key group name to a new generation, orphaning every key built with the old one."""
    return await cache.incr(_generation_key(name))
