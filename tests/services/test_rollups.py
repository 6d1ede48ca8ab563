"""Daily rollups: a day's VisitorDay, ProductDay and KeywordDay rows rebuilt from its raw events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import date, datetime, time
from typing import Any

import pytest

import bff.worker
from bff.context import Services
from bff.models.analytics import DirtyDay, KeywordDay, ProductDay, TrackedEvent, VisitorDay
from bff.runtime import build_services
from bff.services.rollups import mark_dirty, rebuild_days, rebuild_dirty, visitor_key
from bff.services.shop_time import SHOP_TZ
from bff.settings import load_settings

pytestmark = pytest.mark.usefixtures("seeded")


def _event(day: date, device: str, type_: str, **fields: object) -> TrackedEvent:
    at = datetime.combine(day, time(12), SHOP_TZ)
    return TrackedEvent(
        client_event_id=uuid.uuid4().hex, anonymous_id=device, type=type_, occurred_at=at, received_at=at,
        day=day, **fields,
    )  # fmt: skip


async def _visitor_rows(day: date) -> dict[str, tuple[int | None, int, int, int, int, int]]:
    rows = await VisitorDay.filter(day=day)
    return {
        r.visitor_key: (
            r.member_id,
            r.page_views,
            r.product_views,
            r.add_to_carts,
            r.checkout_starts,
            r.shares,
        )
        for r in rows
    }


def test_the_visitor_key_is_the_member_when_signed_in() -> None:
    assert visitor_key(42, "dev") == "m:42"
    assert visitor_key(None, "dev") == "a:dev"


async def test_a_day_is_rolled_up_from_its_events() -> None:
    day, other = date(2041, 2, 3), date(2041, 2, 4)
    device, signed = f"r-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    await TrackedEvent.bulk_create(
        [
            _event(day, device, "page_view"),
            _event(day, device, "page_view", product_id=7),
            _event(day, device, "product_click", product_id=7),
            _event(day, device, "product_exposure", product_id=7),
            _event(day, device, "product_exposure", product_id=7),
            _event(day, device, "product_exposure", product_id=8),
            _event(day, device, "add_to_cart", product_id=7),
            _event(day, device, "checkout_start"),
            _event(day, device, "share", product_id=7),
            _event(day, device, "search", keyword="伞", result_count=0),
            _event(day, device, "search", keyword="伞", result_count=3),
            _event(day, device, "experiment_exposure"),
            _event(day, signed, "page_view", member_id=99),
            _event(day, signed, "search", keyword="雨衣", result_count=2, member_id=99),
            _event(other, device, "page_view"),  # another day: not in this day's rows
        ]
    )
    await mark_dirty([day, other])
    assert await rebuild_dirty(since=day, until=day) == [day]

    assert await _visitor_rows(day) == {
        # 2 page views; product views = the page view of product 7 + the click; 1 cart, 1 checkout, 1 share
        f"a:{device}": (None, 2, 2, 1, 1, 1),
        "m:99": (99, 1, 0, 0, 0, 0),
    }
    products = {
        p.product_id: (p.exposures, p.clicks, p.views, p.add_to_carts)
        for p in await ProductDay.filter(day=day)
    }
    # The share of product 7 is not a product figure.
    assert products == {7: (2, 1, 1, 1), 8: (1, 0, 0, 0)}
    keywords = {k.keyword: (k.searches, k.zero_results) for k in await KeywordDay.filter(day=day)}
    assert keywords == {"伞": (2, 1), "雨衣": (1, 0)}
    assert not await DirtyDay.filter(day=day).exists()
    # The other day stays dirty until something rebuilds it.
    assert await DirtyDay.filter(day=other).exists() and not await VisitorDay.filter(day=other).exists()


async def test_a_rebuild_replaces_the_rows_with_the_latest_events() -> None:
    day = date(2041, 2, 10)
    device = f"r-{uuid.uuid4().hex[:8]}"
    await TrackedEvent.bulk_create([_event(day, device, "page_view")])
    assert await rebuild_days([day, day]) == [day]
    await TrackedEvent.bulk_create([_event(day, device, "page_view"), _event(day, device, "add_to_cart")])
    await mark_dirty([day])
    await mark_dirty([day])  # marking twice is one mark
    assert await DirtyDay.filter(day=day).count() == 1
    assert await rebuild_dirty(since=day, until=day) == [day]
    assert await _visitor_rows(day) == {f"a:{device}": (None, 2, 0, 1, 0, 0)}
    assert await rebuild_days([day]) == [day]  # not dirty: rebuilt all the same, nothing doubles
    assert await VisitorDay.filter(day=day).count() == 1


async def test_concurrent_rebuilders_take_each_dirty_day_once() -> None:
    days = [date(2036, 3, n) for n in range(1, 6)]
    device = f"r-{uuid.uuid4().hex[:8]}"
    await TrackedEvent.bulk_create([_event(d, device, "page_view") for d in days])
    await mark_dirty(days)
    results = await asyncio.gather(*(rebuild_dirty(since=days[0], until=days[-1]) for _ in range(3)))
    rebuilt = [d for result in results for d in result]
    assert sorted(rebuilt) == days  # each day by exactly one of them
    assert await VisitorDay.filter(day__in=days, visitor_key=f"a:{device}").count() == len(days)


async def test_limit_takes_the_oldest_dirty_days_first() -> None:
    days = [date(2036, 4, n) for n in (3, 1, 2)]
    await mark_dirty(days)
    assert await rebuild_dirty(2, since=date(2036, 4, 1), until=date(2036, 4, 30)) == sorted(days)[:2]
    assert await rebuild_dirty(5, since=date(2036, 4, 1), until=date(2036, 4, 30)) == [date(2036, 4, 3)]


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = replace(load_settings(), database_url=database_url, redis_url=None)
    async with AsyncExitStack() as stack:
        yield await build_services(settings, stack)


async def test_the_worker_sweep_rebuilds_dirty_days(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    # Only the rollups: the other sweeps would act on other tests' rows.
    for name in ("enqueue_overdue_closes", "apply_pending", "enqueue_daily_scoring", "enqueue_refresh"):
        monkeypatch.setattr(bff.worker, name, nothing, raising=False)
    day = date(2001, 5, 5)  # older than any other test's dirty day: within the sweep's oldest-first batch
    device = f"r-{uuid.uuid4().hex[:8]}"
    await TrackedEvent.bulk_create([_event(day, device, "page_view")])
    await mark_dirty([day])
    await bff.worker.Worker(services, worker_id="rollup-test").sweep()
    assert await _visitor_rows(day) == {f"a:{device}": (None, 1, 0, 0, 0, 0)}
