"""Group-buy over real HTTP with the WeChat Pay and ERP simulators: complete, fail at the deadline, races."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bff.documents
from bff.ids import decode_id, encode_id
from bff.models.marketing import GroupBuyCampaign, GroupBuyTeam
from bff.models.order import Order, Refund
from tests.journey.conftest import Shop
from tests.support.factories import make_product

DOCUMENT = (Path(bff.documents.__file__).parent / "screens_extra" / "campaigns.graphql").read_text()
ADDRESS = {
    "name": "赵小团",
    "phone": "13700001111",
    "province": "广东省",
    "city": "深圳市",
    "district": "南山区",
    "detail": "科技园 1 号",
}


async def campaign_op(shop: Shop, name: str, variables: dict[str, Any], token: str | None = None) -> Any:
    """Send one of the campaigns screen's operations; assert no GraphQL errors; return its data."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"query": DOCUMENT, "operationName": name, "variables": variables}
    response = await shop.bff.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


async def member_with_address(shop: Shop) -> tuple[str, str]:
    """A freshly signed-in member's token and address id."""
    token: str = (await shop.op("Login", {"code": f"sim_gb{uuid.uuid4().hex[:10]}"}))["login"]["token"]
    saved = await shop.op("SaveAddress", {"input": ADDRESS}, token)
    return token, saved["saveAddress"]["address"]["id"]


async def new_campaign(group_size: int, ttl_minutes: int = 60) -> GroupBuyCampaign:
    _, skus = await make_product([(12_900, 200)])
    now = datetime.now(UTC)
    return await GroupBuyCampaign.create(
        title="旅程拼团",
        product_id=skus[0].product_id,
        sku_id=skus[0].id,
        group_price_fen=9_900,
        group_size=group_size,
        team_ttl_minutes=ttl_minutes,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
    )


async def open_team(shop: Shop, camp: GroupBuyCampaign) -> tuple[str, dict[str, Any], str]:
    """The leader's token, order and team id after opening (unpaid)."""
    token, address_id = await member_with_address(shop)
    data = await campaign_op(
        shop,
        "OpenGroupBuy",
        {"input": {"campaignId": encode_id("GroupBuyCampaign", camp.id), "addressId": address_id,
                   "idempotencyKey": uuid.uuid4().hex}},
        token,
    )  # fmt: skip
    payload = data["openGroupBuy"]
    assert payload["userErrors"] == [], payload
    assert payload["team"]["status"] == "PENDING" and payload["team"]["viewerIsMember"]
    return token, payload["order"], payload["team"]["id"]


async def join(shop: Shop, team_id: str, token: str, address_id: str) -> dict[str, Any]:
    data = await campaign_op(
        shop,
        "JoinGroupBuy",
        {"input": {"teamId": team_id, "addressId": address_id, "idempotencyKey": uuid.uuid4().hex}},
        token,
    )
    result: dict[str, Any] = data["joinGroupBuy"]
    return result


async def pay(shop: Shop, order: dict[str, Any], token: str) -> None:
    assert (await shop.op("PayOrder", {"orderId": order["id"]}, token))["payOrder"]["userErrors"] == []
    paid = await shop.sims.post(f"{shop.wechat_url}/_sim/pay/{order['orderNo']}", json={})
    assert paid.status_code == 200 and paid.json()["deliveries"][0]["acknowledged"], paid.text


async def team(shop: Shop, team_id: str, token: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = (await campaign_op(shop, "GroupBuyTeam", {"id": team_id}, token))["groupBuyTeam"]
    return found


async def run_until_idle(shop: Shop, now: datetime) -> None:
    """Run every message due at `now` (the deadline jobs, and what they queue)."""
    for _ in range(50):
        if not await shop.worker.run_once(now=now):
            return
    raise AssertionError("the outbox did not drain")


async def wait_for(check: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_a_team_of_three_completes_and_every_order_goes_to_the_erp(shop: Shop) -> None:
    camp = await new_campaign(group_size=3)
    leader, lead_order, team_id = await open_team(shop, camp)
    assert lead_order["status"] == "PENDING_PAYMENT"
    await pay(shop, lead_order, leader)

    friend, friend_address = await member_with_address(shop)
    shared = await team(shop, team_id, friend)
    assert shared["status"] == "OPEN" and shared["canJoin"] and not shared["viewerIsMember"]
    assert (shared["paidCount"], shared["missingCount"], shared["campaign"]["groupSize"]) == (1, 2, 3)
    assert [m["isLeader"] for m in shared["members"]] == [True]
    product = await shop.op("ProductDetail", {"id": encode_id("Product", camp.product_id)})
    offer = next(c for c in product["product"]["activeCampaigns"] if c["__typename"] == "GroupBuyCampaign")
    assert {"id": team_id, "missingCount": 2} in [
        {"id": t["id"], "missingCount": t["missingCount"]} for t in offer["openTeams"]
    ]

    joined = await join(shop, team_id, friend, friend_address)
    assert joined["userErrors"] == [] and joined["team"]["memberCount"] == 2
    other, other_address = await member_with_address(shop)
    joined_too = await join(shop, team_id, other, other_address)
    assert joined_too["team"]["missingCount"] == 0 and joined_too["team"]["paidCount"] == 1
    await pay(shop, joined["order"], friend)
    assert (await team(shop, team_id))["status"] == "OPEN"  # full, but not everyone paid
    await pay(shop, joined_too["order"], other)

    done = await team(shop, team_id, leader)
    assert (done["status"], done["paidCount"], done["canJoin"]) == ("COMPLETED", 3, False)
    await shop.drain()
    erp_orders = {o["received"]["order_no"] for o in (await shop.sim_state(shop.erp_url))["orders"]}
    assert {lead_order["orderNo"], joined["order"]["orderNo"], joined_too["order"]["orderNo"]} <= erp_orders
    detail = (await shop.op("OrderDetail", {"id": lead_order["id"]}, leader))["order"]
    assert detail["status"] == "PAID"
    assert "拼团成功，等待发货" in [t["note"] for t in detail["timeline"]]


async def test_a_team_short_at_its_deadline_fails_and_its_paid_members_are_refunded(shop: Shop) -> None:
    camp = await new_campaign(group_size=3, ttl_minutes=45)
    leader, lead_order, team_id = await open_team(shop, camp)
    await pay(shop, lead_order, leader)
    friend, friend_address = await member_with_address(shop)
    paid = await join(shop, team_id, friend, friend_address)
    await pay(shop, paid["order"], friend)
    slow, slow_address = await member_with_address(shop)
    unpaid = await join(shop, team_id, slow, slow_address)
    assert unpaid["userErrors"] == []

    pk = decode_id(team_id, "GroupBuyTeam")
    assert pk is not None
    deadline = (await GroupBuyTeam.get(id=pk)).expires_at
    await run_until_idle(shop, deadline + timedelta(seconds=1))  # nobody acts: the outbox does

    assert (await team(shop, team_id))["status"] == "FAILED"
    refunded = [(lead_order, leader), (paid["order"], friend)]
    order_pks = [decode_id(o["id"], "Order") for o, _ in refunded]

    async def refunds_settled() -> bool:
        return await Refund.filter(order_id__in=order_pks, status="SUCCESS").count() == 2

    await shop.drain()
    await wait_for(refunds_settled)  # the simulator settles and notifies; the BFF applies it
    sim_refunds = (await shop.sim_state(shop.wechat_url))["pay"]["refunds"]
    for order, token in refunded:
        pk_order = decode_id(order["id"], "Order")
        assert pk_order is not None
        row = await Order.get(id=pk_order)
        assert (row.status, row.refunded_fen) == ("CLOSED", row.payable_fen)
        assert sim_refunds[f"GB{pk_order:010d}"]["amount"]["refund"] == row.payable_fen
        detail = (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]
        assert any("退款成功" in t["note"] for t in detail["timeline"])
    closed = (await shop.op("OrderDetail", {"id": unpaid["order"]["id"]}, slow))["order"]
    assert closed["status"] == "CLOSED"
    erp_orders = {o["received"]["order_no"] for o in (await shop.sim_state(shop.erp_url))["orders"]}
    assert lead_order["orderNo"] not in erp_orders


async def test_only_one_of_many_concurrent_joins_gets_the_last_seat(shop: Shop) -> None:
    camp = await new_campaign(group_size=3)
    leader, lead_order, team_id = await open_team(shop, camp)
    await pay(shop, lead_order, leader)
    first, first_address = await member_with_address(shop)
    assert (await join(shop, team_id, first, first_address))["userErrors"] == []
    racers = [await member_with_address(shop) for _ in range(6)]

    results = await asyncio.gather(*(join(shop, team_id, token, address) for token, address in racers))

    winners = [r for r in results if r["order"] is not None]
    losers = [r for r in results if r["order"] is None]
    assert len(winners) == 1 and len(losers) == 5
    assert {r["userErrors"][0]["code"] for r in losers} == {"SOLD_OUT"}
    final = await team(shop, team_id)
    assert (final["memberCount"], final["missingCount"]) == (3, 0)


async def test_a_member_cannot_join_the_same_team_twice(shop: Shop) -> None:
    camp = await new_campaign(group_size=4)
    leader, lead_order, team_id = await open_team(shop, camp)
    await pay(shop, lead_order, leader)
    friend, address = await member_with_address(shop)
    first = await join(shop, team_id, friend, address)
    assert first["userErrors"] == []

    again = await join(shop, team_id, friend, address)
    through_checkout = await shop.op(
        "PlaceOrder",
        {"input": {"source": "BUY_NOW", "addressId": address, "campaign": {"groupBuyTeamId": team_id}}},
        friend,
    )

    assert again["order"] is None and again["userErrors"][0]["code"] == "LIMIT_REACHED"
    assert through_checkout["placeOrder"]["userErrors"][0]["code"] == "LIMIT_REACHED"
    assert (await team(shop, team_id, friend))["memberCount"] == 2
