"""The operators' dashboard on a million events.

In its own PostgreSQL database (`--database`, default bff_bench_dash, on the server of DATABASE_URL;
dropped and recreated each run) it seeds the demo shop, adds members and 30 days of orders, bulk
loads 1,000,000 tracked events over those 30 days (binary COPY), rebuilds the daily rollups, then
times the DashboardOverview operation over HTTP (in-process ASGI) for the 30 days, DAY and WEEK.
Prints {"events", "load_seconds", "rollup_seconds", "dashboard_ms": {"day", "week"}} as JSON.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.dashboard_bench
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
from tortoise import connections
from tortoise.transactions import in_transaction

from bff.app import create_app
from bff.auth import Principal, Role, issue_token
from bff.db import close_db, init_db, migrate
from bff.documents import operations
from bff.models.analytics import TrackedEvent
from bff.models.catalog import Product
from bff.models.marketing import FlashSaleItem, GroupBuyCampaign, PresaleCampaign
from bff.models.member import Member, MemberLevel
from bff.models.order import Order, OrderLine
from bff.seed import seed_demo
from bff.seed.writer import BulkWriter
from bff.services.rollups import rebuild_days
from bff.services.shop_time import SHOP_TZ
from bff.services.tracking import EVENT_COLUMNS
from bff.settings import load_settings

DAYS = 30
MEMBERS = 20_000
DEVICES = 60_000
ORDERS = 30_000
CHUNK = 100_000
_EVENT_COLUMNS = ("id", *EVENT_COLUMNS)
_KEYWORDS = [f"关键词{n}" for n in range(400)]


def _database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _recreate(base: str, name: str) -> str:
    admin = await asyncpg.connect("postgresql://" + _database_url(base, "postgres").split("://", 1)[1])
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return _database_url(base, name)


def _events(
    rng: random.Random, total: int, first_id: int, days: list[date], products: list[int], members: list[int]
) -> Iterator[list[tuple[Any, ...]]]:
    """`total` events in chunks: sessions of a home view, exposures, searches, clicks, carts, checkouts."""
    chunk: list[tuple[Any, ...]] = []
    made = 0
    session = 0
    while made < total:
        session += 1
        visitor = int(DEVICES * rng.random() ** 2)  # some devices come back far more often
        member = members[visitor % len(members)] if visitor < len(members) // 2 else None
        device = f"dev-{visitor}"
        day = days[int(DAYS * rng.random() ** 0.8)]
        at = datetime(day.year, day.month, day.day, rng.randrange(8, 24), rng.randrange(60), tzinfo=SHOP_TZ)
        moment = at.astimezone(UTC)
        events: list[tuple[str, str, int | None, str | None, int | None]] = [
            ("page_view", "pages/home/index", None, None, None)
        ]
        shown = rng.sample(products, 4)
        events += [("product_exposure", "pages/home/index", p, None, None) for p in shown]
        if rng.random() < 0.35:
            keyword = _KEYWORDS[int(len(_KEYWORDS) * rng.random() ** 3)]
            found = 0 if keyword.endswith("7") else rng.randrange(1, 50)
            events.append(("search", "pages/search/index", None, keyword, found))
        if rng.random() < 0.6:
            product = shown[0]
            events += [("product_click", "pages/home/index", product, None, None)]
            events += [("page_view", "pages/product/index", product, None, None)]
            if rng.random() < 0.18:
                events.append(("add_to_cart", "pages/product/index", product, None, None))
                if rng.random() < 0.4:
                    events.append(("checkout_start", "pages/checkout/index", None, None, None))
        for n, (type_, page, product_id, searched, results) in enumerate(events[: total - made]):
            chunk.append(
                (
                    first_id + made,
                    f"{session}-{n}",
                    device,
                    member,
                    f"s{session}",
                    type_,
                    page,
                    product_id,
                    searched,
                    results,
                    "{}",
                    moment,
                    moment,
                    day,
                )
            )
            made += 1
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


async def _members_and_orders(writer: BulkWriter, rng: random.Random, days: list[date]) -> list[int]:
    """Members registered over half a year, and 30 days of orders (some in campaigns)."""
    level = await MemberLevel.all().using_db(writer.connection).order_by("rank").first()
    assert level is not None
    first_member = await writer.max_id(Member) + 1
    now = datetime.now(UTC)
    members = list(range(first_member, first_member + MEMBERS))
    await writer.insert(
        Member,
        ("id", "openid", "level_id", "created_at"),
        ((m, f"o_bench_{m}", level.id, now - timedelta(days=rng.uniform(0, 180))) for m in members),
    )
    products = await Product.all().using_db(writer.connection).values_list("id", "title")
    campaigns = [
        ("FLASH_SALE", await FlashSaleItem.all().using_db(writer.connection).values_list("id", flat=True)),
        (
            "GROUP_BUY_OPEN",
            await GroupBuyCampaign.all().using_db(writer.connection).values_list("id", flat=True),
        ),
        ("PRESALE", await PresaleCampaign.all().using_db(writer.connection).values_list("id", flat=True)),
    ]
    first_order = await writer.max_id(Order) + 1
    first_line = await writer.max_id(OrderLine) + 1
    orders: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    for n in range(ORDERS):
        order_id = first_order + n
        day = days[rng.randrange(DAYS)]
        created = datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60), tzinfo=SHOP_TZ)
        paid = created + timedelta(minutes=rng.randrange(1, 30)) if rng.random() < 0.8 else None
        kind, refs = rng.choice(campaigns) if rng.random() < 0.15 else (None, [])
        bought = rng.sample(products, rng.randrange(1, 4))
        payable = 0
        for product_id, title in bought:
            quantity = rng.randrange(1, 3)
            paid_fen = quantity * rng.randrange(990, 29900)
            payable += paid_fen
            unit = paid_fen // quantity
            lines.append(
                (first_line + len(lines), order_id, 0, product_id, title, quantity, unit, paid_fen, paid_fen)
            )
        status = "PAID" if paid else "CLOSED"
        ref = rng.choice(refs) if refs else None
        member = rng.choice(members)
        orders.append(
            (order_id, f"B{order_id:012d}", member, status, payable, paid, created, created, kind, ref)
        )
    await writer.insert(
        Order,
        (
            "id",
            "order_no",
            "member_id",
            "status",
            "payable_fen",
            "paid_at",
            "created_at",
            "updated_at",
            "campaign_kind",
            "campaign_ref",
        ),
        orders,
    )
    await writer.insert(
        OrderLine,
        (
            "id",
            "order_id",
            "sku_id",
            "product_id",
            "product_title",
            "quantity",
            "unit_price_fen",
            "line_total_fen",
            "paid_fen",
        ),
        lines,
    )
    return members


async def _load(events: int, days: list[date]) -> tuple[int, float]:
    """Members, orders and `events` events; returns the events stored and the seconds the events took."""
    rng = random.Random(20240601)
    async with in_transaction() as connection:
        writer = BulkWriter(connection)
        members = await _members_and_orders(writer, rng, days)
        shelf = await Product.filter(on_shelf=True).using_db(connection).values_list("id")
        products = [int(row[0]) for row in shelf]
        started = time.perf_counter()
        # Topped up to `events` in all: the demo seed has written a few thousand already.
        already = await TrackedEvent.all().using_db(connection).count()
        first_id = await writer.max_id(TrackedEvent) + 1
        for chunk in _events(rng, events - already, first_id, days, products, members):
            await writer.insert(TrackedEvent, _EVENT_COLUMNS, chunk)
        await writer.reset_sequences()
    seconds = time.perf_counter() - started
    await connections.get("default").execute_script("ANALYZE")  # as autovacuum would after such a load
    return await TrackedEvent.all().count(), seconds


async def _time_dashboard(days: list[date], runs: int) -> dict[str, float]:
    settings = replace(load_settings(), redis_url=None, inprocess_worker=False)
    token = issue_token(Principal(role=Role.OPERATOR, name="bench"), settings.jwt_secret, 3600).token
    app = create_app(settings, manage_database=False)
    variables: dict[str, Any] = {
        "range": {"from": days[0].isoformat(), "to": days[-1].isoformat()},
        "top": 10,
    }
    body = {
        "query": operations()["DashboardOverview"],
        "operationName": "DashboardOverview",
        "variables": variables,
    }
    timings: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as http:
            for granularity in ("DAY", "WEEK"):
                variables["granularity"] = granularity
                samples = []
                for _ in range(runs + 1):  # the first run warms caches and is not counted
                    started = time.perf_counter()
                    response = await http.post(
                        "/graphql", json=body, headers={"Authorization": f"Bearer {token}"}
                    )
                    samples.append((time.perf_counter() - started) * 1000)
                    payload = response.json()
                    if response.status_code != 200 or payload.get("errors"):
                        sys.exit(f"dashboard failed: {response.text[:400]}")
                timings[granularity.lower()] = round(statistics.median(samples[1:]), 1)
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", default="bff_bench_dash", help="database to (re)create on the server")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed dashboard runs per granularity")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith("postgres"):
        sys.exit("DATABASE_URL must be a PostgreSQL URL (the benchmark creates its own database there)")
    url = await _recreate(base, args.database)
    await migrate(url)
    await init_db(url)
    try:
        await seed_demo(300)
        today = datetime.now(SHOP_TZ).date()
        days = [today - timedelta(days=DAYS - 1 - n) for n in range(DAYS)]
        events, load_seconds = await _load(args.events, days)
        started = time.perf_counter()
        await rebuild_days(days)
        rollup_seconds = time.perf_counter() - started
        dashboard_ms = await _time_dashboard(days, args.runs)
    finally:
        await close_db()
    print(
        orjson.dumps(
            {
                "events": events,
                "load_seconds": round(load_seconds, 1),
                "rollup_seconds": round(rollup_seconds, 1),
                "dashboard_ms": dashboard_ms,
            }
        ).decode()
    )


if __name__ == "__main__":
    asyncio.run(main())
