"""A member's rights over their personal data (个人信息保护法): consent to the privacy policy and
account deletion. The export is in bff/services/privacy_export.py.

Deletion anonymises rather than deletes the member row: orders, payments and refunds stay for the
accounts (they reference the member id), stripped of the delivery address; everything that only
identifies or profiles the person goes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bff.models.analytics import TrackedEvent
from bff.models.cart import CartItem
from bff.models.churn import MemberScore
from bff.models.marketing import MemberCoupon
from bff.models.member import Address, Member
from bff.models.order import PAID, PENDING_PAYMENT, SHIPPED, AfterSale, Order
from bff.models.recommendation import MemberRecommendation
from bff.services.errors import BusinessError
from bff.services.outbox import enqueue

DELETED_NICKNAME = "已注销用户"
DELETE_CONFIRMATION = "DELETE"
# Orders the shop still owes something on: unpaid (stock and coupons held), paid but not delivered.
IN_PROGRESS = (PENDING_PAYMENT, PAID, SHIPPED)
OPEN_AFTER_SALES = ("REQUESTED", "REFUNDING", "PROCESSING")


@dataclass(frozen=True)
class Consent:
    """The policy version a member accepted (None: never) against the one in force."""

    accepted_version: str | None
    accepted_at: datetime | None
    current_version: str

    @property
    def is_current(self) -> bool:
        return self.accepted_version == self.current_version


def consent_of(member: Member, current_version: str) -> Consent:
    """The member's consent record as the API shows it."""
    return Consent(member.privacy_version, member.privacy_accepted_at, current_version)


async def accept_policy(member_id: int, version: str, current_version: str, now: datetime) -> Consent:
    """Record that the member accepted `version`, which must be the policy in force."""
    if version != current_version:
        raise BusinessError(
            "INVALID_INPUT", f"请阅读并同意当前版本（{current_version}）的隐私政策", "version"
        )
    updated = await Member.filter(id=member_id, deleted_at=None).update(
        privacy_version=version, privacy_accepted_at=now
    )
    if not updated:
        raise BusinessError("NOT_FOUND", "账号不存在或已注销")
    return Consent(version, now, current_version)


async def _refuse_if_in_progress(member_id: int) -> None:
    if await Order.filter(member_id=member_id, status__in=IN_PROGRESS).exists():
        raise BusinessError(
            "ORDER_IN_PROGRESS", "有未完成的订单（待支付、待发货或待收货），完成后才能注销账号"
        )
    if await AfterSale.filter(member_id=member_id, status__in=OPEN_AFTER_SALES).exists():
        raise BusinessError("ORDER_IN_PROGRESS", "有处理中的售后，完成后才能注销账号")


async def delete_account(member_id: int, confirm: str, now: datetime) -> None:
    """Anonymise the member in one transaction and end their sessions; nothing changes on refusal."""
    if confirm != DELETE_CONFIRMATION:
        raise BusinessError("INVALID_INPUT", f"请输入 {DELETE_CONFIRMATION} 确认注销", "confirm")
    async with in_transaction():
        # The member row first: on PostgreSQL its lock serialises two deletions of the same account.
        updated = await Member.filter(id=member_id, deleted_at=None).update(
            nickname=DELETED_NICKNAME,
            avatar_url="",
            phone="",
            # The openid is unique: a fresh value frees the WeChat user to register again as a new member.
            openid=f"deleted:{member_id}:{secrets.token_hex(8)}",
            unionid=None,
            deleted_at=now,
            token_version=F("token_version") + 1,
        )
        if not updated:
            raise BusinessError("NOT_FOUND", "账号不存在或已注销")
        await _refuse_if_in_progress(member_id)  # raising rolls the anonymisation back
        await Address.filter(member_id=member_id).delete()
        await CartItem.filter(member_id=member_id).delete()
        # Every order left is finished: amounts, lines and payments stay for the accounts; the
        # address and the buyer's free-text remark (often a phone or a door code) go.
        await Order.filter(member_id=member_id).update(address_snapshot={}, remark="")
        await MemberCoupon.filter(member_id=member_id, status="UNUSED", expires_at__gt=now).update(
            expires_at=now
        )
        # Analytics keep the counts and lose the person; profiling derived from them goes.
        await TrackedEvent.filter(member_id=member_id).update(member_id=None)
        await MemberScore.filter(member_id=member_id).delete()
        await MemberRecommendation.filter(member_id=member_id).delete()
        await enqueue("crm.upsert_member", {"member_id": member_id}, dedupe_key=f"crm-erase:{member_id}")
