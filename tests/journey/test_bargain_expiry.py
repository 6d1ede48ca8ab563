"""Bargain over real HTTP: a session past its deadline expires by the outbox job; nobody can cut or buy it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from bff.ids import decode_id, encode_id
from bff.models.catalog import Sku
from bff.models.marketing import BargainHelp, BargainSession
from bff.models.order import Order
from bff.models.outbox import OutboxMessage
from bff.services import bargain
from tests.journey.conftest import Shop
from tests.journey.test_bargain import new_campaign
from tests.journey.test_group_buy import campaign_op, member_with_address


async def test_a_session_past_its_deadline_expires_and_can_be_neither_helped_nor_bought(shop: Shop) -> None:
    camp = await new_campaign(start=19_900, floor=9_900, helpers=3)
    owner, address_id = await member_with_address(shop)
    started = (await campaign_op(shop, "StartBargain", {"campaignId": encode_id("BargainCampaign", camp.id)},
                                 owner))["startBargain"]  # fmt: skip
    assert started["userErrors"] == [], started
    session_id = started["session"]["id"]
    session_pk = decode_id(session_id, "BargainSession")
    assert session_pk is not None

    friend, _ = await member_with_address(shop)
    helped = (await campaign_op(shop, "HelpBargain", {"sessionId": session_id}, friend))["helpBargain"]
    assert helped["userErrors"] == [], helped
    cut = helped["cut"]["amount"]
    assert 0 < cut < 19_900 - 9_900 and helped["session"]["status"] == "OPEN"

    # The deadline is an outbox message due at expires_at; before it nothing changes.
    expires_at = (await BargainSession.get(id=session_pk)).expires_at
    job = await OutboxMessage.get(dedupe_key=f"bargain-expire:{session_pk}")
    assert job.topic == bargain.EXPIRE_TOPIC and job.run_at == expires_at
    await shop.worker.run_once(now=expires_at - timedelta(seconds=1))
    assert (await BargainSession.get(id=session_pk)).status == "OPEN"

    for _ in range(20):
        if not await shop.worker.run_once(now=expires_at + timedelta(seconds=1)):
            break
    assert (await OutboxMessage.get(id=job.id)).status == "DONE"

    page = (await campaign_op(shop, "BargainSession", {"id": session_id}, owner))["bargainSession"]
    assert (page["status"], page["canBuy"], page["canHelp"]) == ("EXPIRED", False, False)
    assert (page["currentPrice"]["amount"], page["helpersCount"]) == (19_900 - cut, 1)
    assert [h["cut"]["amount"] for h in page["helps"]] == [cut]

    late, _ = await member_with_address(shop)
    seen = (await campaign_op(shop, "BargainSession", {"id": session_id}, late))["bargainSession"]
    assert (seen["status"], seen["canHelp"]) == ("EXPIRED", False)
    refused = (await campaign_op(shop, "HelpBargain", {"sessionId": session_id}, late))["helpBargain"]
    assert refused["cut"] is None
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID_STATE"], refused

    sku_before = await Sku.get(id=camp.sku_id)
    member_pk = decode_id((await shop.op("MemberCenter", {}, owner))["viewer"]["id"], "Member")
    orders_before = await Order.filter(member_id=member_pk).count()
    placed = (
        await shop.op(
            "PlaceOrder",
            {"input": {"source": "BUY_NOW", "addressId": address_id, "idempotencyKey": uuid.uuid4().hex,
                       "campaign": {"bargainSessionId": session_id}}},
            owner,
        )
    )["placeOrder"]  # fmt: skip
    assert placed["order"] is None
    assert placed["userErrors"] and placed["userErrors"][0]["code"] == "INVALID_STATE", placed
    assert "过期" in placed["userErrors"][0]["message"]

    # Nothing changed: no order, no stock held, the session and its helps as they were.
    assert await Order.filter(member_id=member_pk).count() == orders_before
    sku_after = await Sku.get(id=camp.sku_id)
    assert (sku_after.stock, sku_after.reserved) == (sku_before.stock, sku_before.reserved)
    row = await BargainSession.get(id=session_pk)
    assert (row.status, row.order_id, row.current_price_fen, row.helpers_count) == (
        "EXPIRED", None, 19_900 - cut, 1
    )  # fmt: skip
    assert await BargainHelp.filter(session_id=session_pk).count() == 1

    # Starting again gives a new session rather than reviving the expired one.
    again = (await campaign_op(shop, "StartBargain", {"campaignId": encode_id("BargainCampaign", camp.id)},
                               owner))["startBargain"]  # fmt: skip
    assert again["userErrors"] == [] and again["session"]["id"] != session_id
    assert again["session"]["status"] == "OPEN" and again["session"]["currentPrice"]["amount"] == 19_900
