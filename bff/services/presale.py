"""Presale (预售): a deposit order in the deposit window, then a balance order in the balance window.

Rules:
- Deposit: `placeOrder` with `campaign { presaleCampaignId }` in [deposit_starts_at, deposit_ends_at)
  buys 1-5 units of the campaign SKU at the deposit each (no coupon; points may pay part of it,
  and shipping follows the usual checkout rule). The PresaleOrder is created with the order
  (DEPOSIT_PENDING) and the units are held from then on. Closing the unpaid deposit ends it (CLOSED).
- Paid deposit (DEPOSIT_PAID): nothing ships and nothing goes to the ERP; the units stay held; a
  subscribe-message reminder is queued for balance_starts_at and the settlement for balance_ends_at.
- Balance: `placePresaleBalanceOrder` in [balance_starts_at, balance_ends_at) creates one order of
  (presale_price − deposit_deduction) × quantity plus shipping (定金膨胀: the deposit counts for the
  deduction), payable until balance_ends_at at the latest. Paying it ships it: only the balance
  order goes to the ERP, and the deposit order becomes COMPLETED. An unpaid balance order that
  closes re-opens the presale (DEPOSIT_PAID) while the window lasts.
- Forfeit: a deposit whose balance is unpaid when the balance window ends is kept by the shop
  (FORFEITED); the deposit order closes and the held units are released.
- Refund: only when the shop cancels the campaign (`cancelPresaleCampaign`): every paid deposit
  whose balance is unpaid is refunded in full, money and points (REFUNDED); unpaid orders are cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bff.cache import Cache
from bff.models import order as status
from bff.models.catalog import Sku
from bff.models.marketing import PresaleCampaign, PresaleOrder
from bff.models.member import Address, Member, MemberLevel
from bff.models.order import Order, OrderEvent, OrderLine, Payment, Refund
from bff.models.outbox import OutboxMessage
from bff.services import points, stock
from bff.services.campaign_checkout import PRESALE, CampaignLine, CampaignRef, register
from bff.services.catalog import refresh_product_aggregates
from bff.services.checkout import pricing_rules
from bff.services.errors import BusinessError
from bff.services.money import format_fen
from bff.services.orders import end_unpaid, new_order_no
from bff.services.outbox import HandlerContext, enqueue, handler
from bff.services.pricing import PriceLine, PricingError, price_order
from bff.settings import Settings

DEPOSIT_PENDING = "DEPOSIT_PENDING"
DEPOSIT_PAID = "DEPOSIT_PAID"
BALANCE_PENDING = "BALANCE_PENDING"
BALANCE_PAID = "BALANCE_PAID"
FORFEITED = "FORFEITED"
REFUNDED = "REFUNDED"
CLOSED = "CLOSED"
FINAL = (BALANCE_PAID, FORFEITED, REFUNDED, CLOSED)
OPEN = (DEPOSIT_PENDING, DEPOSIT_PAID, BALANCE_PENDING)

MAX_QUANTITY = 5
REMINDER_TEMPLATE = "presale_balance"
_SHOP_TIMEZONE = timezone(timedelta(hours=8))


def shop_time(moment: datetime) -> str:
    """A moment as the shopper reads it, in the shop's time zone: 11月11日 20:00."""
    return moment.astimezone(_SHOP_TIMEZONE).strftime("%m月%d日 %H:%M")


def is_cancelled(campaign: PresaleCampaign) -> bool:
    """A cancelled campaign has an empty balance window (validation never allows one otherwise)."""
    return campaign.balance_ends_at <= campaign.balance_starts_at


def balance_unit_fen(campaign: PresaleCampaign) -> int:
    """What one unit still costs at balance time: the presale price less the deposit's deduction."""
    return campaign.presale_price_fen - campaign.deposit_deduction_fen


@dataclass(frozen=True)
class PresaleView:
    """A presale order with its campaign and quantity, as the screens show it."""

    presale: PresaleOrder
    campaign: PresaleCampaign
    quantity: int

    @property
    def can_pay_balance(self) -> bool:
        now = datetime.now(UTC)
        return (
            self.presale.status == DEPOSIT_PAID
            and self.campaign.balance_starts_at <= now < self.campaign.balance_ends_at
        )


async def views(presales: Sequence[PresaleOrder]) -> list[PresaleView]:
    """Campaigns and quantities of presale orders, in two queries whatever their number."""
    campaigns = {
        c.id: c for c in await PresaleCampaign.filter(id__in=list({p.campaign_id for p in presales}))
    }
    quantities: dict[int, int] = {}
    rows = await OrderLine.filter(order_id__in=[p.deposit_order_id for p in presales]).values_list(
        "order_id", "quantity"
    )
    for order_id, quantity in rows:
        quantities[int(order_id)] = quantities.get(int(order_id), 0) + int(quantity)
    return [PresaleView(p, campaigns[p.campaign_id], quantities.get(p.deposit_order_id, 0)) for p in presales]


async def member_view(member_id: int, presale_order_id: int) -> PresaleView | None:
    """One of the member's presale orders, or None (someone else's is None too)."""
    row = await PresaleOrder.get_or_none(id=presale_order_id, member_id=member_id)
    return (await views([row]))[0] if row is not None else None


async def member_page(member_id: int, first: int, before_id: int | None) -> tuple[list[PresaleView], bool]:
    """A page of the member's presale orders, newest first, and whether more follow."""
    query = PresaleOrder.filter(member_id=member_id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    rows = await query.order_by("-id").limit(first + 1)
    return await views(rows[:first]), len(rows) > first


async def member_count(member_id: int) -> int:
    """How many presale orders the member has."""
    return await PresaleOrder.filter(member_id=member_id).count()


async def _held_line(order_id: int) -> tuple[int, int]:
    """(sku_id, quantity) of a presale order's single line."""
    line = await OrderLine.filter(order_id=order_id).first()
    if line is None:
        raise RuntimeError(f"presale order {order_id} has no line")
    return line.sku_id, line.quantity


class PresaleHandler:
    """The PRESALE campaign kind: checkout hooks of the deposit order and of the balance order."""

    kinds: tuple[str, ...] = (PRESALE,)

    async def quote(self, member_id: int, ref: CampaignRef, lines: Sequence[tuple[int, int]]) -> CampaignLine:
        """The deposit line: the campaign SKU at the deposit, inside the deposit window."""
        campaign = await PresaleCampaign.get_or_none(id=ref.ref_id)
        if campaign is None:
            raise BusinessError("NOT_FOUND", "预售活动不存在", "campaign")
        now = datetime.now(UTC)
        if is_cancelled(campaign):
            raise BusinessError("INVALID_STATE", "预售活动已取消", "campaign")
        if now < campaign.deposit_starts_at:
            raise BusinessError(
                "INVALID_STATE", f"定金支付 {shop_time(campaign.deposit_starts_at)} 开始", "campaign"
            )
        if now >= campaign.deposit_ends_at:
            raise BusinessError("INVALID_STATE", "定金支付已结束", "campaign")
        if any(sku_id != campaign.sku_id for sku_id, _ in lines):
            raise BusinessError("INVALID_INPUT", "预售只能购买活动商品", "lines")
        quantity = sum(q for _, q in lines) if lines else 1
        if not 1 <= quantity <= MAX_QUANTITY:
            raise BusinessError("INVALID_INPUT", f"预售每单可购 1 到 {MAX_QUANTITY} 件", "lines")
        return CampaignLine(sku_id=campaign.sku_id, quantity=quantity, unit_price_fen=campaign.deposit_fen)

    async def pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None:
        """Nothing outside the database: the order's own stock reservation holds the units."""

    async def undo_pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None:
        """Nothing was held by pre_reserve."""

    async def hold(self, order: Order, ref: CampaignRef, line: CampaignLine) -> None:
        """Record the presale with its deposit order."""
        await PresaleOrder.create(
            campaign_id=ref.ref_id,
            member_id=order.member_id,
            deposit_order_id=order.id,
            status=DEPOSIT_PENDING,
        )

    async def on_paid(self, order: Order) -> bool:
        """A paid deposit waits for its balance (no shipping); a paid balance ships."""
        presale = await PresaleOrder.get_or_none(deposit_order_id=order.id)
        if presale is not None:
            await _deposit_paid(order, presale)
            return False
        presale = await PresaleOrder.get_or_none(balance_order_id=order.id)
        if presale is not None:
            await _balance_paid(order, presale)
        return True

    async def on_released(self, order: Order) -> None:
        """An unpaid deposit closing ends the presale; an unpaid balance closing re-opens it."""
        presale = await PresaleOrder.get_or_none(deposit_order_id=order.id)
        if presale is not None:
            await PresaleOrder.filter(id=presale.id, status=DEPOSIT_PENDING).update(status=CLOSED)
            return
        presale = await PresaleOrder.get_or_none(balance_order_id=order.id)
        if presale is None:
            return
        reopened = await PresaleOrder.filter(
            id=presale.id, status=BALANCE_PENDING, balance_order_id=order.id
        ).update(status=DEPOSIT_PAID, balance_order_id=None)
        if reopened:
            sku_id, quantity = await _held_line(order.id)
            # Closing the order just released its reservation, which was the deposit's hold: keep holding.
            await Sku.filter(id=sku_id).update(reserved=F("reserved") + quantity)


register(PresaleHandler())


async def _deposit_paid(order: Order, presale: PresaleOrder) -> None:
    if not await PresaleOrder.filter(id=presale.id, status=DEPOSIT_PENDING).update(status=DEPOSIT_PAID):
        return
    campaign = await PresaleCampaign.get(id=presale.campaign_id)
    sku_id, quantity = await _held_line(order.id)
    # The payment turned the order's reservation into a sale; a deposit only holds the units until
    # the balance, and the ERP (which never sees the deposit) still counts them as available.
    await Sku.filter(id=sku_id).update(stock=F("stock") + quantity, reserved=F("reserved") + quantity)
    balance = balance_unit_fen(campaign) * quantity
    await OrderEvent.create(
        order_id=order.id,
        status=status.PAID,
        note=f"定金已支付，尾款 {format_fen(balance)} 于 {shop_time(campaign.balance_starts_at)} 开始支付",
    )
    await enqueue(
        "wechat.subscribe_message",
        {
            "member_id": order.member_id,
            "template_id": REMINDER_TEMPLATE,
            "page": f"pages/order/detail?id={order.id}",
            "data": {
                "thing1": campaign.title[:20],
                "amount2": format_fen(balance),
                "time3": shop_time(campaign.balance_starts_at),
            },
        },
        run_at=campaign.balance_starts_at,
        dedupe_key=f"presale-remind:{presale.id}",
    )
    await enqueue(
        "presale.settle",
        {"presale_order_id": presale.id},
        run_at=campaign.balance_ends_at,
        dedupe_key=f"presale-settle:{presale.id}",
    )


async def _balance_paid(order: Order, presale: PresaleOrder) -> None:
    await PresaleOrder.filter(id=presale.id, status=BALANCE_PENDING).update(status=BALANCE_PAID)
    now = datetime.now(UTC)
    if await Order.filter(id=presale.deposit_order_id, status=status.PAID).update(
        status=status.COMPLETED, completed_at=now
    ):
        await OrderEvent.create(
            order_id=presale.deposit_order_id,
            status=status.COMPLETED,
            note=f"尾款已支付（订单 {order.order_no}），定金已抵扣",
        )


class _Raced(Exception):
    """Another request moved the presale order first; the transaction rolls back."""


async def _address(member_id: int, address_id: int) -> dict[str, str]:
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


async def place_balance_order(
    member_id: int,
    presale_order_id: int,
    address_id: int | None,
    settings: Settings,
    now: datetime | None = None,
) -> Order:
    """Create the balance order (or return the pending one); the address defaults to the deposit's."""
    moment = now or datetime.now(UTC)
    presale = await PresaleOrder.get_or_none(id=presale_order_id, member_id=member_id)
    if presale is None:
        raise BusinessError("NOT_FOUND", "预售订单不存在", "presaleOrderId")
    if presale.status == BALANCE_PENDING and presale.balance_order_id is not None:
        return await Order.get(id=presale.balance_order_id)  # a retry gets the same unpaid order
    if presale.status != DEPOSIT_PAID:
        raise BusinessError("INVALID_STATE", _state_message(presale.status), "presaleOrderId")
    campaign = await PresaleCampaign.get(id=presale.campaign_id)
    if is_cancelled(campaign):
        raise BusinessError("INVALID_STATE", "预售活动已取消，定金将原路退回", "presaleOrderId")
    if moment < campaign.balance_starts_at:
        raise BusinessError(
            "INVALID_STATE", f"尾款 {shop_time(campaign.balance_starts_at)} 开始支付", "presaleOrderId"
        )
    if moment >= campaign.balance_ends_at:
        raise BusinessError("INVALID_STATE", "尾款支付已结束", "presaleOrderId")
    deposit = await Order.get(id=presale.deposit_order_id)
    if deposit.status != status.PAID or await Refund.exists(order_id=deposit.id):
        raise BusinessError("INVALID_STATE", "定金已申请退款，不能支付尾款", "presaleOrderId")
    line = await OrderLine.filter(order_id=deposit.id).first()
    if line is None:
        raise RuntimeError(f"deposit order {deposit.id} has no line")
    address = deposit.address_snapshot if address_id is None else await _address(member_id, address_id)
    member = await Member.get(id=member_id)
    level = await MemberLevel.get(id=member.level_id)
    unit = balance_unit_fen(campaign)
    try:
        priced = price_order(
            [
                PriceLine(
                    key=str(line.sku_id),
                    product_id=line.product_id,
                    category_ids=frozenset(),
                    list_price_fen=max(line.list_price_fen, unit),
                    quantity=line.quantity,
                    campaign_price_fen=unit,
                )
            ],
            pricing_rules(settings, level),
        )
    except PricingError as exc:
        raise BusinessError(exc.code, exc.message) from exc
    p, priced_line = priced, priced.lines[0]
    deadline = min(moment + timedelta(minutes=settings.order_pay_timeout_minutes), campaign.balance_ends_at)
    deduction = campaign.deposit_deduction_fen * line.quantity
    try:
        async with in_transaction():
            order = await Order.create(
                order_no=new_order_no(moment),
                member_id=member_id,
                status=status.PENDING_PAYMENT,
                items_total_fen=p.items_total_fen,
                member_discount_fen=p.member_discount_fen,
                campaign_discount_fen=p.campaign_discount_fen,
                shipping_fee_fen=p.shipping_fee_fen,
                payable_fen=p.payable_fen,
                address_snapshot=address,
                pay_deadline=deadline,
                campaign_kind=PRESALE,
                campaign_ref=campaign.id,
            )
            # The conditional update is the claim: of two concurrent requests only one moves the presale.
            if not await PresaleOrder.filter(id=presale.id, status=DEPOSIT_PAID).update(
                status=BALANCE_PENDING, balance_order_id=order.id
            ):
                raise _Raced()
            await OrderLine.create(
                order_id=order.id,
                sku_id=line.sku_id,
                sku_code=line.sku_code,
                product_id=line.product_id,
                product_title=line.product_title,
                image_url=line.image_url,
                spec_text=line.spec_text,
                quantity=line.quantity,
                list_price_fen=priced_line.list_price_fen,
                unit_price_fen=priced_line.unit_price_fen,
                line_total_fen=priced_line.line_total_fen,
                member_discount_fen=priced_line.member_discount_fen,
                campaign_discount_fen=priced_line.campaign_discount_fen,
                paid_fen=priced_line.paid_fen,
            )
            await OrderEvent.create(
                order_id=order.id,
                status=status.PENDING_PAYMENT,
                note=f"预售尾款：定金 {format_fen(deposit.payable_fen)} 已抵 {format_fen(deduction)}",
            )
            # No stock reservation here: the deposit's hold carries over to this order.
            await enqueue(
                "order.close_if_unpaid",
                {"order_id": order.id},
                run_at=deadline,
                dedupe_key=f"close:{order.id}",
            )
    except _Raced:
        again = await PresaleOrder.get(id=presale.id)
        if again.status == BALANCE_PENDING and again.balance_order_id is not None:
            return await Order.get(id=again.balance_order_id)
        raise BusinessError("INVALID_STATE", "预售订单状态已变化，请刷新", "presaleOrderId") from None
    return order


def _state_message(state: str) -> str:
    return {
        DEPOSIT_PENDING: "请先支付定金",
        BALANCE_PAID: "尾款已支付",
        FORFEITED: "尾款支付已结束，定金不退",
        REFUNDED: "预售活动已取消，定金已退回",
        CLOSED: "定金订单已关闭",
    }.get(state, "预售订单状态不允许此操作")


async def cancel_campaign(campaign_id: int, now: datetime | None = None) -> PresaleCampaign:
    """The shop cancels a presale: it ends now, and every open presale order is settled (refunded)."""
    moment = now or datetime.now(UTC)
    campaign = await PresaleCampaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise BusinessError("NOT_FOUND", "预售活动不存在", "id")
    if is_cancelled(campaign):
        raise BusinessError("INVALID_STATE", "预售活动已取消", "id")
    if campaign.balance_ends_at <= moment:
        raise BusinessError("INVALID_STATE", "预售活动已结束，不能取消", "id")
    async with in_transaction():
        # An empty balance window at the moment of cancellation is what marks a campaign cancelled.
        await PresaleCampaign.filter(id=campaign.id).update(
            deposit_starts_at=min(campaign.deposit_starts_at, moment),
            deposit_ends_at=min(campaign.deposit_ends_at, moment),
            balance_starts_at=moment,
            balance_ends_at=moment,
        )
        open_ids = await PresaleOrder.filter(campaign_id=campaign.id, status__in=OPEN).values_list(
            "id", flat=True
        )
        for presale_id in open_ids:
            await enqueue(
                "presale.settle",
                {"presale_order_id": presale_id},
                run_at=moment,
                dedupe_key=f"presale-cancel:{presale_id}",
            )
    return await PresaleCampaign.get(id=campaign.id)


@handler("presale.settle")
async def settle_message(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """At balance_ends_at (or on cancellation): forfeit or refund a deposit whose balance is unpaid."""
    await settle(int(str(payload["presale_order_id"])), ctx.now, ctx.services.cache)


async def settle(presale_order_id: int, now: datetime, cache: Cache) -> str | None:
    """Forfeit (window over) or refund (campaign cancelled) an unbalanced deposit; the resulting status."""
    presale = await PresaleOrder.get_or_none(id=presale_order_id)
    if presale is None or presale.status in FINAL:
        return presale.status if presale is not None else None
    campaign = await PresaleCampaign.get(id=presale.campaign_id)
    cancelled = is_cancelled(campaign)
    if not cancelled and now < campaign.balance_ends_at:
        raise RuntimeError("balance window still open")  # retried later by the outbox
    if presale.status == DEPOSIT_PENDING:
        if cancelled:
            await end_unpaid(presale.deposit_order_id, status.CANCELLED, "预售活动已取消", cache)
        # Otherwise the unpaid deposit order closes at its own pay deadline.
        return (await PresaleOrder.get(id=presale.id)).status
    if presale.status == BALANCE_PENDING and presale.balance_order_id is not None:
        note = "预售活动已取消" if cancelled else "尾款支付已结束，订单已关闭"
        await end_unpaid(presale.balance_order_id, status.CLOSED, note, cache)
        presale = await PresaleOrder.get(id=presale.id)
        if presale.status != DEPOSIT_PAID:
            return presale.status  # the balance was paid just in time
    if cancelled:
        await _refund_deposit(presale, now)
    else:
        await _forfeit_deposit(presale, now)
    await refresh_product_aggregates(cache, [campaign.product_id])
    return (await PresaleOrder.get(id=presale.id)).status


async def _forfeit_deposit(presale: PresaleOrder, now: datetime) -> None:
    note = "未在尾款支付期内支付尾款，定金不予退还"
    async with in_transaction():
        if not await PresaleOrder.filter(id=presale.id, status=DEPOSIT_PAID).update(status=FORFEITED):
            return
        sku_id, quantity = await _held_line(presale.deposit_order_id)
        await stock.release({sku_id: quantity})
        await Order.filter(id=presale.deposit_order_id, status=status.PAID).update(
            status=status.CLOSED, closed_at=now, close_reason=note
        )
        await OrderEvent.create(order_id=presale.deposit_order_id, status=status.CLOSED, note=note)


async def _refund_deposit(presale: PresaleOrder, now: datetime) -> None:
    note = "预售活动取消，定金全额退还"
    async with in_transaction():
        if not await PresaleOrder.filter(id=presale.id, status=DEPOSIT_PAID).update(status=REFUNDED):
            return
        deposit = await Order.get(id=presale.deposit_order_id)
        sku_id, quantity = await _held_line(deposit.id)
        await stock.release({sku_id: quantity})
        # Whatever an after-sale already refunds of the deposit is not refunded twice.
        earlier = await Refund.filter(order_id=deposit.id).exclude(status="FAILED")
        amount = deposit.payable_fen - sum(r.amount_fen for r in earlier)
        if amount > 0:
            await Payment.filter(order_id=deposit.id, status="SUCCESS").update(status="REFUNDING")
            refund = await Refund.create(
                order_id=deposit.id,
                out_refund_no=f"PS{presale.id:010d}",
                amount_fen=amount,
                reason=note,
            )
            await enqueue("wechatpay.refund", {"refund_id": refund.id}, dedupe_key=f"refund:{refund.id}")
        if deposit.points_used:
            await points.change_points(
                deposit.member_id, deposit.points_used, f"预售取消退回 {deposit.order_no}"
            )
        earned = points.earned_for(deposit.payable_fen)
        # Points the deposit earned are taken back, never below zero; growth always is.
        taken = min(earned, await points.balance_of(deposit.member_id))
        if taken:
            await points.change_points(deposit.member_id, -taken, f"预售取消扣回 {deposit.order_no}")
        await points.change_growth(deposit.member_id, -earned)
        await Order.filter(id=deposit.id, status=status.PAID).update(
            status=status.CLOSED, closed_at=now, close_reason=note
        )
        await OrderEvent.create(order_id=deposit.id, status=status.CLOSED, note=note)
        # The balance reminder would announce a balance that will never open.
        await OutboxMessage.filter(
            dedupe_key=f"presale-remind:{presale.id}", status="PENDING", locked_until__isnull=True
        ).update(status="DONE", done_at=now, last_error="withdrawn: presale cancelled")
