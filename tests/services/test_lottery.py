"""Lottery draws: odds (chi-square with a fixed seed), stock, daily limits, points cost, the audit row."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bff.models.marketing import CouponTemplate, LotteryDraw, LotteryPool, LotteryPrize, MemberCoupon
from bff.models.member import Member, MemberLevel
from bff.services import lottery
from bff.services.errors import BusinessError

# Upper critical values of chi-square at p = 0.001: a correct sampler fails one run in a thousand,
# and with a fixed seed never flakes.
CHI2_CRITICAL_0_001 = {3: 16.266, 4: 18.467}


@pytest.fixture(autouse=True)
def _db(seeded: str) -> None:
    """Every test here needs the seeded database (member levels)."""


async def make_member(points: int = 0) -> int:
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    member = await Member.create(
        openid=f"o_lt{uuid.uuid4().hex[:16]}", level_id=level.id, points_balance=points
    )
    return member.id


async def make_pool(
    prizes: list[tuple[str, int, int]], *, points_cost: int = 0, daily_draws: int = 3
) -> tuple[LotteryPool, list[LotteryPrize]]:
    """A running pool with prizes given as (kind, weight ppm, stock)."""
    now = datetime.now(UTC)
    pool = await LotteryPool.create(
        name=f"抽奖 {uuid.uuid4().hex[:6]}",
        points_cost=points_cost,
        daily_draws=daily_draws,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
    )
    template = await lottery_template()
    rows = [
        await LotteryPrize.create(
            pool_id=pool.id,
            kind=kind,
            name=f"{kind} {i}",
            weight=weight,
            stock=stock,
            coupon_template_id=template.id if kind == "COUPON" else None,
            points=20 if kind == "POINTS" else 0,
        )
        for i, (kind, weight, stock) in enumerate(prizes)
    ]
    return pool, rows


_TEMPLATE: list[CouponTemplate] = []


async def lottery_template() -> CouponTemplate:
    """One coupon template for this module's coupon prizes (the session database is shared)."""
    if not _TEMPLATE:
        _TEMPLATE.append(
            await CouponTemplate.create(
                name="抽奖券", kind="FIXED", amount_fen=500, claimable=False, purpose="LOTTERY", valid_days=7
            )
        )
    return _TEMPLATE[0]


def chi_square(observed: list[int], expected: list[float]) -> float:
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))


def test_pick_lays_the_ranges_end_to_end_in_order() -> None:
    prizes = [LotteryPrize(id=1, weight=10), LotteryPrize(id=2, weight=0), LotteryPrize(id=3, weight=5)]
    assert [getattr(lottery.pick(r, prizes), "id", None) for r in (0, 9, 10, 14, 15, 999_999)] == [
        1,
        1,
        3,
        3,
        None,
        None,
    ]


def test_the_roll_mapping_matches_the_weights_over_many_rolls() -> None:
    weights = [50_000, 150_000, 300_000, 100_000]  # and 400_000 nothing
    prizes = [LotteryPrize(id=i, weight=w) for i, w in enumerate(weights)]
    rng = random.Random(1234)
    n = 200_000
    counts = Counter(
        getattr(lottery.pick(rng.randrange(lottery.ROLL_SPACE), prizes), "id", None) for _ in range(n)
    )
    observed = [counts[i] for i in range(len(weights))] + [counts[None]]
    expected = [n * w / lottery.ROLL_SPACE for w in [*weights, 400_000]]
    assert chi_square(observed, expected) < CHI2_CRITICAL_0_001[4]


async def test_draws_follow_the_configured_probabilities_and_award_what_they_win() -> None:
    n = 1_500
    pool, prizes = await make_pool(
        [("COUPON", 100_000, -1), ("POINTS", 250_000, -1), ("PHYSICAL", 150_000, -1)], daily_draws=n
    )
    member = await make_member()
    rng = random.Random(20240501)
    for _ in range(n):
        await lottery.draw(member, pool.id, rng=rng)
    rows = await LotteryDraw.filter(pool_id=pool.id, member_id=member)
    counts: Counter[int | None] = Counter(r.prize_id for r in rows)
    observed = [counts[p.id] for p in prizes] + [counts[None]]
    expected = [n * w / lottery.ROLL_SPACE for w in (100_000, 250_000, 150_000, 500_000)]
    assert len(rows) == n
    assert chi_square(observed, expected) < CHI2_CRITICAL_0_001[3]
    # What was won was given: coupons in the wallet, points on the balance, physical prizes recorded.
    assert await MemberCoupon.filter(member_id=member, source="LOTTERY").count() == counts[prizes[0].id]
    assert (await Member.get(id=member)).points_balance == 20 * counts[prizes[1].id]


async def test_every_draw_is_recorded_with_its_roll() -> None:
    pool, (prize,) = await make_pool([("PHYSICAL", 500_000, -1)])
    member = await make_member()
    result = await lottery.draw(member, pool.id, rng=random.Random(7))
    expected_roll = random.Random(7).randrange(lottery.ROLL_SPACE)
    row = await LotteryDraw.get(id=result.draw.id)
    assert row.roll == expected_roll and row.pool_id == pool.id and row.member_id == member
    assert row.prize_id == (prize.id if expected_roll < 500_000 else None)
    assert row.day == lottery.shop_day(row.created_at)


async def test_a_prize_out_of_stock_is_never_won() -> None:
    pool, (prize,) = await make_pool([("PHYSICAL", lottery.ROLL_SPACE, 3)], daily_draws=10)
    member = await make_member()
    results = [await lottery.draw(member, pool.id) for _ in range(5)]
    assert [r.prize is not None for r in results] == [True, True, True, False, False]
    assert (await LotteryPrize.get(id=prize.id)).stock == 0
    assert await LotteryDraw.filter(pool_id=pool.id, prize_id=prize.id).count() == 3


async def test_concurrent_draws_never_oversell_a_prize() -> None:
    pool, (prize,) = await make_pool([("COUPON", lottery.ROLL_SPACE, 4)])
    members = [await make_member() for _ in range(12)]
    results = await asyncio.gather(*(lottery.draw(m, pool.id) for m in members))
    assert sum(r.prize is not None for r in results) == 4
    assert (await LotteryPrize.get(id=prize.id)).stock == 0
    assert await MemberCoupon.filter(member_id__in=members, source="LOTTERY").count() == 4


async def test_daily_draws_per_member_reset_on_the_shop_day() -> None:
    pool, _ = await make_pool([("PHYSICAL", 0, -1)], daily_draws=2)
    member = await make_member()
    # 15:30 UTC is 23:30 in China; 16:30 UTC is the next shop day.
    evening = datetime.now(UTC).replace(hour=15, minute=30, second=0, microsecond=0)
    await LotteryPool.filter(id=pool.id).update(starts_at=evening - timedelta(days=1))
    for _ in range(2):
        await lottery.draw(member, pool.id, now=evening)
    with pytest.raises(BusinessError) as limited:
        await lottery.draw(member, pool.id, now=evening + timedelta(minutes=20))
    assert limited.value.code == "LIMIT_REACHED"
    await lottery.draw(member, pool.id, now=evening + timedelta(hours=1))
    other = await make_member()
    await lottery.draw(other, pool.id, now=evening)  # the limit is per member
    assert await lottery.draws_today(member, pool.id, evening) == 2


async def test_concurrent_draws_respect_the_daily_limit() -> None:
    pool, _ = await make_pool([("NOTHING", 0, -1)], daily_draws=3)
    member = await make_member()
    outcomes = await asyncio.gather(
        *(lottery.draw(member, pool.id) for _ in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 3
    assert all(
        isinstance(o, BusinessError) and o.code == "LIMIT_REACHED"
        for o in outcomes
        if isinstance(o, BaseException)
    )
    assert await LotteryDraw.filter(pool_id=pool.id, member_id=member).count() == 3


async def test_points_are_spent_in_the_same_transaction_as_the_draw() -> None:
    pool, _ = await make_pool([("NOTHING", 0, -1)], points_cost=100, daily_draws=5)
    member = await make_member(points=150)
    result = await lottery.draw(member, pool.id)
    assert result.points_balance == 50 and result.draw.points_spent == 100
    with pytest.raises(BusinessError) as poor:
        await lottery.draw(member, pool.id)
    assert poor.value.code == "INSUFFICIENT_POINTS"
    assert await LotteryDraw.filter(pool_id=pool.id, member_id=member).count() == 1
    assert (await Member.get(id=member)).points_balance == 50


async def test_a_pool_draws_only_while_it_runs() -> None:
    pool, _ = await make_pool([("NOTHING", 0, -1)])
    member = await make_member()
    for moment, word in ((pool.starts_at - timedelta(seconds=1), "尚未开始"), (pool.ends_at, "已结束")):
        with pytest.raises(BusinessError) as closed:
            await lottery.draw(member, pool.id, now=moment)
        assert closed.value.code == "INVALID_STATE" and word in closed.value.message
    with pytest.raises(BusinessError) as missing:
        await lottery.draw(member, 0)
    assert missing.value.code == "NOT_FOUND"


async def test_a_lottery_coupon_expires_by_its_template() -> None:
    now = datetime.now(UTC)
    days = CouponTemplate(valid_days=7)
    fixed = CouponTemplate(valid_to=now + timedelta(days=3))
    assert lottery.coupon_expiry(days, now) == now + timedelta(days=7)
    assert lottery.coupon_expiry(fixed, now) == fixed.valid_to
    assert lottery.coupon_expiry(CouponTemplate(valid_days=0), now) == now + timedelta(
        days=lottery.COUPON_DEFAULT_DAYS
    )
