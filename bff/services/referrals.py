"""分享得券: invite codes, a new member accepting one, and both rewarded on the invitee's first paid order.

Rules:
- A member's invite code is an opaque id of the member (`shareInvite`), shared as a page link.
- `acceptInvite(code)` attaches the inviter to the caller once. Only a member registered in the
  last 24 hours, who has never paid an order and is not the inviter, may accept; accepting the same
  inviter again is a no-op, another one is refused.
- When the invitee's first paid order is paid, `on_order_paid` (inside the payment transaction)
  grants the inviter one coupon of every active SHARE_INVITER template and the invitee one of every
  active SHARE_INVITEE template. The referral row is marked rewarded by a conditional update, so
  duplicate notifications and retries reward once. A later refund does not take the coupons back;
  a reward template whose total is used up is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bff.ids import decode_id, encode_id
from bff.models.marketing import Referral
from bff.models.member import Member
from bff.models.order import Order
from bff.services import coupon_claims
from bff.services.errors import BusinessError

log = logging.getLogger("bff.referrals")

INVITE_WINDOW = timedelta(hours=24)  # how new a member must be to accept an invitation
INVITER = "SHARE_INVITER"
INVITEE = "SHARE_INVITEE"
SHARE_PAGE = "pages/index/index"


@dataclass(frozen=True)
class InviteStats:
    code: str
    share_path: str
    invited: int
    rewarded: int


def invite_code(member_id: int) -> str:
    """The member's invite code."""
    return encode_id("Invite", member_id)


async def invite_stats(member_id: int) -> InviteStats:
    """The member's invite code and link, and how many invitees joined and were rewarded."""
    code = invite_code(member_id)
    invited = await Referral.filter(inviter_id=member_id).count()
    rewarded = await Referral.filter(inviter_id=member_id, rewarded_at__isnull=False).count()
    return InviteStats(
        code=code, share_path=f"{SHARE_PAGE}?invite={code}", invited=invited, rewarded=rewarded
    )


async def accept_invite(member_id: int, code: str, *, now: datetime | None = None) -> Referral:
    """Attach the code's inviter to a new member; BusinessError when the code or member is not eligible."""
    at = now or datetime.now(UTC)
    inviter_id = decode_id(code.strip(), "Invite")
    if inviter_id is None or not await Member.filter(id=inviter_id).exists():
        raise BusinessError("INVALID_CODE", "邀请码无效", "code")
    if inviter_id == member_id:
        raise BusinessError("INVALID_STATE", "不能接受自己的邀请", "code")
    existing = await Referral.get_or_none(invitee_id=member_id)
    if existing is not None:
        return _same_inviter(existing, inviter_id)
    member = await Member.get(id=member_id)
    if at - member.created_at > INVITE_WINDOW:
        raise BusinessError("INVALID_STATE", "仅限注册 24 小时内的新会员接受邀请", "code")
    if await Order.filter(member_id=member_id, paid_at__isnull=False).exists():
        raise BusinessError("INVALID_STATE", "已下过单的会员不能接受邀请", "code")
    try:
        async with in_transaction():
            return await Referral.create(inviter_id=inviter_id, invitee_id=member_id)
    except IntegrityError:
        # The same member accepted concurrently (a double tap): the first one counts.
        return _same_inviter(await Referral.get(invitee_id=member_id), inviter_id)


def _same_inviter(referral: Referral, inviter_id: int) -> Referral:
    if referral.inviter_id != inviter_id:
        raise BusinessError("INVALID_STATE", "已接受过其他好友的邀请", "code")
    return referral


async def on_order_paid(order: Order, paid_at: datetime | None = None) -> bool:
    """Reward inviter and invitee when this is the invitee's first paid order; True when it rewarded.

    Runs inside the payment transaction; idempotent (the referral is claimed by a conditional update).
    """
    at = paid_at or datetime.now(UTC)
    referral = await Referral.get_or_none(invitee_id=order.member_id, rewarded_at__isnull=True)
    if referral is None:
        return False
    if await Order.filter(member_id=order.member_id, paid_at__isnull=False).exclude(id=order.id).exists():
        return False  # not the first paid order (one was paid before the invitation was accepted)
    claimed = await Referral.filter(id=referral.id, rewarded_at__isnull=True).update(
        rewarded_at=at, rewarded_order_id=order.id
    )
    if not claimed:
        return False
    for purpose, member_id in ((INVITER, referral.inviter_id), (INVITEE, referral.invitee_id)):
        for template in await coupon_claims.active_templates(purpose, now=at):
            if await coupon_claims.grant(member_id, template, purpose, now=at) is None:
                log.warning(
                    "referral %s: template %s has none left for member %s",
                    referral.id,
                    template.id,
                    member_id,
                )
    return True
