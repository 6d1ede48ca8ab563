"""Demo behaviour for the dashboard: 30 days of visits by a few hundred devices and the demo members,
with a realistic funnel (views → clicks → carts → checkouts), searches (some finding nothing), and
visitors who come back less and less often; then the daily rollups, rebuilt from those events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bff.models.analytics import KeywordDay, ProductDay, TrackedEvent, VisitorDay
from bff.seed.context import SeedContext
from bff.seed.words import HOT_KEYWORDS, ZERO_RESULT_KEYWORDS
from bff.services.rollups import rebuild_days
from bff.services.shop_time import SHOP_TZ

DAYS = 30
DEVICES = 300
_COLUMNS = (
    "id", "client_event_id", "anonymous_id", "member_id", "session_id", "type", "page", "product_id",
    "keyword", "result_count", "properties", "occurred_at", "received_at", "day",
)  # fmt: skip
_HOME, _PRODUCT, _SEARCH = "pages/home/index", "pages/product/index", "pages/search/index"


@dataclass
class _Visitor:
    device: str
    member_id: int | None
    first_day: int  # days after the first seeded day
    loyalty: float  # chance of coming back the next day, fading with time


@dataclass
class _Events:
    """The rows being built, with a per-device counter for client event ids."""

    ctx: SeedContext
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def add(self, visitor: _Visitor, session: str, at: datetime, type_: str, **extra: Any) -> None:
        n = self.counters.get(visitor.device, 0) + 1
        self.counters[visitor.device] = n
        moment = at.astimezone(UTC)
        self.rows.append(
            (
                self.ctx.ids.take(TrackedEvent), f"seed-{n}", visitor.device, visitor.member_id, session,
                type_, extra.get("page", _HOME), extra.get("product_id"), extra.get("keyword"),
                extra.get("result_count"), {}, moment, moment, at.astimezone(SHOP_TZ).date(),
            )
        )  # fmt: skip


def _visitors(ctx: SeedContext, rng: random.Random) -> list[_Visitor]:
    devices = [
        # Most first visits are recent: the shop is growing.
        _Visitor(
            f"seed-dev-{n:04d}", None, min(DAYS - 1, int(DAYS * rng.random() ** 0.7)), rng.uniform(0.1, 0.45)
        )
        for n in range(DEVICES)
    ]
    members = [
        _Visitor(f"seed-{ref.name}", ref.id, rng.randrange(3), rng.uniform(0.45, 0.8))
        for ref in sorted(ctx.members.values(), key=lambda r: r.id)
    ]
    return devices + members


def _session(
    ctx: SeedContext, rng: random.Random, events: _Events, visitor: _Visitor, day: date, number: int
) -> None:
    """One visit: home, a few products shown, maybe a search, a click, a cart, a checkout, a share."""
    at = datetime.combine(day, time(rng.randrange(8, 23), rng.randrange(60)), SHOP_TZ)
    if at > ctx.now:
        return  # today's visits are only those already made
    session = f"{visitor.device}-{number}"
    step = timedelta(seconds=rng.randrange(5, 40))
    products = ctx.pools.buyable[:80]
    events.add(visitor, session, at, "page_view")
    shown = rng.sample(products, min(len(products), rng.randrange(3, 7)))
    for product in shown:
        events.add(visitor, session, at, "product_exposure", product_id=product.id)
    if rng.random() < 0.35:
        at += step
        pool = ZERO_RESULT_KEYWORDS if rng.random() < 0.12 else HOT_KEYWORDS
        keyword = rng.choices([k for k, _ in pool], weights=[w for _, w in pool])[0]
        found = ctx.keyword_results.get(keyword, 0)
        events.add(visitor, session, at, "search", page=_SEARCH, keyword=keyword, result_count=found)
    if not shown or rng.random() > 0.6:
        return
    product = rng.choice(shown)
    at += step
    events.add(visitor, session, at, "product_click", product_id=product.id)
    events.add(visitor, session, at, "page_view", page=_PRODUCT, product_id=product.id)
    if rng.random() < 0.05:
        events.add(visitor, session, at + step, "share", page=_PRODUCT, product_id=product.id)
    if rng.random() < 0.18:
        at += step
        events.add(visitor, session, at, "add_to_cart", page=_PRODUCT, product_id=product.id)
        if rng.random() < 0.4:
            events.add(visitor, session, at + step, "checkout_start", page="pages/checkout/index")


async def seed_analytics(ctx: SeedContext) -> None:
    """Write the demo events of the last 30 shop days (today included) and their rollups."""
    rng = ctx.rng("analytics")
    today = ctx.now.astimezone(SHOP_TZ).date()
    first = today - timedelta(days=DAYS - 1)
    events = _Events(ctx)
    for visitor in _visitors(ctx, rng):
        number = 0
        for offset in range(visitor.first_day, DAYS):
            since = offset - visitor.first_day
            if since and rng.random() > visitor.loyalty * 0.93**since:
                continue
            number += 1
            _session(ctx, rng, events, visitor, first + timedelta(days=offset), number)
    await ctx.writer.insert(TrackedEvent, _COLUMNS, events.rows)
    days = sorted({row[-1] for row in events.rows})
    await rebuild_days(days)
    # Rollup rows are written by SQL, not the writer: count them into the seed's summary.
    for model in (VisitorDay, ProductDay, KeywordDay):
        table = model._meta.db_table
        written = await model.filter(day__in=days).using_db(ctx.writer.connection).count()
        ctx.writer.counts[table] = ctx.writer.counts.get(table, 0) + written
