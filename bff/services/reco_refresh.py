"""Recompute the precomputed recommendations from the database: the worker's `reco.refresh`.

Inputs over the last WINDOW: product views and add-to-carts from tracked events, current cart
lines, paid order lines; the catalog; the CRM's preferred categories of the members seen (skipped,
with a warning, when the CRM is down). Reads are keyset pages of CHUNK rows; interactions are merged
per (visitor, product) while reading, so memory follows distinct pairs, not raw events. The three
tables are replaced in one transaction, so readers see the old lists or the new ones, never a mix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from bff.models.analytics import TrackedEvent
from bff.models.cart import CartItem
from bff.models.catalog import Category, Product, Sku
from bff.models.order import OrderLine
from bff.models.recommendation import MemberRecommendation, PopularProduct, ProductNeighbor
from bff.services.outbox import HandlerContext, enqueue, handler
from bff.services.recommendations import (
    BOUGHT_RECENTLY,
    CART,
    PURCHASE,
    VIEW,
    Interaction,
    MemberInput,
    ProductFacts,
    Recommendations,
    Tuning,
    member_visitor,
    recommend,
)
from bff.services.side_effects import member_ref
from integrations.crm import CrmClient
from integrations.errors import IntegrationError

log = logging.getLogger("bff.reco")

TOPIC = "reco.refresh"
WINDOW = timedelta(days=90)
CHUNK = 5000
WRITE_BATCH = 1000
# A product page view carries the product; a click opens it. Exposures are not interest.
VIEW_EVENTS = ("page_view", "product_click")
CART_EVENTS = ("add_to_cart",)


@dataclass(frozen=True)
class RefreshSummary:
    neighbours: int
    members: int
    popular: int
    crm_used: bool


class _Interactions:
    """Interactions merged per (visitor, product): the strongest weight and the latest time."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, int], tuple[float, datetime]] = {}
        self.members: set[int] = set()
        self.bought: dict[int, set[int]] = {}

    def add(self, visitor: str, product_id: int, weight: float, at: datetime) -> None:
        key = (visitor, product_id)
        seen = self.pairs.get(key)
        self.pairs[key] = (weight, at) if seen is None else (max(seen[0], weight), max(seen[1], at))

    def add_member(self, member_id: int, product_id: int, weight: float, at: datetime) -> None:
        self.members.add(member_id)
        self.add(member_visitor(member_id), product_id, weight, at)

    def as_list(self) -> list[Interaction]:
        return [Interaction(v, p, w, at) for (v, p), (w, at) in self.pairs.items()]


def _utc(value: datetime | str) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


async def _load_events(into: _Interactions, since: datetime, now: datetime) -> None:
    last = 0
    while True:
        rows = (
            await TrackedEvent.filter(
                id__gt=last,
                occurred_at__gte=since,
                occurred_at__lte=now,
                product_id__isnull=False,
                type__in=[*VIEW_EVENTS, *CART_EVENTS],
            )
            .order_by("id")
            .limit(CHUNK)
            .values_list("id", "member_id", "anonymous_id", "type", "product_id", "occurred_at")
        )
        for _, member_id, anonymous_id, kind, product_id, at in rows:
            weight = CART if kind in CART_EVENTS else VIEW
            if member_id is not None:
                into.add_member(int(member_id), int(product_id), weight, _utc(at))
            else:
                into.add(f"a:{anonymous_id}", int(product_id), weight, _utc(at))
        if len(rows) < CHUNK:
            return
        last = int(rows[-1][0])


async def _load_purchases(into: _Interactions, since: datetime, now: datetime) -> None:
    bought_since = now - BOUGHT_RECENTLY
    last = 0
    while True:
        rows = (
            await OrderLine.filter(id__gt=last, order__paid_at__gte=since, order__paid_at__lte=now)
            .order_by("id")
            .limit(CHUNK)
            .values_list("id", "order__member_id", "product_id", "order__paid_at")
        )
        for _, member_id, product_id, paid_at in rows:
            at = _utc(paid_at)
            into.add_member(int(member_id), int(product_id), PURCHASE, at)
            if at >= bought_since:
                into.bought.setdefault(int(member_id), set()).add(int(product_id))
        if len(rows) < CHUNK:
            return
        last = int(rows[-1][0])


async def _load_carts(into: _Interactions, since: datetime) -> None:
    last = 0
    while True:
        rows = (
            await CartItem.filter(id__gt=last, updated_at__gte=since)
            .order_by("id")
            .limit(CHUNK)
            .values_list("id", "member_id", "sku_id", "updated_at")
        )
        skus = dict(
            await Sku.filter(id__in=list({int(r[2]) for r in rows})).values_list("id", "product_id")
            if rows
            else []
        )
        for _, member_id, sku_id, at in rows:
            product_id = skus.get(sku_id)
            if product_id is not None:
                into.add_member(int(member_id), int(product_id), CART, _utc(at))
        if len(rows) < CHUNK:
            return
        last = int(rows[-1][0])


async def _load_products() -> dict[int, ProductFacts]:
    facts: dict[int, ProductFacts] = {}
    last = 0
    while True:
        rows = (
            await Product.filter(id__gt=last)
            .order_by("id")
            .limit(CHUNK)
            .values_list("id", "category_id", "brand_id", "sales_count", "on_shelf", "in_stock")
        )
        for pid, category_id, brand_id, sales, on_shelf, in_stock in rows:
            facts[int(pid)] = ProductFacts(
                int(pid), int(category_id), brand_id, int(sales), bool(on_shelf) and bool(in_stock)
            )
        if len(rows) < CHUNK:
            return facts
        last = int(rows[-1][0])


async def _preferred_categories(
    crm: CrmClient | None, member_ids: Iterable[int]
) -> dict[int, frozenset[int]] | None:
    """Category ids (a preferred top-level category brings its subcategories) per member; None without CRM."""
    if crm is None:
        return None
    refs = {member_ref(m): m for m in sorted(member_ids)}
    try:
        profiles = await crm.batch_get(refs)
    except IntegrationError as exc:
        log.warning("CRM unavailable, recommendations refreshed without preferred categories: %s", exc)
        return None
    rows = await Category.all().values_list("id", "code", "parent_id")
    by_code: dict[str, set[int]] = {}
    code_of = {int(cid): str(code) for cid, code, _ in rows}
    for cid, code, parent_id in rows:
        by_code.setdefault(str(code), set()).add(int(cid))
        if parent_id is not None and int(parent_id) in code_of:
            by_code.setdefault(code_of[int(parent_id)], set()).add(int(cid))
    preferred: dict[int, frozenset[int]] = {}
    for ref, profile in profiles.items():
        member_id = refs.get(ref)
        if member_id is not None:
            ids = {c for code in profile.preferred_category_codes for c in by_code.get(code, ())}
            preferred[member_id] = frozenset(ids)
    return preferred


_REFRESH_LOCK = 0x7265636F  # "reco": the advisory lock id of table replacement


async def _replace(result: Recommendations) -> None:
    neighbours = [
        ProductNeighbor(product_id=pid, neighbor_id=n.product_id, score=n.score, rank=rank)
        for pid, items in result.neighbours.items()
        for rank, n in enumerate(items, start=1)
    ]
    picks = [
        MemberRecommendation(
            member_id=mid, product_id=p.product_id, score=p.score, rank=rank, reason=p.reason
        )
        for mid, items in result.members.items()
        for rank, p in enumerate(items, start=1)
    ]
    popular = [
        PopularProduct(product_id=p.product_id, score=p.score, rank=rank)
        for rank, p in enumerate(result.popular, start=1)
    ]
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "postgres":
            # Two refreshes at once (two workers, or two periods in one batch) would each delete what
            # they can see and insert the same keys: take turns. SQLite serialises writers itself.
            await connection.execute_query(f"SELECT pg_advisory_xact_lock({_REFRESH_LOCK})")
        await ProductNeighbor.all().delete()
        await MemberRecommendation.all().delete()
        await PopularProduct.all().delete()
        await ProductNeighbor.bulk_create(neighbours, batch_size=WRITE_BATCH)
        await MemberRecommendation.bulk_create(picks, batch_size=WRITE_BATCH)
        await PopularProduct.bulk_create(popular, batch_size=WRITE_BATCH)


async def refresh_recommendations(
    crm: CrmClient | None = None, *, now: datetime | None = None, tuning: Tuning = Tuning()
) -> RefreshSummary:
    """Recompute neighbours, member picks and popularity from the last 90 days and store them."""
    now = now or datetime.now(UTC)
    since = now - WINDOW
    interactions = _Interactions()
    await _load_events(interactions, since, now)
    await _load_purchases(interactions, since, now)
    await _load_carts(interactions, since)
    products = await _load_products()
    preferred = await _preferred_categories(crm, interactions.members)
    members = [
        MemberInput(
            member_id=m,
            preferred_category_ids=(preferred or {}).get(m, frozenset()),
            bought_recently=frozenset(interactions.bought.get(m, ())),
        )
        for m in sorted(interactions.members)
    ]
    # CPU-bound: off the event loop, so the worker's other handlers and lease bookkeeping keep going.
    result = await asyncio.to_thread(recommend, interactions.as_list(), products, members, now, tuning)
    await _replace(result)
    summary = RefreshSummary(
        neighbours=sum(len(v) for v in result.neighbours.values()),
        members=len(result.members),
        popular=len(result.popular),
        crm_used=preferred is not None,
    )
    log.info("recommendations refreshed: %s", summary)
    return summary


async def enqueue_refresh(period_minutes: int, now: datetime | None = None) -> None:
    """Ask the worker for one refresh per period (later asks in the same period are no-ops)."""
    period = max(1, period_minutes) * 60
    epoch = int((now or datetime.now(UTC)).timestamp())
    await enqueue(TOPIC, {}, dedupe_key=f"{TOPIC}:{epoch // period}")


@handler(TOPIC)
async def _on_refresh(payload: dict[str, Any], ctx: HandlerContext) -> None:
    # Idempotent: a rerun recomputes the same tables from the same data.
    await refresh_recommendations(ctx.services.crm, now=ctx.now)
