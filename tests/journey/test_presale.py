"""Presale over real HTTP: deposit, reminder, balance and shipping; forfeit at the end; refund on cancel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bff.app import create_app
from bff.auth import Principal, Role, issue_token
from bff.ids import decode_id, encode_id
from bff.models.catalog import Sku
from bff.models.marketing import PresaleCampaign, PresaleOrder
from bff.models.member import Member
from bff.models.order import Order, Refund
from bff.models.outbox import OutboxMessage
from bff.services import presale
from tests.journey.conftest import Shop
from tests.journey.test_order_journey import ADDRESS, _wait_for
from tests.screens.test_activity_pages import DOCUMENT, our_types_in_schema
from tests.support.factories import make_product
from tests.support.servers import serve_asgi

LIST_PRICE = 59_900
PRESALE_PRICE = 49_900
DEPOSIT = 5_000
DEDUCTION = 10_000  # 定金膨胀: ¥50 counts ¥100
BALANCE = PRESALE_PRICE - DEDUCTION


@pytest.fixture(scope="module")
async def bff(shop: Shop) -> AsyncIterator[Shop]:
    """The shop with a BFF whose schema has the presale operations (the simulators are the shop's)."""
    with our_types_in_schema():
        app = create_app(shop.services.settings, manage_database=False)
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url, timeout=10, trust_env=False) as client:
        yield replace(shop, bff=client, bff_url=url)


async def run(shop: Shop, name: str, variables: dict[str, Any], token: str) -> Any:
    """Send one of this work's operations (from screens_extra) and return its data."""
    body = {"query": DOCUMENT, "operationName": name, "variables": variables}
    response = await shop.bff.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


def operator(shop: Shop) -> str:
    secret = shop.services.settings.jwt_secret
    return issue_token(Principal(role=Role.OPERATOR, name="ops-presale"), secret, 3600).token


async def make_campaign(shop: Shop) -> tuple[dict[str, Any], Sku]:
    """An operator's presale: deposit window open now for an hour, balance the hour after."""
    _, (sku,) = await make_product([(LIST_PRICE, 50)])
    await shop.sims.post(
        f"{shop.erp_url}/_sim/inventory", json={"items": [{"sku_code": sku.code, "available": sku.stock}]}
    )
    now = datetime.now(UTC)
    fields = {
        "title": f"新品预售 {uuid.uuid4().hex[:4]}",
        "skuId": encode_id("Sku", sku.id),
        "presalePrice": PRESALE_PRICE,
        "deposit": DEPOSIT,
        "depositDeduction": DEDUCTION,
        "depositStartsAt": now.isoformat(),
        "depositEndsAt": (now + timedelta(hours=1)).isoformat(),
        "balanceStartsAt": (now + timedelta(hours=1)).isoformat(),
        "balanceEndsAt": (now + timedelta(hours=2)).isoformat(),
    }
    saved = (await run(shop, "SavePresaleCampaign", {"input": fields}, operator(shop)))["savePresaleCampaign"]
    assert saved["userErrors"] == [], saved
    return saved["campaign"], sku


async def shopper(shop: Shop) -> tuple[str, str, Member]:
    login = await shop.op("Login", {"code": f"sim_ps{uuid.uuid4().hex[:10]}"})
    token: str = login["login"]["token"]
    saved = await shop.op("SaveAddress", {"input": ADDRESS}, token)
    viewer = await shop.op("MemberCenter", {}, token)
    member = await Member.get(id=decode_id(viewer["viewer"]["id"], "Member"))
    return token, saved["saveAddress"]["address"]["id"], member


async def pay_deposit(
    shop: Shop, campaign: dict[str, Any], sku: Sku, who: tuple[str, str, Member], pay: bool = True
) -> dict[str, Any]:
    token, address_id, _ = who
    placed = (
        await shop.op(
            "PlaceOrder",
            {
                "input": {
                    "source": "BUY_NOW",
                    "addressId": address_id,
                    "lines": [{"skuId": encode_id("Sku", sku.id), "quantity": 1}],
                    "campaign": {"presaleCampaignId": campaign["id"]},
                    "idempotencyKey": uuid.uuid4().hex,
                }
            },
            token,
        )
    )["placeOrder"]
    assert placed["userErrors"] == [], placed
    if pay:
        await pay_order(shop, token, placed["order"])
    order: dict[str, Any] = placed["order"]
    return order


async def pay_order(shop: Shop, token: str, order: dict[str, Any]) -> None:
    assert (await shop.op("PayOrder", {"orderId": order["id"]}, token))["payOrder"]["userErrors"] == []
    paid = await shop.sims.post(f"{shop.wechat_url}/_sim/pay/{order['orderNo']}", json={})
    assert paid.status_code == 200 and paid.json()["deliveries"][0]["acknowledged"], paid.text


async def my_presale(shop: Shop, token: str) -> dict[str, Any]:
    edges = (await run(shop, "MyPresaleOrders", {}, token))["myPresaleOrders"]["edges"]
    node: dict[str, Any] = edges[0]["node"]
    return node


async def open_balance_window(campaign: dict[str, Any]) -> None:
    """Time passes: the deposit window is over and the balance window open (its end unchanged)."""
    now = datetime.now(UTC)
    await PresaleCampaign.filter(id=decode_id(campaign["id"], "PresaleCampaign")).update(
        deposit_ends_at=now - timedelta(seconds=1), balance_starts_at=now - timedelta(seconds=1)
    )


async def reminders_to(shop: Shop, member: Member) -> list[dict[str, Any]]:
    messages = (await shop.sim_state(shop.wechat_url))["messages"]
    return [
        m for m in messages if m["touser"] == member.openid and m["template_id"] == presale.REMINDER_TEMPLATE
    ]


async def test_deposit_reminder_balance_and_only_the_balance_ships(bff: Shop) -> None:
    shop = bff
    campaign, sku = await make_campaign(shop)
    who = await shopper(shop)
    token, _, member = who
    deposit = await pay_deposit(shop, campaign, sku, who)
    assert deposit["payable"]["amount"] >= DEPOSIT

    mine = await my_presale(shop, token)
    assert mine["status"] == "DEPOSIT_PAID" and mine["canPayBalance"] is False
    assert (mine["deposit"]["amount"], mine["deduction"]["amount"], mine["balance"]["amount"]) == (
        DEPOSIT,
        DEDUCTION,
        BALANCE,
    )
    assert mine["depositOrder"]["status"] == "PAID" and mine["balanceOrder"] is None
    early = (await run(shop, "PlacePresaleBalanceOrder", {"input": {"presaleOrderId": mine["id"]}}, token))[
        "placePresaleBalanceOrder"
    ]
    assert early["order"] is None and early["userErrors"][0]["code"] == "INVALID_STATE"
    held = await Sku.get(id=sku.id)
    assert (held.stock, held.reserved) == (50, 1)

    # At balance_starts_at the worker sends the reminder (a subscribe message).
    reminder = await OutboxMessage.get(dedupe_key=f"presale-remind:{decode_id(mine['id'], 'PresaleOrder')}")
    await shop.worker.run_once(now=reminder.run_at + timedelta(seconds=1))
    assert len(await reminders_to(shop, member)) == 1

    await open_balance_window(campaign)
    placed = (await run(shop, "PlacePresaleBalanceOrder", {"input": {"presaleOrderId": mine["id"]}}, token))[
        "placePresaleBalanceOrder"
    ]
    assert placed["userErrors"] == []
    balance = placed["order"]
    assert balance["payable"]["amount"] == BALANCE and placed["presaleOrder"]["status"] == "BALANCE_PENDING"
    await pay_order(shop, token, balance)

    mine = await my_presale(shop, token)
    assert mine["status"] == "BALANCE_PAID"
    assert (mine["depositOrder"]["status"], mine["balanceOrder"]["status"]) == ("COMPLETED", "PAID")
    sold = await Sku.get(id=sku.id)
    assert (sold.stock, sold.reserved) == (49, 0)
    await shop.drain()
    pushed = {
        o["received"]["order_no"]: o["received"] for o in (await shop.sim_state(shop.erp_url))["orders"]
    }
    assert pushed[balance["orderNo"]]["payable_fen"] == BALANCE
    assert deposit["orderNo"] not in pushed  # the deposit order never ships


async def test_a_balance_unpaid_when_the_window_ends_forfeits_the_deposit(bff: Shop) -> None:
    shop = bff
    campaign, sku = await make_campaign(shop)
    who = await shopper(shop)
    token = who[0]
    deposit = await pay_deposit(shop, campaign, sku, who)
    await open_balance_window(campaign)
    mine = await my_presale(shop, token)
    balance = (await run(shop, "PlacePresaleBalanceOrder", {"input": {"presaleOrderId": mine["id"]}}, token))[
        "placePresaleBalanceOrder"
    ]["order"]
    await shop.op("PayOrder", {"orderId": balance["id"]}, token)  # a prepay the shopper never completes

    window_end = (await PresaleCampaign.get(id=decode_id(campaign["id"], "PresaleCampaign"))).balance_ends_at
    await shop.worker.run_once(now=window_end + timedelta(seconds=1))
    mine = await my_presale(shop, token)
    assert mine["status"] == "FORFEITED"
    assert mine["depositOrder"]["status"] == "CLOSED"
    assert (await shop.op("OrderDetail", {"id": balance["id"]}, token))["order"]["status"] == "CLOSED"
    deposit_row = await Order.get(id=decode_id(deposit["id"], "Order"))
    assert "定金不予退还" in deposit_row.close_reason and deposit_row.refunded_fen == 0
    assert not await Refund.exists(order_id=deposit_row.id)
    released = await Sku.get(id=sku.id)
    assert (released.stock, released.reserved) == (50, 0)


async def test_a_presale_cancelled_by_the_shop_refunds_every_paid_deposit(bff: Shop) -> None:
    shop = bff
    campaign, sku = await make_campaign(shop)
    payer, waiter = await shopper(shop), await shopper(shop)
    paid = await pay_deposit(shop, campaign, sku, payer)
    unpaid = await pay_deposit(shop, campaign, sku, waiter, pay=False)
    assert (await Sku.get(id=sku.id)).reserved == 2

    cancelled = (await run(shop, "CancelPresaleCampaign", {"id": campaign["id"]}, operator(shop)))[
        "cancelPresaleCampaign"
    ]
    assert cancelled["userErrors"] == []
    await shop.drain()
    paid_pk = decode_id(paid["id"], "Order")

    async def refunded() -> bool:
        return await Refund.filter(order_id=paid_pk, status="SUCCESS").exists()

    await _wait_for(refunded)
    row = await Order.get(id=paid_pk)
    assert row.status == "CLOSED" and row.refunded_fen == paid["payable"]["amount"]
    assert (await my_presale(shop, payer[0]))["status"] == "REFUNDED"
    assert (await my_presale(shop, waiter[0]))["status"] == "CLOSED"
    assert (await shop.op("OrderDetail", {"id": unpaid["id"]}, waiter[0]))["order"]["status"] == "CANCELLED"
    assert (await Sku.get(id=sku.id)).reserved == 0
    presale_pk = (await PresaleOrder.get(deposit_order_id=paid_pk)).id
    assert (await OutboxMessage.get(dedupe_key=f"presale-remind:{presale_pk}")).status == "DONE"
    await shop.worker.run_once(now=datetime.now(UTC) + timedelta(hours=1, minutes=1))
    assert await reminders_to(shop, payer[2]) == []  # the withdrawn reminder is never sent
