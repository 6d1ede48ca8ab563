"""Product lists (category, search, recommendations): filters, sort orders and keyset pagination.

Keyword lists cannot be read in order from an index (relevance is computed per row, and every match
is gathered before sorting), so their order is computed once per catalog generation and cached as
the sort keys of the first RANKING_DEPTH matches; a page inside them is a bisect and a lookup by id,
a page past them (deep scrolling of a broad keyword) runs the live keyset query from its cursor.
"""

from __future__ import annotations

import enum
import hashlib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from bff.cache import Cache
from bff.errors import PublicError
from bff.models.catalog import Product
from bff.pagination import decode_cursor, encode_cursor
from bff.services.generation_cache import get_current, set_current
from bff.services.search import keyword_filter, title_relevance
from bff.services.search_index import keyword_terms
from loaders.catalog import PRODUCT_COLUMNS, ProductRow


class Sort(enum.Enum):
    RELEVANCE = "RELEVANCE"
    SALES = "SALES"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    NEWEST = "NEWEST"


@dataclass(frozen=True)
class ListingFilter:
    """What to list; only on-shelf products are ever listed. `category_ids=[]` lists nothing."""

    category_ids: list[int] | None = None
    brand_ids: list[int] | None = None
    min_price: int | None = None
    max_price: int | None = None
    in_stock_only: bool = False
    keyword: str | None = None
    exclude_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ListingPage:
    rows: list[ProductRow]
    cursors: list[str]
    has_next: bool
    total: int | None = None  # known when the page came from a complete ranking


# Matches whose order is cached per keyword list: 50 pages of 20, far more than shoppers scroll.
RANKING_DEPTH = 1_000
RANKING_TTL = 600.0  # a backstop: every catalog write moves the generation the ranking is tagged with


# Sort keys as (column, descending); `id` last makes every order total, so keyset pages never
# skip or repeat a product.
_KEYS: dict[str, list[tuple[str, bool]]] = {
    "relevance": [("relevance", True), ("sales_count", True), ("id", False)],
    "sales": [("sales_count", True), ("id", False)],
    "price_asc": [("price_fen", False), ("id", False)],
    "price_desc": [("price_fen", True), ("id", False)],
    "newest": [("created_at", True), ("id", True)],
}


# Orders whose keys are all integers, so a ranking can store them negated where descending.
_RANKABLE = frozenset({"relevance", "sales", "price_asc", "price_desc"})


def _sorted_ids(ids: list[int] | tuple[int, ...] | None) -> list[int] | None:
    return None if ids is None else sorted(set(ids))


def filter_key(listing: ListingFilter) -> str:
    """A digest of the filter, equal for filters that list the same products (cache keys)."""
    # The keyword filter only depends on the set of its terms ("蓝牙 降噪" lists what "降噪，蓝牙" does).
    terms = sorted(set(keyword_terms(listing.keyword))) if listing.keyword else []
    material = orjson.dumps(
        {
            "c": _sorted_ids(listing.category_ids),
            "b": _sorted_ids(listing.brand_ids),
            "lo": listing.min_price,
            "hi": listing.max_price,
            "s": listing.in_stock_only,
            "k": terms,
            "x": _sorted_ids(listing.exclude_ids),
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(material).hexdigest()[:32]


def _key_name(sort: Sort, keyword: str | None) -> str:
    if sort is Sort.RELEVANCE:
        return "relevance" if keyword and keyword_terms(keyword) else "sales"
    return str(sort.value).lower()


def _filtered(listing: ListingFilter) -> QuerySet[Product]:
    query = Product.filter(on_shelf=True)
    if listing.category_ids is not None:
        query = query.filter(category_id__in=listing.category_ids)
    if listing.brand_ids is not None:
        query = query.filter(brand_id__in=listing.brand_ids)
    if listing.min_price is not None:
        query = query.filter(price_fen__gte=listing.min_price)
    if listing.max_price is not None:
        query = query.filter(price_fen__lte=listing.max_price)
    if listing.in_stock_only:
        query = query.filter(in_stock=True)
    if listing.keyword:
        query = query.filter(keyword_filter(listing.keyword))
    if listing.exclude_ids:
        query = query.exclude(id__in=list(listing.exclude_ids))
    return query


def _after(keys: list[tuple[str, bool]], values: list[Any]) -> Q:
    """Rows strictly after `values` in the order `keys`: (a > x) OR (a = x AND b > y) OR …"""
    condition: Q | None = None
    for i, (column, descending) in enumerate(keys):
        equal = {c: v for (c, _), v in zip(keys[:i], values[:i], strict=True)}
        step = Q(**equal, **{f"{column}__{'lt' if descending else 'gt'}": values[i]})
        condition = step if condition is None else condition | step
    assert condition is not None
    return condition


def _cursor_values(key_name: str, row: dict[str, Any]) -> list[Any]:
    values = []
    for column, _ in _KEYS[key_name]:
        value = row[column]
        values.append(value.isoformat() if isinstance(value, datetime) else int(value))
    return values


def _ordered(listing: ListingFilter, key_name: str) -> QuerySet[Product]:
    query = _filtered(listing)
    if key_name == "relevance":
        assert listing.keyword is not None
        query = query.annotate(relevance=title_relevance(listing.keyword))
    return query.order_by(*(f"-{c}" if desc else c for c, desc in _KEYS[key_name]))


@dataclass(frozen=True)
class _Ranking:
    keys: list[list[int]]  # the first matches' sort keys, descending ones negated: ascending
    complete: bool  # every match is in keys


async def _ranking(cache: Cache, listing: ListingFilter, key_name: str) -> _Ranking:
    key = f"ranking:{key_name}:{filter_key(listing)}"
    generation, entry = await get_current(cache, key)
    if entry is not None:
        complete, cached = orjson.loads(entry)
        return _Ranking(cached, bool(complete))
    keys = _KEYS[key_name]
    rows = await _ordered(listing, key_name).limit(RANKING_DEPTH + 1).values_list(*(c for c, _ in keys))
    ranked = [[-int(v) if desc else int(v) for v, (_, desc) in zip(row, keys, strict=True)] for row in rows]
    ranking = _Ranking(ranked[:RANKING_DEPTH], len(ranked) <= RANKING_DEPTH)
    await set_current(cache, key, generation, orjson.dumps([ranking.complete, ranking.keys]), RANKING_TTL)
    return ranking


async def _ranked_page(
    cache: Cache, listing: ListingFilter, key_name: str, first: int, cursor: list[Any] | None
) -> ListingPage | None:
    ranking = await _ranking(cache, listing, key_name)
    keys = _KEYS[key_name]
    start = 0
    if cursor is not None:
        if not all(isinstance(v, int) for v in cursor):
            raise PublicError("`after` is not a cursor for this list and sort order")
        position = [-int(v) if desc else int(v) for v, (_, desc) in zip(cursor, keys, strict=True)]
        start = bisect_right(ranking.keys, position)
    if not ranking.complete and start + first >= len(ranking.keys):
        return None  # the page (or whether one follows it) lies past the cached matches
    picked = ranking.keys[start : start + first]
    ids = [entry[-1] for entry in picked]
    found = {r["id"]: r for r in await Product.filter(id__in=ids).values(*PRODUCT_COLUMNS)} if ids else {}
    # A product deleted since the ranking is skipped; every other change bumps the generation first.
    kept = [entry for entry in picked if entry[-1] in found]
    return ListingPage(
        rows=[ProductRow.from_values(found[entry[-1]]) for entry in kept],
        cursors=[
            encode_cursor([-v if desc else v for v, (_, desc) in zip(entry, keys, strict=True)])
            for entry in kept
        ],
        has_next=start + first < len(ranking.keys),
        total=len(ranking.keys) if ranking.complete else None,
    )


async def list_products(
    listing: ListingFilter, sort: Sort, first: int, after: str | None, cache: Cache | None = None
) -> ListingPage:
    """One page of products in `sort` order after the cursor `after`.

    With a cache, keyword lists are paged from their cached ranking (see the module docstring).
    """
    key_name = _key_name(sort, listing.keyword)
    keys = _KEYS[key_name]
    cursor = decode_cursor(after, len(keys))
    if cache is not None and listing.keyword and key_name in _RANKABLE:
        ranked = await _ranked_page(cache, listing, key_name, first, cursor)
        if ranked is not None:
            return ranked
    query = _ordered(listing, key_name)
    columns = list(PRODUCT_COLUMNS)
    if key_name == "relevance":
        columns.append("relevance")
    if cursor is not None:
        if key_name == "newest":
            cursor = [datetime.fromisoformat(str(cursor[0])), cursor[1]]
        query = query.filter(_after(keys, cursor))
    rows = await query.limit(first + 1).values(*columns)
    page = rows[:first]
    return ListingPage(
        rows=[ProductRow.from_values({c: r[c] for c in PRODUCT_COLUMNS}) for r in page],
        cursors=[encode_cursor(_cursor_values(key_name, r)) for r in page],
        has_next=len(rows) > first,
    )


async def count_products(listing: ListingFilter) -> int:
    """How many products the filter lists in all."""
    return await _filtered(listing).count()
