"""trackEvents over HTTP: the mini-program's batched behaviour events, signed in or not, with SQL counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bff.auth import Principal, Role, issue_token, verify_token
from bff.context import Services
from bff.ids import encode_id
from bff.models.analytics import DirtyDay, ExperimentVisitor, TrackedEvent
from bff.models.catalog import Product
from bff.models.experiment import Experiment
from bff.services.experiments import assign_variant
from bff.services.rollups import visitor_key
from bff.services.shop_time import shop_day
from tests.support.api import Api
from tests.support.sql_counter import count_sql


def event(anon: str, type_: str = "page_view", **fields: Any) -> dict[str, Any]:
    return {
        "clientEventId": uuid.uuid4().hex,
        "anonymousId": anon,
        "sessionId": "sess-1",
        "type": type_,
        "page": "/pages/home/index",
        "clientTime": (datetime.now(UTC) - timedelta(seconds=30)).isoformat(),
        **fields,
    }


async def track(api: Api, events: list[dict[str, Any]], token: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = (await api.op("TrackEvents", {"events": events}, token=token))["trackEvents"]
    return result


@pytest.fixture
def anon() -> str:
    return f"dev-{uuid.uuid4().hex}"


@pytest.fixture
async def product_id(seeded: str) -> str:
    product = await Product.all().order_by("id").first()
    assert product is not None
    return encode_id("Product", product.id)


async def stored(anon: str) -> list[TrackedEvent]:
    return await TrackedEvent.filter(anonymous_id=anon).order_by("id")


async def test_anonymous_visitors_are_tracked_by_device(api: Api, anon: str, product_id: str) -> None:
    batch = [
        event(anon),
        event(anon, "product_exposure", productId=product_id, properties={"position": 3, "tab": "推荐"}),
        event(anon, "search", keyword=" 绿茶 ", resultCount=0),
        event(anon, "share", productId=product_id),
        event(anon, "checkout_start"),
    ]
    result = await track(api, batch)
    assert result == {"accepted": 5, "duplicates": 0, "rejected": [], "userErrors": []}
    rows = await stored(anon)
    assert [r.type for r in rows] == ["page_view", "product_exposure", "search", "share", "checkout_start"]
    assert all(r.member_id is None and r.session_id == "sess-1" for r in rows)
    assert rows[1].properties == {"position": 3, "tab": "推荐"}
    assert (rows[2].keyword, rows[2].result_count) == ("绿茶", 0)
    assert rows[0].day == shop_day(rows[0].occurred_at)
    assert await DirtyDay.filter(day=rows[0].day).exists()


async def test_the_member_comes_from_the_token_only(
    api: Api, anon: str, shopper: str, services: Services
) -> None:
    member_id = verify_token(shopper, services.settings.jwt_secret).member_id
    spoof = event(anon, properties={"memberId": 1})
    spoof["memberId"] = 1  # not an input field: refused as a whole by GraphQL, nothing stored
    refused = await api.raw("TrackEvents", {"events": [spoof]}, token=shopper)
    assert refused.get("data") is None and refused["errors"]
    assert await stored(anon) == []

    result = await track(api, [event(anon, properties={"memberId": 1})], token=shopper)
    assert result["accepted"] == 1
    assert [r.member_id for r in await stored(anon)] == [member_id]


async def test_operators_are_not_tracked(api: Api, anon: str, services: Services) -> None:
    token = issue_token(Principal(role=Role.OPERATOR, name="ops-tracking"), services.settings.jwt_secret, 600)
    result = await track(api, [event(anon)], token=token.token)
    assert result["accepted"] == 0 and [e["code"] for e in result["userErrors"]] == ["FORBIDDEN"]
    assert await stored(anon) == []


async def test_a_retried_batch_is_all_duplicates(api: Api, anon: str, shopper: str) -> None:
    batch = [event(anon) for _ in range(5)]
    assert (await track(api, batch, token=shopper))["accepted"] == 5
    retry = await track(api, [*batch, batch[0]], token=shopper)
    assert (retry["accepted"], retry["duplicates"], retry["rejected"]) == (0, 6, [])
    assert len(await stored(anon)) == 5


async def test_a_mixed_batch_keeps_the_good_and_rejects_each_bad_one(
    api: Api, anon: str, product_id: str
) -> None:
    now = datetime.now(UTC)
    batch = [
        event(anon),
        event(anon, "purchase"),
        event(anon, "add_to_cart"),
        event(anon, clientTime=(now + timedelta(minutes=10)).isoformat()),
        event(anon, clientTime=(now - timedelta(days=8)).isoformat()),
        event(anon, clientTime="last tuesday"),
        event(anon, "product_click", productId=encode_id("Product", 10**9)),
        event(anon, "experiment_exposure", experimentKey=f"missing-{uuid.uuid4().hex[:6]}"),
        event(anon, properties={"blob": "x" * 3000}),
        event(anon, properties={"realName": "李雷"}),
        event(anon, "add_to_cart", productId=product_id),
        event(anon, "search", keyword="tea"),
    ]
    result = await track(api, batch)
    assert result["accepted"] == 2 and result["duplicates"] == 0 and result["userErrors"] == []
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [
        (1, "INVALID_TYPE"),
        (2, "MISSING_FIELD"),
        (3, "INVALID_TIME"),
        (4, "INVALID_TIME"),
        (5, "INVALID_TIME"),
        (6, "UNKNOWN_PRODUCT"),
        (7, "UNKNOWN_EXPERIMENT"),
        (8, "TOO_LARGE"),
        (9, "PERSONAL_DATA"),
        (11, "MISSING_FIELD"),
    ]
    assert [r["clientEventId"] for r in result["rejected"]] == [
        batch[i]["clientEventId"] for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11)
    ]
    assert all(r["message"] for r in result["rejected"])
    assert [r.client_event_id for r in await stored(anon)] == [
        batch[0]["clientEventId"],
        batch[10]["clientEventId"],
    ]


async def test_personal_data_is_never_stored(api: Api, anon: str) -> None:
    batch = [
        event(anon, properties={"phone": "x"}),
        event(anon, properties={"openid": "o_abc"}),
        event(anon, properties={"contact": "13912345678"}),
        event(anon, properties={"收货地址": "上海市"}),
    ]
    result = await track(api, batch)
    assert result["accepted"] == 0
    assert {r["code"] for r in result["rejected"]} == {"PERSONAL_DATA"}
    assert await stored(anon) == []


async def test_more_than_100_events_are_refused_and_nothing_is_stored(api: Api, anon: str) -> None:
    result = await track(api, [event(anon) for _ in range(101)])
    assert result["accepted"] == 0 and result["rejected"] == []
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [("BATCH_TOO_LARGE", "events")]
    assert await stored(anon) == []
    assert await track(api, []) == {"accepted": 0, "duplicates": 0, "rejected": [], "userErrors": []}


async def test_experiment_exposure_stores_the_server_assigned_variant(
    api: Api, anon: str, shopper: str, services: Services
) -> None:
    key = f"exp-{uuid.uuid4().hex[:10]}"
    variants = [{"key": "control", "weight": 30}, {"key": "big_banner", "weight": 70}]
    await Experiment.create(key=key, name="首页大图", screen="home", variants=variants, status="RUNNING")
    member_id = verify_token(shopper, services.settings.jwt_secret).member_id
    visitor = visitor_key(member_id, anon)
    assigned = assign_variant(key, visitor, [("control", 30), ("big_banner", 70)])
    wrong = "control" if assigned == "big_banner" else "big_banner"

    result = await track(
        api,
        [
            event(anon, "experiment_exposure", experimentKey=key, variant=wrong),
            event(anon, "experiment_exposure", experimentKey=key, variant=assigned),
        ],
        token=shopper,
    )
    assert result["accepted"] == 1
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [(0, "VARIANT_MISMATCH")]
    row = await ExperimentVisitor.get(experiment_key=key)
    assert (row.visitor_key, row.variant, row.member_id) == (visitor, assigned, member_id)

    # Anonymous on the same device: another visitor, assigned by its own key.
    await track(api, [event(anon, "experiment_exposure", experimentKey=key)])
    anonymous = await ExperimentVisitor.get(experiment_key=key, visitor_key=visitor_key(None, anon))
    assert anonymous.variant == assign_variant(key, f"a:{anon}", [("control", 30), ("big_banner", 70)])
    assert anonymous.member_id is None


async def test_a_batch_costs_the_same_sql_for_10_or_100_events(
    api: Api, shopper: str, product_id: str
) -> None:
    key = f"exp-{uuid.uuid4().hex[:10]}"
    await Experiment.create(
        key=key, name="n", screen="home", variants=[{"key": "a", "weight": 1}], status="RUNNING"
    )
    kinds: list[dict[str, Any]] = [
        {"type_": "page_view"},
        {"type_": "product_exposure", "productId": product_id},
        {"type_": "search", "keyword": "茶", "resultCount": 4},
        {"type_": "experiment_exposure", "experimentKey": key},
        {"type_": "unknown"},
    ]
    counts = []
    for size in (10, 100):
        anon = f"dev-{uuid.uuid4().hex}"
        batch = [event(anon, **kinds[i % len(kinds)]) for i in range(size)]
        with count_sql() as sql:
            result = await track(api, batch, token=shopper)
        assert result["accepted"] == size * 4 // 5
        counts.append(sql.count)
    assert counts[0] == counts[1] <= 6, counts
