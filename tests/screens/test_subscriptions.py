"""Subscriptions over a real websocket (graphql-transport-ws): live group-buy and bargain progress."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

import bff.documents
from bff.context import Services
from bff.graphql_ws import ProgressHub
from bff.ids import decode_id, encode_id
from bff.models.marketing import BargainCampaign, BargainSession, GroupBuyCampaign
from bff.models.order import Order
from bff.services import bargain, group_buy, payments
from bff.worker import Worker
from tests.support.api import Api
from tests.support.factories import make_product
from tests.support.servers import serve_asgi

DOCUMENT = (Path(bff.documents.__file__).parent / "screens_extra" / "campaigns.graphql").read_text()
ADDRESS = {
    "name": "钱小订",
    "phone": "13600002222",
    "province": "北京市",
    "city": "北京市",
    "district": "海淀区",
    "detail": "中关村 1 号",
}
PROTOCOL = Subprotocol("graphql-transport-ws")


@pytest.fixture(scope="module")
async def ws_url(app: Starlette) -> AsyncIterator[str]:
    """The app (its lifespan already running) served over real HTTP, as a ws:// URL of /graphql."""
    async with serve_asgi(app, lifespan="off") as url:
        yield url.replace("http://", "ws://") + "/graphql"


class Subscriber:
    """One graphql-transport-ws connection as a mini-program opens it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def receive(self, seconds: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(seconds):
            while True:
                message: dict[str, Any] = orjson.loads(await self.ws.recv())
                if message["type"] != "ping":
                    return message
                await self.send({"type": "pong"})

    async def subscribe(self, name: str, variables: dict[str, Any], op_id: str = "1") -> None:
        await self.send(
            {"id": op_id, "type": "subscribe",
             "payload": {"query": DOCUMENT, "operationName": name, "variables": variables}}
        )  # fmt: skip

    async def next_data(self, field: str) -> dict[str, Any]:
        message = await self.receive()
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"][field]
        return data


async def subscriber(url: str, token: str | None) -> Subscriber:
    ws = await connect(url, subprotocols=[PROTOCOL], open_timeout=5)
    assert ws.subprotocol == PROTOCOL
    sub = Subscriber(ws)
    await sub.send(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"} if token else {}}
    )
    assert (await sub.receive())["type"] == "connection_ack"
    return sub


async def campaign_op(api: Api, name: str, variables: dict[str, Any], token: str | None = None) -> Any:
    response = await api.post(DOCUMENT, variables, token=token, operation_name=name)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


async def address_of(api: Api, token: str) -> str:
    saved = await api.op("SaveAddress", {"input": ADDRESS}, token=token)
    address_id: str = saved["saveAddress"]["address"]["id"]
    return address_id


async def pay_in_service(order_id: str, services: Services) -> None:
    """What the WeChat Pay notification does (this screen fixture has no pay simulator)."""
    pk = decode_id(order_id, "Order")
    assert pk is not None
    order = await Order.get(id=pk)
    resource = {
        "out_trade_no": order.order_no,
        "transaction_id": f"42{uuid.uuid4().int % 10**26:026d}",
        "trade_state": "SUCCESS",
        "amount": {"total": order.payable_fen},
        "success_time": datetime.now(UTC).isoformat(),
    }
    assert (await payments.record_payment(resource, services.cache)).result == "paid"


async def publish_queued_progress(services: Services) -> None:
    """Run the progress messages that changes inside order transactions queued (the worker's job)."""
    worker = Worker(
        services, worker_id="subscriptions", topics=[group_buy.PROGRESS_TOPIC, bargain.PROGRESS_TOPIC]
    )
    while await worker.run_once():
        pass


async def test_bargain_progress_follows_every_cut_and_the_purchase(
    api: Api, ws_url: str, services: Services
) -> None:
    _, skus = await make_product([(19_900, 20)])
    now = datetime.now(UTC)
    camp = await BargainCampaign.create(
        title="订阅砍价", product_id=skus[0].product_id, sku_id=skus[0].id, start_price_fen=19_900,
        floor_price_fen=4_900, helpers_needed=2, starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )  # fmt: skip
    owner = await api.login(f"sub{uuid.uuid4().hex[:10]}")
    started = await campaign_op(
        api, "StartBargain", {"campaignId": encode_id("BargainCampaign", camp.id)}, owner
    )
    session_id = started["startBargain"]["session"]["id"]

    sub = await subscriber(ws_url, owner)
    try:
        await sub.subscribe("BargainProgress", {"sessionId": session_id})
        first = await sub.next_data("bargainProgress")
        assert (first["status"], first["helpersCount"], first["viewerIsOwner"]) == ("OPEN", 0, True)

        prices = []
        for _ in range(2):
            friend = await api.login(f"subf{uuid.uuid4().hex[:10]}")
            await campaign_op(api, "HelpBargain", {"sessionId": session_id}, friend)
            update = await sub.next_data("bargainProgress")
            prices.append(update["currentPrice"]["amount"])
        assert prices[-1] == 4_900 and prices[0] > 4_900
        assert update["status"] == "FLOOR" and update["canBuy"]

        placed = await api.op(
            "PlaceOrder",
            {"input": {"source": "BUY_NOW", "addressId": await address_of(api, owner),
                       "campaign": {"bargainSessionId": session_id}}},
            token=owner,
        )  # fmt: skip
        assert placed["placeOrder"]["userErrors"] == []
        await publish_queued_progress(services)
        ordered = await sub.next_data("bargainProgress")
        assert ordered["status"] == "FLOOR" and not ordered["canBuy"]
        await pay_in_service(placed["placeOrder"]["order"]["id"], services)
        await publish_queued_progress(services)
        assert (await sub.next_data("bargainProgress"))["status"] == "BOUGHT"
        assert await sub.receive() == {"id": "1", "type": "complete"}
    finally:
        await sub.ws.close()


async def test_anyone_can_follow_a_team_until_it_completes(api: Api, ws_url: str, services: Services) -> None:
    _, skus = await make_product([(8_800, 20)])
    now = datetime.now(UTC)
    camp = await GroupBuyCampaign.create(
        title="订阅拼团", product_id=skus[0].product_id, sku_id=skus[0].id, group_price_fen=6_600,
        group_size=2, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1),
    )  # fmt: skip
    leader = await api.login(f"subl{uuid.uuid4().hex[:10]}")
    opened = await campaign_op(
        api,
        "OpenGroupBuy",
        {
            "input": {
                "campaignId": encode_id("GroupBuyCampaign", camp.id),
                "addressId": await address_of(api, leader),
            }
        },
        leader,
    )
    team_id = opened["openGroupBuy"]["team"]["id"]
    await pay_in_service(opened["openGroupBuy"]["order"]["id"], services)

    sub = await subscriber(ws_url, None)  # a share page: no sign-in needed to watch
    try:
        await sub.subscribe("GroupBuyTeamProgress", {"teamId": team_id}, op_id="team")
        first = await sub.next_data("groupBuyTeamProgress")
        assert (first["status"], first["memberCount"], first["paidCount"]) == ("OPEN", 1, 1)
        assert first["viewerIsMember"] is False and first["canJoin"] is False  # anonymous

        friend = await api.login(f"subj{uuid.uuid4().hex[:10]}")
        joined = await campaign_op(
            api,
            "JoinGroupBuy",
            {"input": {"teamId": team_id, "addressId": await address_of(api, friend)}},
            friend,
        )
        await publish_queued_progress(services)
        seated = await sub.next_data("groupBuyTeamProgress")
        assert (seated["memberCount"], seated["paidCount"], seated["missingCount"]) == (2, 1, 0)

        await pay_in_service(joined["joinGroupBuy"]["order"]["id"], services)
        await publish_queued_progress(services)
        done = await sub.next_data("groupBuyTeamProgress")
        assert (done["status"], done["paidCount"]) == ("COMPLETED", 2)
        assert await sub.receive() == {"id": "team", "type": "complete"}
    finally:
        await sub.ws.close()


async def test_an_invalid_token_is_refused_at_connection_init(ws_url: str) -> None:
    ws = await connect(ws_url, subprotocols=[PROTOCOL], open_timeout=5)
    await ws.send(
        orjson.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer forged"}}).decode()
    )
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_an_unknown_team_is_an_error_not_a_hang(ws_url: str) -> None:
    sub = await subscriber(ws_url, None)
    try:
        await sub.subscribe("GroupBuyTeamProgress", {"teamId": encode_id("GroupBuyTeam", 987_654_321)})
        message = await sub.receive()
        errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
        assert errors and errors[0]["message"] == "no such group-buy team", message
    finally:
        await sub.ws.close()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="cross-process events go through Redis")
async def test_an_event_from_another_process_reaches_subscribers_through_redis(
    api: Api, ws_url: str, services: Services
) -> None:
    _, skus = await make_product([(9_900, 20)])
    now = datetime.now(UTC)
    camp = await BargainCampaign.create(
        title="跨进程砍价", product_id=skus[0].product_id, sku_id=skus[0].id, start_price_fen=9_900,
        floor_price_fen=900, helpers_needed=3, starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )  # fmt: skip
    owner = await api.login(f"subr{uuid.uuid4().hex[:10]}")
    started = await campaign_op(
        api, "StartBargain", {"campaignId": encode_id("BargainCampaign", camp.id)}, owner
    )
    session_id = started["startBargain"]["session"]["id"]
    pk = decode_id(session_id, "BargainSession")
    assert pk is not None
    # Another process (a worker elsewhere) has its own hub: same Redis, same prefix.
    settings = services.settings
    elsewhere = ProgressHub(settings.redis_url, settings.cache_prefix)
    sub = await subscriber(ws_url, owner)
    try:
        await sub.subscribe("BargainProgress", {"sessionId": session_id})
        assert (await sub.next_data("bargainProgress"))["helpersCount"] == 0
        await BargainSession.filter(id=pk).update(status="EXPIRED")  # that process's change…
        await elsewhere.publish(bargain.session_topic(pk))  # …and its event
        assert (await sub.next_data("bargainProgress"))["status"] == "EXPIRED"
        assert await sub.receive() == {"id": "1", "type": "complete"}
    finally:
        await sub.ws.close()
        await elsewhere.close()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="cross-process events go through Redis")
async def test_hubs_wake_each_others_listeners_but_not_other_prefixes() -> None:
    url = os.environ["REDIS_URL"]
    prefix = f"bff-hub-{uuid.uuid4().hex[:8]}:"
    here, there, stranger = ProgressHub(url, prefix), ProgressHub(url, prefix), ProgressHub(url, "other:")
    try:
        async with here.listen("t:1") as woken, stranger.listen("t:1") as not_ours:
            woken.clear()  # (re)subscribing wakes every listener once, to catch up on missed events
            not_ours.clear()
            await there.publish("t:1")
            await asyncio.wait_for(woken.wait(), timeout=5)
            await asyncio.sleep(0.2)
            assert not not_ours.is_set()
    finally:
        for hub in (here, there, stranger):
            await hub.close()


async def test_without_redis_events_stay_in_the_process() -> None:
    hub = ProgressHub(None, "local:")
    async with hub.listen("t:2") as woken, hub.listen("t:3") as other:
        await hub.publish("t:2")
        assert woken.is_set() and not other.is_set()
    await hub.close()
