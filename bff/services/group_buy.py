"""Group-buy (拼团): open or join a team through checkout; it completes full and paid, or fails and refunds.

A team's life: PENDING (the leader's order is unpaid: not shown, not joinable) → OPEN when the leader
pays → COMPLETED once it has `group_size` members who all paid (every order then goes to the ERP), or
FAILED at its deadline (every paid member refunded, unpaid orders closed) or when the leader's order
closes unpaid. A seat is taken by an unpaid order and given back when that order closes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bff.graphql_ws import progress_hub
from bff.models import order as order_status
from bff.models.catalog import Sku
from bff.models.marketing import GroupBuyCampaign, GroupBuyTeam, GroupBuyTeamMember
from bff.models.member import Member
from bff.models.order import Order, OrderEvent, OrderLine, Payment, Refund
from bff.services import points
from bff.services.campaign_checkout import (
    GROUP_BUY_JOIN,
    GROUP_BUY_OPEN,
    CampaignLine,
    CampaignRef,
    register,
)
from bff.services.errors import BusinessError
from bff.services.orders import end_unpaid
from bff.services.outbox import HandlerContext, enqueue, handler

log = logging.getLogger("bff.group_buy")

PENDING = "PENDING"
OPEN = "OPEN"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
FINAL = (COMPLETED, FAILED)

SEAT_PENDING = "PENDING"
SEAT_PAID = "PAID"
SEAT_REFUNDED = "REFUNDED"

EXPIRE_TOPIC = "group_buy.expire_team"
PROGRESS_TOPIC = "group_buy.team_progress"


def team_topic(team_id: int) -> str:
    """The progress topic subscribers of a team listen to."""
    return f"group-buy-team:{team_id}"


@dataclass(frozen=True)
class Seat:
    member_id: int
    nickname: str
    avatar_url: str
    leader: bool
    paid: bool
    joined_at: datetime


@dataclass(frozen=True)
class TeamView:
    """A team as its share page shows it; equal views mean nothing a subscriber sees changed."""

    team_id: int
    leader_id: int
    status: str
    member_count: int
    group_size: int
    expires_at: datetime
    seats: tuple[Seat, ...]
    campaign: GroupBuyCampaign = field(compare=False)

    @property
    def paid_count(self) -> int:
        return sum(1 for s in self.seats if s.paid)

    @property
    def missing_count(self) -> int:
        return max(0, self.group_size - self.member_count)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def joinable_by(self, member_id: int | None, now: datetime) -> bool:
        """Whether `member_id` (None: anyone) could take a seat now."""
        if self.status != OPEN or self.expires_at <= now or self.missing_count == 0:
            return False
        return member_id is None or all(s.member_id != member_id for s in self.seats)


async def team_view(team_id: int) -> TeamView | None:
    """The team with its seats (oldest first), or None when it does not exist."""
    team = await GroupBuyTeam.get_or_none(id=team_id)
    if team is None:
        return None
    campaign = await GroupBuyCampaign.get(id=team.campaign_id)
    seats = await GroupBuyTeamMember.filter(team_id=team.id).order_by("joined_at", "id")
    profiles = {
        row["id"]: row
        for row in await Member.filter(id__in=[s.member_id for s in seats]).values(
            "id", "nickname", "avatar_url"
        )
    }
    return TeamView(
        team_id=team.id,
        leader_id=team.leader_id,
        status=team.status,
        member_count=team.member_count,
        group_size=campaign.group_size,
        expires_at=team.expires_at,
        seats=tuple(
            Seat(
                member_id=s.member_id,
                nickname=str(profiles.get(s.member_id, {}).get("nickname") or ""),
                avatar_url=str(profiles.get(s.member_id, {}).get("avatar_url") or ""),
                leader=s.member_id == team.leader_id,
                paid=s.status == SEAT_PAID,
                joined_at=s.joined_at,
            )
            for s in seats
        ),
        campaign=campaign,
    )


async def team_of_order(order_id: int) -> TeamView | None:
    """The team an order holds (or held) a seat in."""
    seat = await GroupBuyTeamMember.get_or_none(order_id=order_id)
    return await team_view(seat.team_id) if seat is not None else None


# --- checkout hooks ------------------------------------------------------------------------------


async def _running_campaign(campaign_id: int, now: datetime) -> GroupBuyCampaign:
    campaign = await GroupBuyCampaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise BusinessError("NOT_FOUND", "拼团活动不存在", "campaign")
    if not campaign.starts_at <= now < campaign.ends_at:
        raise BusinessError("INVALID_STATE", "拼团活动未开始或已结束", "campaign")
    return campaign


def _one_unit(campaign: GroupBuyCampaign, lines: Sequence[tuple[int, int]]) -> None:
    # The team price is for one piece of the campaign's SKU per member.
    if any(sku_id != campaign.sku_id for sku_id, _ in lines) or sum(q for _, q in lines) > 1:
        raise BusinessError("INVALID_INPUT", "拼团商品每人限购 1 件", "lines")


async def _lock_team(team_id: int) -> GroupBuyTeam:
    # FOR UPDATE on PostgreSQL serialises the payment, close and deadline transactions of one team, so
    # "everyone paid" is decided once; SQLite serialises every write transaction anyway.
    team = await GroupBuyTeam.filter(id=team_id).select_for_update().first()
    if team is None:
        raise BusinessError("NOT_FOUND", "拼团不存在", "campaign")
    return team


class GroupBuyHandler:
    """The campaign-checkout hooks of GROUP_BUY_OPEN (ref: campaign) and GROUP_BUY_JOIN (ref: team)."""

    kinds: tuple[str, ...] = (GROUP_BUY_OPEN, GROUP_BUY_JOIN)

    async def quote(self, member_id: int, ref: CampaignRef, lines: Sequence[tuple[int, int]]) -> CampaignLine:
        now = datetime.now(UTC)
        if ref.kind == GROUP_BUY_OPEN:
            campaign = await _running_campaign(ref.ref_id, now)
        else:
            team = await GroupBuyTeam.get_or_none(id=ref.ref_id)
            if team is None:
                raise BusinessError("NOT_FOUND", "拼团不存在", "campaign")
            campaign = await _running_campaign(team.campaign_id, now)
            if await GroupBuyTeamMember.exists(team_id=team.id, member_id=member_id):
                raise BusinessError("LIMIT_REACHED", "你已经在这个团里了", "campaign")
            if team.status != OPEN or team.expires_at <= now:
                raise BusinessError("INVALID_STATE", "这个团已结束或尚未开团", "campaign")
            if team.member_count >= campaign.group_size:
                raise BusinessError("SOLD_OUT", "这个团已满员，换一个团或自己开团吧", "campaign")
        if await GroupBuyTeamMember.exists(
            member_id=member_id, team__campaign_id=campaign.id, team__status__in=(PENDING, OPEN)
        ):
            raise BusinessError("LIMIT_REACHED", "你在本活动已有进行中的团", "campaign")
        _one_unit(campaign, lines)
        return CampaignLine(sku_id=campaign.sku_id, quantity=1, unit_price_fen=campaign.group_price_fen)

    async def pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None:
        """Nothing outside the database: the seat is a conditional update in `hold`."""

    async def undo_pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None:
        """Nothing to undo (see `pre_reserve`)."""

    async def hold(self, order: Order, ref: CampaignRef, line: CampaignLine) -> None:
        """Open a team with the leader's seat, or take a seat in a team; raises when there is none."""
        now = datetime.now(UTC)
        if ref.kind == GROUP_BUY_OPEN:
            campaign = await GroupBuyCampaign.get(id=ref.ref_id)
            expires_at = min(now + timedelta(minutes=campaign.team_ttl_minutes), campaign.ends_at)
            team = await GroupBuyTeam.create(
                campaign_id=campaign.id,
                leader_id=order.member_id,
                status=PENDING,
                member_count=1,
                expires_at=expires_at,
            )
            await GroupBuyTeamMember.create(
                team_id=team.id, member_id=order.member_id, order_id=order.id, status=SEAT_PENDING
            )
            # Written with the team: the deadline is met without anyone acting, whatever crashes.
            await enqueue(
                EXPIRE_TOPIC,
                {"team_id": team.id},
                run_at=expires_at,
                dedupe_key=f"group-buy-expire:{team.id}",
            )
            return
        team = await GroupBuyTeam.get(id=ref.ref_id)
        campaign = await GroupBuyCampaign.get(id=team.campaign_id)
        # The seat count is only ever changed by conditional updates: concurrent joins never overfill.
        taken = await GroupBuyTeam.filter(
            id=team.id, status=OPEN, expires_at__gt=now, member_count__lt=campaign.group_size
        ).update(member_count=F("member_count") + 1)
        if not taken:
            fresh = await GroupBuyTeam.get(id=team.id)
            if fresh.status == OPEN and fresh.expires_at > now:
                raise BusinessError("SOLD_OUT", "这个团已满员，换一个团或自己开团吧", "campaign")
            raise BusinessError("INVALID_STATE", "这个团已结束", "campaign")
        # ON CONFLICT DO NOTHING: a duplicate must not abort the PostgreSQL transaction before we explain.
        await GroupBuyTeamMember.bulk_create(
            [
                GroupBuyTeamMember(
                    team_id=team.id, member_id=order.member_id, order_id=order.id, status=SEAT_PENDING
                )
            ],
            ignore_conflicts=True,
        )
        if not await GroupBuyTeamMember.exists(team_id=team.id, order_id=order.id):
            raise BusinessError("LIMIT_REACHED", "你已经在这个团里了", "campaign")
        await enqueue(PROGRESS_TOPIC, {"team_id": team.id})

    async def on_paid(self, order: Order) -> bool:
        """Mark the seat paid; the team's orders ship together once it is complete (True only then)."""
        seat = await GroupBuyTeamMember.get_or_none(order_id=order.id)
        if seat is None:
            log.error("paid group-buy order %s holds no seat: fulfilment held", order.order_no)
            return False
        team = await _lock_team(seat.team_id)
        await GroupBuyTeamMember.filter(id=seat.id).update(status=SEAT_PAID)
        await enqueue(PROGRESS_TOPIC, {"team_id": team.id})
        if team.status == FAILED:
            # The deadline passed while this order could still be paid: the money goes back.
            await _refund_seat(order, seat.id, datetime.now(UTC))
            return False
        if team.status == PENDING and seat.member_id == team.leader_id:
            await GroupBuyTeam.filter(id=team.id, status=PENDING).update(status=OPEN)
            team.status = OPEN
        campaign = await GroupBuyCampaign.get(id=team.campaign_id)
        return await _complete_if_ready(team, campaign.group_size)

    async def on_released(self, order: Order) -> None:
        """Give the seat of an order that closed unpaid back; a team whose leader never paid fails."""
        seat = await GroupBuyTeamMember.get_or_none(order_id=order.id, status=SEAT_PENDING)
        if seat is None:
            return
        team = await _lock_team(seat.team_id)
        await GroupBuyTeamMember.filter(id=seat.id, status=SEAT_PENDING).delete()
        if team.status == PENDING and seat.member_id == team.leader_id:
            await GroupBuyTeam.filter(id=team.id, status=PENDING).update(status=FAILED, member_count=0)
        elif team.status == OPEN:
            await GroupBuyTeam.filter(id=team.id, status=OPEN, member_count__gt=0).update(
                member_count=F("member_count") - 1
            )
        await enqueue(PROGRESS_TOPIC, {"team_id": team.id})


register(GroupBuyHandler())


async def _complete_if_ready(team: GroupBuyTeam, group_size: int) -> bool:
    """Complete an OPEN team whose `group_size` seats are all paid, and release its orders to the ERP."""
    if team.status != OPEN:
        return False
    paid = [
        row["order_id"]
        for row in await GroupBuyTeamMember.filter(team_id=team.id, status=SEAT_PAID).values("order_id")
    ]
    if len(paid) < group_size:
        return False
    if not await GroupBuyTeam.filter(id=team.id, status=OPEN).update(status=COMPLETED):
        return False
    for order_id in paid:
        if order_id is None:
            continue  # a seat taken without an order (imported or seeded data): nothing to ship
        await OrderEvent.create(order_id=order_id, status=order_status.PAID, note="拼团成功，等待发货")
        # The key payments uses: an order is pushed once whichever path queued it first.
        await enqueue("erp.push_order", {"order_id": order_id}, dedupe_key=f"erp-push:{order_id}")
    return True


async def _refund_seat(order: Order, seat_id: int, now: datetime) -> None:
    """Refund a paid member of a failed team in full and close the order (inside the caller's transaction)."""
    if not await GroupBuyTeamMember.filter(id=seat_id, status=SEAT_PAID).update(status=SEAT_REFUNDED):
        return  # refunded already (a retried deadline job)
    order = await Order.get(id=order.id)
    requested = sum(
        int(row["amount_fen"])
        for row in await Refund.filter(order_id=order.id, status__not="FAILED").values("amount_fen")
    )
    amount = order.payable_fen - requested  # an after-sale may have refunded part already
    if order.status == order_status.PAID:
        await Order.filter(id=order.id, status=order_status.PAID).update(
            status=order_status.CLOSED, closed_at=now, close_reason="拼团未成团，已自动退款"
        )
        await OrderEvent.create(
            order_id=order.id, status=order_status.CLOSED, note="拼团未成团，订单关闭并全额退款"
        )
        await _undo_sale(order)
    if amount <= 0:
        return
    await Payment.filter(order_id=order.id, status="SUCCESS").update(status="REFUNDING")
    refund = await Refund.create(
        order_id=order.id,
        out_refund_no=f"GB{order.id:010d}",
        amount_fen=amount,
        reason="拼团未成团，自动退款",
    )
    await enqueue("wechatpay.refund", {"refund_id": refund.id}, dedupe_key=f"refund:{refund.id}")


async def _undo_sale(order: Order) -> None:
    # Nothing was shipped: the points it used come back, those it earned go, the stock mirror returns.
    if order.points_used:
        await points.change_points(order.member_id, order.points_used, f"拼团失败退回 {order.order_no}")
    earned = points.earned_for(order.payable_fen)
    take_back = min(earned, await points.balance_of(order.member_id))
    if take_back:
        await points.change_points(order.member_id, -take_back, f"拼团失败扣回奖励 {order.order_no}")
    await points.change_growth(order.member_id, -earned)
    for sku_id, quantity in await OrderLine.filter(order_id=order.id).values_list("sku_id", "quantity"):
        await Sku.filter(id=sku_id).update(stock=F("stock") + quantity)


async def fail_team(team_id: int, now: datetime) -> list[int]:
    """At the deadline: complete a team that made it, else fail it and refund its paid members (idempotent).

    Returns the unpaid orders still holding seats, for the caller to close.
    """
    async with in_transaction():
        team = await _lock_team(team_id)
        if team.status == COMPLETED:
            return []
        if team.status in (PENDING, OPEN):
            campaign = await GroupBuyCampaign.get(id=team.campaign_id)
            # A team that filled up and paid but whose completion was missed still completes.
            if await _complete_if_ready(team, campaign.group_size):
                return []
            await GroupBuyTeam.filter(id=team.id, status__in=(PENDING, OPEN)).update(status=FAILED)
        for seat in await GroupBuyTeamMember.filter(
            team_id=team.id, status=SEAT_PAID, order_id__isnull=False
        ):
            assert seat.order_id is not None
            await _refund_seat(await Order.get(id=seat.order_id), seat.id, now)
        pending = await GroupBuyTeamMember.filter(
            team_id=team.id, status=SEAT_PENDING, order_id__isnull=False
        ).values("order_id")
    return [int(row["order_id"]) for row in pending]


@handler(EXPIRE_TOPIC)
async def expire_team(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """At a team's deadline: refund a team that did not complete and close its unpaid orders."""
    team_id = int(str(payload["team_id"]))
    team = await GroupBuyTeam.get_or_none(id=team_id)
    if team is None or team.status == COMPLETED:
        return
    if team.status in (PENDING, OPEN) and team.expires_at > ctx.now:
        raise RuntimeError("team deadline not reached yet")  # retried later by the outbox
    for order_id in await fail_team(team_id, ctx.now):
        await end_unpaid(order_id, order_status.CLOSED, "拼团未成团，订单已关闭", ctx.services.cache)
    await progress_hub(ctx.services.settings).publish(team_topic(team_id))


@handler(PROGRESS_TOPIC)
async def publish_team_progress(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Tell the team's subscribers to look again (queued by changes made inside order transactions)."""
    await progress_hub(ctx.services.settings).publish(team_topic(int(str(payload["team_id"]))))
