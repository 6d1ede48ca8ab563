"""Demo members' coupons and order history, with amounts, timelines, payments and shipments that agree."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bff.models import order as status
from bff.models.catalog import Sku
from bff.models.marketing import CouponTemplate, MemberCoupon
from bff.models.order import AfterSale, Order, OrderEvent, OrderLine, Payment, Shipment
from bff.seed.catalog import SkuRow
from bff.seed.context import MemberRef, SeedContext
from bff.services.money import member_price


@dataclass(frozen=True)
class _Plan:
    status: str
    hours_ago: float
    coupon: str | None = None  # key of the template whose coupon (claimed by the member) it used
    after_sale: bool = False


_ORDER_PLANS: dict[str, list[_Plan]] = {
    "alice": [
        _Plan(status.PENDING_PAYMENT, 0.2),
        _Plan(status.PAID, 20),
        _Plan(status.SHIPPED, 72),
        _Plan(status.SHIPPED, 120),
        _Plan(status.COMPLETED, 18 * 24, coupon="welcome"),
        _Plan(status.COMPLETED, 45 * 24, after_sale=True),
        _Plan(status.CANCELLED, 12 * 24),
    ],
    "carol": [_Plan(status.PAID, 2), _Plan(status.COMPLETED, 30 * 24)],
    "bob": [_Plan(status.PENDING_PAYMENT, 0.1)],  # unpaid orders are younger than their 30-minute deadline
}

# member → [(template key, state)]: UNUSED and valid, USED by one of the member's orders, or EXPIRED
_COUPONS: dict[str, list[tuple[str, str]]] = {
    "alice": [("over199", "UNUSED"), ("shipping", "UNUSED"), ("digital100", "UNUSED"),
              ("all95", "UNUSED"), ("welcome", "USED"), ("expired", "EXPIRED")],
    "bob": [("welcome", "UNUSED"), ("over99", "UNUSED")],
    "carol": [("beauty90", "UNUSED"), ("vip500", "UNUSED"), ("shipping", "UNUSED")],
    "dave": [("shipping", "UNUSED"), ("food5", "UNUSED")],
    "frank": [("over99", "UNUSED")],
    "grace": [("vip500", "UNUSED"), ("featured50", "UNUSED")],
    "erin": [("welcome", "UNUSED")],
}  # fmt: skip

_SHIPPING_FEE_FEN = 1000
_FREE_SHIPPING_FROM_FEN = 9900
_CARRIERS = (("顺丰速运", "SF"), ("中通快递", "ZTO"), ("京东物流", "JD"))
_PAID_STATES = (status.PAID, status.SHIPPED, status.DELIVERED, status.COMPLETED)


@dataclass
class _Rows:
    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    after_sales: list[dict[str, Any]] = field(default_factory=list)
    reserved: dict[int, int] = field(default_factory=dict)  # SKU id → quantity held by unpaid orders


def _coupon_row(
    rng: random.Random, ctx: SeedContext, member: MemberRef, template: dict[str, Any], state: str
) -> dict[str, Any]:
    if state == "EXPIRED":
        claimed: datetime = template["valid_from"] + timedelta(days=1)
    elif state == "USED":
        claimed = ctx.now - timedelta(days=20)  # before the order that used it, 18 days ago
    else:
        claimed = ctx.now - timedelta(hours=rng.randrange(1, 72))
    expires = template["valid_to"] or claimed + timedelta(days=template["valid_days"])
    template["claimed_count"] += 1
    return {
        "id": ctx.ids.take(MemberCoupon),
        "member_id": member.id,
        "template_id": template["id"],
        "status": "USED" if state == "USED" else "UNUSED",
        "claimed_at": claimed,
        "expires_at": expires,
        "used_at": None,
        "order_id": None,
    }


def _lines(
    rng: random.Random, ctx: SeedContext, order_id: int, discount_percent: int, coupon_fen: int,
    reserved: dict[int, int],
) -> list[dict[str, Any]]:  # fmt: skip
    def spare(sku: SkuRow) -> int:
        return sku.stock - reserved.get(sku.id, 0)

    # Only SKUs with stock to spare: an unpaid order's reservation (at most 2) leaves at least one
    # unit available, so no product's in_stock changes because of the demo orders.
    picks: list[tuple[Any, SkuRow]] = []
    for product in rng.sample(ctx.pools.buyable, min(rng.randint(1, 3), len(ctx.pools.buyable))):
        candidates = [s for s in product.skus if spare(s) >= 3]
        if candidates:
            picks.append((product, rng.choice(candidates)))
    if not picks:  # a tiny catalog
        picks = [(p, s) for p in ctx.pools.buyable for s in p.skus if spare(s) >= 3][:1]
    lines: list[dict[str, Any]] = []
    for product, sku in picks:
        quantity = rng.choice((1, 1, 2))
        unit = member_price(sku.price_fen, discount_percent)
        lines.append(
            {
                "id": ctx.ids.take(OrderLine),
                "order_id": order_id,
                "sku_id": sku.id,
                "sku_code": sku.code,
                "product_id": product.id,
                "product_title": product.title,
                "image_url": product.images[0],
                "spec_text": " ".join(v["value"] for v in sku.spec_values),
                "quantity": quantity,
                "list_price_fen": sku.price_fen,
                "unit_price_fen": unit,
                "line_total_fen": unit * quantity,
                "member_discount_fen": (sku.price_fen - unit) * quantity,
                "campaign_discount_fen": 0,
                "coupon_discount_fen": 0,
                "points_discount_fen": 0,
                "paid_fen": unit * quantity,
                "refunded_quantity": 0,
                "refunded_fen": 0,
            }
        )
    # The coupon is shared out in proportion to the line totals; the last line takes the remainder.
    subtotal = sum(line["line_total_fen"] for line in lines)
    left = min(coupon_fen, subtotal)
    for index, line in enumerate(lines):
        share = (
            left if index == len(lines) - 1 else min(left, coupon_fen * line["line_total_fen"] // subtotal)
        )
        left -= share
        line["coupon_discount_fen"] = share
        line["paid_fen"] = line["line_total_fen"] - share
    return lines


def _timeline(plan: _Plan, created: datetime) -> list[tuple[str, datetime, str]]:
    events = [(status.PENDING_PAYMENT, created, "订单已提交")]
    if plan.status == status.CANCELLED:
        return [*events, (status.CANCELLED, created + timedelta(minutes=10), "用户取消")]
    if plan.status in _PAID_STATES:
        events.append((status.PAID, created + timedelta(minutes=2), "支付成功"))
    if plan.status in (status.SHIPPED, status.DELIVERED, status.COMPLETED):
        events.append((status.SHIPPED, created + timedelta(hours=20), "商家已发货"))
    if plan.status in (status.DELIVERED, status.COMPLETED):
        events.append((status.DELIVERED, created + timedelta(days=3), "已签收"))
    if plan.status == status.COMPLETED:
        events.append((status.COMPLETED, created + timedelta(days=10), "交易完成"))
    return events


def _order(
    rng: random.Random, ctx: SeedContext, member: MemberRef, plan: _Plan, coupon: dict[str, Any] | None,
    templates: dict[str, dict[str, Any]], rows: _Rows,
) -> None:  # fmt: skip
    order_id = ctx.ids.take(Order)
    created = ctx.now - timedelta(hours=plan.hours_ago)
    level = ctx.levels[member.level_rank]
    coupon_fen = templates[plan.coupon]["amount_fen"] if coupon is not None and plan.coupon else 0
    lines = _lines(rng, ctx, order_id, level.discount_percent, coupon_fen, rows.reserved)
    if not lines:
        return
    subtotal = sum(line["line_total_fen"] for line in lines)
    free = level.free_shipping or subtotal >= _FREE_SHIPPING_FROM_FEN
    shipping = 0 if free else _SHIPPING_FEE_FEN
    coupon_discount = sum(line["coupon_discount_fen"] for line in lines)
    timeline = _timeline(plan, created)
    at = {state: when for state, when, _ in timeline}
    paid_at = at.get(status.PAID)
    order_no = f"{created:%Y%m%d}{order_id:010d}"
    if coupon is not None:
        coupon.update(used_at=paid_at, order_id=order_id)
    rows.orders.append(
        {
            "id": order_id,
            "order_no": order_no,
            "member_id": member.id,
            "status": plan.status,
            "items_total_fen": sum(line["list_price_fen"] * line["quantity"] for line in lines),
            "member_discount_fen": sum(line["member_discount_fen"] for line in lines),
            "campaign_discount_fen": 0,
            "coupon_discount_fen": coupon_discount,
            "points_discount_fen": 0,
            "shipping_fee_fen": shipping,
            "payable_fen": subtotal - coupon_discount + shipping,
            "refunded_fen": 0,
            "points_used": 0,
            "member_coupon_id": coupon["id"] if coupon else None,
            "campaign_kind": None,
            "campaign_ref": None,
            "address_snapshot": member.default_address,
            "remark": "",
            "idempotency_key": None,
            "pay_deadline": created + timedelta(minutes=30),
            "prepay_id": f"wx{created:%d%H%M%S}{order_id:010d}" if paid_at else None,
            "paid_at": paid_at,
            "shipped_at": at.get(status.SHIPPED),
            "delivered_at": at.get(status.DELIVERED),
            "completed_at": at.get(status.COMPLETED),
            "closed_at": at.get(status.CANCELLED),
            "close_reason": "用户取消" if plan.status == status.CANCELLED else "",
            "erp_order_id": f"ERP{order_id:010d}" if paid_at else None,
            "created_at": created,
            "updated_at": timeline[-1][1],
        }
    )
    rows.lines += lines
    rows.events += [
        {"id": ctx.ids.take(OrderEvent), "order_id": order_id, "status": state, "note": note, "at": when}
        for state, when, note in timeline
    ]
    if plan.status == status.PENDING_PAYMENT:
        for line in lines:
            rows.reserved[line["sku_id"]] = rows.reserved.get(line["sku_id"], 0) + line["quantity"]
    if paid_at is not None:
        rows.payments.append(
            {
                "id": ctx.ids.take(Payment),
                "order_id": order_id,
                "out_trade_no": order_no,
                "transaction_id": f"4200{created:%Y%m%d}{order_id:012d}",
                "amount_fen": rows.orders[-1]["payable_fen"],
                "status": "SUCCESS",
                "paid_at": paid_at,
                "created_at": paid_at,
            }
        )
    shipped_at = at.get(status.SHIPPED)
    if shipped_at is not None:
        rows.shipments.append(_shipment(rng, ctx, order_id, shipped_at, at.get(status.DELIVERED)))
    if plan.after_sale:
        line = lines[0]
        rows.after_sales.append(
            {
                "id": ctx.ids.take(AfterSale),
                "order_id": order_id,
                "member_id": member.id,
                "type": "RETURN_AND_REFUND",
                "status": "REQUESTED",
                "amount_fen": line["paid_fen"],
                "lines": [
                    {"order_line_id": line["id"], "sku_id": line["sku_id"], "quantity": line["quantity"],
                     "amount_fen": line["paid_fen"]}
                ],
                "reason": "尺码不合适",
                "description": "尺码偏小，申请退货退款",
                "image_urls": [],
                "erp_return_id": None,
                "created_at": ctx.now - timedelta(days=2),
            }
        )  # fmt: skip


def _shipment(
    rng: random.Random, ctx: SeedContext, order_id: int, shipped: datetime, delivered: datetime | None
) -> dict[str, Any]:
    carrier, prefix = rng.choice(_CARRIERS)
    events = [
        (shipped, "快件已揽收", "上海市"),
        (shipped + timedelta(hours=9), "快件已到达转运中心", "杭州市"),
        (shipped + timedelta(hours=30), "快件正在派送中", "杭州市"),
    ]
    if delivered is not None:
        events.append((delivered, "已签收，签收人：本人", "杭州市"))
    return {
        "id": ctx.ids.take(Shipment),
        "order_id": order_id,
        "carrier": carrier,
        "tracking_no": f"{prefix}{order_id:012d}",
        "shipped_at": shipped,
        "events": [
            {"at": at.isoformat(), "description": text, "location": place}
            for at, text, place in events
            if at <= ctx.now
        ],
        "events_version": 1,
    }


async def seed_orders_and_coupons(ctx: SeedContext, templates: dict[str, dict[str, Any]]) -> None:
    """Member coupons (valid, used, expired) and order history; then the templates with their claim counts."""
    rng = ctx.rng("orders")
    coupons: dict[tuple[str, str], dict[str, Any]] = {}
    for name, wanted in _COUPONS.items():
        for key, state in wanted:
            coupons[(name, key)] = _coupon_row(rng, ctx, ctx.members[name], templates[key], state)
    rows = _Rows()
    if ctx.pools.buyable:
        for name, plans in _ORDER_PLANS.items():
            for plan in plans:
                coupon = coupons.get((name, plan.coupon)) if plan.coupon else None
                _order(rng, ctx, ctx.members[name], plan, coupon, templates, rows)
    writer = ctx.writer
    await writer.insert_dicts(CouponTemplate, list(templates.values()))
    await writer.insert_dicts(MemberCoupon, list(coupons.values()))
    await writer.insert_dicts(Order, rows.orders)
    await writer.insert_dicts(OrderLine, rows.lines)
    await writer.insert_dicts(OrderEvent, rows.events)
    await writer.insert_dicts(Payment, rows.payments)
    await writer.insert_dicts(Shipment, rows.shipments)
    await writer.insert_dicts(AfterSale, rows.after_sales)
    for sku_id, quantity in sorted(rows.reserved.items()):
        await Sku.filter(id=sku_id).using_db(writer.connection).update(reserved=quantity)
