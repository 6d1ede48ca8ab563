"""Tracking ingestion rules: per-event validation without a database, then batches against one
(SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bff.ids import encode_id
from bff.models.analytics import DirtyDay, ExperimentVisitor, TrackedEvent
from bff.models.catalog import Product
from bff.models.experiment import Experiment
from bff.services import tracking
from bff.services.errors import BusinessError
from bff.services.experiments import assign_variant
from bff.services.rollups import visitor_key
from bff.services.tracking import EventIn, Invalid, check_event, check_properties, is_personal_key
from tests.support.sql_counter import count_sql

NOW = datetime(2033, 7, 14, 4, 0, tzinfo=UTC)  # far from any real event of the session
VARIANTS = [{"key": "control", "weight": 50}, {"key": "b", "weight": 50}]


def event(type_: str = "page_view", **fields: Any) -> EventIn:
    values: dict[str, Any] = {
        "client_event_id": uuid.uuid4().hex,
        "anonymous_id": "anon-1",
        "session_id": "s-1",
        "type": type_,
        "client_time": (NOW - timedelta(minutes=1)).isoformat(),
        "page": "/pages/home/index",
        **fields,
    }
    return EventIn(**values)


def code_of(e: EventIn) -> str:
    with pytest.raises(Invalid) as caught:
        check_event(0, e, NOW)
    return caught.value.code


# --- rules that need no database ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2033-07-14T03:59:00Z", datetime(2033, 7, 14, 3, 59, tzinfo=UTC)),
        ("2033-07-14T11:59:00+08:00", datetime(2033, 7, 14, 3, 59, tzinfo=UTC)),
        ("2033-07-14T04:04:59+00:00", datetime(2033, 7, 14, 4, 4, 59, tzinfo=UTC)),
        ("2033-07-07T04:00:01Z", datetime(2033, 7, 7, 4, 0, 1, tzinfo=UTC)),
    ],
)
def test_client_time_is_read_as_an_utc_moment(raw: str, expected: datetime) -> None:
    assert tracking.parse_client_time(raw, NOW) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "",
        "2033-07-14T03:59:00",  # no offset: ambiguous
        "2033-07-14",
        "2033-07-14T04:05:01Z",  # more than 5 minutes ahead
        "2033-07-07T03:59:59Z",  # older than 7 days
    ],
)
def test_bad_client_times_are_invalid(raw: str) -> None:
    assert code_of(event(client_time=raw)) == "INVALID_TIME"


@pytest.mark.parametrize(
    "key",
    ["phone", "mobileNo", "tel", "openid", "openId", "open_id", "unionId", "realName", "real_name",
     "idCard", "IDCard", "id_card", "name", "email", "shippingAddress", "userName", "nickName",
     "手机号", "收货地址"],
)  # fmt: skip
def test_personal_keys_are_recognised(key: str) -> None:
    assert is_personal_key(key)


@pytest.mark.parametrize(
    "key", ["productName", "pageName", "hotel", "from", "position", "source", "tab", "channel", "skuId"]
)
def test_behaviour_keys_are_not_personal(key: str) -> None:
    assert not is_personal_key(key)


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"phone": "x"}, "PERSONAL_DATA"),
        ({"contact": "13812345678"}, "PERSONAL_DATA"),
        ({"contact": "+8613812345678"}, "PERSONAL_DATA"),
        ({"note": "li.lei@example.com"}, "PERSONAL_DATA"),
        ({f"k{i}": i for i in range(21)}, "TOO_LARGE"),
        ({"nested": {"a": 1}}, "TOO_LARGE"),
        ({"list": [1, 2]}, "TOO_LARGE"),
        ({"blob": "x" * 2100}, "TOO_LARGE"),
        ({"k" * 65: 1}, "TOO_LARGE"),
        ([1, 2, 3], "TOO_LARGE"),
        ("flat", "TOO_LARGE"),
    ],
)
def test_bad_properties_are_refused_with_their_reason(properties: object, code: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_properties(properties)
    assert caught.value.code == code


def test_flat_small_properties_are_kept() -> None:
    props = {f"k{i}": v for i, v in enumerate(["a", 1, 2.5, True, None] * 4)}
    assert check_properties(props) == props
    assert check_properties(None) == {}


@pytest.mark.parametrize(
    ("e", "code"),
    [
        (event("purchase"), "INVALID_TYPE"),
        (event("PAGE_VIEW"), "INVALID_TYPE"),
        (event("page_view", page=None), "MISSING_FIELD"),
        (event("product_exposure"), "MISSING_FIELD"),
        (event("product_click"), "MISSING_FIELD"),
        (event("add_to_cart", product_id=""), "MISSING_FIELD"),
        (event("search", result_count=3), "MISSING_FIELD"),
        (event("search", keyword="  ", result_count=3), "MISSING_FIELD"),
        (event("search", keyword="茶"), "MISSING_FIELD"),
        (event("search", keyword="茶", result_count=-1), "MISSING_FIELD"),
        (event("experiment_exposure"), "MISSING_FIELD"),
        (event(client_event_id=""), "MISSING_FIELD"),
        (event(anonymous_id=" "), "MISSING_FIELD"),
        (event(session_id=""), "MISSING_FIELD"),
        (event(client_event_id="c" * 65), "TOO_LARGE"),
        (event(anonymous_id="a" * 65), "TOO_LARGE"),
        (event(page="/" * 129), "TOO_LARGE"),
        (event("experiment_exposure", experiment_key="e", variant="v" * 33), "TOO_LARGE"),
    ],
)
def test_each_type_needs_its_fields(e: EventIn, code: str) -> None:
    assert code_of(e) == code


def test_a_valid_event_is_parsed_and_normalised() -> None:
    product = encode_id("Product", 42)
    checked = check_event(
        3,
        event("search", keyword="  Ｔea  ＣUP ", result_count=0, product_id=product, page=None),
        NOW,
    )
    assert (checked.index, checked.keyword, checked.result_count, checked.page) == (3, "tea  cup", 0, "")
    assert checked.product_id == 42 and checked.occurred_at == NOW - timedelta(minutes=1)
    long = check_event(0, event("search", keyword="k" * 80, result_count=1), NOW)
    assert long.keyword == "k" * 64
    malformed = check_event(0, event("share", product_id="not-an-id"), NOW)
    assert malformed.product_given and malformed.product_id is None


# --- batches against the database --------------------------------------------------------------


async def stored(anonymous_id: str) -> list[TrackedEvent]:
    return await TrackedEvent.filter(anonymous_id=anonymous_id).order_by("id")


@pytest.fixture
def anon() -> str:
    return f"svc-{uuid.uuid4().hex}"


async def test_a_batch_is_stored_with_its_day_and_marks_the_day_dirty(seeded: str, anon: str) -> None:
    late = NOW - timedelta(hours=8)  # 2033-07-13 20:00 UTC is already 07-14 in the shop
    batch = [event(anonymous_id=anon, client_time="2033-07-13T15:59:00Z"), event(anonymous_id=anon)]
    batch.append(event(anonymous_id=anon, client_time=late.isoformat()))
    days = [date(2033, 7, 13), date(2033, 7, 14)]
    await DirtyDay.filter(day__in=days).delete()
    result = await tracking.ingest(batch, None, now=NOW)
    assert (result.accepted, result.duplicates, result.rejected) == (3, 0, [])
    rows = await stored(anon)
    assert [r.day.isoformat() for r in rows] == ["2033-07-13", "2033-07-14", "2033-07-14"]
    assert all(r.member_id is None and r.received_at == NOW for r in rows)
    assert await DirtyDay.filter(day__in=days).count() == 2


async def test_duplicates_are_counted_not_stored_twice(seeded: str, anon: str) -> None:
    first = event(anonymous_id=anon)
    again = replace(first, page="/pages/other/index")
    result = await tracking.ingest([first, again, event(anonymous_id=anon)], 7, now=NOW)
    assert (result.accepted, result.duplicates) == (2, 1)
    retry = await tracking.ingest([first, again], 7, now=NOW)
    assert (retry.accepted, retry.duplicates, retry.rejected) == (0, 2, [])
    rows = await stored(anon)
    assert len(rows) == 2 and rows[0].page == "/pages/home/index" and rows[0].member_id == 7
    # The same client id from another device is another event.
    assert (await tracking.ingest([replace(first, anonymous_id=anon + "x")], None, now=NOW)).accepted == 1


async def test_a_stored_event_resent_with_bad_content_is_still_a_duplicate(seeded: str, anon: str) -> None:
    first = event(anonymous_id=anon)
    await tracking.ingest([first], None, now=NOW)
    result = await tracking.ingest([replace(first, type="nonsense")], None, now=NOW)
    assert (result.accepted, result.duplicates, result.rejected) == (0, 1, [])


async def test_unknown_products_are_rejected_and_known_ones_kept(seeded: str, anon: str) -> None:
    product = await Product.all().order_by("id").first()
    assert product is not None
    batch = [
        event("product_click", anonymous_id=anon, product_id=encode_id("Product", product.id)),
        event("product_click", anonymous_id=anon, product_id=encode_id("Product", 10**9)),
        event("add_to_cart", anonymous_id=anon, product_id=encode_id("Category", product.id)),
    ]
    result = await tracking.ingest(batch, None, now=NOW)
    assert result.accepted == 1
    assert [(r.index, r.code) for r in result.rejected] == [(1, "UNKNOWN_PRODUCT"), (2, "UNKNOWN_PRODUCT")]
    assert [r.product_id for r in await stored(anon)] == [product.id]


async def test_experiment_exposures_record_the_server_assignment_once(seeded: str, anon: str) -> None:
    key = f"exp-{uuid.uuid4().hex[:10]}"
    await Experiment.create(key=key, name="首页改版", screen="home", variants=VARIANTS, status="RUNNING")
    stopped = f"exp-{uuid.uuid4().hex[:10]}"
    await Experiment.create(key=stopped, name="旧实验", screen="home", variants=VARIANTS, status="STOPPED")
    member_visitor = visitor_key(11, anon)
    assigned = assign_variant(key, member_visitor, [("control", 50), ("b", 50)])
    other = "b" if assigned == "control" else "control"
    later = NOW - timedelta(seconds=10)
    batch = [
        event("experiment_exposure", anonymous_id=anon, experiment_key=key, client_time=later.isoformat()),
        event("experiment_exposure", anonymous_id=anon, experiment_key=key, variant=assigned),
        event("experiment_exposure", anonymous_id=anon, experiment_key=key, variant=other),
        event("experiment_exposure", anonymous_id=anon, experiment_key=stopped),
        event("experiment_exposure", anonymous_id=anon, experiment_key="no-such-experiment"),
    ]
    result = await tracking.ingest(batch, 11, now=NOW)
    assert result.accepted == 2
    assert [(r.index, r.code) for r in result.rejected] == [
        (2, "VARIANT_MISMATCH"),
        (3, "UNKNOWN_EXPERIMENT"),
        (4, "UNKNOWN_EXPERIMENT"),
    ]
    row = await ExperimentVisitor.get(experiment_key=key, visitor_key=member_visitor)
    # The earliest exposure of the batch, not the first one listed.
    assert (row.variant, row.member_id, row.first_exposed_at) == (assigned, 11, NOW - timedelta(minutes=1))
    assert all(r.properties["variant"] == assigned for r in await stored(anon))

    await tracking.ingest([event("experiment_exposure", anonymous_id=anon, experiment_key=key)], 11, now=NOW)
    assert await ExperimentVisitor.filter(experiment_key=key).count() == 1
    assert (await ExperimentVisitor.get(experiment_key=key)).first_exposed_at == row.first_exposed_at


async def test_a_batch_over_100_events_is_refused_whole(seeded: str, anon: str) -> None:
    with pytest.raises(BusinessError) as caught:
        await tracking.ingest([event(anonymous_id=anon) for _ in range(101)], None, now=NOW)
    assert caught.value.code == "BATCH_TOO_LARGE"
    assert await stored(anon) == []


async def test_a_batch_costs_the_same_statements_whatever_its_size(seeded: str) -> None:
    product = await Product.all().order_by("id").first()
    assert product is not None
    key = f"exp-{uuid.uuid4().hex[:10]}"
    await Experiment.create(key=key, name="n", screen="home", variants=VARIANTS, status="RUNNING")

    def mixed(size: int, anon: str) -> list[EventIn]:
        kinds = [
            {"type_": "page_view"},
            {"type_": "product_exposure", "product_id": encode_id("Product", product.id)},
            {"type_": "search", "keyword": "茶", "result_count": 2},
            {"type_": "experiment_exposure", "experiment_key": key},
            {"type_": "bogus"},
        ]
        return [event(anonymous_id=anon, **kinds[i % len(kinds)]) for i in range(size)]

    counts = []
    for size in (10, 100):
        with count_sql() as sql:
            result = await tracking.ingest(mixed(size, f"svc-{uuid.uuid4().hex}"), None, now=NOW)
        assert result.accepted == size * 4 // 5 and len(result.rejected) == size // 5
        counts.append(sql.count)
    assert counts[0] == counts[1], counts
