"""Product lists (category, search, recommendations): filters, sort orders and keyset pagination."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from bff.models.catalog import Product
from bff.pagination import decode_cursor, encode_cursor
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


# Sort keys as (column, descending); `id` last makes every order total, so keyset pages never
# skip or repeat a product.
_KEYS: dict[str, list[tuple[str, bool]]] = {
    "relevance": [("relevance", True), ("sales_count", True), ("id", False)],
    "sales": [("sales_count", True), ("id", False)],
    "price_asc": [("price_fen", False), ("id", False)],
    "price_desc": [("price_fen", True), ("id", False)],
    "newest": [("created_at", True), ("id", True)],
}


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


async def list_products(listing: ListingFilter, sort: Sort, first: int, after: str | None) -> ListingPage:
    """One page of products in `sort` order after the cursor `after`."""
    key_name = _key_name(sort, listing.keyword)
    keys = _KEYS[key_name]
    query = _filtered(listing)
    columns = list(PRODUCT_COLUMNS)
    if key_name == "relevance":
        assert listing.keyword is not None
        query = query.annotate(relevance=title_relevance(listing.keyword))
        columns.append("relevance")
    cursor = decode_cursor(after, len(keys))
    if cursor is not None:
        if key_name == "newest":
            cursor = [datetime.fromisoformat(str(cursor[0])), cursor[1]]
        query = query.filter(_after(keys, cursor))
    order = [f"-{c}" if desc else c for c, desc in keys]
    rows = await query.order_by(*order).limit(first + 1).values(*columns)
    page = rows[:first]
    return ListingPage(
        rows=[ProductRow.from_values({c: r[c] for c in PRODUCT_COLUMNS}) for r in page],
        cursors=[encode_cursor(_cursor_values(key_name, r)) for r in page],
        has_next=len(rows) > first,
    )


async def count_products(listing: ListingFilter) -> int:
    """How many products the filter lists in all."""
    return await _filtered(listing).count()
