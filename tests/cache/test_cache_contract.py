"""Contract tests: MemoryCache and RedisCache must behave the same (Redis runs only when REDIS_URL is set)."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.exceptions import RedisError

from bff.cache import (
    Cache,
    MemoryCache,
    RedisCache,
    bump_generation,
    create_cache,
    generation,
    get_json,
    set_json,
)

REDIS_URL = os.environ.get("REDIS_URL")

CacheFactory = Callable[[], Cache]


@pytest.fixture(params=["memory", "redis"])
async def make_cache(request: pytest.FixtureRequest) -> AsyncIterator[CacheFactory]:
    """Build caches of one backend, each under a fresh uuid prefix; clear and close them afterwards."""
    backend: str = request.param
    if backend == "redis" and not REDIS_URL:
        pytest.skip("REDIS_URL is not set: the Redis backend of the cache contract is not tested")
    made: list[Cache] = []

    def make() -> Cache:
        prefix = f"test:{uuid.uuid4().hex}:"
        cache: Cache = (
            MemoryCache(prefix=prefix) if backend == "memory" else RedisCache(str(REDIS_URL), prefix)
        )
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.clear()
        await cache.close()


@pytest.fixture
def cache(make_cache: CacheFactory) -> Cache:
    """One cache of the backend under test."""
    return make_cache()


async def test_implements_protocol(cache: Cache) -> None:
    assert isinstance(cache, Cache)
    assert await cache.ping() is True


async def test_miss_then_hit(cache: Cache) -> None:
    assert await cache.get("k") is None
    await cache.set("k", b"v\x00\xff", ttl=30)
    assert await cache.get("k") == b"v\x00\xff"


async def test_overwrite(cache: Cache) -> None:
    await cache.set("k", b"one", ttl=30)
    await cache.set("k", b"two", ttl=30)
    assert await cache.get("k") == b"two"


async def test_get_many_keeps_key_order_with_misses(cache: Cache) -> None:
    await cache.set("a", b"1", ttl=30)
    await cache.set("c", b"3", ttl=30)
    assert await cache.get_many(["c", "missing", "a", "c"]) == [b"3", None, b"1", b"3"]
    assert await cache.get_many([]) == []


async def test_set_many(cache: Cache) -> None:
    await cache.set_many({"x": b"1", "y": b"2", "商品:1": "红色".encode()}, ttl=30)
    assert await cache.get_many(["x", "y", "商品:1"]) == [b"1", b"2", "红色".encode()]
    await cache.set_many({}, ttl=30)


async def test_delete_counts_existing_keys(cache: Cache) -> None:
    await cache.set_many({"a": b"1", "b": b"2"}, ttl=30)
    assert await cache.delete("a", "b", "missing") == 2
    assert await cache.get_many(["a", "b"]) == [None, None]
    assert await cache.delete("a") == 0
    assert await cache.delete() == 0


async def test_ttl_expiry(cache: Cache) -> None:
    await cache.set("short", b"1", ttl=0.2)
    await cache.set_many({"short_many": b"2"}, ttl=0.2)
    await cache.set("long", b"3", ttl=30)
    assert await cache.get_many(["short", "short_many"]) == [b"1", b"2"]
    await asyncio.sleep(0.4)
    assert await cache.get_many(["short", "short_many", "long"]) == [None, None, b"3"]
    assert await cache.delete("short") == 0


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan")])
async def test_rejects_invalid_ttl(cache: Cache, ttl: float) -> None:
    with pytest.raises(ValueError):
        await cache.set("k", b"v", ttl=ttl)
    with pytest.raises(ValueError):
        await cache.set_many({"k": b"v"}, ttl=ttl)


async def test_incr_creates_at_zero_and_stores_decimal_bytes(cache: Cache) -> None:
    assert await cache.incr("n") == 1
    assert await cache.incr("n", 5) == 6
    assert await cache.incr("n", -2) == 4
    assert await cache.get("n") == b"4"


async def test_incr_is_atomic_under_concurrency(cache: Cache) -> None:
    results = await asyncio.gather(*(cache.incr("hits") for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await cache.get("hits") == b"200"


async def test_clear_removes_only_its_own_prefix(make_cache: CacheFactory) -> None:
    mine, other = make_cache(), make_cache()
    await mine.set_many({"a": b"1", "b": b"2"}, ttl=30)
    await mine.incr("n")
    await other.set("a", b"other", ttl=30)
    await mine.clear()
    assert await mine.get_many(["a", "b", "n"]) == [None, None, None]
    assert await other.get("a") == b"other"


async def test_prefixes_isolate_keys(make_cache: CacheFactory) -> None:
    first, second = make_cache(), make_cache()
    await first.set("same", b"first", ttl=30)
    assert await second.get("same") is None
    assert await second.delete("same") == 0
    assert await first.get("same") == b"first"


async def test_generations(cache: Cache) -> None:
    assert await generation(cache, "catalog") == 0
    key = f"catalog:v{await generation(cache, 'catalog')}:product:1"
    await cache.set(key, b"old", ttl=30)
    assert await bump_generation(cache, "catalog") == 1
    assert await bump_generation(cache, "catalog") == 2
    assert await generation(cache, "catalog") == 2
    assert await cache.get(f"catalog:v{await generation(cache, 'catalog')}:product:1") is None
    assert await generation(cache, "members") == 0


async def test_json_round_trip(cache: Cache) -> None:
    value = {
        "title": "新疆长绒棉T恤 👕",
        "price": {"amount": 12900, "currency": "CNY"},
        "tags": ["新品", None],
    }
    await set_json(cache, "product:1", value, ttl=30)
    assert await get_json(cache, "product:1") == value
    assert "长绒棉".encode() in (await cache.get("product:1") or b"")
    assert await get_json(cache, "missing") is None


async def test_get_json_treats_garbage_as_miss(cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    await cache.set("bad", b"\xff not json", ttl=30)
    with caplog.at_level(logging.WARNING, logger="bff.cache"):
        assert await get_json(cache, "bad") is None
    assert any(record.name == "bff.cache" for record in caplog.records)


async def test_memory_lru_bound() -> None:
    cache = MemoryCache(prefix=f"test:{uuid.uuid4().hex}:", max_entries=3)
    await cache.set_many({"a": b"1", "b": b"2", "c": b"3"}, ttl=30)
    assert await cache.get("a") == b"1"  # a becomes most recently used, b the least
    await cache.set("d", b"4", ttl=30)
    assert await cache.get_many(["a", "b", "c", "d"]) == [b"1", None, b"3", b"4"]
    await cache.set("c", b"33", ttl=30)  # an overwrite does not grow the store
    await cache.incr("n")
    assert await cache.get_many(["a", "c", "d", "n"]) == [None, b"33", b"4", b"1"]


def test_create_cache_picks_backend() -> None:
    assert isinstance(create_cache(None), MemoryCache)
    assert isinstance(create_cache(""), MemoryCache)
    redis_cache = create_cache("redis://127.0.0.1:6379/0", prefix="x:")
    assert isinstance(redis_cache, RedisCache)
    assert redis_cache.prefix == "x:"


async def test_redis_down_degrades_to_miss_and_no_op(caplog: pytest.LogCaptureFixture) -> None:
    # Needs no Redis server: nothing listens on port 1, so every connection is refused.
    cache = RedisCache("redis://127.0.0.1:1/0", prefix=f"test:{uuid.uuid4().hex}:")

    async def exercise() -> None:
        assert await cache.get("k") is None
        assert await cache.get_many(["a", "b"]) == [None, None]
        await cache.set("k", b"v", ttl=30)
        await cache.set_many({"a": b"1"}, ttl=30)
        assert await cache.delete("k") == 0
        assert await cache.ping() is False
        assert await get_json(cache, "k") is None
        assert await generation(cache, "catalog") == 0
        with pytest.raises(RedisError):
            await cache.incr("n")

    try:
        with caplog.at_level(logging.WARNING, logger="bff.cache"):
            await asyncio.wait_for(exercise(), timeout=10)
    finally:
        await cache.close()
    warnings = [record for record in caplog.records if record.name == "bff.cache"]
    assert len(warnings) >= 5
