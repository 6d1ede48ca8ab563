"""Bargain over real HTTP: start, friends cut to the floor, buy at the floor, pay, the ERP gets the order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from bff.ids import decode_id, encode_id
from bff.models.marketing import BargainCampaign
from bff.models.order import OrderLine
from tests.journey.conftest import Shop
from tests.journey.test_group_buy import campaign_op, member_with_address, pay
from tests.support.factories import make_product


async def new_campaign(start: int, floor: int, helpers: int) -> BargainCampaign:
    _, skus = await make_product([(start, 100)])
    now = datetime.now(UTC)
    return await BargainCampaign.create(
        title="旅程砍价",
        product_id=skus[0].product_id,
        sku_id=skus[0].id,
        start_price_fen=start,
        floor_price_fen=floor,
        helpers_needed=helpers,
        session_ttl_minutes=120,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
    )


async def test_friends_cut_to_the_floor_and_the_owner_buys_at_it(shop: Shop) -> None:
    camp = await new_campaign(start=29_900, floor=9_900, helpers=3)
    owner, address_id = await member_with_address(shop)
    started = (await campaign_op(shop, "StartBargain", {"campaignId": encode_id("BargainCampaign", camp.id)},
                                 owner))["startBargain"]  # fmt: skip
    assert started["userErrors"] == []
    session = started["session"]
    assert (session["status"], session["currentPrice"]["amount"], session["viewerIsOwner"]) == (
        "OPEN", 29_900, True
    )  # fmt: skip
    again = (await campaign_op(shop, "StartBargain", {"campaignId": encode_id("BargainCampaign", camp.id)},
                               owner))["startBargain"]  # fmt: skip
    assert again["session"]["id"] == session["id"]

    own = (await campaign_op(shop, "HelpBargain", {"sessionId": session["id"]}, owner))["helpBargain"]
    assert own["userErrors"][0]["code"] == "INVALID_INPUT"
    cuts = []
    for n in range(3):
        friend, _ = await member_with_address(shop)
        shared = (await campaign_op(shop, "BargainSession", {"id": session["id"]}, friend))["bargainSession"]
        assert shared["canHelp"] and not shared["canBuy"]
        helped = (await campaign_op(shop, "HelpBargain", {"sessionId": session["id"]}, friend))["helpBargain"]
        assert helped["userErrors"] == [], helped
        cuts.append(helped["cut"]["amount"])
        assert helped["session"]["viewerHasHelped"] and helped["session"]["helpersCount"] == n + 1
        twice = (await campaign_op(shop, "HelpBargain", {"sessionId": session["id"]}, friend))["helpBargain"]
        assert twice["userErrors"][0]["code"] in ("LIMIT_REACHED", "INVALID_STATE")
    assert sum(cuts) == 29_900 - 9_900

    page = (await campaign_op(shop, "BargainSession", {"id": session["id"]}, owner))["bargainSession"]
    assert (page["status"], page["currentPrice"]["amount"], page["cutTotal"]["amount"]) == (
        "FLOOR", 9_900, 20_000
    )  # fmt: skip
    assert page["canBuy"] and [h["cut"]["amount"] for h in page["helps"]] == cuts
    assert page["product"]["id"] == encode_id("Product", camp.product_id)

    placed = await shop.op(
        "PlaceOrder",
        {"input": {"source": "BUY_NOW", "addressId": address_id, "idempotencyKey": uuid.uuid4().hex,
                   "campaign": {"bargainSessionId": session["id"]}}},
        owner,
    )  # fmt: skip
    assert placed["placeOrder"]["userErrors"] == []
    order = placed["placeOrder"]["order"]
    order_pk = decode_id(order["id"], "Order")
    assert order_pk is not None
    assert (await OrderLine.get(order_id=order_pk)).unit_price_fen == 9_900
    await pay(shop, order, owner)

    bought = (await campaign_op(shop, "BargainSession", {"id": session["id"]}, owner))["bargainSession"]
    assert (bought["status"], bought["canBuy"]) == ("BOUGHT", False)
    await shop.drain()
    erp_orders = {o["received"]["order_no"] for o in (await shop.sim_state(shop.erp_url))["orders"]}
    assert order["orderNo"] in erp_orders
