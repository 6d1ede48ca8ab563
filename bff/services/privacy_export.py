"""The member's copy of their personal data (个人信息保护法 第45条): one JSON document from their own rows.

A constant number of queries whatever the member holds: one per kind of row (order lines for all
orders at once). Amounts are integer fen; times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bff.ids import encode_id
from bff.models.analytics import TrackedEvent
from bff.models.cart import CartItem
from bff.models.catalog import Review
from bff.models.marketing import MemberCoupon
from bff.models.member import Address, Member, PointsLedger
from bff.models.order import Order, OrderLine
from bff.services.errors import BusinessError

FORMAT = "bff.member-data-export/1"


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _profile(member: Member) -> dict[str, Any]:
    return {
        "id": encode_id("Member", member.id),
        "nickname": member.nickname,
        "avatarUrl": member.avatar_url,
        "phone": member.phone,
        "level": member.level.name,
        "growthValue": member.growth_value,
        "pointsBalance": member.points_balance,
        "registeredAt": _at(member.created_at),
        "lastLoginAt": _at(member.last_login_at),
        "privacyConsent": {"version": member.privacy_version, "acceptedAt": _at(member.privacy_accepted_at)},
    }


def _address(a: Address) -> dict[str, Any]:
    return {
        "name": a.name,
        "phone": a.phone,
        "province": a.province,
        "city": a.city,
        "district": a.district,
        "detail": a.detail,
        "isDefault": a.is_default,
        "createdAt": _at(a.created_at),
    }


def _line(x: OrderLine) -> dict[str, Any]:
    return {
        "productTitle": x.product_title,
        "specText": x.spec_text,
        "skuCode": x.sku_code,
        "quantity": x.quantity,
        "unitPriceFen": x.unit_price_fen,
        "paidFen": x.paid_fen,
        "refundedFen": x.refunded_fen,
    }


def _order(o: Order, lines: list[OrderLine]) -> dict[str, Any]:
    return {
        "orderNo": o.order_no,
        "status": o.status,
        "createdAt": _at(o.created_at),
        "paidAt": _at(o.paid_at),
        "completedAt": _at(o.completed_at),
        "itemsTotalFen": o.items_total_fen,
        "discountFen": o.member_discount_fen
        + o.campaign_discount_fen
        + o.coupon_discount_fen
        + o.points_discount_fen,
        "shippingFeeFen": o.shipping_fee_fen,
        "payableFen": o.payable_fen,
        "refundedFen": o.refunded_fen,
        "pointsUsed": o.points_used,
        "remark": o.remark,
        "address": o.address_snapshot,
        "lines": [_line(x) for x in lines],
    }


def _coupon(c: MemberCoupon) -> dict[str, Any]:
    return {
        "name": c.template.name,
        "status": c.status,
        "source": c.source,
        "claimedAt": _at(c.claimed_at),
        "expiresAt": _at(c.expires_at),
        "usedAt": _at(c.used_at),
    }


def _review(r: Review) -> dict[str, Any]:
    return {
        "productId": encode_id("Product", r.product_id),
        "rating": r.rating,
        "content": r.content,
        "createdAt": _at(r.created_at),
    }


async def export_member_data(member_id: int, now: datetime) -> dict[str, Any]:
    """Everything the shop keeps about the member, from their own rows only."""
    member = await Member.get_or_none(id=member_id).select_related("level")
    if member is None or member.deleted_at is not None:
        raise BusinessError("NOT_FOUND", "账号不存在或已注销")
    orders = await Order.filter(member_id=member_id).order_by("-id")
    lines: dict[int, list[OrderLine]] = {o.id: [] for o in orders}
    if orders:
        for line in await OrderLine.filter(order_id__in=list(lines)).order_by("id"):
            lines[line.order_id].append(line)
    addresses = await Address.filter(member_id=member_id).order_by("-is_default", "id")
    ledger = await PointsLedger.filter(member_id=member_id).order_by("id")
    coupons = await MemberCoupon.filter(member_id=member_id).select_related("template").order_by("id")
    reviews = await Review.filter(member_id=member_id).order_by("id")
    cart = await CartItem.filter(member_id=member_id).order_by("id")
    return {
        "format": FORMAT,
        "generatedAt": now.isoformat(),
        "profile": _profile(member),
        "addresses": [_address(a) for a in addresses],
        "orders": [_order(o, lines[o.id]) for o in orders],
        "pointsLedger": [
            {"delta": p.delta, "reason": p.reason, "balanceAfter": p.balance_after, "at": _at(p.created_at)}
            for p in ledger
        ],
        "coupons": [_coupon(c) for c in coupons],
        "reviews": [_review(r) for r in reviews],
        "cart": [{"skuId": encode_id("Sku", c.sku_id), "quantity": c.quantity} for c in cart],
        "trackedEventsCount": await TrackedEvent.filter(member_id=member_id).count(),
    }
