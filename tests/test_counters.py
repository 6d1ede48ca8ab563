"""Contract tests: MemoryCounterStore and RedisCounterStore behave the same (Redis only with REDIS_URL)."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from bff.counters import (
    CounterStore,
    CounterUnavailable,
    MemoryCounterStore,
    Outcome,
    RedisCounterStore,
    create_counters,
)

REDIS_URL = os.environ.get("REDIS_URL")

StoreFactory = Callable[[str | None], CounterStore]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Build stores of one backend under a fresh prefix (or a given one); clear and close them afterwards."""
    backend: str = request.param
    if backend == "redis" and not REDIS_URL:
        pytest.skip("REDIS_URL is not set: the Redis backend of the counter contract is not tested")
    made: list[CounterStore] = []

    def make(prefix: str | None = None) -> CounterStore:
        prefix = prefix or f"test:{uuid.uuid4().hex}:"
        store: CounterStore = (
            MemoryCounterStore(prefix) if backend == "memory" else RedisCounterStore(str(REDIS_URL), prefix)
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.clear()
        await store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> CounterStore:
    """One store of the backend under test."""
    return make_store(None)


async def test_implements_protocol(store: CounterStore) -> None:
    assert isinstance(store, CounterStore)
    assert await store.ping() is True
    assert store.shared is isinstance(store, RedisCounterStore)


async def test_unseeded_until_both_counters_exist(store: CounterStore) -> None:
    assert await store.reserve("p", "m1", 1, 2) is Outcome.UNSEEDED
    assert await store.counts("p", "m1") == (None, None)
    await store.seed("p", 10, "m1", 0, ttl=30)
    assert await store.reserve("p", "m2", 1, 2) is Outcome.UNSEEDED  # m2 has no counter yet
    assert await store.counts("p", "m2") == (10, None)


async def test_reserve_takes_any_quantity_from_both_counters(store: CounterStore) -> None:
    await store.seed("p", 10, "m1", 0, ttl=30)
    assert await store.reserve("p", "m1", 3, 5) is Outcome.RESERVED
    assert await store.counts("p", "m1") == (7, 3)
    assert await store.reserve("p", "m1", 2, 5) is Outcome.RESERVED
    assert await store.counts("p", "m1") == (5, 5)


async def test_limit_counts_what_the_holder_already_has(store: CounterStore) -> None:
    await store.seed("p", 10, "m1", 1, ttl=30)
    assert await store.reserve("p", "m1", 2, 2) is Outcome.LIMIT_REACHED
    assert await store.counts("p", "m1") == (10, 1)  # nothing taken
    assert await store.reserve("p", "m1", 1, 2) is Outcome.RESERVED
    assert await store.reserve("p", "m1", 1, 2) is Outcome.LIMIT_REACHED


async def test_sold_out_takes_nothing(store: CounterStore) -> None:
    await store.seed("p", 2, "m1", 0, ttl=30)
    assert await store.reserve("p", "m1", 3, 5) is Outcome.SOLD_OUT
    assert await store.counts("p", "m1") == (2, 0)
    assert await store.reserve("p", "m1", 2, 5) is Outcome.RESERVED
    assert await store.reserve("p", "m1", 1, 5) is Outcome.SOLD_OUT
    assert await store.counts("p", "m1") == (0, 2)


async def test_limit_is_checked_before_stock(store: CounterStore) -> None:
    await store.seed("p", 0, "m1", 2, ttl=30)
    assert await store.reserve("p", "m1", 1, 2) is Outcome.LIMIT_REACHED


async def test_seed_never_overwrites_live_counts(store: CounterStore) -> None:
    await store.seed("p", 10, "m1", 0, ttl=30)
    assert await store.reserve("p", "m1", 2, 5) is Outcome.RESERVED
    await store.seed("p", 10, "m1", 0, ttl=30)  # a second process seeding from a stale read
    assert await store.counts("p", "m1") == (8, 2)
    await store.seed("p", 99, "m2", 1, ttl=30)  # a new holder on a live pool
    assert await store.counts("p", "m2") == (8, 1)


async def test_release_gives_back_once_per_token(store: CounterStore) -> None:
    await store.seed("p", 10, "m1", 0, ttl=30)
    await store.reserve("p", "m1", 3, 5)
    assert await store.release("p", "m1", 3, "order:1") is True
    assert await store.counts("p", "m1") == (10, 0)
    assert await store.release("p", "m1", 3, "order:1") is False  # an outbox retry
    assert await store.counts("p", "m1") == (10, 0)


async def test_release_never_takes_held_below_zero(store: CounterStore) -> None:
    await store.seed("p", 5, "m1", 1, ttl=30)
    assert await store.release("p", "m1", 3, "t") is True
    assert await store.counts("p", "m1") == (8, 0)


async def test_release_does_not_recreate_missing_counters(store: CounterStore) -> None:
    # The next seed reads the database, which already counts the release.
    assert await store.release("p", "m1", 2, "t") is True
    assert await store.counts("p", "m1") == (None, None)


async def test_forget_drops_only_the_pool_count(store: CounterStore) -> None:
    await store.seed("p", 10, "m1", 0, ttl=30)
    await store.reserve("p", "m1", 2, 5)
    await store.forget("p")
    assert await store.counts("p", "m1") == (None, 2)
    assert await store.reserve("p", "m1", 1, 5) is Outcome.UNSEEDED
    await store.seed("p", 20, "m1", 0, ttl=30)  # the edited stock; the holder keeps what they hold
    assert await store.counts("p", "m1") == (20, 2)
    await store.forget("missing")


async def test_counters_expire(store: CounterStore) -> None:
    await store.seed("p", 10, "m1", 0, ttl=0.2)
    assert await store.reserve("p", "m1", 1, 5) is Outcome.RESERVED  # keeps the seed's expiry
    await store.release("p", "m1", 1, "t")
    await asyncio.sleep(0.4)
    assert await store.counts("p", "m1") == (None, None)
    assert await store.reserve("p", "m1", 1, 5) is Outcome.UNSEEDED


@pytest.mark.parametrize("quantity", [0, -1])
async def test_rejects_a_quantity_below_one(store: CounterStore, quantity: int) -> None:
    await store.seed("p", 10, "m1", 0, ttl=30)
    with pytest.raises(ValueError):
        await store.reserve("p", "m1", quantity, 5)
    with pytest.raises(ValueError):
        await store.release("p", "m1", quantity, "t")


@pytest.mark.parametrize(
    ("available", "held", "ttl"), [(-1, 0, 30), (1, -1, 30), (1, 0, 0), (1, 0, float("inf"))]
)
async def test_rejects_invalid_seeds(store: CounterStore, available: int, held: int, ttl: float) -> None:
    with pytest.raises(ValueError):
        await store.seed("p", available, "m1", held, ttl)


async def test_concurrent_reserves_never_oversell_or_pass_a_limit(make_store: StoreFactory) -> None:
    # Several stores on one prefix stand for several processes (for Redis they share the counters;
    # a memory store is its own, so only one is used there).
    first = make_store(None)
    prefix = getattr(first, "prefix", "")
    stores = [first, *(make_store(prefix) for _ in range(2))] if first.shared else [first]
    members = [f"m{i}" for i in range(40)]
    await first.seed("p", 50, members[0], 0, ttl=30)
    for member in members:
        await first.seed("p", 50, member, 0, ttl=30)
    rng = random.Random(7)
    attempts = [(members[rng.randrange(40)], rng.randint(1, 3)) for _ in range(300)]

    async def attempt(i: int, member: str, quantity: int) -> tuple[str, int, Outcome]:
        return member, quantity, await stores[i % len(stores)].reserve("p", member, quantity, 4)

    results = await asyncio.gather(*(attempt(i, m, q) for i, (m, q) in enumerate(attempts)))
    taken: dict[str, int] = {}
    for member, quantity, outcome in results:
        assert outcome in (Outcome.RESERVED, Outcome.SOLD_OUT, Outcome.LIMIT_REACHED)
        if outcome is Outcome.RESERVED:
            taken[member] = taken.get(member, 0) + quantity
    assert sum(taken.values()) <= 50
    assert all(q <= 4 for q in taken.values())
    available, _ = await first.counts("p", members[0])
    assert available == 50 - sum(taken.values()) and available >= 0
    for member in members:
        assert (await first.counts("p", member))[1] == taken.get(member, 0)


async def test_clear_removes_only_its_own_prefix(make_store: StoreFactory) -> None:
    mine, other = make_store(None), make_store(None)
    await mine.seed("p", 5, "m1", 0, ttl=30)
    await other.seed("p", 7, "m1", 0, ttl=30)
    await mine.clear()
    assert await mine.counts("p", "m1") == (None, None)
    assert await other.counts("p", "m1") == (7, 0)


async def test_create_counters_picks_the_backend() -> None:
    memory = create_counters(None, "x:")
    assert isinstance(memory, MemoryCounterStore) and memory.shared is False
    redis = create_counters("redis://127.0.0.1:1/0", "x:")
    assert isinstance(redis, RedisCounterStore) and redis.shared is True
    await redis.close()


async def test_redis_down_refuses_instead_of_guessing() -> None:
    # Nothing listens on port 1: every call fails fast with CounterUnavailable (ping answers False).
    store = RedisCounterStore("redis://127.0.0.1:1/0", "down:")
    try:
        assert await store.ping() is False
        with pytest.raises(CounterUnavailable):
            await store.reserve("p", "m1", 1, 2)
        with pytest.raises(CounterUnavailable):
            await store.seed("p", 1, "m1", 0, ttl=30)
        with pytest.raises(CounterUnavailable):
            await store.release("p", "m1", 1, "t")
        with pytest.raises(CounterUnavailable):
            await store.counts("p", "m1")
        with pytest.raises(CounterUnavailable):
            await store.forget("p")
    finally:
        await store.close()
