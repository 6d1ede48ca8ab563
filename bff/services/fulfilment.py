"""Fulfilment: shipment, tracking, delivery and receipt confirmation of paid orders.

Each transition is a conditional update on the order's status inside a transaction (a savepoint
when the caller already has one), with its timeline row and queued messages, so a repeated or
concurrent call changes nothing twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from bff.models import order as status
from bff.models.order import Order, OrderEvent, Shipment
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext, enqueue, handler

log = logging.getLogger("bff.fulfilment")

AUTO_CONFIRM_TOPIC = "order.auto_confirm"
# A parcel can be added to an order that has already left the warehouse.
_SHIPPABLE = (status.PAID, status.SHIPPED, status.DELIVERED, status.COMPLETED)
_CONFIRMABLE = (status.SHIPPED, status.DELIVERED)


async def _order_by_no(order_no: str) -> Order:
    order = await Order.get_or_none(order_no=order_no)
    if order is None:
        raise BusinessError("NOT_FOUND", f"order {order_no} does not exist", "orderNo")
    return order


async def ship(order_no: str, carrier: str, tracking_no: str, shipped_at: datetime) -> Order:
    """Record a parcel: a PAID order becomes SHIPPED and the member is told; a known parcel is a no-op."""
    order = await _order_by_no(order_no)
    existing = await Shipment.get_or_none(tracking_no=tracking_no)
    if existing is not None:
        if existing.order_id != order.id:
            raise BusinessError(
                "INVALID_STATE", f"tracking {tracking_no} belongs to another order", "trackingNo"
            )
        return order
    if order.status not in _SHIPPABLE:
        raise BusinessError("INVALID_STATE", f"order {order_no} is {order.status}, cannot ship", "orderNo")
    async with in_transaction():
        await Shipment.create(
            order_id=order.id, carrier=carrier, tracking_no=tracking_no, shipped_at=shipped_at
        )
        first = await Order.filter(id=order.id, status=status.PAID).update(
            status=status.SHIPPED, shipped_at=shipped_at, updated_at=datetime.now(UTC)
        )
        if first:
            await OrderEvent.create(
                order_id=order.id, status=status.SHIPPED, note=f"已发货：{carrier} {tracking_no}"
            )
        else:
            # Another parcel, or the shipment reported after the delivery (events arrive unordered).
            await Order.filter(id=order.id, shipped_at__isnull=True).update(shipped_at=shipped_at)
            await OrderEvent.create(
                order_id=order.id, status=order.status, note=f"新增包裹：{carrier} {tracking_no}"
            )
        if first or order.status == status.SHIPPED:
            await enqueue(
                "wechat.subscribe_message",
                {
                    "member_id": order.member_id,
                    "template_id": "shipment",
                    "page": f"pages/order/detail?id={order.id}",
                    # Flat strings: the subscribe_message handler wraps each value as {"value": …}.
                    "data": {"thing1": carrier, "character_string2": tracking_no},
                },
                dedupe_key=f"msg:ship:{order_no}:{tracking_no}",
            )
    return await Order.get(id=order.id)


def _sorted_events(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Tracking events as stored: at, description, location; oldest first whatever the ERP's order."""
    rows = [
        {"at": str(e["at"]), "description": str(e["description"]), "location": str(e.get("location") or "")}
        for e in events
    ]

    def moment(row: dict[str, str]) -> datetime:
        at = datetime.fromisoformat(row["at"])
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at

    return sorted(rows, key=moment)


async def update_tracking(tracking_no: str, events: list[dict[str, Any]], version: int) -> bool:
    """Replace a parcel's tracking events when `version` is newer; False when it is not (stale)."""
    changed = await Shipment.filter(tracking_no=tracking_no, events_version__lt=version).update(
        events=_sorted_events(events), events_version=version
    )
    if changed:
        return True
    if not await Shipment.exists(tracking_no=tracking_no):
        raise BusinessError("NOT_FOUND", f"shipment {tracking_no} does not exist", "trackingNo")
    return False


async def deliver(order_no: str, delivered_at: datetime, *, auto_confirm_days: int) -> Order:
    """Mark an order DELIVERED and schedule its automatic receipt confirmation; repeats are no-ops."""
    order = await _order_by_no(order_no)
    if order.status in (status.DELIVERED, status.COMPLETED):
        return order
    # PAID too: deliveries are unordered, so the delivery may arrive before its shipment.
    if order.status not in (status.PAID, status.SHIPPED):
        raise BusinessError("INVALID_STATE", f"order {order_no} is {order.status}, cannot deliver", "orderNo")
    async with in_transaction():
        changed = await Order.filter(id=order.id, status__in=(status.PAID, status.SHIPPED)).update(
            status=status.DELIVERED, delivered_at=delivered_at, updated_at=datetime.now(UTC)
        )
        if changed:
            await OrderEvent.create(order_id=order.id, status=status.DELIVERED, note="已签收")
            await enqueue(
                AUTO_CONFIRM_TOPIC,
                {"order_id": order.id},
                run_at=delivered_at + timedelta(days=auto_confirm_days),
                dedupe_key=f"auto-confirm:{order.id}",
            )
    return await Order.get(id=order.id)


async def confirm_receipt(order_id: int, *, member_id: int | None, auto: bool) -> Order:
    """Complete a SHIPPED or DELIVERED order (the member's own when member_id is given).

    An automatic confirmation of an order already COMPLETED is a no-op; otherwise NOT_FOUND or
    INVALID_STATE is raised.
    """
    query = Order.filter(id=order_id)
    if member_id is not None:
        query = query.filter(member_id=member_id)
    order = await query.first()
    if order is None:
        raise BusinessError("NOT_FOUND", "订单不存在", "orderId")
    if order.status == status.COMPLETED and auto:
        return order
    if order.status not in _CONFIRMABLE:
        raise BusinessError("INVALID_STATE", "订单当前状态不能确认收货", "orderId")
    now = datetime.now(UTC)
    async with in_transaction():
        changed = await Order.filter(id=order.id, status__in=_CONFIRMABLE).update(
            status=status.COMPLETED, completed_at=now, updated_at=now
        )
        if not changed:
            # A concurrent confirmation won: the automatic one accepts that, the member's is told.
            current = await Order.get(id=order.id)
            if auto and current.status == status.COMPLETED:
                return current
            raise BusinessError("INVALID_STATE", "订单当前状态不能确认收货", "orderId")
        await OrderEvent.create(
            order_id=order.id, status=status.COMPLETED, note="系统自动确认收货" if auto else "已确认收货"
        )
    return await Order.get(id=order.id)


@handler(AUTO_CONFIRM_TOPIC)
async def auto_confirm(payload: dict[str, Any], _: HandlerContext) -> None:
    """Confirm receipt when the member has not done so in time; an order that moved on is left alone."""
    order_id = int(payload["order_id"])
    try:
        await confirm_receipt(order_id, member_id=None, auto=True)
    except BusinessError as exc:
        # E.g. closed by a full refund meanwhile: nothing to confirm, and retrying cannot change that.
        log.info("auto-confirm of order %s skipped: %s", order_id, exc.message)
