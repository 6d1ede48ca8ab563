"""After-sales: refund only, return and refund, exchange; amounts come from the lines' allocations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bff.models import order as status
from bff.models.order import AfterSale, Order, OrderEvent, OrderLine, Refund
from bff.services import points
from bff.services.campaign_checkout import after_sale_allowed
from bff.services.errors import BusinessError
from bff.services.outbox import enqueue

AFTER_SALE_DAYS = 15  # after completion, as most shops promise
TYPES = ("REFUND_ONLY", "RETURN_AND_REFUND", "EXCHANGE")
_ALLOWED = {
    "REFUND_ONLY": (status.PAID, status.SHIPPED, status.DELIVERED, status.COMPLETED),
    "RETURN_AND_REFUND": (status.SHIPPED, status.DELIVERED, status.COMPLETED),
    "EXCHANGE": (status.DELIVERED, status.COMPLETED),
}


@dataclass(frozen=True)
class AfterSaleItem:
    sku_id: int
    quantity: int


def share(total: int, units: int, upto: int) -> int:
    """What the first `upto` of `units` units carry of `total`; shares of disjoint ranges add up exactly."""
    return total * upto // units if units else 0


async def request_after_sale(
    member_id: int,
    order_id: int,
    kind: str,
    items: Sequence[AfterSaleItem],
    reason: str,
    description: str = "",
    image_urls: Sequence[str] = (),
) -> AfterSale:
    """Open an after-sale request; refunds and ERP returns are queued in the same transaction."""
    if kind not in TYPES:
        raise BusinessError("INVALID_INPUT", "售后类型不正确", "type")
    if not items:
        raise BusinessError("INVALID_INPUT", "请选择售后商品", "lines")
    if not reason.strip():
        raise BusinessError("INVALID_INPUT", "请填写售后原因", "reason")
    if len(image_urls) > 9:
        raise BusinessError("INVALID_INPUT", "最多上传 9 张图片", "imageUrls")
    async with in_transaction():
        order = await Order.get_or_none(id=order_id, member_id=member_id)
        if order is None:
            raise BusinessError("NOT_FOUND", "订单不存在", "orderId")
        if order.status not in _ALLOWED[kind]:
            raise BusinessError("INVALID_STATE", "当前订单状态不能申请该类售后", "type")
        if not after_sale_allowed(order.status, order.campaign_kind):
            raise BusinessError("INVALID_STATE", "拼团成功或支付尾款后才能申请售后", "orderId")
        if order.completed_at is not None and order.completed_at < datetime.now(UTC) - timedelta(
            days=AFTER_SALE_DAYS
        ):
            raise BusinessError("INVALID_STATE", f"已超过 {AFTER_SALE_DAYS} 天售后期", "orderId")
        lines = {line.sku_id: line for line in await OrderLine.filter(order_id=order.id)}
        entries: list[dict[str, int]] = []
        amount = 0
        for item in items:
            line = lines.get(item.sku_id)
            if line is None:
                raise BusinessError("NOT_FOUND", "订单中没有这件商品", "lines")
            left = line.quantity - line.refunded_quantity
            if item.quantity < 1 or item.quantity > left:
                raise BusinessError("INVALID_INPUT", f"「{line.product_title}」最多可申请 {left} 件", "lines")
            done = line.refunded_quantity
            refund = 0
            points_back = 0
            if kind != "EXCHANGE":
                refund = share(line.paid_fen, line.quantity, done + item.quantity) - share(
                    line.paid_fen, line.quantity, done
                )
                points_back = share(line.points_discount_fen, line.quantity, done + item.quantity) - share(
                    line.points_discount_fen, line.quantity, done
                )
                # The quantity is claimed now, so a second request cannot refund the same units.
                await OrderLine.filter(id=line.id, refunded_quantity=done).update(
                    refunded_quantity=F("refunded_quantity") + item.quantity,
                    refunded_fen=F("refunded_fen") + refund,
                )
            amount += refund
            entries.append(
                {
                    "order_line_id": line.id,
                    "sku_id": line.sku_id,
                    "quantity": item.quantity,
                    "amount_fen": refund,
                    "points_fen": points_back,
                }
            )
        if kind == "REFUND_ONLY" and order.status == status.PAID and await _everything_refunded(order.id):
            amount += order.shipping_fee_fen  # nothing was shipped: the shipping fee goes back too
        after_sale = await AfterSale.create(
            order_id=order.id,
            member_id=member_id,
            type=kind,
            status="PROCESSING" if kind == "EXCHANGE" else "REFUNDING",
            amount_fen=amount,
            lines=entries,
            reason=reason.strip()[:256],
            description=description[:2000],
            image_urls=list(image_urls),
        )
        await OrderEvent.create(
            order_id=order.id, status=order.status, note=f"申请售后：{reason.strip()[:100]}"
        )
        if kind != "REFUND_ONLY" or order.status != status.PAID:
            await enqueue(
                "erp.create_return", {"after_sale_id": after_sale.id}, dedupe_key=f"return:{after_sale.id}"
            )
        if amount > 0:
            refund_row = await Refund.create(
                order_id=order.id,
                after_sale_id=after_sale.id,
                out_refund_no=f"AS{after_sale.id:010d}",
                amount_fen=amount,
                reason=reason.strip()[:128],
            )
            await enqueue(
                "wechatpay.refund", {"refund_id": refund_row.id}, dedupe_key=f"refund:{refund_row.id}"
            )
    return after_sale


async def _everything_refunded(order_id: int) -> bool:
    return not await OrderLine.filter(order_id=order_id, refunded_quantity__lt=F("quantity")).exists()


async def settle_refunded(after_sale_id: int) -> None:
    """When an after-sale's money is back: return the points it used, take back what it earned."""
    after_sale = await AfterSale.get(id=after_sale_id)
    used_back = sum(int(entry.get("points_fen", 0)) for entry in after_sale.lines)
    if used_back:
        await points.change_points(after_sale.member_id, used_back, f"售后退回积分 #{after_sale.id}")
    earned = points.earned_for(after_sale.amount_fen)
    balance = await points.balance_of(after_sale.member_id)
    # Points already spent cannot be taken back below zero; growth always is.
    if min(earned, balance):
        await points.change_points(
            after_sale.member_id, -min(earned, balance), f"售后扣回奖励积分 #{after_sale.id}"
        )
    await points.change_growth(after_sale.member_id, -earned)
