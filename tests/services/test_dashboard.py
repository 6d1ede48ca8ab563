"""Dashboard figures as plain values: ranges and buckets, rounding, day-30 retention, campaign folding,
and shared queries. The full hand-counted world is checked over HTTP in test_dashboard_api.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time, timedelta

import pytest

from bff.models.analytics import TrackedEvent
from bff.models.marketing import FlashSale, FlashSaleItem
from bff.services.dashboard import Dashboard, Period, average_fen, period_problem, ratio
from bff.services.dashboard_campaigns import campaign_sales
from bff.services.rollups import rebuild_days
from bff.services.shop_time import SHOP_TZ
from tests.support.sql_counter import count_sql

pytestmark = pytest.mark.usefixtures("seeded")


def test_ranges_are_checked() -> None:
    start = date(2030, 1, 1)
    assert period_problem(start, start) is None
    assert period_problem(start, start + timedelta(days=365)) is None  # 366 days
    assert period_problem(start, start + timedelta(days=366)) == "a range covers at most 366 days"
    assert period_problem(start, start - timedelta(days=1)) == "range.from must not be after range.to"


def test_buckets_are_days_or_the_mondays_of_iso_weeks() -> None:
    wednesday, next_tuesday = date(2030, 1, 2), date(2030, 1, 8)
    assert Period(wednesday, next_tuesday).buckets() == [wednesday + timedelta(days=n) for n in range(7)]
    assert Period(wednesday, next_tuesday, weekly=True).buckets() == [date(2029, 12, 31), date(2030, 1, 7)]
    assert Period(wednesday, wednesday).start == datetime(2030, 1, 2, tzinfo=SHOP_TZ)
    assert Period(wednesday, wednesday).end == datetime(2030, 1, 3, tzinfo=SHOP_TZ)


@pytest.mark.parametrize(
    ("total", "count", "expected"),
    [(0, 0, 0), (100, 0, 0), (7001, 2, 3501), (7003, 2, 3502), (8000, 3, 2667), (26003, 5, 5201), (10, 4, 3)],
)
def test_averages_round_half_up_to_a_fen(total: int, count: int, expected: int) -> None:
    assert average_fen(total, count) == expected


def test_ratios_are_fractions_and_zero_without_a_base() -> None:
    assert ratio(1, 4) == 0.25 and ratio(3, 0) == 0.0


def _visit(device: str, day: date) -> TrackedEvent:
    at = datetime.combine(day, time(9), SHOP_TZ)
    return TrackedEvent(
        client_event_id=uuid.uuid4().hex, anonymous_id=device, type="page_view", occurred_at=at,
        received_at=at, day=day,
    )  # fmt: skip


async def test_day_30_retention_is_known_once_the_range_reaches_it() -> None:
    first = date(2035, 8, 1)
    tag = uuid.uuid4().hex[:8]
    back = [first, first + timedelta(days=1), first + timedelta(days=30)]
    visits = [_visit(f"back-{tag}", d) for d in back]
    visits += [_visit(f"once-{tag}", first), _visit(f"old-{tag}", first - timedelta(days=3))]
    visits += [_visit(f"old-{tag}", first)]  # first came before the range: in no cohort
    await TrackedEvent.bulk_create(visits)
    await rebuild_days({v.day for v in visits})

    cohorts = await Dashboard(Period(first, first + timedelta(days=30))).retention()
    assert [(c.cohort, c.size, c.returned) for c in cohorts] == [(first, 2, {1: 0.5, 7: 0.0, 30: 0.5})]
    # One day short, day 30 is not known yet.
    cohorts = await Dashboard(Period(first, first + timedelta(days=29))).retention()
    assert [c.returned[30] for c in cohorts] == [None]


async def test_campaign_refs_are_followed_to_their_campaign() -> None:
    sale = await FlashSale.create(
        title="秒杀专场", starts_at=datetime.now(SHOP_TZ), ends_at=datetime.now(SHOP_TZ)
    )
    items = [
        await FlashSaleItem.create(
            flash_sale_id=sale.id, sku_id=0, product_id=0, flash_price_fen=1, stock_total=1
        )
        for _ in range(2)
    ]
    rows = await campaign_sales(
        [
            ("FLASH_SALE", items[0].id, 2, 300),
            ("FLASH_SALE", items[1].id, 1, 200),  # another item of the same sale: one row
            ("FLASH_SALE", 2_000_000_000, 1, 50),  # an item that is gone: the campaign is unknown
            (None, None, 4, 1000),
            ("SOMETHING_NEW", 5, 1, 10),  # a kind this report does not know counts as regular
        ]
    )
    assert [(r.kind, r.campaign_id, r.name, r.orders, r.gmv_fen) for r in rows] == [
        ("NONE", None, None, 5, 1010),
        ("FLASH_SALE", sale.id, "秒杀专场", 3, 500),
        ("FLASH_SALE", None, None, 1, 50),
    ]


async def test_summary_and_funnel_share_their_queries() -> None:
    period = Period(date(2035, 9, 1), date(2035, 9, 7))
    with count_sql() as alone:
        await Dashboard(period).summary()
    with count_sql() as together:
        board = Dashboard(period)
        await asyncio.gather(board.summary(), board.funnel())
    assert together.count == alone.count
