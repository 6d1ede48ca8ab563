"""Points and growth: each change is a conditional update plus a ledger row; the balance equals the ledger.

Points rules:
- Every change runs in one transaction: a conditional update of `Member.points_balance` (never below
  zero, whatever runs concurrently) and one `PointsLedger` row. The balance always equals the sum
  of the ledger's deltas.
- An earning (positive delta: payment reward, sign-in, review, points given back) is a grant:
  `remaining = delta`, `expires_at` = the end of the year after the one it was earned in, shop
  time (UTC+8): points earned in 2025 expire at 2027-01-01 00:00 +08:00.
- A spend (negative delta: checkout, refund reversal, expiry) consumes the oldest grants first
  (earliest expiry, then id). Balance from before grants were tracked (ledger rows without
  `remaining`) counts as the oldest and never expires.
- `expire_points(now)` zeroes every grant whose expiry has passed and writes one 积分过期 row per
  member. Each grant makes sure an outbox message (topic `points.expire`) runs it at its expiry.

Growth and levels: a member's level is the highest whose `min_growth` ≤ growth value, recomputed on
every growth change, so refunds can downgrade as payments upgrade. Growth does not decay.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bff.models.member import Member, MemberLevel, PointsLedger
from bff.models.outbox import OutboxMessage
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext, enqueue, handler
from bff.services.shop_time import SHOP_TZ

log = logging.getLogger("bff.points")

# Paid orders earn 1 point and 1 growth value per whole yuan paid.
POINTS_PER_YUAN_PAID = 1
GROWTH_PER_YUAN_PAID = 1

EXPIRE_TOPIC = "points.expire"
EXPIRED_REASON = "积分过期"
EXPIRE_BATCH = 200  # members per query of the expiry job
EXPIRE_MEMBERS_PER_RUN = 2000  # members one outbox run expires, well inside the handler timeout


def expiry_for(earned_at: datetime) -> datetime:
    """When points earned at `earned_at` expire: the end of the following shop year."""
    year = earned_at.astimezone(SHOP_TZ).year
    return datetime(year + 2, 1, 1, tzinfo=SHOP_TZ).astimezone(UTC)


async def balance_of(member_id: int) -> int:
    """The member's points balance now."""
    return (await Member.get(id=member_id)).points_balance


async def change_points(member_id: int, delta: int, reason: str, *, now: datetime | None = None) -> int:
    """Add (or spend, when negative) points inside the caller's transaction; returns the new balance.

    `now` only decides the expiry of an earning (tests drive it); the ledger row keeps the real time.
    """
    if delta == 0:
        return await balance_of(member_id)
    async with in_transaction():
        query = Member.filter(id=member_id)
        if delta < 0:
            query = query.filter(points_balance__gte=-delta)  # never negative, even under concurrent spends
        # The UPDATE also locks the member row (PostgreSQL) until commit: grants below are only
        # touched by the holder of that lock, so concurrent spends and the expiry job serialise.
        if not await query.update(points_balance=F("points_balance") + delta):
            if delta > 0:
                raise BusinessError("NOT_FOUND", "会员不存在")
            raise BusinessError("INSUFFICIENT_POINTS", "积分不足", "pointsToUse")
        balance = await balance_of(member_id)
        if delta > 0:
            expires_at = expiry_for(now or datetime.now(UTC))
            await PointsLedger.create(
                member_id=member_id,
                delta=delta,
                reason=reason,
                balance_after=balance,
                remaining=delta,
                expires_at=expires_at,
            )
            await _ensure_expiry_run(expires_at)
        else:
            await _consume(member_id, -delta, balance - delta)
            await PointsLedger.create(member_id=member_id, delta=delta, reason=reason, balance_after=balance)
    return balance


async def _consume(member_id: int, amount: int, balance_before: int) -> None:
    """Take `amount` from the member's grants, oldest first, after untracked (pre-grant) balance."""
    grants = (
        await PointsLedger.filter(member_id=member_id, remaining__gt=0)
        .order_by("expires_at", "id")
        .values_list("id", "remaining")
    )
    tracked = sum(int(remaining) for _, remaining in grants)
    need = amount - min(amount, max(0, balance_before - tracked))
    emptied: list[int] = []
    for grant_id, remaining in grants:
        if need <= 0:
            break
        take = min(need, int(remaining))
        need -= take
        if take == remaining:
            emptied.append(int(grant_id))
        else:
            await PointsLedger.filter(id=grant_id).update(remaining=F("remaining") - take)
    if emptied:
        await PointsLedger.filter(id__in=emptied).update(remaining=0)


async def _ensure_expiry_run(expires_at: datetime) -> None:
    # One message per expiry instant. Look before inserting: concurrent payments would otherwise
    # all wait on the same unique dedupe key until each other's transactions commit.
    key = f"points-expire:{expires_at.date().isoformat()}"
    if not await OutboxMessage.filter(dedupe_key=key).exists():
        await enqueue(EXPIRE_TOPIC, {}, run_at=expires_at, dedupe_key=key)


async def expire_points(
    now: datetime, *, member_ids: Collection[int] | None = None, max_members: int | None = None
) -> int:
    """Expire grants past their expiry (of these members, of at most `max_members`); returns the points.

    Idempotent: a second run at the same `now` finds nothing left to expire.
    """
    total = 0
    members = 0
    while max_members is None or members < max_members:
        query = PointsLedger.filter(remaining__gt=0, expires_at__lte=now)
        if member_ids is not None:
            query = query.filter(member_id__in=list(member_ids))
        batch = EXPIRE_BATCH if max_members is None else min(EXPIRE_BATCH, max_members - members)
        due = await query.distinct().order_by("member_id").limit(batch).values("member_id")
        if not due:
            break
        for row in due:
            total += await _expire_member(int(row["member_id"]), now)
        members += len(due)
    return total


async def _expire_member(member_id: int, now: datetime) -> int:
    async with in_transaction():
        # Lock the member first, as a spend does, so an expiry never races a spend over one grant.
        await Member.filter(id=member_id).select_for_update().only("id").first()
        due: list[tuple[Any, Any]] = await PointsLedger.filter(
            member_id=member_id, remaining__gt=0, expires_at__lte=now
        ).values_list("id", "remaining")
        amount = sum(int(remaining) for _, remaining in due)
        if amount == 0:
            return 0
        await PointsLedger.filter(id__in=[int(grant_id) for grant_id, _ in due]).update(remaining=0)
        await Member.filter(id=member_id).update(points_balance=F("points_balance") - amount)
        balance = await balance_of(member_id)
        await PointsLedger.create(
            member_id=member_id, delta=-amount, reason=EXPIRED_REASON, balance_after=balance
        )
    log.info("member %s: %s points expired", member_id, amount)
    return amount


@handler(EXPIRE_TOPIC)
async def run_expiry(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Outbox handler: expire what is due at the run's clock, a bounded share per message (idempotent)."""
    await expire_points(ctx.now, max_members=EXPIRE_MEMBERS_PER_RUN)
    # One run must fit the handler timeout: the rest goes on in a follow-up message (one per run,
    # so a retry of this run does not add a second).
    if await PointsLedger.filter(remaining__gt=0, expires_at__lte=ctx.now).exists():
        await enqueue(EXPIRE_TOPIC, {}, run_at=ctx.now, dedupe_key=f"points-expire:more:{ctx.message_id}")


async def expiring_soon(member_id: int, now: datetime) -> tuple[int, datetime | None]:
    """Points of the member's grants that expire next, and when (0, None when nothing will)."""
    first = (
        await PointsLedger.filter(member_id=member_id, remaining__gt=0, expires_at__gt=now)
        .order_by("expires_at")
        .first()
    )
    if first is None or first.expires_at is None:
        return 0, None
    rows = await PointsLedger.filter(
        member_id=member_id, remaining__gt=0, expires_at=first.expires_at
    ).values("remaining")
    return sum(int(r["remaining"]) for r in rows), first.expires_at


async def change_growth(member_id: int, delta: int) -> None:
    """Add (or take back) growth value and move the member to the level it now reaches."""
    if delta == 0:
        return
    await Member.filter(id=member_id).update(growth_value=F("growth_value") + delta)
    growth = (await Member.get(id=member_id)).growth_value
    level = await MemberLevel.filter(min_growth__lte=max(0, growth)).order_by("-rank").first()
    if level is not None:
        await Member.filter(id=member_id).update(level_id=level.id)


def earned_for(paid_fen: int) -> int:
    """Points (and growth) a payment of `paid_fen` earns."""
    return max(0, paid_fen // 100) * POINTS_PER_YUAN_PAID
