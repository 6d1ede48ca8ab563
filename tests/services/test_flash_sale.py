"""Flash sales through the order services: quote, limits, stock, release on close, payment, guards."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from tortoise.transactions import in_transaction

from bff.cache import MemoryCache
from bff.counters import CounterStore, MemoryCounterStore, RedisCounterStore
from bff.models import order as status
from bff.models.marketing import FlashSale, FlashSaleItem, FlashSalePurchase
from bff.models.member import Address, Member, MemberLevel
from bff.models.order import Order, Refund
from bff.models.outbox import OutboxMessage
from bff.services import flash_sale, orders, payments
from bff.services.campaign_checkout import FLASH_SALE, CampaignLine, CampaignRef
from bff.services.checkout import CheckoutRequest, quote
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext
from bff.settings import Settings
from tests.support.factories import make_product

REDIS_URL = os.environ.get("REDIS_URL")
SETTINGS = Settings()
CACHE = MemoryCache()
LIST_PRICE = 19_900
FLASH_PRICE = 9_900


@pytest.fixture(autouse=True)
def _db(seeded: str) -> None:
    """Every test here needs the seeded database (member levels)."""


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CounterStore]:
    """The counter store flash sales reserve through, one per backend; the previous one comes back after."""
    if request.param == "redis" and not REDIS_URL:
        pytest.skip("REDIS_URL is not set: flash sales over Redis counters are not tested")
    # Long enough that an in-process seed outlives a test, so its counts can be asserted.
    monkeypatch.setattr(flash_sale, "LOCAL_SEED_TTL", 60.0)
    prefix = f"test-flash-{uuid.uuid4().hex[:8]}:"
    made: CounterStore = (
        MemoryCounterStore(prefix) if request.param == "memory" else RedisCounterStore(str(REDIS_URL), prefix)
    )
    previous = flash_sale.configure(made)
    yield made
    flash_sale.configure(previous)
    await made.clear()
    await made.close()


@dataclass
class Sale:
    item: FlashSaleItem
    sku_id: int

    def ref(self) -> CampaignRef:
        return CampaignRef(kind=FLASH_SALE, ref_id=self.item.id)

    async def row(self) -> FlashSaleItem:
        return await FlashSaleItem.get(id=self.item.id)


async def make_sale(
    stock: int = 10, limit: int = 2, *, starts_in: timedelta = -timedelta(hours=1), hours: int = 2
) -> Sale:
    """A flash sale running now (by default) with one item of its own product."""
    product, (sku,) = await make_product([(LIST_PRICE, 10_000)])
    now = datetime.now(UTC)
    sale = await FlashSale.create(
        title="整点秒杀", starts_at=now + starts_in, ends_at=now + starts_in + timedelta(hours=hours)
    )
    item = await FlashSaleItem.create(
        flash_sale_id=sale.id,
        sku_id=sku.id,
        product_id=product.id,
        flash_price_fen=FLASH_PRICE,
        stock_total=stock,
        per_member_limit=limit,
    )
    return Sale(item=item, sku_id=sku.id)


async def make_member() -> tuple[int, int]:
    """A member with an address: (member id, address id)."""
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    member = await Member.create(openid=f"o_fs{uuid.uuid4().hex[:16]}", level_id=level.id)
    address = await Address.create(
        member_id=member.id, name="李雷", phone="13800000000", province="广东省", city="深圳市",
        district="南山区", detail="科技园 1 号",
    )  # fmt: skip
    return member.id, address.id


def request(sale: Sale, member: tuple[int, int], quantity: int, sku_id: int | None = None) -> CheckoutRequest:
    return CheckoutRequest(
        member_id=member[0],
        source="BUY_NOW",
        lines=((sku_id or sale.sku_id, quantity),),
        address_id=member[1],
        campaign=sale.ref(),
    )


async def place(sale: Sale, member: tuple[int, int], quantity: int) -> Order:
    return await orders.place_order(request(sale, member, quantity), SETTINGS, CACHE, None)


async def refused(sale: Sale, member: tuple[int, int], quantity: int, sku_id: int | None = None) -> str:
    with pytest.raises(BusinessError) as raised:
        await orders.place_order(request(sale, member, quantity, sku_id), SETTINGS, CACHE, None)
    return raised.value.code


async def counts(sale: Sale, member: tuple[int, int]) -> tuple[int | None, int | None]:
    return await flash_sale.counters().counts(flash_sale.pool_key(sale.item.id), str(member[0]))


async def give_back_queued() -> None:
    """Run the queued give-backs as the outbox worker would (twice: the handler is idempotent)."""
    messages = await OutboxMessage.filter(topic=flash_sale.GIVE_BACK_TOPIC, status="PENDING")
    for message in messages:
        for _ in range(2):
            await flash_sale.run_give_back(dict(message.payload), cast(HandlerContext, None))
        await OutboxMessage.filter(id=message.id).update(status="DONE")


def paid_resource(order: Order) -> dict[str, Any]:
    return {
        "out_trade_no": order.order_no,
        "transaction_id": f"42{uuid.uuid4().hex[:20]}",
        "trade_state": "SUCCESS",
        "amount": {"total": order.payable_fen},
        "success_time": datetime.now(UTC).isoformat(),
    }


async def test_quote_prices_the_one_line_at_the_flash_price(store: CounterStore) -> None:
    sale, member = await make_sale(), await make_member()
    q = await quote(request(sale, member, 2), SETTINGS)
    assert q.campaign_line == CampaignLine(sku_id=sale.sku_id, quantity=2, unit_price_fen=FLASH_PRICE)
    assert [(line.sku.id, line.quantity, line.campaign_price_fen) for line in q.lines] == [
        (sale.sku_id, 2, FLASH_PRICE)
    ]
    priced = q.priced.lines[0]
    assert (priced.unit_price_fen, priced.line_total_fen) == (FLASH_PRICE, 2 * FLASH_PRICE)
    assert q.priced.campaign_discount_fen == 2 * (LIST_PRICE - FLASH_PRICE)
    assert await FlashSalePurchase.filter(item_id=sale.item.id).count() == 0  # quoting holds nothing


async def test_quote_refuses_what_the_sale_does_not_offer(store: CounterStore) -> None:
    sale, member = await make_sale(stock=3, limit=5), await make_member()
    handler = flash_sale.HANDLER
    other = await make_sale()
    cases: list[tuple[CampaignRef, tuple[tuple[int, int], ...], str]] = [
        (sale.ref(), ((other.sku_id, 1),), "INVALID_INPUT"),
        (sale.ref(), (), "INVALID_INPUT"),
        (sale.ref(), ((sale.sku_id, 0),), "INVALID_INPUT"),
        (sale.ref(), ((sale.sku_id, 4),), "SOLD_OUT"),
        (CampaignRef(FLASH_SALE, 10**9), ((sale.sku_id, 1),), "NOT_FOUND"),
    ]
    for ref, lines, code in cases:
        with pytest.raises(BusinessError) as raised:
            await handler.quote(member[0], ref, lines)
        assert raised.value.code == code, (lines, raised.value.message)
    limited = await make_sale(stock=10, limit=2)
    with pytest.raises(BusinessError) as raised:
        await handler.quote(member[0], limited.ref(), ((limited.sku_id, 3),))
    assert raised.value.code == "LIMIT_REACHED"


async def test_only_a_running_sale_sells(store: CounterStore) -> None:
    member = await make_member()
    later = await make_sale(starts_in=timedelta(minutes=5))
    ended = await make_sale(starts_in=-timedelta(hours=3), hours=1)
    assert await refused(later, member, 1) == "INVALID_STATE"
    assert await refused(ended, member, 1) == "INVALID_STATE"


async def test_an_order_reserves_in_the_database_and_the_counters(store: CounterStore) -> None:
    sale, member = await make_sale(stock=10, limit=3), await make_member()
    order = await place(sale, member, 3)
    assert order.status == status.PENDING_PAYMENT and order.campaign_kind == FLASH_SALE
    purchase = await FlashSalePurchase.get(order_id=order.id)
    assert (purchase.item_id, purchase.member_id, purchase.quantity, purchase.status) == (
        sale.item.id, member[0], 3, "RESERVED",
    )  # fmt: skip
    assert (await sale.row()).sold == 3
    assert await counts(sale, member) == (7, 3)


async def test_the_member_limit_holds_across_orders(store: CounterStore) -> None:
    sale, member = await make_sale(stock=10, limit=2), await make_member()
    await place(sale, member, 1)
    await place(sale, member, 1)
    assert await refused(sale, member, 1) == "LIMIT_REACHED"
    assert (await sale.row()).sold == 2
    assert await counts(sale, member) == (8, 2)


async def test_stock_runs_out_for_any_quantity(store: CounterStore) -> None:
    sale = await make_sale(stock=3, limit=2)
    first, second, third = await make_member(), await make_member(), await make_member()
    await place(sale, first, 2)
    assert await refused(sale, second, 2) == "SOLD_OUT"
    await place(sale, second, 1)
    assert await refused(sale, third, 1) == "SOLD_OUT"
    assert (await sale.row()).sold == 3
    assert (await counts(sale, third))[0] == 0


async def test_closing_unpaid_returns_the_stock(store: CounterStore) -> None:
    sale, member = await make_sale(stock=2, limit=2), await make_member()
    order = await place(sale, member, 2)
    assert await refused(sale, await make_member(), 1) == "SOLD_OUT"

    assert await orders.end_unpaid(order.id, status.CLOSED, "超时未支付，订单已关闭", CACHE)
    assert (await FlashSalePurchase.get(order_id=order.id)).status == "RELEASED"
    assert (await sale.row()).sold == 0
    assert await counts(sale, member) == (0, 2)  # the counters hear of it through the outbox …
    await give_back_queued()
    assert await counts(sale, member) == (2, 0)  # … exactly once
    again = await place(sale, member, 2)  # the member's limit came back too
    assert (await sale.row()).sold == 2 and again.id != order.id


async def test_cancelling_returns_the_stock(store: CounterStore) -> None:
    sale, member = await make_sale(stock=5, limit=2), await make_member()
    order = await place(sale, member, 1)
    await orders.cancel_unpaid(member[0], order.id, "不想要了", CACHE)
    await give_back_queued()
    assert (await sale.row()).sold == 0
    assert await counts(sale, member) == (5, 0)


async def test_payment_turns_the_hold_into_a_sale(store: CounterStore) -> None:
    sale, member = await make_sale(stock=5, limit=2), await make_member()
    order = await place(sale, member, 2)
    outcome = await payments.record_payment(paid_resource(order), CACHE)
    assert outcome.result == "paid"
    assert (await Order.get(id=order.id)).status == status.PAID
    assert (await FlashSalePurchase.get(order_id=order.id)).status == "PAID"
    assert (await sale.row()).sold == 2
    assert await OutboxMessage.exists(dedupe_key=f"erp-push:{order.id}")  # flash orders ship at once
    assert await refused(sale, member, 1) == "LIMIT_REACHED"  # paid units still count


async def test_a_payment_after_the_close_is_refunded_not_fulfilled(store: CounterStore) -> None:
    sale, member = await make_sale(stock=1, limit=1), await make_member()
    order = await place(sale, member, 1)
    await orders.end_unpaid(order.id, status.CLOSED, "超时未支付，订单已关闭", CACHE)
    await give_back_queued()
    buyer = await make_member()
    resold = await place(sale, buyer, 1)  # the unit went to someone else

    outcome = await payments.record_payment(paid_resource(order), CACHE)
    assert outcome.result == "refunded_late"
    assert (await Order.get(id=order.id)).status == status.CLOSED
    assert (await FlashSalePurchase.get(order_id=order.id)).status == "RELEASED"
    assert await Refund.exists(order_id=order.id)
    assert not await OutboxMessage.exists(dedupe_key=f"erp-push:{order.id}")
    assert (await sale.row()).sold == 1
    assert (await FlashSalePurchase.get(order_id=resold.id)).status == "RESERVED"


async def test_the_database_guards_stock_when_counters_over_admit(store: CounterStore) -> None:
    # Counters seeded far above the truth (a stale seed, say): the conditional UPDATE still sells 4.
    sale = await make_sale(stock=4, limit=2)
    members = [await make_member() for _ in range(10)]
    pool = flash_sale.pool_key(sale.item.id)
    for member in members:
        await store.seed(pool, 100, str(member[0]), 0, ttl=60)

    results = await asyncio.gather(*(place(sale, member, 1) for member in members), return_exceptions=True)
    sold = [r for r in results if isinstance(r, Order)]
    codes = {r.code for r in results if isinstance(r, BusinessError)}
    assert len(sold) == 4 and codes <= {"SOLD_OUT"}, results
    assert (await sale.row()).sold == 4
    assert (await counts(sale, members[0]))[0] == 96  # every refused attempt gave its reservation back


async def test_the_database_guards_the_limit_when_counters_forget(store: CounterStore) -> None:
    sale, member = await make_sale(stock=10, limit=2), await make_member()
    first = await place(sale, member, 2)
    other = await Order.create(
        order_no=f"FS{uuid.uuid4().hex[:20]}", member_id=member[0], status=status.PENDING_PAYMENT,
        items_total_fen=FLASH_PRICE, payable_fen=FLASH_PRICE,
    )  # fmt: skip
    with pytest.raises(BusinessError) as raised:
        async with in_transaction():
            await flash_sale.HANDLER.hold(other, sale.ref(), CampaignLine(sale.sku_id, 1, FLASH_PRICE))
    assert raised.value.code == "LIMIT_REACHED"
    assert (await sale.row()).sold == 2  # the UPDATE rolled back with the refusal
    assert await FlashSalePurchase.filter(item_id=sale.item.id).count() == 1
    assert first.id != other.id


async def test_counters_reseed_from_the_database_after_a_restart(store: CounterStore) -> None:
    sale, first, second = await make_sale(stock=5, limit=2), await make_member(), await make_member()
    await place(sale, first, 2)
    await store.clear()  # Redis flushed or restarted, or a new process
    assert await counts(sale, first) == (None, None)
    assert await refused(sale, first, 1) == "LIMIT_REACHED"  # seeded from the member's purchases
    await place(sale, second, 2)
    assert await counts(sale, second) == (1, 2)


async def test_an_edited_stock_reaches_the_counters(store: CounterStore) -> None:
    sale, first, second = await make_sale(stock=2, limit=2), await make_member(), await make_member()
    await place(sale, first, 2)
    assert await refused(sale, second, 1) == "SOLD_OUT"
    await FlashSaleItem.filter(id=sale.item.id).update(stock_total=4)  # the operator adds two units
    await flash_sale.stock_edited(sale.item.id)
    await place(sale, second, 2)
    assert (await sale.row()).sold == 4
    assert await counts(sale, second) == (0, 2)


async def test_undo_gives_the_counters_back(store: CounterStore) -> None:
    sale, member = await make_sale(stock=5, limit=2), await make_member()
    line = CampaignLine(sale.sku_id, 2, FLASH_PRICE)
    await flash_sale.HANDLER.pre_reserve(member[0], sale.ref(), line)
    assert await counts(sale, member) == (3, 2)
    await flash_sale.HANDLER.undo_pre_reserve(member[0], sale.ref(), line)
    assert await counts(sale, member) == (5, 0)
    assert (await sale.row()).sold == 0


async def test_concurrent_purchases_never_oversell(store: CounterStore) -> None:
    sale = await make_sale(stock=10, limit=2)
    members = [await make_member() for _ in range(15)]
    rng = random.Random(11)
    attempts = [(members[rng.randrange(15)], rng.randint(1, 2)) for _ in range(60)]
    results = await asyncio.gather(*(place(sale, m, q) for m, q in attempts), return_exceptions=True)
    codes = {r.code for r in results if isinstance(r, BusinessError)}
    assert codes <= {"SOLD_OUT", "LIMIT_REACHED"}, [r for r in results if not isinstance(r, Order)]
    held = await FlashSalePurchase.filter(item_id=sale.item.id, status="RESERVED").values(
        "member_id", "quantity"
    )
    assert sum(int(h["quantity"]) for h in held) == 10 == (await sale.row()).sold
    per_member: dict[int, int] = {}
    for h in held:
        per_member[int(h["member_id"])] = per_member.get(int(h["member_id"]), 0) + int(h["quantity"])
    assert max(per_member.values()) <= 2
    assert (await counts(sale, members[0]))[0] == 0


async def test_unreachable_counters_refuse_the_purchase() -> None:
    sale, member = await make_sale(stock=5, limit=2), await make_member()
    down = RedisCounterStore("redis://127.0.0.1:1/0", "down:")
    previous = flash_sale.configure(down)
    try:
        assert await refused(sale, member, 1) == "RATE_LIMITED"
    finally:
        flash_sale.configure(previous)
        await down.close()
    assert (await sale.row()).sold == 0
    assert not await Order.exists(member_id=member[0])
