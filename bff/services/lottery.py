"""Lottery (抽奖): weighted prize pools with stock, daily draws, a points cost and an audit row per draw.

Rules:
- A pool runs in [starts_at, ends_at). A member draws at most `daily_draws` times per pool per shop
  day (China time, UTC+8); each draw spends `points_cost` points in the same transaction.
- Each draw rolls an integer in [0, 1_000_000). Prizes (ordered by id) own consecutive ranges of
  `weight` parts per million; a roll past the last range wins nothing. Weights sum to at most 1e6.
- Stock: -1 is unlimited. A prize is won only if its stock is decremented by a conditional update;
  when it is out of stock the draw wins nothing (no re-roll), so no prize is ever more likely than
  advertised and a prize with no stock is never won.
- Prizes: COUPON grants a MemberCoupon (source LOTTERY), POINTS credits points, PHYSICAL is recorded
  by the draw row for the shop to fulfil, NOTHING is a named "thank you" slot.
- Every draw writes a LotteryDraw with the roll, the prize won (null for nothing) and the points spent.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bff.models.marketing import CouponTemplate, LotteryDraw, LotteryPool, LotteryPrize, MemberCoupon
from bff.models.member import Member
from bff.services import points
from bff.services.errors import BusinessError
from bff.services.shop_time import shop_day

ROLL_SPACE = 1_000_000
PRIZE_KINDS = ("COUPON", "POINTS", "PHYSICAL", "NOTHING")
COUPON_DEFAULT_DAYS = 30  # a lottery coupon whose template sets no validity
_SYSTEM_RANDOM = secrets.SystemRandom()


def pick(roll: int, prizes: Sequence[LotteryPrize]) -> LotteryPrize | None:
    """The prize whose range holds `roll`: ranges of `weight` ppm laid end to end in the given order."""
    upper = 0
    for prize in prizes:
        upper += max(0, prize.weight)
        if roll < upper:
            return prize
    return None


@dataclass(frozen=True)
class DrawResult:
    draw: LotteryDraw
    prize: LotteryPrize | None  # None: nothing won (including a prize that had run out)
    member_coupon_id: int | None
    points_balance: int


async def draws_today(member_id: int, pool_id: int, now: datetime | None = None) -> int:
    """How many times the member drew in the pool today (shop day)."""
    day = shop_day(now or datetime.now(UTC))
    return await LotteryDraw.filter(pool_id=pool_id, member_id=member_id, day=day).count()


def coupon_expiry(template: CouponTemplate, now: datetime) -> datetime:
    """When a coupon granted now expires: the template's fixed end, its N days, or a default."""
    if template.valid_to is not None:
        return template.valid_to
    days = template.valid_days if template.valid_days > 0 else COUPON_DEFAULT_DAYS
    return now + timedelta(days=days)


async def draw(
    member_id: int, pool_id: int, *, rng: random.Random | None = None, now: datetime | None = None
) -> DrawResult:
    """Draw once: check the window and the daily limit, spend the points, roll, award, record."""
    moment = now or datetime.now(UTC)
    pool = await LotteryPool.get_or_none(id=pool_id)
    if pool is None:
        raise BusinessError("NOT_FOUND", "抽奖活动不存在", "poolId")
    if moment < pool.starts_at:
        raise BusinessError("INVALID_STATE", "抽奖活动尚未开始", "poolId")
    if moment >= pool.ends_at:
        raise BusinessError("INVALID_STATE", "抽奖活动已结束", "poolId")
    day = shop_day(moment)
    roll = (rng or _SYSTEM_RANDOM).randrange(ROLL_SPACE)
    async with in_transaction():
        # The member row lock serialises one member's draws, so the daily count cannot be raced
        # (SQLite serialises every writer anyway).
        await Member.filter(id=member_id).select_for_update().only("id")
        used = await LotteryDraw.filter(pool_id=pool.id, member_id=member_id, day=day).count()
        if used >= pool.daily_draws:
            raise BusinessError(
                "LIMIT_REACHED", f"今日抽奖次数已用完（每天 {pool.daily_draws} 次）", "poolId"
            )
        if pool.points_cost:
            try:
                await points.change_points(member_id, -pool.points_cost, f"抽奖 {pool.name}"[:64])
            except BusinessError:
                raise BusinessError(
                    "INSUFFICIENT_POINTS", f"积分不足，每次抽奖需 {pool.points_cost} 积分", "poolId"
                ) from None
        prizes = await LotteryPrize.filter(pool_id=pool.id).order_by("id")
        prize = pick(roll, prizes)
        if prize is not None and prize.stock >= 0:
            if not await LotteryPrize.filter(id=prize.id, stock__gt=0).update(stock=F("stock") - 1):
                prize = None  # out of stock: the draw wins nothing (documented: no re-roll)
        coupon_id = await _award(member_id, pool, prize, moment)
        record = await LotteryDraw.create(
            pool_id=pool.id,
            member_id=member_id,
            prize_id=prize.id if prize is not None else None,
            day=day,
            roll=roll,
            points_spent=pool.points_cost,
        )
        balance = await points.balance_of(member_id)
    return DrawResult(draw=record, prize=prize, member_coupon_id=coupon_id, points_balance=balance)


async def _award(member_id: int, pool: LotteryPool, prize: LotteryPrize | None, now: datetime) -> int | None:
    """Give the member what the prize is; returns the granted coupon's id for COUPON prizes."""
    if prize is None:
        return None
    if prize.kind == "COUPON" and prize.coupon_template_id is not None:
        template = await CouponTemplate.get(id=prize.coupon_template_id)
        coupon = await MemberCoupon.create(
            member_id=member_id,
            template_id=template.id,
            expires_at=coupon_expiry(template, now),
            source="LOTTERY",
        )
        return coupon.id
    if prize.kind == "POINTS" and prize.points > 0:
        await points.change_points(member_id, prize.points, f"抽奖奖励 {pool.name}"[:64])
    # PHYSICAL: the draw row is the record the shop fulfils from; NOTHING: nothing to give.
    return None


def won(prize: LotteryPrize | None) -> bool:
    """Whether a draw's prize is a real prize (a NOTHING slot is not)."""
    return prize is not None and prize.kind != "NOTHING"


RECENT_DRAWS = 10


@dataclass(frozen=True)
class PoolView:
    """A pool with its prizes and, for a signed-in member, today's draw count and latest draws."""

    pool: LotteryPool
    prizes: list[LotteryPrize]
    draws_today: int | None
    recent: list[LotteryDraw]


async def pool_view(pool_id: int, member_id: int | None, now: datetime | None = None) -> PoolView | None:
    """What the lottery screen shows, in at most four queries."""
    pool = await LotteryPool.get_or_none(id=pool_id)
    if pool is None:
        return None
    prizes = await LotteryPrize.filter(pool_id=pool.id).order_by("id")
    if member_id is None:
        return PoolView(pool, prizes, None, [])
    count = await draws_today(member_id, pool.id, now)
    recent = (
        await LotteryDraw.filter(pool_id=pool.id, member_id=member_id).order_by("-id").limit(RECENT_DRAWS)
    )
    return PoolView(pool, prizes, count, recent)


async def draw_page(
    pool_id: int, first: int, before_id: int | None
) -> tuple[list[tuple[LotteryDraw, LotteryPrize | None]], bool]:
    """A page of a pool's draws with their prizes, newest first (the audit), and whether more follow."""
    query = LotteryDraw.filter(pool_id=pool_id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    rows = await query.order_by("-id").limit(first + 1)
    page = rows[:first]
    prizes = {
        p.id: p for p in await LotteryPrize.filter(id__in=list({r.prize_id for r in page if r.prize_id}))
    }
    return [(r, prizes.get(r.prize_id) if r.prize_id is not None else None) for r in page], len(rows) > first


async def draw_count(pool_id: int) -> int:
    """How many draws a pool has recorded."""
    return await LotteryDraw.filter(pool_id=pool_id).count()
