"""Bargain (砍价): a member starts a session, friends each cut the price once, the member buys at its price.

A session is OPEN, FLOOR once the price reached the campaign's floor, BOUGHT when its order is paid,
or EXPIRED at its deadline. Every helper cuts at least 1 fen while that leaves 1 fen for each helper
still needed, and the `helpers_needed`-th helper cuts what is left: the price lands exactly on the
floor and the cuts add up to start − floor to the fen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from bff.graphql_ws import progress_hub
from bff.models.marketing import BargainCampaign, BargainHelp, BargainSession
from bff.models.member import Member
from bff.models.order import Order
from bff.services.campaign_checkout import BARGAIN, CampaignLine, CampaignRef, register
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext, enqueue, handler
from bff.settings import Settings

OPEN = "OPEN"
FLOOR = "FLOOR"
BOUGHT = "BOUGHT"
EXPIRED = "EXPIRED"
ACTIVE = (OPEN, FLOOR)
FINAL = (BOUGHT, EXPIRED)

EXPIRE_TOPIC = "bargain.expire_session"
PROGRESS_TOPIC = "bargain.session_progress"

_rng = random.SystemRandom()  # helpers must not be able to predict (and time) a big cut


def session_topic(session_id: int) -> str:
    """The progress topic subscribers of a session listen to."""
    return f"bargain-session:{session_id}"


def plan_cut(remaining_fen: int, helpers_left: int, rng: random.Random) -> int:
    """The next cut of `remaining_fen` (current − floor) when `helpers_left` helpers are still needed.

    The last one takes all that is left; the others draw up to twice the average, leaving ≥ 1 fen each.
    """
    if remaining_fen <= 0:
        return 0
    if helpers_left <= 1:
        return remaining_fen
    others = helpers_left - 1
    if remaining_fen <= others:
        return 1  # fewer fen than helpers: a fen each, the floor comes early
    ceiling = min(remaining_fen - others, 2 * remaining_fen // helpers_left)
    return rng.randint(1, ceiling)


@dataclass(frozen=True)
class HelpEntry:
    helper_id: int
    nickname: str
    avatar_url: str
    cut_fen: int
    at: datetime


@dataclass(frozen=True)
class SessionView:
    """A session as its page shows it; equal views mean nothing a subscriber sees changed."""

    session_id: int
    member_id: int
    status: str
    current_price_fen: int
    helpers_count: int
    expires_at: datetime
    ordered: bool
    helps: tuple[HelpEntry, ...]
    campaign: BargainCampaign = field(compare=False)

    @property
    def cut_total_fen(self) -> int:
        return self.campaign.start_price_fen - self.current_price_fen

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def helpable_by(self, member_id: int | None, now: datetime) -> bool:
        """Whether `member_id` (None: a signed-in friend) could cut now."""
        if self.status != OPEN or self.expires_at <= now or self.ordered:
            return False
        return member_id is None or (
            member_id != self.member_id and all(h.helper_id != member_id for h in self.helps)
        )

    def buyable_by(self, member_id: int | None, now: datetime) -> bool:
        """Whether the owner could place the order now."""
        return (
            member_id == self.member_id
            and self.status in ACTIVE
            and self.expires_at > now
            and not self.ordered
        )


async def session_view(session_id: int) -> SessionView | None:
    """The session with its helps (first first), or None when it does not exist."""
    session = await BargainSession.get_or_none(id=session_id)
    if session is None:
        return None
    campaign = await BargainCampaign.get(id=session.campaign_id)
    helps = await BargainHelp.filter(session_id=session.id).order_by("id")
    profiles = {
        row["id"]: row
        for row in await Member.filter(id__in=[h.helper_id for h in helps]).values(
            "id", "nickname", "avatar_url"
        )
    }
    return SessionView(
        session_id=session.id,
        member_id=session.member_id,
        status=session.status,
        current_price_fen=session.current_price_fen,
        helpers_count=session.helpers_count,
        expires_at=session.expires_at,
        ordered=session.order_id is not None,
        helps=tuple(
            HelpEntry(
                helper_id=h.helper_id,
                nickname=str(profiles.get(h.helper_id, {}).get("nickname") or ""),
                avatar_url=str(profiles.get(h.helper_id, {}).get("avatar_url") or ""),
                cut_fen=h.cut_fen,
                at=h.created_at,
            )
            for h in helps
        ),
        campaign=campaign,
    )


async def _lock_member(member_id: int) -> None:
    # PostgreSQL: one member's starts run one at a time, so "one active session" holds under double taps.
    await Member.filter(id=member_id).select_for_update().first()


async def start(member_id: int, campaign_id: int, now: datetime | None = None) -> BargainSession:
    """The member's active session of the campaign, started now if there is none."""
    now = now or datetime.now(UTC)
    campaign = await BargainCampaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise BusinessError("NOT_FOUND", "砍价活动不存在", "campaignId")
    if not campaign.starts_at <= now < campaign.ends_at:
        raise BusinessError("INVALID_STATE", "砍价活动未开始或已结束", "campaignId")
    if campaign.start_price_fen <= campaign.floor_price_fen or campaign.helpers_needed < 1:
        raise BusinessError("INVALID_STATE", "砍价活动配置有误", "campaignId")
    async with in_transaction():
        await _lock_member(member_id)
        existing = (
            await BargainSession.filter(
                campaign_id=campaign.id, member_id=member_id, status__in=ACTIVE, expires_at__gt=now
            )
            .order_by("-id")
            .first()
        )
        if existing is not None:
            return existing
        expires_at = min(now + timedelta(minutes=campaign.session_ttl_minutes), campaign.ends_at)
        session = await BargainSession.create(
            campaign_id=campaign.id,
            member_id=member_id,
            current_price_fen=campaign.start_price_fen,
            expires_at=expires_at,
        )
        await enqueue(
            EXPIRE_TOPIC,
            {"session_id": session.id},
            run_at=expires_at,
            dedupe_key=f"bargain-expire:{session.id}",
        )
    return session


@dataclass(frozen=True)
class Help:
    session: BargainSession
    cut_fen: int


async def help_cut(
    helper_id: int, session_id: int, now: datetime | None = None, rng: random.Random | None = None
) -> Help:
    """A friend's one cut of a session (the caller publishes the progress once this returned)."""
    now = now or datetime.now(UTC)
    async with in_transaction():
        # FOR UPDATE (PostgreSQL): concurrent helpers of one session cut one after the other.
        session = await BargainSession.filter(id=session_id).select_for_update().first()
        if session is None:
            raise BusinessError("NOT_FOUND", "砍价不存在", "sessionId")
        if session.member_id == helper_id:
            raise BusinessError("INVALID_INPUT", "不能给自己砍价，分享给好友吧", "sessionId")
        if session.status == FLOOR:
            raise BusinessError("INVALID_STATE", "已经砍到底价了", "sessionId")
        if session.status != OPEN or session.expires_at <= now:
            raise BusinessError("INVALID_STATE", "这个砍价已结束", "sessionId")
        if session.order_id is not None:
            raise BusinessError("INVALID_STATE", "好友已下单，不用再砍了", "sessionId")
        if await BargainHelp.exists(session_id=session.id, helper_id=helper_id):
            raise BusinessError("LIMIT_REACHED", "你已经帮 TA 砍过了", "sessionId")
        campaign = await BargainCampaign.get(id=session.campaign_id)
        cut = plan_cut(
            session.current_price_fen - campaign.floor_price_fen,
            campaign.helpers_needed - session.helpers_count,
            rng or _rng,
        )
        price = session.current_price_fen - cut
        # Guarded by what we read: a concurrent cut (had the lock been bypassed) makes this one fail.
        changed = await BargainSession.filter(
            id=session.id,
            status=OPEN,
            helpers_count=session.helpers_count,
            current_price_fen=session.current_price_fen,
            order_id__isnull=True,
        ).update(
            current_price_fen=price,
            helpers_count=session.helpers_count + 1,
            status=FLOOR if price <= campaign.floor_price_fen else OPEN,
        )
        if not changed:
            raise BusinessError("INVALID_STATE", "砍价的人太多了，请再试一次", "sessionId")
        # The row lock and the check above keep helpers to one cut each; the unique (session, helper)
        # index is the database's own guarantee of it.
        await BargainHelp.create(session_id=session.id, helper_id=helper_id, cut_fen=cut)
    return Help(session=await BargainSession.get(id=session.id), cut_fen=cut)


async def publish_progress(settings: Settings, session_id: int) -> None:
    """Wake the session's subscribers (call after the change committed)."""
    await progress_hub(settings).publish(session_topic(session_id))


# --- checkout hooks ------------------------------------------------------------------------------


class BargainHandler:
    """The campaign-checkout hooks of BARGAIN (ref: the member's session): buy at the session's price."""

    kinds: tuple[str, ...] = (BARGAIN,)

    async def quote(self, member_id: int, ref: CampaignRef, lines: Sequence[tuple[int, int]]) -> CampaignLine:
        session = await BargainSession.get_or_none(id=ref.ref_id, member_id=member_id)
        if session is None:
            raise BusinessError("NOT_FOUND", "砍价不存在", "campaign")
        if session.status == BOUGHT:
            raise BusinessError("INVALID_STATE", "这个砍价已经下单购买了", "campaign")
        if session.status not in ACTIVE or session.expires_at <= datetime.now(UTC):
            raise BusinessError("INVALID_STATE", "砍价已过期", "campaign")
        if session.order_id is not None:
            raise BusinessError("INVALID_STATE", "已有待支付的砍价订单，请先支付或取消", "campaign")
        campaign = await BargainCampaign.get(id=session.campaign_id)
        if any(sku_id != campaign.sku_id for sku_id, _ in lines) or sum(q for _, q in lines) > 1:
            raise BusinessError("INVALID_INPUT", "砍价商品每人限购 1 件", "lines")
        return CampaignLine(sku_id=campaign.sku_id, quantity=1, unit_price_fen=session.current_price_fen)

    async def pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None:
        """Nothing outside the database."""

    async def undo_pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None:
        """Nothing to undo."""

    async def hold(self, order: Order, ref: CampaignRef, line: CampaignLine) -> None:
        """Tie the session to the order at the quoted price; a cut since the quote is PRICE_CHANGED."""
        held = await BargainSession.filter(
            id=ref.ref_id,
            member_id=order.member_id,
            status__in=ACTIVE,
            order_id__isnull=True,
            expires_at__gt=datetime.now(UTC),
            current_price_fen=line.unit_price_fen,
        ).update(order_id=order.id)
        if not held:
            session = await BargainSession.get(id=ref.ref_id)
            if session.status in ACTIVE and session.current_price_fen != line.unit_price_fen:
                raise BusinessError("PRICE_CHANGED", "好友刚又帮你砍了一刀，请确认新价格", "campaign")
            raise BusinessError("INVALID_STATE", "砍价已过期或已下单", "campaign")
        await enqueue(PROGRESS_TOPIC, {"session_id": ref.ref_id})

    async def on_paid(self, order: Order) -> bool:
        """The session is bought; the order ships as any other."""
        session = await BargainSession.get_or_none(order_id=order.id)
        if session is not None:
            await BargainSession.filter(id=session.id).update(status=BOUGHT)
            await enqueue(PROGRESS_TOPIC, {"session_id": session.id})
        return True

    async def on_released(self, order: Order) -> None:
        """The order closed unpaid: the session can be helped and bought again, unless it expired."""
        session = await BargainSession.get_or_none(order_id=order.id, status__in=ACTIVE)
        if session is None:
            return
        expired = session.expires_at <= datetime.now(UTC)
        await BargainSession.filter(id=session.id, order_id=order.id).update(
            order_id=None, status=EXPIRED if expired else session.status
        )
        await enqueue(PROGRESS_TOPIC, {"session_id": session.id})


register(BargainHandler())


@handler(EXPIRE_TOPIC)
async def expire_session(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """At a session's deadline: an active session without an order expires (an order settles it instead)."""
    session_id = int(str(payload["session_id"]))
    session = await BargainSession.get_or_none(id=session_id)
    if session is None or session.status not in ACTIVE or session.order_id is not None:
        return  # bought, expired, or the order's close or payment settles it
    if session.expires_at > ctx.now:
        raise RuntimeError("session deadline not reached yet")  # retried later by the outbox
    changed = await BargainSession.filter(id=session_id, status__in=ACTIVE, order_id__isnull=True).update(
        status=EXPIRED
    )
    if changed:
        await progress_hub(ctx.services.settings).publish(session_topic(session_id))


@handler(PROGRESS_TOPIC)
async def publish_session_progress(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Tell the session's subscribers to look again (queued by changes made inside order transactions)."""
    await progress_hub(ctx.services.settings).publish(session_topic(int(str(payload["session_id"]))))
