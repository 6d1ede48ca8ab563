"""The cost-based rate limiter: the same contract in this process and in Redis, on a driven clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from bff.rate_limit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, create_rate_limiter

REDIS_URL = os.environ.get("REDIS_URL")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Factory = Callable[[Clock], RateLimiter]


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    made: list[RateLimiter] = []
    prefix = f"rl-test-{uuid.uuid4().hex[:8]}:"
    if request.param == "redis" and not REDIS_URL:
        pytest.skip("REDIS_URL is not set: the Redis backend of the rate-limit contract is not tested")

    def make(clock: Clock) -> RateLimiter:
        limiter: RateLimiter = (
            MemoryRateLimiter(clock)
            if request.param == "memory"
            else RedisRateLimiter(REDIS_URL or "", prefix, clock)
        )
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def test_charges_up_to_the_limit_then_refuses_without_charging(make_limiter: Factory) -> None:
    clock = Clock(1_000_040.0)  # 20 s into a 60 s window
    limiter = make_limiter(clock)
    assert (await limiter.hit("m:1", 600, 1000, 60)).allowed
    assert (await limiter.hit("m:1", 400, 1000, 60)).allowed
    refused = await limiter.hit("m:1", 1, 1000, 60)
    assert not refused.allowed and 0 < refused.retry_after <= 60
    # A refused request was not charged: another key is independent, and so is a cheaper later window.
    assert (await limiter.hit("m:2", 1000, 1000, 60)).allowed


async def test_the_previous_window_fades_as_the_sliding_window_moves(make_limiter: Factory) -> None:
    clock = Clock(2_000_020.0)  # 40 s into a window
    limiter = make_limiter(clock)
    assert (await limiter.hit("ip:1", 1000, 1000, 60)).allowed
    clock.now += 60  # next window, 2/3 in: the previous 1000 counts for 1/3 → 333
    assert (await limiter.hit("ip:1", 600, 1000, 60)).allowed
    assert not (await limiter.hit("ip:1", 100, 1000, 60)).allowed  # 333 + 600 + 100 > 1000
    clock.now += 20  # the next window's start: the 600 now counts fully as the previous window
    assert (await limiter.hit("ip:1", 400, 1000, 60)).allowed
    assert not (await limiter.hit("ip:1", 1, 1000, 60)).allowed


async def test_a_cost_over_the_limit_never_fits(make_limiter: Factory) -> None:
    limiter = make_limiter(Clock(3_000_000.0))
    assert not (await limiter.hit("m:9", 1001, 1000, 60)).allowed


async def test_redis_down_lets_requests_through() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", "x:")
    try:
        assert (await limiter.hit("m:1", 10, 5, 60)).allowed
    finally:
        await limiter.close()


def test_create_rate_limiter_picks_the_backend() -> None:
    assert isinstance(create_rate_limiter(None, "x:"), MemoryRateLimiter)
    assert isinstance(create_rate_limiter("redis://127.0.0.1:1/0", "x:"), RedisRateLimiter)
