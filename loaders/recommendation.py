"""Recommendation batch functions: a viewer's recommended page and products' related products.

Each is one SQL statement over the precomputed tables joined to the live catalog, so stock, shelf
state and what the member just bought are checked when the list is served, not when it was computed:

- recommended page: the member's picks by rank, then the popular list (picks left out), each row
  on shelf, in stock and not bought by the member in the last 30 days; keyset-paged by
  (tier, position, id). Before the first refresh (both lists empty) best sellers stand in (tier 2,
  position -sales_count), by sales then id, highest first: the order of the (on_shelf, sales_count,
  id) index, so a page of them is an index range, never a sort of the catalog.
- related: the product's neighbours by rank, then its category's best sellers, same filters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bff.errors import PublicError
from bff.models.catalog import Product
from bff.models.order import Order, OrderLine
from bff.models.recommendation import MemberRecommendation, PopularProduct, ProductNeighbor
from bff.pagination import decode_cursor, encode_cursor
from bff.services.recommendations import BOUGHT_RECENTLY
from loaders.cached import as_datetime
from loaders.catalog import PRODUCT_COLUMNS, ProductRow
from loaders.sql import fetch, json_value

PICKS, POPULAR, BEST_SELLERS = 0, 1, 2

Cursor = tuple[int, int, int]  # (tier, position in the tier, product id)


@dataclass(frozen=True, slots=True)
class RecommendedPage:
    rows: list[ProductRow]
    cursors: list[Cursor]
    has_next: bool


_PRODUCT = Product._meta.db_table
_COLUMNS = ", ".join(f"p.{c}" for c in PRODUCT_COLUMNS)
_AVAILABLE = "p.on_shelf AND p.in_stock"
_NOT_BOUGHT = (
    f"NOT EXISTS (SELECT 1 FROM {OrderLine._meta.db_table} l"  # nosec B608
    f" JOIN {Order._meta.db_table} o ON o.id = l.order_id"
    " WHERE o.member_id = :member AND o.paid_at >= :since AND l.product_id = p.id)"
)


def _q(name: str) -> str:
    # Quoted: "rank" is also the name of a window function.
    return f'"{name}"'


def _json_list(value: Any) -> list[Any]:
    return list(json_value(value) or [])


def _product(row: dict[str, Any]) -> ProductRow:
    created = as_datetime(row["created_at"])
    assert created is not None
    return ProductRow(
        id=int(row["id"]),
        title=row["title"],
        subtitle=row["subtitle"],
        category_id=int(row["category_id"]),
        brand_id=row["brand_id"],
        images=_json_list(row["images"]),
        tags=_json_list(row["tags"]),
        on_shelf=bool(row["on_shelf"]),
        price_fen=int(row["price_fen"]),
        market_price_fen=int(row["market_price_fen"]),
        in_stock=bool(row["in_stock"]),
        sales_count=int(row["sales_count"]),
        created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
    )


def _listed(member_id: int | None) -> str:
    """The picks (members only) and the popular list, as one row set with tier and position."""
    not_bought = f" AND {_NOT_BOUGHT}" if member_id is not None else ""
    popular = (
        f"SELECT {POPULAR} AS tier, q.{_q('rank')} AS pos, {_COLUMNS} FROM {PopularProduct._meta.db_table} q"  # nosec B608
        f" JOIN {_PRODUCT} p ON p.id = q.product_id WHERE {_AVAILABLE}{not_bought}"
    )
    if member_id is None:
        return popular
    picks_table = MemberRecommendation._meta.db_table
    picks = (
        f"SELECT {PICKS} AS tier, r.{_q('rank')} AS pos, {_COLUMNS} FROM {picks_table} r"  # nosec B608
        f" JOIN {_PRODUCT} p ON p.id = r.product_id WHERE r.member_id = :member AND {_AVAILABLE}{not_bought}"
    )
    picked = f"SELECT 1 FROM {picks_table} r2 WHERE r2.member_id = :member AND r2.product_id = q.product_id"  # nosec B608
    return f"{picks} UNION ALL {popular} AND NOT EXISTS ({picked})"


def _best_sellers(member_id: int | None) -> str:
    """FROM and WHERE of the stand-in tier: every available product (not bought lately, for members)."""
    not_bought = f" AND {_NOT_BOUGHT}" if member_id is not None else ""
    return f"FROM {_PRODUCT} p WHERE {_AVAILABLE}{not_bought}"  # nosec B608


_AFTER = "WHERE t.tier > :tier OR (t.tier = :tier AND (t.pos > :pos OR (t.pos = :pos AND t.id > :id)))"


def _page_of(rows: list[dict[str, Any]], first: int) -> RecommendedPage:
    page = rows[:first]
    return RecommendedPage(
        rows=[_product(r) for r in page],
        cursors=[(int(r["tier"]), int(r["pos"]), int(r["id"])) for r in page],
        has_next=len(rows) > first,
    )


async def _listed_page(member_id: int | None, params: dict[str, Any], first: int) -> RecommendedPage:
    # At most 50 picks and 200 popular rows, each joined by primary key: sorting them is cheap.
    sql = f"SELECT t.* FROM ({_listed(member_id)}) t {_AFTER} ORDER BY t.tier, t.pos, t.id LIMIT :limit"  # nosec B608
    return _page_of(await fetch(sql, **params, limit=first + 1), first)


async def _best_sellers_page(
    member_id: int | None, params: dict[str, Any], first: int, after: Cursor | None
) -> RecommendedPage:
    # A row comparison, so PostgreSQL starts the backward index scan at the cursor (no filter, no sort).
    keyset = " AND (p.sales_count, p.id) < (:sales, :last)" if after is not None else ""
    sql = (
        f"SELECT {BEST_SELLERS} AS tier, -p.sales_count AS pos, {_COLUMNS} {_best_sellers(member_id)}{keyset}"  # nosec B608
        " ORDER BY p.sales_count DESC, p.id DESC LIMIT :limit"
    )
    bounds = {"sales": -after[1], "last": after[2]} if after is not None else {}
    return _page_of(await fetch(sql, **params, **bounds, limit=first + 1), first)


def _params(member_id: int | None, now: datetime | None = None) -> dict[str, Any]:
    return {"member": member_id, "since": (now or datetime.now(UTC)) - BOUGHT_RECENTLY}


async def recommended_page(member_id: int | None, first: int, after: Cursor | None) -> RecommendedPage:
    """One page of the viewer's recommendations after `after`: one statement (two before any refresh)."""
    params = _params(member_id)
    if after is not None and after[0] == BEST_SELLERS:
        return await _best_sellers_page(member_id, params, first, after)
    # A start before every row of a tier: (tier - 1, 0, 0).
    start = after or (PICKS - 1, 0, 0)
    page = await _listed_page(member_id, {**params, "tier": start[0], "pos": start[1], "id": start[2]}, first)
    if page.rows or after is not None:
        return page
    return await _best_sellers_page(member_id, params, first, None)


async def count_recommended(member_id: int | None) -> int:
    """How many products the viewer's recommendations hold in all."""
    params = _params(member_id)
    rows = await fetch(f"SELECT COUNT(*) AS n FROM ({_listed(member_id)}) t", **params)  # nosec B608
    listed = int(rows[0]["n"])
    if listed:
        return listed
    rows = await fetch(f"SELECT COUNT(*) AS n {_best_sellers(member_id)}", **params)  # nosec B608
    return int(rows[0]["n"])


def _related_sql(member_id: int | None) -> str:
    not_bought = f" AND {_NOT_BOUGHT}" if member_id is not None else ""
    neighbours = (
        f"SELECT nb.product_id AS src, {PICKS} AS tier, nb.{_q('rank')} AS pos, {_COLUMNS}"  # nosec B608
        f" FROM {ProductNeighbor._meta.db_table} nb JOIN {_PRODUCT} p ON p.id = nb.neighbor_id"
        f" WHERE nb.product_id IN (:ids) AND {_AVAILABLE}{not_bought}"
    )
    same_category = (
        f"SELECT s.id AS src, {POPULAR} AS tier,"  # nosec B608
        " ROW_NUMBER() OVER (PARTITION BY s.id ORDER BY p.sales_count DESC, p.id) AS pos,"
        f" {_COLUMNS} FROM {_PRODUCT} s JOIN {_PRODUCT} p ON p.category_id = s.category_id AND p.id <> s.id"
        f" WHERE s.id IN (:ids) AND {_AVAILABLE}{not_bought}"
    )
    return (
        f"SELECT t.* FROM ({neighbours} UNION ALL {same_category}) t"  # nosec B608
        f" WHERE t.tier = {PICKS} OR t.pos <= :n ORDER BY t.src, t.tier, t.pos"
    )


async def load_related_products(keys: Sequence[tuple[int, int, int | None]]) -> list[list[ProductRow]]:
    """For (product_id, n, member_id) keys: up to n neighbours, then same-category best sellers.

    One statement per distinct viewer (a request has one), whatever the number of products.
    """
    by_member: dict[int | None, list[tuple[int, int, int | None]]] = defaultdict(list)
    for key in keys:
        by_member[key[2]].append(key)
    found: dict[tuple[int, int, int | None], list[ProductRow]] = {}
    for member_id, member_keys in by_member.items():
        n = max(k[1] for k in member_keys)
        ids = sorted({k[0] for k in member_keys})
        rows = await fetch(_related_sql(member_id), **_params(member_id), ids=ids, n=n)
        grouped: dict[int, list[ProductRow]] = defaultdict(list)
        for row in rows:
            src = int(row["src"])
            if all(r.id != int(row["id"]) for r in grouped[src]):
                grouped[src].append(_product(row))
        for key in member_keys:
            found[key] = grouped[key[0]][: key[1]]
    return [found[k] for k in keys]


async def load_recommended_pages(
    keys: Sequence[tuple[int | None, int, Cursor | None]],
) -> list[RecommendedPage]:
    """For (member_id or None, first, after) keys: the page; a screen asks for one."""
    return [await recommended_page(member_id, first, after) for member_id, first, after in keys]


def encode_recommended_cursor(cursor: Cursor) -> str:
    """The opaque cursor of one recommended row."""
    return encode_cursor(list(cursor))


def decode_recommended_cursor(after: str | None) -> Cursor | None:
    """The (tier, position, id) inside `after`; a cursor from another list is a clear error."""
    values = decode_cursor(after, 3)
    if values is None:
        return None
    if not all(isinstance(v, int) for v in values) or values[0] not in (PICKS, POPULAR, BEST_SELLERS):
        raise PublicError("`after` is not a cursor for this list")
    return (int(values[0]), int(values[1]), int(values[2]))
