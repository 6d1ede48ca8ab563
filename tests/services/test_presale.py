"""Presale through the order services: deposit, deduction, balance, reminder, forfeit, cancellation."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bff.cache import MemoryCache
from bff.models import order as status
from bff.models.catalog import Sku
from bff.models.marketing import PresaleCampaign, PresaleOrder
from bff.models.member import Address, Member, MemberLevel
from bff.models.order import Order, Payment, Refund
from bff.models.outbox import OutboxMessage
from bff.services import orders, payments, presale
from bff.services.campaign_checkout import PRESALE, CampaignRef
from bff.services.checkout import CheckoutRequest
from bff.services.errors import BusinessError
from bff.settings import Settings
from tests.support.factories import make_product

SETTINGS = Settings()
CACHE = MemoryCache()
LIST_PRICE = 59_900
PRESALE_PRICE = 49_900
DEPOSIT = 5_000
DEDUCTION = 10_000  # 定金膨胀: ¥50 counts ¥100
STOCK = 100


@pytest.fixture(autouse=True)
def _db(seeded: str) -> None:
    """Every test here needs the seeded database (member levels)."""


@dataclass
class Shopper:
    member_id: int
    address_id: int


@dataclass
class Campaign:
    row: PresaleCampaign
    sku_id: int

    def ref(self) -> CampaignRef:
        return CampaignRef(kind=PRESALE, ref_id=self.row.id)

    async def shift(self, **windows: datetime | int) -> None:
        """Move the campaign's windows, as time passing would."""
        await PresaleCampaign.filter(id=self.row.id).update(**windows)


async def make_campaign(*, deposit_opens_in: timedelta = -timedelta(minutes=5)) -> Campaign:
    """A presale on a product of its own: deposit window now (by default), balance an hour later."""
    product, (sku,) = await make_product([(LIST_PRICE, STOCK)])
    now = datetime.now(UTC)
    start = now + deposit_opens_in
    row = await PresaleCampaign.create(
        title=f"预售 {uuid.uuid4().hex[:6]}",
        product_id=product.id,
        sku_id=sku.id,
        presale_price_fen=PRESALE_PRICE,
        deposit_fen=DEPOSIT,
        deposit_deduction_fen=DEDUCTION,
        deposit_starts_at=start,
        deposit_ends_at=start + timedelta(hours=1),
        balance_starts_at=start + timedelta(hours=1),
        balance_ends_at=start + timedelta(hours=2),
    )
    return Campaign(row=row, sku_id=sku.id)


async def make_shopper(points: int = 0) -> Shopper:
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    member = await Member.create(
        openid=f"o_ps{uuid.uuid4().hex[:16]}", level_id=level.id, points_balance=points
    )
    address = await Address.create(
        member_id=member.id,
        name="李雷",
        phone="13800138000",
        province="浙江省",
        city="杭州市",
        district="西湖区",
        detail="文三路 1 号",
    )
    return Shopper(member.id, address.id)


async def deposit(shopper: Shopper, campaign: Campaign, quantity: int = 1, points: int = 0) -> Order:
    request = CheckoutRequest(
        member_id=shopper.member_id,
        source="BUY_NOW",
        lines=((campaign.sku_id, quantity),),
        address_id=shopper.address_id,
        points_to_use=points,
        campaign=campaign.ref(),
    )
    return await orders.place_order(request, SETTINGS, CACHE, None)


async def pay(order: Order) -> payments.Outcome:
    resource: dict[str, Any] = {
        "out_trade_no": order.order_no,
        "transaction_id": f"T{uuid.uuid4().hex[:24]}",
        "trade_state": "SUCCESS",
        "amount": {"total": order.payable_fen},
        "success_time": datetime.now(UTC).isoformat(),
    }
    return await payments.record_payment(resource, CACHE)


async def presale_of(order: Order) -> PresaleOrder:
    return await PresaleOrder.get(deposit_order_id=order.id)


async def sku(campaign: Campaign) -> Sku:
    return await Sku.get(id=campaign.sku_id)


async def paid_deposit(quantity: int = 1) -> tuple[Shopper, Campaign, Order, PresaleOrder]:
    shopper, campaign = await make_shopper(), await make_campaign()
    order = await deposit(shopper, campaign, quantity)
    assert (await pay(order)).result == "paid"
    return shopper, campaign, order, await presale_of(order)


async def open_balance_window(campaign: Campaign) -> None:
    now = datetime.now(UTC)
    await campaign.shift(
        deposit_ends_at=now - timedelta(minutes=1),
        balance_starts_at=now - timedelta(minutes=1),
        balance_ends_at=now + timedelta(hours=1),
    )


async def test_the_deposit_order_is_one_line_at_the_deposit_and_holds_the_units() -> None:
    shopper, campaign = await make_shopper(), await make_campaign()
    order = await deposit(shopper, campaign, quantity=2)
    line = (await order.lines.all())[0]  # type: ignore[attr-defined]
    assert (line.sku_id, line.quantity, line.unit_price_fen) == (campaign.sku_id, 2, DEPOSIT)
    assert order.payable_fen == 2 * DEPOSIT + order.shipping_fee_fen
    assert order.campaign_kind == PRESALE and order.campaign_ref == campaign.row.id
    assert (await presale_of(order)).status == presale.DEPOSIT_PENDING
    assert (await sku(campaign)).reserved == 2


async def test_a_paid_deposit_does_not_ship_keeps_the_units_and_queues_reminder_and_settlement() -> None:
    shopper, campaign, order, row = await paid_deposit(quantity=2)
    assert row.status == presale.DEPOSIT_PAID
    assert (await Order.get(id=order.id)).status == status.PAID
    held = await sku(campaign)
    assert (held.stock, held.reserved) == (STOCK, 2)  # held for the balance, not sold yet
    assert not await OutboxMessage.exists(dedupe_key=f"erp-push:{order.id}")
    reminder = await OutboxMessage.get(dedupe_key=f"presale-remind:{row.id}")
    assert reminder.topic == "wechat.subscribe_message"
    assert reminder.run_at == campaign.row.balance_starts_at
    assert reminder.payload["member_id"] == shopper.member_id
    assert reminder.payload["template_id"] == presale.REMINDER_TEMPLATE
    assert reminder.payload["data"] == {
        "thing1": campaign.row.title,
        "amount2": "¥798.00",  # (499 − 100) × 2
        "time3": presale.shop_time(campaign.row.balance_starts_at),
    }
    settle = await OutboxMessage.get(dedupe_key=f"presale-settle:{row.id}")
    assert (settle.topic, settle.run_at) == ("presale.settle", campaign.row.balance_ends_at)


@pytest.mark.parametrize(
    ("opens_in", "message"), [(timedelta(hours=1), "开始"), (-timedelta(hours=2), "定金支付已结束")]
)
async def test_deposits_only_in_the_deposit_window(opens_in: timedelta, message: str) -> None:
    shopper, campaign = await make_shopper(), await make_campaign(deposit_opens_in=opens_in)
    with pytest.raises(BusinessError) as refused:
        await deposit(shopper, campaign)
    assert refused.value.code == "INVALID_STATE" and message in refused.value.message


async def test_a_deposit_buys_only_the_campaign_sku_within_the_quantity_limit() -> None:
    shopper, campaign = await make_shopper(), await make_campaign()
    _, (other,) = await make_product([(LIST_PRICE, STOCK)])
    request = CheckoutRequest(
        member_id=shopper.member_id,
        source="BUY_NOW",
        lines=((other.id, 1),),
        address_id=shopper.address_id,
        campaign=campaign.ref(),
    )
    with pytest.raises(BusinessError) as wrong_sku:
        await orders.place_order(request, SETTINGS, CACHE, None)
    assert (wrong_sku.value.code, wrong_sku.value.field) == ("INVALID_INPUT", "lines")
    with pytest.raises(BusinessError) as too_many:
        await deposit(shopper, campaign, quantity=presale.MAX_QUANTITY + 1)
    assert too_many.value.code == "INVALID_INPUT"


async def test_the_balance_is_the_presale_price_less_the_deduction_and_ships_when_paid() -> None:
    shopper, campaign, deposit_order, row = await paid_deposit(quantity=2)
    await open_balance_window(campaign)
    balance = await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    goods = (PRESALE_PRICE - DEDUCTION) * 2
    assert balance.payable_fen == goods  # ¥798 is over the free-shipping threshold
    assert balance.items_total_fen - balance.campaign_discount_fen == goods
    assert balance.address_snapshot == deposit_order.address_snapshot
    assert (
        balance.pay_deadline is not None
        and balance.pay_deadline <= campaign.row.balance_ends_at + timedelta(hours=1)
    )
    again = await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    assert again.id == balance.id  # a retry gets the same unpaid order
    assert (await PresaleOrder.get(id=row.id)).status == presale.BALANCE_PENDING

    assert (await pay(balance)).result == "paid"
    assert (await PresaleOrder.get(id=row.id)).status == presale.BALANCE_PAID
    assert (await Order.get(id=deposit_order.id)).status == status.COMPLETED
    assert await OutboxMessage.exists(dedupe_key=f"erp-push:{balance.id}")
    assert not await OutboxMessage.exists(dedupe_key=f"erp-push:{deposit_order.id}")
    sold = await sku(campaign)
    assert (sold.stock, sold.reserved) == (STOCK - 2, 0)


async def test_the_balance_order_pays_shipping_below_the_threshold() -> None:
    shopper, campaign, _, row = await paid_deposit()
    await campaign.shift(presale_price_fen=DEDUCTION + 5_000)  # balance ¥50 < ¥99
    await open_balance_window(campaign)
    balance = await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    assert balance.shipping_fee_fen == SETTINGS.shipping_fee_fen
    assert balance.payable_fen == 5_000 + SETTINGS.shipping_fee_fen


async def test_the_balance_only_in_its_window_for_a_paid_deposit_of_ones_own() -> None:
    shopper, campaign, _, row = await paid_deposit()
    with pytest.raises(BusinessError) as early:
        await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    assert early.value.code == "INVALID_STATE" and "开始支付" in early.value.message
    stranger = await make_shopper()
    with pytest.raises(BusinessError) as not_theirs:
        await presale.place_balance_order(stranger.member_id, row.id, None, SETTINGS)
    assert not_theirs.value.code == "NOT_FOUND"
    unpaid = await deposit(stranger, campaign)
    await open_balance_window(campaign)
    with pytest.raises(BusinessError) as no_deposit:
        await presale.place_balance_order(stranger.member_id, (await presale_of(unpaid)).id, None, SETTINGS)
    assert no_deposit.value.code == "INVALID_STATE" and "定金" in no_deposit.value.message
    await campaign.shift(balance_ends_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(BusinessError) as late:
        await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    assert late.value.code == "INVALID_STATE" and "已结束" in late.value.message


async def test_concurrent_balance_requests_make_one_order() -> None:
    shopper, campaign, _, row = await paid_deposit()
    await open_balance_window(campaign)
    made = await asyncio.gather(
        *(presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS) for _ in range(5))
    )
    assert len({o.id for o in made}) == 1
    assert await Order.filter(member_id=shopper.member_id, campaign_kind=PRESALE).count() == 2


async def test_an_unpaid_balance_order_that_closes_reopens_the_presale_and_keeps_the_hold() -> None:
    shopper, campaign, _, row = await paid_deposit()
    await open_balance_window(campaign)
    first = await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    await orders.cancel_unpaid(shopper.member_id, first.id, "换地址", CACHE)
    reopened = await PresaleOrder.get(id=row.id)
    assert (reopened.status, reopened.balance_order_id) == (presale.DEPOSIT_PAID, None)
    assert (await sku(campaign)).reserved == 1
    second = await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    assert second.id != first.id and (await pay(second)).result == "paid"
    assert (await sku(campaign)).reserved == 0


async def test_an_unpaid_balance_at_the_end_of_the_window_forfeits_the_deposit() -> None:
    shopper, campaign, deposit_order, row = await paid_deposit()
    await open_balance_window(campaign)
    balance = await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    window_end = (await PresaleCampaign.get(id=campaign.row.id)).balance_ends_at
    with pytest.raises(RuntimeError):
        await presale.settle(row.id, window_end - timedelta(seconds=1), CACHE)  # retried by the outbox
    assert await presale.settle(row.id, window_end, CACHE) == presale.FORFEITED
    assert (await Order.get(id=balance.id)).status == status.CLOSED
    closed = await Order.get(id=deposit_order.id)
    assert closed.status == status.CLOSED and "定金不予退还" in closed.close_reason
    assert not await Refund.exists(order_id=deposit_order.id)
    released = await sku(campaign)
    assert (released.stock, released.reserved) == (STOCK, 0)
    assert await presale.settle(row.id, window_end, CACHE) == presale.FORFEITED  # idempotent


async def test_a_paid_balance_is_not_forfeited() -> None:
    shopper, campaign, _, row = await paid_deposit()
    await open_balance_window(campaign)
    await pay(await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS))
    assert await presale.settle(row.id, datetime.now(UTC) + timedelta(days=1), CACHE) == presale.BALANCE_PAID


async def test_an_unpaid_deposit_that_closes_ends_the_presale() -> None:
    shopper, campaign = await make_shopper(), await make_campaign()
    order = await deposit(shopper, campaign)
    await orders.end_unpaid(order.id, status.CLOSED, "超时未支付", CACHE)
    assert (await presale_of(order)).status == presale.CLOSED
    assert (await sku(campaign)).reserved == 0


async def test_cancelling_refunds_paid_deposits_in_full_and_cancels_the_unpaid() -> None:
    payer, campaign = await make_shopper(points=1_000), await make_campaign()
    paid = await deposit(payer, campaign, points=500)
    assert paid.points_used == 500 and (await pay(paid)).result == "paid"
    waiter = await make_shopper()
    unpaid = await deposit(waiter, campaign)
    paid_row, unpaid_row = await presale_of(paid), await presale_of(unpaid)

    cancelled = await presale.cancel_campaign(campaign.row.id)
    assert presale.is_cancelled(cancelled)
    with pytest.raises(BusinessError) as again:
        await presale.cancel_campaign(campaign.row.id)
    assert again.value.code == "INVALID_STATE"
    with pytest.raises(BusinessError) as closed:
        await deposit(await make_shopper(), campaign)
    assert closed.value.code == "INVALID_STATE"
    for row in (paid_row, unpaid_row):
        assert await OutboxMessage.exists(dedupe_key=f"presale-cancel:{row.id}")

    assert await presale.settle(paid_row.id, datetime.now(UTC), CACHE) == presale.REFUNDED
    refund = await Refund.get(order_id=paid.id)
    assert refund.amount_fen == paid.payable_fen
    assert await OutboxMessage.exists(dedupe_key=f"refund:{refund.id}", topic="wechatpay.refund")
    assert (await Payment.get(order_id=paid.id)).status == "REFUNDING"
    assert (await Order.get(id=paid.id)).status == status.CLOSED
    member = await Member.get(id=payer.member_id)
    assert member.points_balance == 1_000  # the 500 points come back, the points earned go again
    reminder = await OutboxMessage.get(dedupe_key=f"presale-remind:{paid_row.id}")
    assert reminder.status == "DONE" and "withdrawn" in reminder.last_error

    assert await presale.settle(unpaid_row.id, datetime.now(UTC), CACHE) == presale.CLOSED
    assert (await Order.get(id=unpaid.id)).status == status.CANCELLED
    assert (await sku(campaign)).reserved == 0


async def test_an_ended_campaign_cannot_be_cancelled() -> None:
    campaign = await make_campaign(deposit_opens_in=-timedelta(hours=3))
    with pytest.raises(BusinessError) as ended:
        await presale.cancel_campaign(campaign.row.id)
    assert ended.value.code == "INVALID_STATE"


async def test_a_deposit_refunded_by_an_after_sale_has_no_balance_and_is_not_refunded_twice() -> None:
    shopper, campaign, deposit_order, row = await paid_deposit()
    await Refund.create(
        order_id=deposit_order.id, out_refund_no=f"AS{uuid.uuid4().hex[:20]}", amount_fen=1_000, reason="售后"
    )
    await open_balance_window(campaign)
    with pytest.raises(BusinessError) as refused:
        await presale.place_balance_order(shopper.member_id, row.id, None, SETTINGS)
    assert refused.value.code == "INVALID_STATE"
    await presale.cancel_campaign(campaign.row.id)
    assert await presale.settle(row.id, datetime.now(UTC), CACHE) == presale.REFUNDED
    rest = await Refund.get(out_refund_no=f"PS{row.id:010d}")
    assert rest.amount_fen == deposit_order.payable_fen - 1_000
