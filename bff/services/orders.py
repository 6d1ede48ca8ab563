"""Orders: place (one transaction), close unpaid at the deadline, cancel, and what each state allows."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bff.cache import Cache
from bff.models import order as status
from bff.models.cart import CartItem
from bff.models.marketing import MemberCoupon
from bff.models.member import Address
from bff.models.order import Order, OrderEvent, OrderLine
from bff.services import points, stock
from bff.services.campaign_checkout import handler_for
from bff.services.catalog import refresh_product_aggregates
from bff.services.checkout import CheckoutRequest, Quote, quote
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext, enqueue, handler
from bff.settings import Settings
from integrations.erp import ErpClient


def new_order_no(now: datetime) -> str:
    """A unique, sortable order number: time to the second plus 8 random digits."""
    return f"{now:%Y%m%d%H%M%S}{secrets.randbelow(10**8):08d}"


def spec_text(spec_values: list[dict[str, str]]) -> str:
    """ "颜色:红 尺码:L" for a SKU's spec values."""
    return " ".join(f"{s['name']}:{s['value']}" for s in spec_values)


async def _address_snapshot(member_id: int, address_id: int | None) -> dict[str, str]:
    if address_id is None:
        raise BusinessError("ADDRESS_REQUIRED", "请选择收货地址", "addressId")
    address = await Address.get_or_none(id=address_id, member_id=member_id)
    if address is None:
        raise BusinessError("ADDRESS_REQUIRED", "收货地址不存在，请重新选择", "addressId")
    return {
        "name": address.name,
        "phone": address.phone,
        "province": address.province,
        "city": address.city,
        "district": address.district,
        "detail": address.detail,
    }


async def existing_order(member_id: int, idempotency_key: str | None) -> Order | None:
    """The order an earlier attempt with the same idempotency key placed, if any."""
    if not idempotency_key:
        return None
    return await Order.get_or_none(member_id=member_id, idempotency_key=idempotency_key)


async def place_order(
    request: CheckoutRequest, settings: Settings, cache: Cache, erp: ErpClient | None
) -> Order:
    """Re-price, check and hold stock, lock the coupon, spend points and write the order, all or nothing."""
    if request.idempotency_key is not None and not 8 <= len(request.idempotency_key) <= 64:
        raise BusinessError("INVALID_INPUT", "idempotencyKey 须为 8-64 个字符", "idempotencyKey")
    if (earlier := await existing_order(request.member_id, request.idempotency_key)) is not None:
        return earlier
    address = await _address_snapshot(request.member_id, request.address_id)
    priced = await quote(request, settings)
    if request.expected_payable_fen is not None and request.expected_payable_fen != priced.priced.payable_fen:
        raise BusinessError("PRICE_CHANGED", "价格有变动，请确认后重新提交", "expectedPayable")
    if erp is not None:
        wanted = {line.sku.code: line.quantity for line in priced.lines}
        await stock.check_with_erp(erp, wanted, settings.erp_inventory_timeout_seconds)
    now = datetime.now(UTC)
    campaign = handler_for(request.campaign.kind) if request.campaign is not None else None
    if campaign is not None and request.campaign is not None and priced.campaign_line is not None:
        await campaign.pre_reserve(request.member_id, request.campaign, priced.campaign_line)
    try:
        order = await _write_order(request, priced, address, settings, now)
    except BaseException as exc:
        if campaign is not None and request.campaign is not None and priced.campaign_line is not None:
            await campaign.undo_pre_reserve(request.member_id, request.campaign, priced.campaign_line)
        # A concurrent retry with the same idempotency key won the race: answer with its order.
        if isinstance(exc, IntegrityError):
            if (earlier := await existing_order(request.member_id, request.idempotency_key)) is not None:
                return earlier
        raise
    await refresh_product_aggregates(cache, {line.product.id for line in priced.lines})
    return order


async def _write_order(
    request: CheckoutRequest, q: Quote, address: dict[str, str], settings: Settings, now: datetime
) -> Order:
    p = q.priced
    async with in_transaction():
        await stock.reserve({line.sku.id: line.quantity for line in q.lines})
        order = await Order.create(
            order_no=new_order_no(now),
            member_id=request.member_id,
            status=status.PENDING_PAYMENT,
            items_total_fen=p.items_total_fen,
            member_discount_fen=p.member_discount_fen,
            campaign_discount_fen=p.campaign_discount_fen,
            coupon_discount_fen=p.coupon_discount_fen,
            points_discount_fen=p.points_discount_fen,
            shipping_fee_fen=p.shipping_fee_fen,
            payable_fen=p.payable_fen,
            points_used=p.points_used,
            member_coupon_id=request.member_coupon_id,
            address_snapshot=address,
            remark=request.remark[:256],
            idempotency_key=request.idempotency_key,
            pay_deadline=now + timedelta(minutes=settings.order_pay_timeout_minutes),
            campaign_kind=request.campaign.kind if request.campaign is not None else None,
            campaign_ref=request.campaign.ref_id if request.campaign is not None else None,
        )
        if request.campaign is not None and q.campaign_line is not None:
            await handler_for(request.campaign.kind).hold(order, request.campaign, q.campaign_line)
        priced_by_key = {line.key: line for line in p.lines}
        await OrderLine.bulk_create(
            [
                OrderLine(
                    order_id=order.id,
                    sku_id=line.sku.id,
                    sku_code=line.sku.code,
                    product_id=line.product.id,
                    product_title=line.product.title,
                    image_url=line.product.images[0] if line.product.images else "",
                    spec_text=spec_text(line.sku.spec_values),
                    quantity=line.quantity,
                    list_price_fen=priced_by_key[str(line.sku.id)].list_price_fen,
                    unit_price_fen=priced_by_key[str(line.sku.id)].unit_price_fen,
                    line_total_fen=priced_by_key[str(line.sku.id)].line_total_fen,
                    member_discount_fen=priced_by_key[str(line.sku.id)].member_discount_fen,
                    campaign_discount_fen=priced_by_key[str(line.sku.id)].campaign_discount_fen,
                    coupon_discount_fen=priced_by_key[str(line.sku.id)].coupon_discount_fen,
                    points_discount_fen=priced_by_key[str(line.sku.id)].points_discount_fen,
                    paid_fen=priced_by_key[str(line.sku.id)].paid_fen,
                )
                for line in q.lines
            ]
        )
        if request.member_coupon_id is not None:
            locked = await MemberCoupon.filter(
                id=request.member_coupon_id, member_id=request.member_id, status="UNUSED", expires_at__gt=now
            ).update(status="LOCKED", order_id=order.id)
            if not locked:
                raise BusinessError("COUPON_NOT_APPLICABLE", "优惠券已被使用", "couponId")
        if p.points_used:
            await points.change_points(request.member_id, -p.points_used, f"订单抵扣 {order.order_no}")
        await OrderEvent.create(order_id=order.id, status=status.PENDING_PAYMENT, note="订单已提交，等待支付")
        cart_ids = [line.cart_item_id for line in q.lines if line.cart_item_id is not None]
        if cart_ids:
            await CartItem.filter(id__in=cart_ids, member_id=request.member_id).delete()
        assert order.pay_deadline is not None
        await enqueue(
            "order.close_if_unpaid",
            {"order_id": order.id},
            run_at=order.pay_deadline,
            dedupe_key=f"close:{order.id}",
        )
    return order


async def line_quantities(order_id: int) -> dict[int, int]:
    """SKU id → quantity of an order's lines."""
    quantities: dict[int, int] = {}
    for sku_id, quantity in await OrderLine.filter(order_id=order_id).values_list("sku_id", "quantity"):
        quantities[int(sku_id)] = quantities.get(int(sku_id), 0) + int(quantity)
    return quantities


async def _give_back(order: Order, quantities: Mapping[int, int]) -> None:
    """Return what an unpaid order held: stock, its coupon, its points."""
    await stock.release(quantities)
    if order.member_coupon_id is not None:
        await MemberCoupon.filter(id=order.member_coupon_id, status="LOCKED", order_id=order.id).update(
            status="UNUSED", order_id=None
        )
    if order.points_used:
        await points.change_points(order.member_id, order.points_used, f"订单关闭退回 {order.order_no}")


async def end_unpaid(order_id: int, new_status: str, note: str, cache: Cache) -> bool:
    """Close or cancel an unpaid order and give back what it held; False when it was no longer unpaid."""
    async with in_transaction():
        # The status guard is what makes a payment and a close racing each other safe.
        changed = await Order.filter(id=order_id, status=status.PENDING_PAYMENT).update(
            status=new_status, closed_at=datetime.now(UTC), close_reason=note
        )
        if not changed:
            return False
        order = await Order.get(id=order_id)
        quantities = await line_quantities(order_id)
        await _give_back(order, quantities)
        if order.campaign_kind is not None:
            await handler_for(order.campaign_kind).on_released(order)
        await OrderEvent.create(order_id=order_id, status=new_status, note=note)
    lines = await OrderLine.filter(order_id=order_id).values("product_id")
    await refresh_product_aggregates(cache, [row["product_id"] for row in lines])
    return True


@handler("order.close_if_unpaid")
async def close_if_unpaid(payload: dict[str, object], ctx: HandlerContext) -> None:
    """At the pay deadline: close the order if it is still unpaid (a paid one is left alone)."""
    order_id = int(str(payload["order_id"]))
    order = await Order.get_or_none(id=order_id)
    if order is None or order.status != status.PENDING_PAYMENT:
        return
    if order.pay_deadline is not None and order.pay_deadline > ctx.now:
        raise RuntimeError("pay deadline not reached yet")  # retried later by the outbox
    await end_unpaid(order_id, status.CLOSED, "超时未支付，订单已关闭", ctx.services.cache)


async def cancel_unpaid(member_id: int, order_id: int, reason: str, cache: Cache) -> Order:
    """The shopper cancels an order they have not paid yet."""
    order = await Order.get_or_none(id=order_id, member_id=member_id)
    if order is None:
        raise BusinessError("NOT_FOUND", "订单不存在", "id")
    if order.status != status.PENDING_PAYMENT:
        raise BusinessError("INVALID_STATE", "只有待支付的订单可以取消；已支付的订单请申请售后", "id")
    note = f"买家取消：{reason}" if reason else "买家取消"
    if not await end_unpaid(order_id, status.CANCELLED, note[:256], cache):
        raise BusinessError("INVALID_STATE", "订单状态已变化，请刷新", "id")
    return await Order.get(id=order_id)


async def enqueue_overdue_closes(now: datetime | None = None, limit: int = 500) -> int:
    """Queue a close for unpaid orders past their deadline that have none queued (a safety net sweep)."""
    moment = now or datetime.now(UTC)
    overdue = await Order.filter(status=status.PENDING_PAYMENT, pay_deadline__lte=moment).limit(limit)
    for order in overdue:
        # The dedupe key makes this a no-op for orders whose close is already queued.
        await enqueue(
            "order.close_if_unpaid", {"order_id": order.id}, run_at=moment, dedupe_key=f"close:{order.id}"
        )
    return len(overdue)
