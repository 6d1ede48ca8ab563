"""Daily sign-in, points for reviews, and the level table.

Rules:
- Sign-in (签到): once per shop day (UTC+8), enforced by the unique (member, day). A sign-in the day
  after the last one continues the streak, otherwise the streak restarts at 1. Every sign-in earns
  SIGN_IN_POINTS; every 7th day of a streak earns STREAK_BONUS on top.
- Review (评价): a member reviews a line of their own COMPLETED order (not fully refunded) once,
  rating 1-5 and up to 500 characters, and earns REVIEW_POINTS.
- Levels: see `bff.services.points` (highest level whose min_growth ≤ growth; no decay).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bff.models.catalog import Review
from bff.models.member import PointsLedger, SignIn
from bff.models.order import COMPLETED, Order, OrderLine
from bff.services import points
from bff.services.errors import BusinessError
from bff.services.shop_time import shop_day

SIGN_IN_POINTS = 5
STREAK_BONUS_EVERY = 7
STREAK_BONUS = 20
REVIEW_POINTS = 20
MAX_REVIEW_CHARS = 500
REVIEW_SCAN = 100  # order lines read per query when listing what is left to review


@dataclass(frozen=True)
class SignInState:
    day: date
    signed_today: bool
    streak: int  # including today when signed today
    today_points: int  # 0 when not signed today
    next_points: int  # what the next sign-in (today's, or tomorrow's) earns


def sign_in_points(streak: int) -> int:
    """Points for the sign-in that makes a streak `streak` days long."""
    return SIGN_IN_POINTS + (STREAK_BONUS if streak % STREAK_BONUS_EVERY == 0 else 0)


async def sign_in_state(member_id: int, *, now: datetime | None = None) -> SignInState:
    """Whether the member signed in today, their streak and what the next sign-in earns."""
    today = shop_day(now or datetime.now(UTC))
    rows = {
        row.day: row
        for row in await SignIn.filter(member_id=member_id, day__in=[today, today - timedelta(days=1)])
    }
    if today in rows:
        streak = rows[today].streak
        return SignInState(today, True, streak, rows[today].points, sign_in_points(streak + 1))
    yesterday = rows.get(today - timedelta(days=1))
    streak = yesterday.streak if yesterday is not None else 0
    return SignInState(today, False, streak, 0, sign_in_points(streak + 1))


async def sign_in(member_id: int, *, now: datetime | None = None) -> tuple[SignIn, int]:
    """Sign in for today: the sign-in row and the new points balance; LIMIT_REACHED when already done."""
    at = now or datetime.now(UTC)
    state = await sign_in_state(member_id, now=at)
    if state.signed_today:
        raise BusinessError("LIMIT_REACHED", "今天已经签到过了")
    streak = state.streak + 1
    earned = sign_in_points(streak)
    try:
        async with in_transaction():
            row = await SignIn.create(member_id=member_id, day=state.day, points=earned, streak=streak)
            balance = await points.change_points(member_id, earned, f"每日签到 连续{streak}天", now=at)
    except IntegrityError:
        raise BusinessError("LIMIT_REACHED", "今天已经签到过了") from None  # a concurrent sign-in won
    return row, balance


def _review_reason(line_id: int) -> str:
    return f"评价奖励 订单商品#{line_id}"


async def submit_review(
    member_id: int, order_line_id: int, rating: int, content: str, *, now: datetime | None = None
) -> tuple[Review, int]:
    """Review a line of a completed order once: the review and the points it earned."""
    if not 1 <= rating <= 5:
        raise BusinessError("INVALID_INPUT", "评分须为 1-5 星", "rating")
    text = content.strip()
    if len(text) > MAX_REVIEW_CHARS:
        raise BusinessError("INVALID_INPUT", f"评价最多 {MAX_REVIEW_CHARS} 字", "content")
    line = await OrderLine.get_or_none(id=order_line_id)
    order = await Order.get_or_none(id=line.order_id, member_id=member_id) if line is not None else None
    if line is None or order is None:
        raise BusinessError("NOT_FOUND", "订单商品不存在", "orderLineId")
    if order.status != COMPLETED:
        raise BusinessError("INVALID_STATE", "确认收货后才能评价", "orderLineId")
    if line.refunded_quantity >= line.quantity:
        raise BusinessError("INVALID_STATE", "已退款的商品不能评价", "orderLineId")
    reason = _review_reason(line.id)
    async with in_transaction():
        # The line's row lock (PostgreSQL; SQLite runs one write transaction at a time) makes the
        # check and the reward one step: two submissions of one line cannot both pass.
        await OrderLine.filter(id=line.id).select_for_update().only("id").first()
        if await PointsLedger.filter(member_id=member_id, reason=reason).exists():
            raise BusinessError("LIMIT_REACHED", "这件商品已经评价过了", "orderLineId")
        review = await Review.create(
            product_id=line.product_id, member_id=member_id, rating=rating, content=text
        )
        await points.change_points(member_id, REVIEW_POINTS, reason, now=now)
    return review, REVIEW_POINTS


async def reviewable_lines(member_id: int, limit: int) -> list[OrderLine]:
    """Lines of the member's completed orders still to review (待评价), newest order first."""
    found: list[OrderLine] = []
    query = OrderLine.filter(order__member_id=member_id, order__status=COMPLETED).order_by("-order_id", "id")
    offset = 0
    while len(found) < limit:
        chunk = await query.offset(offset).limit(REVIEW_SCAN)
        reasons = {_review_reason(line.id): line.id for line in chunk}
        done = await PointsLedger.filter(member_id=member_id, reason__in=list(reasons)).values_list(
            "reason", flat=True
        )
        reviewed = {reasons[str(r)] for r in done}
        found += [
            line for line in chunk if line.id not in reviewed and line.refunded_quantity < line.quantity
        ]
        if len(chunk) < REVIEW_SCAN:
            break
        offset += REVIEW_SCAN
    return found[:limit]
