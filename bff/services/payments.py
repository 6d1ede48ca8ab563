"""Payments: prepay for an order, payment and refund notifications, and refunds through WeChat Pay."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bff.cache import Cache
from bff.models import order as status
from bff.models.marketing import MemberCoupon
from bff.models.member import Member
from bff.models.order import AfterSale, Order, OrderEvent, OrderLine, Payment, Refund
from bff.services import points, referrals, stock
from bff.services.after_sales import settle_refunded
from bff.services.campaign_checkout import handler_for
from bff.services.catalog import refresh_product_aggregates
from bff.services.errors import BusinessError
from bff.services.money import format_fen
from bff.services.orders import line_quantities
from bff.services.outbox import HandlerContext, PermanentFailure, enqueue, handler
from integrations.errors import IntegrationError
from integrations.wechatpay import PayParams, WeChatPayClient

log = logging.getLogger("bff.payments")


class PaymentRejected(Exception):
    """A notification we must not act on (unknown order, wrong amount); nothing was changed."""


@dataclass(frozen=True)
class Outcome:
    """What a notification did: applied, duplicate, or refunded because the order had closed."""

    result: str
    order_id: int | None = None


async def prepay(member_id: int, order_id: int, client: WeChatPayClient, notify_url: str) -> PayParams:
    """The signed parameters for wx.requestPayment of an unpaid order (prepay id reused while valid)."""
    order = await Order.get_or_none(id=order_id, member_id=member_id)
    if order is None:
        raise BusinessError("NOT_FOUND", "订单不存在", "orderId")
    now = datetime.now(UTC)
    if order.status != status.PENDING_PAYMENT:
        raise BusinessError("INVALID_STATE", "订单不是待支付状态", "orderId")
    if order.pay_deadline is not None and order.pay_deadline <= now:
        raise BusinessError("INVALID_STATE", "订单已超过支付时限", "orderId")
    if order.prepay_id is None:
        member = await Member.get(id=member_id)
        assert order.pay_deadline is not None
        try:
            prepay_id = await client.create_jsapi_prepay(
                out_trade_no=order.order_no,
                description=f"订单 {order.order_no}",
                amount_fen=order.payable_fen,
                payer_openid=member.openid,
                notify_url=notify_url,
                time_expire=order.pay_deadline,
            )
        except IntegrationError as exc:
            log.warning("prepay failed for %s: %s", order.order_no, exc)
            raise BusinessError("PAYMENT_UNAVAILABLE", "微信支付暂时不可用，请稍后再试", "orderId") from exc
        await Order.filter(id=order.id, prepay_id__isnull=True).update(prepay_id=prepay_id)
        order = await Order.get(id=order.id)
    assert order.prepay_id is not None
    return client.request_payment_params(order.prepay_id)


async def record_payment(resource: dict[str, Any], cache: Cache) -> Outcome:
    """Apply a TRANSACTION.SUCCESS notification once: pay the order, or refund it when it had closed."""
    out_trade_no = str(resource.get("out_trade_no", ""))
    transaction_id = str(resource.get("transaction_id", ""))
    amount = resource.get("amount") or {}
    total = amount.get("total") if isinstance(amount, dict) else None
    if resource.get("trade_state") != "SUCCESS" or not transaction_id:
        raise PaymentRejected(f"not a successful transaction: {resource.get('trade_state')}")
    order = await Order.get_or_none(order_no=out_trade_no)
    if order is None:
        raise PaymentRejected(f"unknown order {out_trade_no}")
    if total != order.payable_fen:
        raise PaymentRejected(
            f"amount {total} does not match order {out_trade_no} payable {order.payable_fen}"
        )
    if await Payment.exists(transaction_id=transaction_id):
        return Outcome("duplicate", order.id)
    paid_at = _parse_time(resource.get("success_time")) or datetime.now(UTC)
    try:
        async with in_transaction():
            payment = await Payment.create(
                order_id=order.id,
                out_trade_no=out_trade_no,
                transaction_id=transaction_id,
                amount_fen=int(total),
                status="SUCCESS",
                paid_at=paid_at,
            )
            paid = await Order.filter(id=order.id, status=status.PENDING_PAYMENT).update(
                status=status.PAID, paid_at=paid_at
            )
            if paid:
                await _on_paid(order, paid_at)
            else:
                await _refund_late_payment(order, payment)
    except IntegrityError:
        return Outcome("duplicate", order.id)  # the same notification, delivered twice at once
    lines = await OrderLine.filter(order_id=order.id).values("product_id")
    await refresh_product_aggregates(cache, [row["product_id"] for row in lines])
    return Outcome("paid" if paid else "refunded_late", order.id)


async def _on_paid(order: Order, paid_at: datetime) -> None:
    await stock.consume(await line_quantities(order.id))
    if order.member_coupon_id is not None:
        await MemberCoupon.filter(id=order.member_coupon_id, status="LOCKED").update(
            status="USED", used_at=paid_at
        )
    earned = points.earned_for(order.payable_fen)
    if earned:
        await points.change_points(order.member_id, earned, f"购物奖励 {order.order_no}")
        await points.change_growth(order.member_id, earned)
    await OrderEvent.create(order_id=order.id, status=status.PAID, note="支付成功，等待发货")
    await referrals.on_order_paid(order, paid_at)
    ship_now = True
    if order.campaign_kind is not None:
        ship_now = await handler_for(order.campaign_kind).on_paid(order)
    if ship_now:
        await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=f"erp-push:{order.id}")
    await _notify_member(order, "payment", order.payable_fen, f"msg:paid:{order.id}")


async def _notify_member(order: Order, template_id: str, amount_fen: int, dedupe_key: str) -> None:
    """Queue a subscribe message about an order and an amount (sent once, whatever retries)."""
    await enqueue(
        "wechat.subscribe_message",
        {
            "member_id": order.member_id,
            "template_id": template_id,
            "page": f"pages/order/detail?id={order.id}",
            "data": {"character_string1": order.order_no, "amount2": format_fen(amount_fen)},
        },
        dedupe_key=dedupe_key,
    )


async def _refund_late_payment(order: Order, payment: Payment) -> None:
    # The order closed (and its stock may be resold) before the money arrived: give it all back.
    await Payment.filter(id=payment.id).update(status="REFUNDING")
    refund = await Refund.create(
        order_id=order.id,
        out_refund_no=f"L{payment.transaction_id}"[:64],
        amount_fen=payment.amount_fen,
        reason="订单已关闭，自动退款",
    )
    await OrderEvent.create(order_id=order.id, status=order.status, note="订单关闭后收到付款，已自动退款")
    await enqueue("wechatpay.refund", {"refund_id": refund.id}, dedupe_key=f"refund:{refund.id}")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@handler("wechatpay.refund")
async def send_refund(payload: dict[str, object], ctx: HandlerContext) -> None:
    """Ask WeChat Pay to refund (idempotent by out_refund_no, so a retry never refunds twice)."""
    refund = await Refund.get(id=int(str(payload["refund_id"])))
    if refund.status in ("PROCESSING", "SUCCESS"):
        return
    order = await Order.get(id=refund.order_id)
    client = ctx.services.wechat_pay
    try:
        result = await client.create_refund(
            out_trade_no=order.order_no,
            out_refund_no=refund.out_refund_no,
            refund_fen=refund.amount_fen,
            total_fen=order.payable_fen,
            reason=refund.reason or "退款",
            notify_url=ctx.services.settings.wechat_pay_notify_url,
        )
    except IntegrationError as exc:
        if getattr(exc, "retryable", False):
            raise
        raise PermanentFailure(str(exc)) from exc
    await Refund.filter(id=refund.id, status="PENDING").update(
        status="PROCESSING", refund_id=result.refund_id
    )


async def record_refund(resource: dict[str, Any]) -> Outcome:
    """Apply a REFUND.SUCCESS notification once: the refund, the order's refunded total, the after-sale."""
    refund = await Refund.get_or_none(out_refund_no=str(resource.get("out_refund_no", "")))
    if refund is None:
        raise PaymentRejected(f"unknown refund {resource.get('out_refund_no')}")
    if resource.get("refund_status") != "SUCCESS":
        await Refund.filter(id=refund.id, status__in=("PENDING", "PROCESSING")).update(status="FAILED")
        return Outcome("failed", refund.order_id)
    async with in_transaction():
        done = await Refund.filter(id=refund.id, status__in=("PENDING", "PROCESSING")).update(
            status="SUCCESS", succeeded_at=datetime.now(UTC), refund_id=str(resource.get("refund_id") or "")
        )
        if not done:
            return Outcome("duplicate", refund.order_id)
        order = await Order.get(id=refund.order_id)
        await Order.filter(id=order.id).update(refunded_fen=order.refunded_fen + refund.amount_fen)
        await Payment.filter(order_id=order.id, status="REFUNDING").update(status="REFUNDED")
        if refund.after_sale_id is not None:
            await AfterSale.filter(id=refund.after_sale_id).update(status="REFUNDED")
            await settle_refunded(refund.after_sale_id)
        await OrderEvent.create(
            order_id=order.id, status=order.status, note=f"退款成功 {format_fen(refund.amount_fen)}"
        )
        await _notify_member(order, "refund", refund.amount_fen, f"msg:refund:{refund.id}")
    return Outcome("refunded", refund.order_id)
