"""A flash sale over real HTTP: buy at the flash price and pay, or let the order close and stock return."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bff.counters import CounterStore, MemoryCounterStore, RedisCounterStore
from bff.ids import decode_id, encode_id
from bff.models.marketing import FlashSale, FlashSaleItem, FlashSalePurchase
from bff.models.order import Order, Payment, Refund
from bff.services import flash_sale
from tests.journey.conftest import Shop
from tests.journey.test_order_journey import ADDRESS, _wait_for
from tests.support.factories import make_product

REDIS_URL = os.environ.get("REDIS_URL")
FLASH_PRICE = 9_900


@pytest.fixture(scope="module", autouse=True)
async def counters() -> AsyncIterator[CounterStore]:
    """The flash sale reserves through Redis when REDIS_URL is set, else in this process."""
    prefix = f"bff-journey-flash-{uuid.uuid4().hex[:8]}:"
    store: CounterStore = RedisCounterStore(REDIS_URL, prefix) if REDIS_URL else MemoryCounterStore(prefix)
    previous = flash_sale.configure(store)
    yield store
    flash_sale.configure(previous)
    await store.clear()
    await store.close()


async def _flash_item(shop: Shop, stock: int, limit: int) -> FlashSaleItem:
    """A running flash sale with one item of its own product, which the ERP simulator knows."""
    product, (sku,) = await make_product([(19_900, 500)])
    await shop.sims.post(
        f"{shop.erp_url}/_sim/inventory", json={"items": [{"sku_code": sku.code, "available": sku.stock}]}
    )
    now = datetime.now(UTC)
    sale = await FlashSale.create(
        title="限时秒杀", starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1)
    )
    return await FlashSaleItem.create(
        flash_sale_id=sale.id,
        sku_id=sku.id,
        product_id=product.id,
        flash_price_fen=FLASH_PRICE,
        stock_total=stock,
        per_member_limit=limit,
    )


async def _shopper(shop: Shop) -> tuple[str, str]:
    """A signed-in member with an address: (token, address id)."""
    login = await shop.op("Login", {"code": f"sim_fs{uuid.uuid4().hex[:10]}"})
    token: str = login["login"]["token"]
    saved = await shop.op("SaveAddress", {"input": ADDRESS}, token)
    return token, saved["saveAddress"]["address"]["id"]


def _input(item: FlashSaleItem, address_id: str, quantity: int) -> dict[str, Any]:
    return {
        "source": "BUY_NOW",
        "lines": [{"skuId": encode_id("Sku", item.sku_id), "quantity": quantity}],
        "addressId": address_id,
        "campaign": {"flashSaleItemId": encode_id("FlashSaleItem", item.id)},
        "idempotencyKey": uuid.uuid4().hex,
    }


async def _place(shop: Shop, shopper: tuple[str, str], item: FlashSaleItem, quantity: int) -> dict[str, Any]:
    token, address_id = shopper
    data = await shop.op("PlaceOrder", {"input": _input(item, address_id, quantity)}, token)
    payload: dict[str, Any] = data["placeOrder"]
    return payload


async def _sold(item: FlashSaleItem) -> int:
    return (await FlashSaleItem.get(id=item.id)).sold


async def test_a_flash_order_is_priced_paid_and_shipped(shop: Shop) -> None:
    item = await _flash_item(shop, stock=5, limit=2)
    shopper = await _shopper(shop)
    token = shopper[0]

    preview = (await shop.op("CheckoutPreview", {"input": _input(item, shopper[1], 2)}, token))[
        "checkoutPreview"
    ]
    assert preview["userErrors"] == []
    assert preview["lines"][0]["unitPrice"]["amount"] == FLASH_PRICE
    assert preview["summary"]["campaignDiscount"]["amount"] == 2 * (19_900 - FLASH_PRICE)

    placed = await _place(shop, shopper, item, 2)
    assert placed["userErrors"] == [], placed
    order = placed["order"]
    assert (
        order["status"] == "PENDING_PAYMENT"
        and order["payable"]["amount"] == preview["summary"]["payable"]["amount"]
    )
    again = await _place(shop, shopper, item, 1)
    assert again["order"] is None and again["userErrors"][0]["code"] == "LIMIT_REACHED", again

    assert (await shop.op("PayOrder", {"orderId": order["id"]}, token))["payOrder"]["userErrors"] == []
    paid = await shop.sims.post(f"{shop.wechat_url}/_sim/pay/{order['orderNo']}", json={})
    assert paid.status_code == 200 and paid.json()["deliveries"][0]["acknowledged"], paid.text
    assert (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]["status"] == "PAID"
    order_pk = decode_id(order["id"], "Order")
    assert (await FlashSalePurchase.get(order_id=order_pk)).status == "PAID"
    assert await _sold(item) == 2

    await shop.drain()
    pushed = {o["received"]["order_no"] for o in (await shop.sim_state(shop.erp_url))["orders"]}
    assert order["orderNo"] in pushed


async def test_an_unpaid_flash_order_closes_and_its_stock_is_sold_again(shop: Shop) -> None:
    item = await _flash_item(shop, stock=1, limit=1)
    first, second = await _shopper(shop), await _shopper(shop)
    order = (await _place(shop, first, item, 1))["order"]
    refused = await _place(shop, second, item, 1)
    assert refused["userErrors"][0]["code"] == "SOLD_OUT", refused
    await shop.op("PayOrder", {"orderId": order["id"]}, first[0])  # a prepay the shopper never completes

    order_pk = decode_id(order["id"], "Order")
    assert order_pk is not None
    deadline = (await Order.get(id=order_pk)).pay_deadline
    assert deadline is not None
    for _ in range(20):  # other tests' messages due by then may come first, a batch at a time
        if not await shop.worker.run_once(now=deadline + timedelta(seconds=1)):
            break
    assert (await shop.op("OrderDetail", {"id": order["id"]}, first[0]))["order"]["status"] == "CLOSED"
    assert (await FlashSalePurchase.get(order_id=order_pk)).status == "RELEASED"
    assert await _sold(item) == 0
    await shop.drain()  # the counters hear of the release through the outbox
    pool = flash_sale.pool_key(item.id)
    assert (await flash_sale.counters().counts(pool, "0"))[0] == 1

    resold = await _place(shop, second, item, 1)
    assert resold["userErrors"] == [], resold
    assert await _sold(item) == 1

    # The first shopper pays after all: refunded, never fulfilled from the unit that was resold.
    late = await shop.sims.post(f"{shop.wechat_url}/_sim/pay/{order['orderNo']}", json={})
    assert late.json()["deliveries"][0]["acknowledged"], late.text
    assert (await Payment.get(order_id=order_pk)).status == "REFUNDING"
    await shop.drain()

    async def refunded() -> bool:
        return await Refund.filter(order_id=order_pk, status="SUCCESS").exists()

    await _wait_for(refunded)
    assert (await shop.op("OrderDetail", {"id": order["id"]}, first[0]))["order"]["status"] == "CLOSED"
    assert (await FlashSalePurchase.get(order_id=order_pk)).status == "RELEASED"
    assert await _sold(item) == 1
    pushed = {o["received"]["order_no"] for o in (await shop.sim_state(shop.erp_url))["orders"]}
    assert order["orderNo"] not in pushed
