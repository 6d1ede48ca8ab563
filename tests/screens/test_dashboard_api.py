"""The operators' dashboard over HTTP: every figure against a hand-counted world, auth, range checks,
fresh rollups, and an SQL count that does not grow with events or days.

The world is tests/support/dashboard_fixture.py; d(k) is its Monday + k, the range d(2)..d(15).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette

from bff.auth import Principal, Role, issue_token
from bff.ids import encode_id
from bff.models.analytics import TrackedEvent
from bff.services.rollups import mark_dirty
from bff.services.shop_time import SHOP_TZ
from tests.support.api import Api
from tests.support.dashboard_fixture import World, build_world
from tests.support.sql_counter import count_sql

OPERATION = "DashboardOverview"


@pytest.fixture(scope="module")
def operator(app: Starlette) -> str:
    settings = app.state.services.settings
    return issue_token(Principal(role=Role.OPERATOR, name="ops-dashboard"), settings.jwt_secret, 3600).token


@pytest.fixture(scope="module")
async def world(seeded: str) -> World:
    return await build_world(date(2037, 6, 1))


def _vars(first: date, last: date, granularity: str = "DAY", top: int | None = 10) -> dict[str, Any]:
    return {
        "range": {"from": first.isoformat(), "to": last.isoformat()},
        "granularity": granularity,
        "top": top,
    }


async def _dashboard(api: Api, token: str, variables: dict[str, Any]) -> dict[str, Any]:
    data = await api.op(OPERATION, variables, token=token)
    result: dict[str, Any] = data["dashboard"]
    return result


def _amounts(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """Rows with their Money fields reduced to the amount in fen."""
    return [{k: (v["amount"] if k in keys else v) for k, v in row.items()} for row in rows]


async def test_the_summary_matches_the_hand_count(api: Api, operator: str, world: World) -> None:
    board = await _dashboard(api, operator, _vars(world.first, world.last))
    assert board["range"] == {"from": world.first.isoformat(), "to": world.last.isoformat()}
    assert board["granularity"] == "DAY"
    summary = board["summary"]
    assert summary["gmv"] == {"amount": 31503, "formatted": "¥315.03"}
    assert {k: v for k, v in summary.items() if k not in ("gmv", "averageOrderValue", "refunds")} == {
        # A0, A1, A2, A3 (an exposure on d9 is a visit), M1, M2; M3 never sent an event.
        "visitors": 6,
        # d2: A1 2 + A2 1 + A0 1; d3: A1 1 + M1 1; d9: A1 1 + M2 2; d10: M2 1; d15: A2 1 + M1 1.
        "pageViews": 12,
        # Created in the range: O1 d3, O2 d9, O3 d15 23:00, O4 d9, O5 d5 (unpaid), O7 d15 23:50,
        # O9 d10. Not O6 (created d1) nor O8 (d1).
        "orders": 7,
        # Paid in the range: O1, O2, O3 (d15 23:30), O4, O6 (d2 00:30), O9; not O7 (d16 00:10), O8.
        "paidOrders": 6,
        # M1 (O1, O2, O6), M2 (O4, O9), M3 (O3).
        "payingMembers": 3,
        "conversionRate": 0.5,  # 3 paying members / 6 visitors
        "repurchaseRate": pytest.approx(2 / 3),  # M1 and M2 paid twice or more, of 3
        "newMembers": 2,  # M2 (d9 08:00) and M5 (d2 00:00 sharp); M6 (d16 00:00) is after the range
        "returningMembers": 2,  # registered before: M1 visited, M3 paid; M4 only left an unpaid order
    }
    # gmv = O1 10000 + O2 5000 + O3 7502 + O4 2001 + O6 6001 + O9 999 = 31503; / 6 = 5250.5 → 5251.
    assert summary["averageOrderValue"]["amount"] == 5251
    # Succeeded in the range: 1000 (d10) + 500 (d15 23:59); not the failed 700, the processing 200,
    # the 300 of d1 23:55 nor the 300 of d16 00:00.
    assert summary["refunds"]["amount"] == 1500


async def test_the_daily_trend_has_a_point_per_day(api: Api, operator: str, world: World) -> None:
    trend = (await _dashboard(api, operator, _vars(world.first, world.last)))["trend"]
    zero = {"visitors": 0, "pageViews": 0, "paidOrders": 0, "gmv": 0, "averageOrderValue": 0}
    expected = {world.d(k).isoformat(): zero for k in range(2, 16)}
    expected[world.d(2).isoformat()] = {  # A1, A2, A0; O6 paid 00:30
        "visitors": 3, "pageViews": 4, "paidOrders": 1, "gmv": 6001, "averageOrderValue": 6001,
    }  # fmt: skip
    expected[world.d(3).isoformat()] = {  # A1, M1; O1
        "visitors": 2, "pageViews": 2, "paidOrders": 1, "gmv": 10000, "averageOrderValue": 10000,
    }  # fmt: skip
    expected[world.d(9).isoformat()] = {  # A1, M2, A3 (no page view); O2 + O4 = 7001, / 2 = 3500.5 → 3501
        "visitors": 3, "pageViews": 3, "paidOrders": 2, "gmv": 7001, "averageOrderValue": 3501,
    }  # fmt: skip
    expected[world.d(10).isoformat()] = {  # M2; O9
        "visitors": 1, "pageViews": 1, "paidOrders": 1, "gmv": 999, "averageOrderValue": 999,
    }  # fmt: skip
    expected[world.d(15).isoformat()] = {  # A2, M1; O3 paid 23:30 shop time
        "visitors": 2, "pageViews": 2, "paidOrders": 1, "gmv": 7502, "averageOrderValue": 7502,
    }  # fmt: skip
    got = {p["bucket"]: p for p in _amounts(trend, "gmv", "averageOrderValue")}
    assert list(got) == list(expected)
    assert {b: {k: v for k, v in p.items() if k != "bucket"} for b, p in got.items()} == expected


async def test_the_weekly_trend_counts_visitors_once_per_week(api: Api, operator: str, world: World) -> None:
    board = await _dashboard(api, operator, _vars(world.first, world.last, "WEEK"))
    assert board["granularity"] == "WEEK"
    assert _amounts(board["trend"], "gmv", "averageOrderValue") == [
        # d2-d6: A1, A2, A0, M1; 4 + 2 page views; O6 6001 + O1 10000 = 16001, / 2 = 8000.5 → 8001
        {"bucket": world.d(0).isoformat(), "visitors": 4, "pageViews": 6, "paidOrders": 2,
         "gmv": 16001, "averageOrderValue": 8001},
        # d7-d13: A1, M2 (d9 and d10, once), A3; 3 + 1; O2 5000 + O4 2001 + O9 999 = 8000, / 3 → 2667
        {"bucket": world.d(7).isoformat(), "visitors": 3, "pageViews": 4, "paidOrders": 3,
         "gmv": 8000, "averageOrderValue": 2667},
        # d14-d15: A2, M1; O3
        {"bucket": world.d(14).isoformat(), "visitors": 2, "pageViews": 2, "paidOrders": 1,
         "gmv": 7502, "averageOrderValue": 7502},
    ]  # fmt: skip


async def test_the_funnel(api: Api, operator: str, world: World) -> None:
    funnel = (await _dashboard(api, operator, _vars(world.first, world.last)))["funnel"]
    assert funnel == [
        # Page views in the range: A0, A1, A2, M1, M2 (A3 only saw an exposure).
        {"step": "VIEW", "visitors": 5, "rateFromPrevious": 1.0, "rateFromFirst": 1.0},
        # A1 (d2), M1 (d3), M2 (d9): 3 / 5.
        {"step": "ADD_TO_CART", "visitors": 3, "rateFromPrevious": 0.6, "rateFromFirst": 0.6},
        # A1 and M1 (d3): 2 / 3 and 2 / 5.
        {"step": "CHECKOUT", "visitors": 2, "rateFromPrevious": pytest.approx(2 / 3), "rateFromFirst": 0.4},
        # M1, M2, M3 paid (M3 without a tracked visit): 3 / 2 is capped at 1; 3 / 5.
        {"step": "PAY", "visitors": 3, "rateFromPrevious": 1.0, "rateFromFirst": 0.6},
    ]


async def test_retention_cohorts_by_day_and_week(api: Api, operator: str, world: World) -> None:
    daily = (await _dashboard(api, operator, _vars(world.first, world.last)))["retention"]
    assert daily == [
        # A1 and A2 first came d2 (A0 came d0, before the range): A1 is back d3 and d9.
        {"cohort": world.d(2).isoformat(), "size": 2, "day1": 0.5, "day7": 0.5, "day30": None},
        # M1 first came d3, back neither d4 nor d10.
        {"cohort": world.d(3).isoformat(), "size": 1, "day1": 0.0, "day7": 0.0, "day30": None},
        # M2 and A3 first came d9; M2 is back d10; d16 is after the range, so day 7 is not known.
        {"cohort": world.d(9).isoformat(), "size": 2, "day1": 0.5, "day7": None, "day30": None},
    ]
    weekly = (await _dashboard(api, operator, _vars(world.first, world.last, "WEEK")))["retention"]
    assert weekly == [
        # A1, A2 (d2) and M1 (d3): only A1 is back on its day 1 and day 7; d3 + 7 = d10 is known.
        {"cohort": world.d(0).isoformat(), "size": 3, "day1": pytest.approx(1 / 3),
         "day7": pytest.approx(1 / 3), "day30": None},
        {"cohort": world.d(7).isoformat(), "size": 2, "day1": 0.5, "day7": None, "day30": None},
    ]  # fmt: skip


async def test_top_products_keywords_and_campaigns(api: Api, operator: str, world: World) -> None:
    board = await _dashboard(api, operator, _vars(world.first, world.last))
    p = world.products

    def product(name: str, views: int, carts: int, units: int, sales: int) -> dict[str, Any]:
        return {"productId": encode_id("Product", p[name]), "title": world.titles[name], "views": views,
                "addToCarts": carts, "unitsSold": units, "sales": sales}  # fmt: skip

    assert _amounts(board["topProducts"], "sales") == [
        # O1 2 units 8000 - 500 refunded, O4 1 unit 2001; viewed and carted by A1 (d2) and M2 (d9).
        product("P1", 2, 2, 3, 9501),
        # O1 2000, O2 5000 - 1000 refunded; viewed and carted by M1 (d3).
        product("P2", 1, 1, 2, 6000),
        # 4501 each: P4 and P5 sold 3 units (P4 has the smaller id), P3 2 (O3 3001 + O6 1500).
        product("P4", 0, 0, 3, 4501),
        product("P5", 0, 0, 3, 4501),  # gone from the catalog: the order line's title
        product("P3", 0, 0, 2, 4501),
    ]
    assert board["topKeywords"] == [
        {"keyword": "kwA", "searches": 3, "zeroResults": 0},  # A1 d2, M2 d9, A2 d15
        {"keyword": "kwY", "searches": 2, "zeroResults": 1},  # M2 d10, once found nothing
        {"keyword": "kwZ", "searches": 2, "zeroResults": 2},  # A1 and A2 d2
        {"keyword": "kwB", "searches": 1, "zeroResults": 0},  # M1 d15; kwOut (d16) is out
    ]
    assert board["zeroResultKeywords"] == [
        {"keyword": "kwZ", "searches": 2},
        {"keyword": "kwY", "searches": 1},
    ]
    c = world.campaigns
    assert _amounts(board["salesByCampaign"], "gmv") == [
        {"kind": "NONE", "campaignId": None, "name": None, "orders": 1, "gmv": 10000},  # O1
        # O3 joined a team, O4 opened one: both the same campaign.
        {"kind": "GROUP_BUY", "campaignId": encode_id("GroupBuyCampaign", c["GB"]), "name": "拼团测试",
         "orders": 2, "gmv": 9503},
        {"kind": "BARGAIN", "campaignId": encode_id("BargainCampaign", c["BC"]), "name": "砍价测试",
         "orders": 1, "gmv": 6001},  # O6, through its bargain session
        {"kind": "FLASH_SALE", "campaignId": encode_id("FlashSale", c["FS"]), "name": "闪购测试",
         "orders": 1, "gmv": 5000},  # O2, through its flash-sale item
        {"kind": "PRESALE", "campaignId": encode_id("PresaleCampaign", c["PS"]), "name": None,
         "orders": 1, "gmv": 999},  # O9: the campaign row is gone
    ]  # fmt: skip


async def test_top_lists_honour_first(api: Api, operator: str, world: World) -> None:
    board = await _dashboard(api, operator, _vars(world.first, world.last, top=2))
    assert [row["title"] for row in board["topProducts"]] == [world.titles["P1"], world.titles["P2"]]
    assert [row["keyword"] for row in board["topKeywords"]] == ["kwA", "kwY"]
    assert [row["keyword"] for row in board["zeroResultKeywords"]] == ["kwZ", "kwY"]
    default = await _dashboard(api, operator, _vars(world.first, world.last, top=None))
    assert len(default["topProducts"]) == 5


async def test_an_empty_range_is_all_zeros(api: Api, operator: str, world: World) -> None:
    first = world.d(-40)
    board = await _dashboard(api, operator, _vars(first, first + timedelta(days=6), "WEEK"))
    summary = board["summary"]
    assert summary["visitors"] == summary["paidOrders"] == summary["orders"] == 0
    assert summary["averageOrderValue"]["amount"] == 0 and summary["conversionRate"] == 0.0
    assert [p["visitors"] for p in board["trend"]] == [0, 0]  # a Wednesday-to-Tuesday range spans 2 weeks
    assert [s["rateFromPrevious"] for s in board["funnel"]] == [1.0, 0.0, 0.0, 0.0]
    assert board["retention"] == board["topProducts"] == board["salesByCampaign"] == []


async def test_operators_only(api: Api, world: World, shopper: str) -> None:
    variables = _vars(world.first, world.last)
    anonymous = await api.raw(OPERATION, variables)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    member = await api.raw(OPERATION, variables, token=shopper)
    assert member["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("days", "reversed_"), [(367, False), (2, True)])
async def test_ranges_are_checked(api: Api, operator: str, days: int, reversed_: bool) -> None:
    first, last = date(2037, 1, 1), date(2037, 1, 1) + timedelta(days=days - 1)
    body = await api.raw(OPERATION, _vars(last, first) if reversed_ else _vars(first, last), token=operator)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["data"] is None


async def test_a_year_long_range_is_accepted(api: Api, operator: str) -> None:
    first = date(2036, 1, 1)
    board = await _dashboard(api, operator, _vars(first, first + timedelta(days=365), "WEEK"))
    assert len(board["trend"]) == 53


async def test_dirty_days_are_rebuilt_before_reading(api: Api, operator: str) -> None:
    monday = date(2038, 5, 3)
    variables = _vars(monday, monday + timedelta(days=6))
    assert (await _dashboard(api, operator, variables))["summary"]["visitors"] == 0
    device = f"fresh-{uuid.uuid4().hex[:8]}"
    await TrackedEvent.create(
        client_event_id="e1", anonymous_id=device, type="page_view", day=monday + timedelta(days=1),
        occurred_at=_noon(monday + timedelta(days=1)), received_at=_noon(monday + timedelta(days=1)),
    )  # fmt: skip
    await mark_dirty([monday + timedelta(days=1)])
    summary = (await _dashboard(api, operator, variables))["summary"]
    assert (summary["visitors"], summary["pageViews"]) == (1, 1)


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), SHOP_TZ)


async def _noise(world: World, visitors: int, days: int) -> None:
    """Many more events over many more days, and more orders, all of kinds the world already has."""
    rows = []
    for v in range(visitors):
        for k in range(-days, 16, 3):
            day = world.d(k)
            for n, type_ in enumerate(("page_view", "add_to_cart", "search")):
                rows.append(
                    TrackedEvent(
                        client_event_id=f"n{k}-{n}", anonymous_id=f"noise-{v}-{world.monday}", type=type_,
                        keyword=f"kw{v % 7}" if type_ == "search" else None, result_count=v % 2,
                        occurred_at=_noon(day), received_at=_noon(day), day=day,
                    )
                )  # fmt: skip
    await TrackedEvent.bulk_create(rows, batch_size=500)
    await mark_dirty({row.day for row in rows})


async def test_the_sql_count_does_not_grow_with_events_or_days(api: Api, operator: str, world: World) -> None:
    small = _vars(world.first, world.last)
    await _dashboard(api, operator, small)  # rollups fresh
    with count_sql() as counter:
        await _dashboard(api, operator, small)
    baseline = counter.count

    bigger = await build_world(date(2039, 6, 6))
    await _noise(bigger, visitors=40, days=60)
    large = _vars(bigger.d(-60), bigger.last)
    await _dashboard(api, operator, large)
    with count_sql() as counter:
        board = await _dashboard(api, operator, large)
    assert board["summary"]["visitors"] == 6 + 40
    assert counter.count == baseline, counter.statements
    assert baseline <= 20
