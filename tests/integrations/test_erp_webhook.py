"""POST /webhooks/erp over HTTP through the ASGI app: signatures, validation, storage, application."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from bff.app import create_app
from bff.cache import Cache
from bff.ids import encode_id
from bff.models import order as status
from bff.models.catalog import Brand, Category, Product, Sku
from bff.models.member import Member, MemberLevel
from bff.models.order import Order, OrderEvent, OrderLine, Shipment
from bff.models.outbox import InboundEvent, OutboxMessage
from bff.models.search import SearchToken
from bff.services import erp_events
from bff.services.erp_events import apply_events, apply_events_message, apply_pending, store_events
from bff.services.outbox import HandlerContext
from bff.settings import load_settings
from integrations import erp_webhook as endpoint_module
from integrations.erp_webhook import parse_batch
from integrations.simulators.erp_webhooks import batch_body, erp_event, send_events, signed_headers
from tests.support.api import Api
from tests.support.factories import make_product

URL = "/webhooks/erp"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
OLD_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture(scope="module")
async def app(seeded: str) -> AsyncIterator[Starlette]:
    settings = replace(
        load_settings(),
        database_url=seeded,
        redis_url=os.environ.get("REDIS_URL") or None,
        cache_prefix=f"bff-test-{uuid.uuid4().hex[:8]}:",
        erp_webhook_secret=SECRET,
    )
    application = create_app(settings, manage_database=False)
    if not any(getattr(route, "path", None) == URL for route in application.routes):
        application.router.routes.append(Route(URL, endpoint_module.erp_webhook, methods=["POST"]))
    async with application.router.lifespan_context(application):
        yield application
        await application.state.services.cache.clear()


@pytest.fixture(autouse=True)
def _db(app: Starlette) -> None:
    """Every test here needs the seeded, initialised database (and most the app)."""


@pytest.fixture(scope="module")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    # The ASGI transport returns once the app is done, background task included: the batch is applied.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bff.test") as http:
        yield http


@pytest.fixture(scope="module")
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture
def cache(app: Starlette) -> Cache:
    return app.state.services.cache  # type: ignore[no-any-return]


async def send(client: httpx.AsyncClient, events: Sequence[dict[str, Any]], **kwargs: Any) -> httpx.Response:
    return await send_events(client, URL, events, kwargs.pop("secrets", SECRET), **kwargs)


def inventory(sku: Sku | str, available: int, version: int, **kwargs: Any) -> dict[str, Any]:
    code = sku if isinstance(sku, str) else sku.code
    return erp_event(
        "inventory.changed", {"sku_code": code, "available": available}, version=version, **kwargs
    )


def price(sku: Sku, price_fen: int, version: int) -> dict[str, Any]:
    data = {"sku_code": sku.code, "price_fen": price_fen, "market_price_fen": price_fen + 1000}
    return erp_event("price.changed", data, version=version)


async def detail(api: Api, product_id: int) -> Any:
    return (await api.op("ProductDetail", {"id": encode_id("Product", product_id)}))["product"]


async def stored(events: Sequence[dict[str, Any]]) -> list[InboundEvent]:
    return await InboundEvent.filter(source="erp", event_id__in=[e["id"] for e in events]).order_by("id")


async def paid_order() -> Order:
    # A real member: the queued messages are sent by whatever worker drains this shared database.
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    member = await Member.create(openid=f"o_t{uuid.uuid4().hex[:16]}", level_id=level.id)
    order = await Order.create(
        order_no=f"T{uuid.uuid4().hex[:20]}",
        member_id=member.id,
        status=status.PAID,
        items_total_fen=1990,
        payable_fen=1990,
        paid_at=datetime.now(UTC),
    )
    await OrderLine.create(
        order_id=order.id,
        sku_id=0,
        product_id=0,
        product_title="测试商品",
        quantity=1,
        unit_price_fen=1990,
        line_total_fen=1990,
    )
    return order


# --- the happy path and what the screens show ----------------------------------------------------


async def test_a_batch_is_stored_applied_and_shown_on_the_product_screen(
    client: httpx.AsyncClient, api: Api
) -> None:
    product, (cheap, dear) = await make_product([(1990, 5), (2990, 0)])
    before = await detail(api, product.id)  # now cached
    assert [s["stock"] for s in before["skus"]] == [5, 0] and before["price"]["amount"] == 1990

    events = [inventory(cheap, 42, 1), inventory(dear, 3, 1), price(dear, 1590, 1)]
    response = await send(client, events)

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0, "stale": 0}
    assert [e.status for e in await stored(events)] == ["APPLIED"] * 3
    cheap_row, dear_row = await Sku.get(id=cheap.id), await Sku.get(id=dear.id)
    assert (cheap_row.stock, cheap_row.stock_version) == (42, 1)
    assert (dear_row.stock, dear_row.price_fen, dear_row.market_price_fen, dear_row.price_version) == (
        3,
        1590,
        2590,
        1,
    )
    after = await detail(api, product.id)
    assert [s["stock"] for s in after["skus"]] == [42, 3]
    assert [s["price"]["amount"] for s in after["skus"]] == [1990, 1590]
    assert after["price"]["amount"] == 1590 and after["inStock"] is True


async def test_stock_down_to_zero_takes_the_product_out_of_stock(client: httpx.AsyncClient, api: Api) -> None:
    product, (only,) = await make_product([(990, 4)])
    assert (await detail(api, product.id))["inStock"] is True

    assert (await send(client, [inventory(only, 0, 1)])).status_code == 200

    shown = await detail(api, product.id)
    assert shown["inStock"] is False and shown["skus"][0]["stock"] == 0


async def test_product_upserted_creates_then_updates_the_product_and_its_skus(
    client: httpx.AsyncClient, api: Api
) -> None:
    category, _ = await Category.get_or_create(code="test-fixtures", defaults={"name": "测试类目"})
    tag = uuid.uuid4().hex[:8]
    brand_name = f"测试品牌{tag}"

    def upsert(
        version: int, title: str, skus: list[dict[str, Any]], shelf: str = "on_shelf"
    ) -> dict[str, Any]:
        data = {
            "spu_code": f"ERP-{tag}",
            "title": title,
            "subtitle": "ERP 同步",
            "category_code": category.code,
            "brand": brand_name,
            "images": [f"https://img.example.com/{tag}-1.jpg"],
            "status": shelf,
            "skus": skus,
        }
        return erp_event("product.upserted", data, version=version)

    def sku(n: int, price_fen: int, available: int) -> dict[str, Any]:
        return {
            "sku_code": f"ERP-{tag}-{n}",
            "specs": {"颜色": ["红", "蓝", "绿"][n], "尺码": "L"},
            "price_fen": price_fen,
            "market_price_fen": price_fen + 500,
            "available": available,
        }

    response = await send(client, [upsert(1, f"云朵抱枕{tag}", [sku(0, 3900, 8), sku(1, 3500, 0)])])
    assert response.json() == {"accepted": 1, "duplicates": 0, "stale": 0}
    product = await Product.get(spu_code=f"ERP-{tag}")
    brand = await Brand.get(name=brand_name)
    assert (product.version, product.brand_id, product.category_id) == (1, brand.id, category.id)
    shown = await detail(api, product.id)
    assert shown["title"] == f"云朵抱枕{tag}" and shown["brand"]["name"] == brand_name
    assert shown["price"]["amount"] == 3500 and shown["inStock"] is True
    assert [s["code"] for s in shown["skus"]] == [f"ERP-{tag}-0", f"ERP-{tag}-1"]
    assert shown["skus"][0]["specValues"] == [{"name": "颜色", "value": "红"}, {"name": "尺码", "value": "L"}]
    assert await SearchToken.filter(product_id=product.id, token="云朵抱枕").exists()

    # The ERP's stock event for SKU 0 is newer than anything an upsert says about its stock.
    assert (await send(client, [inventory(f"ERP-{tag}-0", 20, 5)])).status_code == 200
    v2 = upsert(2, f"云朵靠垫{tag}", [sku(0, 3900, 1), sku(2, 4200, 6)])
    assert (await send(client, [v2])).json() == {"accepted": 1, "duplicates": 0, "stale": 0}
    skus = {s.code: s for s in await Sku.filter(product_id=product.id)}
    assert skus[f"ERP-{tag}-0"].stock == 20  # versioned stock wins over the upsert's figure
    assert skus[f"ERP-{tag}-1"].stock == 0  # no longer listed: kept for orders, not sellable
    assert skus[f"ERP-{tag}-2"].stock == 6 and skus[f"ERP-{tag}-2"].sort_order == 1
    shown = await detail(api, product.id)
    assert shown["title"] == f"云朵靠垫{tag}" and shown["price"]["amount"] == 3500
    assert await SearchToken.filter(product_id=product.id, token="云朵靠垫").exists()

    older = upsert(1, "旧标题", [sku(0, 1, 1)])
    assert (await send(client, [older])).json() == {"accepted": 0, "duplicates": 0, "stale": 1}
    assert (await Product.get(id=product.id)).title == f"云朵靠垫{tag}"

    off = upsert(3, f"云朵靠垫{tag}", [sku(0, 3900, 1)], shelf="off_shelf")
    assert (await send(client, [off])).status_code == 200
    assert await detail(api, product.id) is None


# --- signatures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    ["forged", "wrong_secret", "stale_timestamp", "future_timestamp", "missing", "malformed", "body_changed"],
)
async def test_bad_signatures_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, tamper: str
) -> None:
    events = [inventory("NO-SUCH-SKU", 1, 1)]
    body = batch_body(events)
    headers = signed_headers(body, SECRET)
    if tamper == "forged":
        headers["webhook-signature"] = "v1," + base64.b64encode(secrets.token_bytes(32)).decode()
    elif tamper == "wrong_secret":
        headers = signed_headers(body, OLD_SECRET)
    elif tamper == "stale_timestamp":
        headers = signed_headers(body, SECRET, timestamp=datetime.now(UTC) - timedelta(seconds=301))
    elif tamper == "future_timestamp":
        headers = signed_headers(body, SECRET, timestamp=datetime.now(UTC) + timedelta(seconds=301))
    elif tamper == "missing":
        del headers["webhook-signature"]
    elif tamper == "malformed":
        headers["webhook-signature"] = "not-a-signature"
    elif tamper == "body_changed":
        body = body.replace(b'"available":1', b'"available":9')

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_signature"
    assert await stored(events) == []


async def test_one_valid_signature_among_several_is_enough_while_the_secret_rotates(
    client: httpx.AsyncClient,
) -> None:
    _, (sku,) = await make_product([(990, 1)])
    events = [inventory(sku, 11, 1)]

    response = await send(client, events, secrets=[OLD_SECRET, SECRET])

    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert (await Sku.get(id=sku.id)).stock == 11


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "body.events: must hold 1 to 1000 events, got 0"),
        (
            [
                inventory("A", 1, 1),
                erp_event("inventory.changed", {"sku_code": "A", "available": "x"}, version=2),
            ],
            "events[1].data.available",
        ),
        (
            [inventory("A", 1, 1), erp_event("stock.teleported", {}, version=1)],
            "events[1].type: unknown event type",
        ),
        ([{**inventory("A", 1, 1), "version": True}], "events[0].version"),
        ([{**inventory("A", 1, 1), "occurred_at": "yesterday"}], "events[0].occurred_at"),
        ([{**inventory("A", 1, 1), "id": ""}], "events[0].id"),
        (
            [erp_event("product.upserted", {"spu_code": "S", "title": "T", "status": "gone"}, version=1)],
            "events[0].data.category_code",
        ),
        (
            [erp_event("shipment.tracking", {"tracking_no": "SF1", "events": [{"at": "x"}]}, version=1)],
            "events[0].data.events[0].at",
        ),
        ([erp_event("order.delivered", {"order_no": "O1"}, version=1)], "events[0].data.delivered_at"),
    ],
)
async def test_a_malformed_batch_is_refused_whole_naming_the_event(
    client: httpx.AsyncClient, events: list[dict[str, Any]], message: str
) -> None:
    response = await send(client, events)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_batch" and message in response.json()["message"]
    assert await stored(events) == []


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    body = b"{not json"
    response = await client.post(URL, content=body, headers=signed_headers(body, SECRET))
    assert response.status_code == 400 and "JSON" in response.json()["message"]


async def test_more_than_1000_events_are_refused(client: httpx.AsyncClient) -> None:
    events = [inventory(f"NOPE-{i}", 1, 1) for i in range(1001)]

    response = await send(client, events)

    assert response.status_code == 400 and "1 to 1000 events, got 1001" in response.json()["message"]
    assert await stored(events[:5]) == []


async def test_a_batch_of_1000_inventory_events_is_stored_and_applied(
    client: httpx.AsyncClient, api: Api
) -> None:
    product, (first,) = await make_product([(500, 0)])
    await Sku.bulk_create(
        [
            Sku(code=f"{first.code}-{i}", product_id=product.id, price_fen=500 + i, stock=0, sort_order=i + 1)
            for i in range(999)
        ]
    )
    skus = await Sku.filter(product_id=product.id).order_by("sort_order")
    events = [inventory(sku, n + 1, 1) for n, sku in enumerate(skus)]
    assert len(events) == 1000

    response = await send(client, events)

    assert response.json() == {"accepted": 1000, "duplicates": 0, "stale": 0}
    assert {e.status for e in await stored(events)} == {"APPLIED"}
    rows = await Sku.filter(product_id=product.id).order_by("sort_order").values("stock")
    assert [row["stock"] for row in rows] == list(range(1, 1001))
    assert (await Product.get(id=product.id)).in_stock is True
    assert (await detail(api, product.id))["skus"][999]["stock"] == 1000


# --- at-least-once, unordered delivery -----------------------------------------------------------


async def test_a_redelivery_counts_duplicates_and_applies_nothing_twice(client: httpx.AsyncClient) -> None:
    _, (sku,) = await make_product([(990, 1)])
    events = [inventory(sku, 30, 1), price(sku, 880, 1)]
    first = await send(client, events, msg_id="msg_redelivered")
    assert first.json() == {"accepted": 2, "duplicates": 0, "stale": 0}
    # A local change after the first delivery (a paid order took 5) must survive the redelivery.
    await Sku.filter(id=sku.id).update(stock=25)

    again = await send(client, events, msg_id="msg_redelivered")

    assert again.json() == {"accepted": 0, "duplicates": 2, "stale": 0}
    assert (await Sku.get(id=sku.id)).stock == 25
    assert len(await stored(events)) == 2
    # The same event twice inside one batch is a duplicate as well.
    repeat = inventory(sku, 31, 2)
    assert (await send(client, [repeat, repeat])).json() == {"accepted": 1, "duplicates": 1, "stale": 0}


async def test_two_simultaneous_deliveries_store_each_event_once_with_exact_counts(cache: Cache) -> None:
    _, (a, b) = await make_product([(990, 1), (990, 1)])
    batch = parse_batch({"events": [inventory(a, 5, 1), inventory(b, 6, 1), price(a, 700, 1)]})

    results = await asyncio.gather(store_events(batch), store_events(batch))

    assert sorted((r.accepted, r.duplicates) for r in results) == [(0, 3), (3, 0)]
    assert await InboundEvent.filter(source="erp", event_id__in=[e.event_id for e in batch]).count() == 3
    assert await apply_events(cache, [i for r in results for i in r.pending_ids]) == 3


async def test_an_older_version_after_a_newer_one_is_stale(client: httpx.AsyncClient, api: Api) -> None:
    product, (sku,) = await make_product([(990, 1)])
    assert (await send(client, [inventory(sku, 10, 5), price(sku, 700, 5)])).status_code == 200

    late = [inventory(sku, 99, 3), price(sku, 100, 5)]
    response = await send(client, late)

    assert response.json() == {"accepted": 0, "duplicates": 0, "stale": 2}
    assert [e.status for e in await stored(late)] == ["STALE", "STALE"]
    row = await Sku.get(id=sku.id)
    assert (row.stock, row.stock_version, row.price_fen, row.price_version) == (10, 5, 700, 5)
    shown = await detail(api, product.id)
    assert shown["skus"][0]["stock"] == 10 and shown["price"]["amount"] == 700


async def test_out_of_order_events_within_one_batch_keep_the_newest(client: httpx.AsyncClient) -> None:
    _, (a, b) = await make_product([(990, 1), (990, 1)])
    events = [inventory(a, 70, 7), inventory(a, 60, 6), inventory(b, 1, 1), inventory(b, 2, 2)]

    response = await send(client, events)

    assert response.json() == {"accepted": 2, "duplicates": 0, "stale": 2}
    assert [e.status for e in await stored(events)] == ["APPLIED", "STALE", "STALE", "APPLIED"]
    assert ((await Sku.get(id=a.id)).stock, (await Sku.get(id=b.id)).stock) == (70, 2)


async def test_a_newer_version_applied_between_receipt_and_application_wins(cache: Cache) -> None:
    _, (sku,) = await make_product([(990, 1)])
    result = await store_events(parse_batch({"events": [inventory(sku, 5, 3)]}))
    assert result.accepted == 1
    await Sku.filter(id=sku.id).update(stock=8, stock_version=4)  # e.g. the checkout's ERP refresh

    assert await apply_events(cache, result.pending_ids) == 1

    assert (await InboundEvent.get(id=result.pending_ids[0])).status == "STALE"
    assert ((await Sku.get(id=sku.id)).stock, (await Sku.get(id=sku.id)).stock_version) == (8, 4)


async def test_events_stored_but_not_applied_before_a_crash_are_applied_once_later(
    client: httpx.AsyncClient, cache: Cache, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, (sku,) = await make_product([(990, 1)])

    async def crash(*_: object, **__: object) -> int:
        raise RuntimeError("process killed")

    monkeypatch.setattr(endpoint_module, "apply_events", crash)
    events = [inventory(sku, 12, 1), price(sku, 660, 1)]
    response = await send(client, events)
    monkeypatch.undo()

    assert response.json() == {"accepted": 2, "duplicates": 0, "stale": 0}
    rows = await stored(events)
    assert [e.status for e in rows] == ["PENDING", "PENDING"]
    assert (await Sku.get(id=sku.id)).stock == 1
    message = await OutboxMessage.filter(topic="erp.apply_events").order_by("-id").first()
    assert message is not None and message.payload == {"event_ids": [e.id for e in rows]}

    assert await apply_pending(cache) >= 2
    assert await apply_pending(cache) == 0
    ctx = HandlerContext(services=app.state.services, message_id=message.id, attempt=1)
    await apply_events_message(dict(message.payload), ctx)  # the outbox fallback finds nothing left

    assert [e.status for e in await stored(events)] == ["APPLIED", "APPLIED"]
    row = await Sku.get(id=sku.id)
    assert (row.stock, row.price_fen) == (12, 660)


async def test_an_unexpected_error_leaves_only_that_event_pending_for_the_next_sweep(
    client: httpx.AsyncClient, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, (sku,) = await make_product([(990, 1)])

    async def broken(*_: object) -> str:
        raise ConnectionResetError("database connection lost")

    monkeypatch.setitem(erp_events._APPLIERS, "price.changed", broken)
    events = [inventory(sku, 21, 1), price(sku, 550, 1)]
    assert (await send(client, events)).json() == {"accepted": 2, "duplicates": 0, "stale": 0}
    monkeypatch.undo()

    applied, pending = await stored(events)
    assert (applied.status, pending.status) == ("APPLIED", "PENDING")
    assert "database connection lost" in pending.last_error
    assert (await Sku.get(id=sku.id)).stock == 21

    await apply_pending(cache)

    assert (await InboundEvent.get(id=pending.id)).status == "APPLIED"
    assert (await Sku.get(id=sku.id)).price_fen == 550


async def test_concurrent_appliers_apply_each_event_once(cache: Cache) -> None:
    order = await paid_order()
    _, (sku,) = await make_product([(990, 1)])
    events = [
        erp_event(
            "shipment.created",
            {
                "order_no": order.order_no,
                "carrier": "顺丰",
                "tracking_no": f"SF{order.id}",
                "shipped_at": "2024-05-02T08:00:00+08:00",
            },
            version=1,
        ),
        inventory(sku, 9, 1),
    ]
    result = await store_events(parse_batch({"events": events}))

    claimed = await asyncio.gather(*(apply_events(cache, result.pending_ids) for _ in range(3)))

    assert sum(claimed) == 2
    assert await OrderEvent.filter(order_id=order.id, status=status.SHIPPED).count() == 1


async def test_an_event_for_an_unknown_entity_fails_visibly_without_stopping_the_batch(
    client: httpx.AsyncClient,
) -> None:
    _, (sku,) = await make_product([(990, 1)])
    events = [
        inventory("NO-SUCH-SKU-" + uuid.uuid4().hex[:6], 3, 1),
        erp_event(
            "order.delivered",
            {"order_no": "NO-SUCH-ORDER", "delivered_at": "2024-05-03T10:00:00Z"},
            version=1,
        ),
        erp_event(
            "product.upserted",
            {
                "spu_code": f"ERP-{uuid.uuid4().hex[:8]}",
                "title": "无类目",
                "category_code": "no-such-category",
                "images": [],
                "status": "on_shelf",
                "skus": [],
            },
            version=1,
        ),
        inventory(sku, 4, 1),
    ]

    response = await send(client, events)

    assert response.json() == {"accepted": 4, "duplicates": 0, "stale": 0}
    rows = await stored(events)
    assert [e.status for e in rows] == ["FAILED", "FAILED", "FAILED", "APPLIED"]
    assert "unknown sku" in rows[0].last_error
    assert "NOT_FOUND" in rows[1].last_error and "unknown category" in rows[2].last_error
    assert (await Sku.get(id=sku.id)).stock == 4


# --- fulfilment through the webhook --------------------------------------------------------------


async def test_shipment_tracking_and_delivery_move_the_order_along(client: httpx.AsyncClient) -> None:
    order = await paid_order()
    tracking_no = f"SF{uuid.uuid4().hex[:12]}"
    shipped = erp_event(
        "shipment.created",
        {
            "order_no": order.order_no,
            "carrier": "顺丰速运",
            "tracking_no": tracking_no,
            "shipped_at": "2024-05-02T08:00:00+08:00",
        },
        version=1,
    )
    assert (await send(client, [shipped])).json() == {"accepted": 1, "duplicates": 0, "stale": 0}

    row = await Order.get(id=order.id)
    assert row.status == status.SHIPPED and row.shipped_at == datetime(2024, 5, 2, 0, 0, tzinfo=UTC)
    shipment = await Shipment.get(tracking_no=tracking_no)
    assert (shipment.order_id, shipment.carrier) == (order.id, "顺丰速运")
    assert [e.status for e in await OrderEvent.filter(order_id=order.id)] == [status.SHIPPED]
    message = await OutboxMessage.get(dedupe_key=f"msg:ship:{order.order_no}:{tracking_no}")
    assert message.topic == "wechat.subscribe_message"
    assert message.payload["member_id"] == order.member_id and message.payload["template_id"] == "shipment"
    assert message.payload["page"] == f"pages/order/detail?id={order.id}"

    def tracking(version: int, *steps: str) -> dict[str, Any]:
        events = [
            {"at": f"2024-05-0{2 + i}T1{i}:00:00+08:00", "description": step, "location": "上海"}
            for i, step in enumerate(steps)
        ]
        # The ERP may list newest first; the shipment keeps them oldest first.
        return erp_event(
            "shipment.tracking", {"tracking_no": tracking_no, "events": events[::-1]}, version=version
        )

    assert (await send(client, [tracking(2, "已揽收", "运输中")])).json()["accepted"] == 1
    assert (await send(client, [tracking(1, "已揽收")])).json()["stale"] == 1
    shipment = await Shipment.get(id=shipment.id)
    assert [e["description"] for e in shipment.events] == [
        "已揽收",
        "运输中",
    ] and shipment.events_version == 2

    delivered = erp_event(
        "order.delivered", {"order_no": order.order_no, "delivered_at": "2024-05-04T15:30:00Z"}, version=1
    )
    assert (await send(client, [delivered])).json()["accepted"] == 1
    row = await Order.get(id=order.id)
    assert row.status == status.DELIVERED and row.delivered_at == datetime(2024, 5, 4, 15, 30, tzinfo=UTC)
    assert [e.status for e in await OrderEvent.filter(order_id=order.id).order_by("id")] == [
        status.SHIPPED,
        status.DELIVERED,
    ]
    confirm = await OutboxMessage.get(dedupe_key=f"auto-confirm:{order.id}")
    days = load_settings().order_auto_confirm_days
    assert confirm.topic == "order.auto_confirm" and confirm.payload == {"order_id": order.id}
    assert confirm.run_at == datetime(2024, 5, 4, 15, 30, tzinfo=UTC) + timedelta(days=days)

    # The same shipment reported again under a new event id changes nothing.
    again = erp_event("shipment.created", shipped["data"], version=1)
    assert (await send(client, [again])).json()["accepted"] == 1
    assert await OrderEvent.filter(order_id=order.id).count() == 2
    assert (await Order.get(id=order.id)).status == status.DELIVERED


def test_the_event_types_match_the_contract() -> None:
    assert erp_events.EVENT_TYPES == {
        "inventory.changed",
        "price.changed",
        "product.upserted",
        "shipment.created",
        "shipment.tracking",
        "order.delivered",
    }
