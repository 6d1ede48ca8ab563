"""B1's screens: hand-written SQL over asyncpg producing the BFF's JSON for the same documents.

The floor for this stack: no GraphQL, no ORM, no cache; the same rows and the same business rules
(pure helpers are reused from the product so the output is equal, not merely similar).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]

from bff.ids import decode_id, encode_id
from bff.pagination import encode_cursor
from bff.services.money import format_fen, member_price
from bff.services.recommendations import BOUGHT_RECENTLY
from bff.services.search import _matches_prefix, normalise_keyword
from bff.services.search_index import TOKEN_MAX_LENGTH, keyword_terms
from bff.services.shop_time import shop_today

Json = dict[str, Any]
_TOP = "\U0010ffff"
_PRODUCT = "p.id, p.title, p.images, p.price_fen, p.market_price_fen, p.sales_count, p.in_stock"


class Db:
    """One pooled connection per screen, counting the statements it sends."""

    statements = 0

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """All rows of one statement."""
        Db.statements += 1
        return cast(list[asyncpg.Record], await self.conn.fetch(sql, *args))

    async def row(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """The first row of one statement, or None."""
        Db.statements += 1
        return cast(asyncpg.Record | None, await self.conn.fetchrow(sql, *args))

    async def value(self, sql: str, *args: Any) -> Any:
        """The first column of the first row."""
        Db.statements += 1
        return await self.conn.fetchval(sql, *args)


def money(fen: int) -> Json:
    """The `{ amount formatted }` selection of Money."""
    return {"amount": fen, "formatted": format_fen(fen)}


def _main_image(images: list[str]) -> str | None:
    return images[0] if images else None


def _iso(moment: datetime) -> str:
    return moment.isoformat()


class Viewer:
    """The signed-in member's row and level discount (None member for anonymous visitors)."""

    def __init__(self, member: asyncpg.Record | None, level: asyncpg.Record | None) -> None:
        self.member = member
        self.level = level

    def member_price(self, price_fen: int) -> Json | None:
        if self.member is None or self.level is None:
            return None
        return money(member_price(price_fen, self.level["discount_percent"]))

    @property
    def discount(self) -> int:
        return self.level["discount_percent"] if self.level is not None else 0


async def load_viewer(db: Db, member_id: int | None) -> Viewer:
    """The member and their level in one statement."""
    if member_id is None:
        return Viewer(None, None)
    row = await db.row(
        "SELECT m.id, m.nickname, m.avatar_url, m.points_balance, m.growth_value, m.level_id,"
        " l.name, l.discount_percent, l.free_shipping FROM member m"
        " LEFT JOIN member_level l ON l.id = m.level_id WHERE m.id = $1",
        member_id,
    )
    return Viewer(row, row if row is not None and row["name"] is not None else None)


async def _categories(db: Db) -> list[asyncpg.Record]:
    return await db.rows("SELECT id, name, parent_id, icon_url FROM category ORDER BY sort_order, id")


def _category_ref(categories: list[asyncpg.Record], pk: int) -> Json | None:
    row = next((c for c in categories if c["id"] == pk), None)
    return {"id": encode_id("Category", row["id"]), "name": row["name"]} if row is not None else None


# --- home ---------------------------------------------------------------------------------------


async def home(db: Db, member_id: int | None, variables: Json) -> Json:
    """The Home document."""
    first = int(variables.get("recommendFirst", 20))
    viewer = await load_viewer(db, member_id)
    now = datetime.now(UTC)
    viewer_json: Json | None = None
    if viewer.member is not None:
        m = viewer.member
        counts = await db.row(
            "SELECT (SELECT COALESCE(SUM(quantity), 0) FROM cart_item WHERE member_id = $1) AS cart,"
            " (SELECT COUNT(*) FROM member_coupon WHERE member_id = $1 AND status = 'UNUSED'"
            " AND expires_at > $2) AS coupons",
            m["id"],
            now,
        )
        assert counts is not None
        level = viewer.level
        viewer_json = {
            "id": encode_id("Member", m["id"]),
            "nickname": m["nickname"],
            "avatarUrl": m["avatar_url"],
            "level": {
                "name": level["name"],
                "discountPercent": level["discount_percent"],
                "freeShipping": level["free_shipping"],
            }
            if level is not None
            else None,
            "pointsBalance": m["points_balance"],
            "cartItemCount": int(counts["cart"]),
            "unusedCouponCount": int(counts["coupons"]),
        }
    banners = await db.rows(
        "SELECT id, image_url, link FROM banner WHERE position = 'HOME_TOP' AND active"
        " AND (starts_at IS NULL OR starts_at <= $1) AND (ends_at IS NULL OR ends_at > $1)"
        " ORDER BY sort_order, id",
        now,
    )
    categories = await _categories(db)
    sale = await db.row(
        "SELECT id, title, starts_at, ends_at FROM flash_sale WHERE starts_at <= $1 AND ends_at > $1"
        " ORDER BY ends_at, id LIMIT 1",
        now,
    )
    flash: Json | None = None
    if sale is not None:
        items = await db.rows(
            "SELECT i.id, i.flash_price_fen, i.stock_total, i.sold, s.id AS sku_id, s.price_fen,"
            " p.id AS product_id, p.title, p.images FROM flash_sale_item i"
            " LEFT JOIN sku s ON s.id = i.sku_id AND s.product_id = i.product_id"
            " LEFT JOIN product p ON p.id = s.product_id"
            " WHERE i.flash_sale_id = $1 ORDER BY i.sort_order, i.id LIMIT 6",
            sale["id"],
        )
        flash = {
            "id": encode_id("FlashSale", sale["id"]),
            "title": sale["title"],
            "startsAt": _iso(sale["starts_at"]),
            "endsAt": _iso(sale["ends_at"]),
            "items": {"edges": [{"node": _flash_item(i)} for i in items]},
        }
    recommended = await _recommended(db, member_id, first, now)
    page = recommended[:first]
    return {
        "viewer": viewer_json,
        "banners": [
            {"id": encode_id("Banner", b["id"]), "imageUrl": b["image_url"], "link": b["link"]}
            for b in banners
        ],
        "categories": [
            {"id": encode_id("Category", c["id"]), "name": c["name"], "iconUrl": c["icon_url"]}
            for c in categories
            if c["parent_id"] is None
        ],
        "activeFlashSale": flash,
        "recommendedProducts": {
            "edges": [
                {
                    "node": {
                        "id": encode_id("Product", r["id"]),
                        "title": r["title"],
                        "mainImageUrl": _main_image(r["images"]),
                        "price": money(r["price_fen"]),
                        "memberPrice": viewer.member_price(r["price_fen"]),
                        "salesCount": r["sales_count"],
                        "inStock": r["in_stock"],
                        "tags": r["tags"],
                        "category": _category_ref(categories, r["category_id"]),
                    }
                }
                for r in page
            ],
            "pageInfo": {
                "hasNextPage": len(recommended) > first,
                "endCursor": encode_cursor([page[-1]["tier"], page[-1]["pos"], page[-1]["id"]])
                if page
                else None,
            },
        },
    }


_RECO_PRODUCT = f"{_PRODUCT}, p.tags, p.category_id"
_NOT_BOUGHT = (
    " AND NOT EXISTS (SELECT 1 FROM order_line l JOIN orders o ON o.id = l.order_id"
    " WHERE o.member_id = $2 AND o.paid_at >= $3 AND l.product_id = p.id)"
)


async def _recommended(db: Db, member_id: int | None, first: int, now: datetime) -> list[asyncpg.Record]:
    """recommendedProducts' first page and one row more: picks, popular; best sellers before any refresh."""
    since = now - BOUGHT_RECENTLY
    args: tuple[Any, ...] = (first + 1,) if member_id is None else (first + 1, member_id, since)
    not_bought = _NOT_BOUGHT if member_id is not None else ""
    listed_sql = popular = (
        f"SELECT 1 AS tier, q.rank AS pos, {_RECO_PRODUCT} FROM reco_popular_product q"
        f" JOIN product p ON p.id = q.product_id WHERE p.on_shelf AND p.in_stock{not_bought}"
    )
    if member_id is not None:
        listed_sql = (
            f"SELECT 0 AS tier, r.rank AS pos, {_RECO_PRODUCT} FROM reco_member_product r"
            " JOIN product p ON p.id = r.product_id WHERE r.member_id = $2 AND p.on_shelf AND p.in_stock"
            f"{not_bought} UNION ALL {popular} AND NOT EXISTS (SELECT 1 FROM reco_member_product r2"
            " WHERE r2.member_id = $2 AND r2.product_id = q.product_id)"
        )
    listed = await db.rows(f"SELECT t.* FROM ({listed_sql}) t ORDER BY t.tier, t.pos, t.id LIMIT $1", *args)
    if listed:
        return listed
    return await db.rows(
        f"SELECT 2 AS tier, -p.sales_count AS pos, {_RECO_PRODUCT} FROM product p"
        f" WHERE p.on_shelf AND p.in_stock{not_bought} ORDER BY p.sales_count DESC, p.id DESC LIMIT $1",
        *args,
    )


def _flash_item(row: asyncpg.Record) -> Json:
    total = row["stock_total"]
    sku: Json | None = None
    if row["sku_id"] is not None:
        product = (
            {
                "id": encode_id("Product", row["product_id"]),
                "title": row["title"],
                "mainImageUrl": _main_image(row["images"]),
            }
            if row["title"] is not None
            else None
        )
        sku = {"id": encode_id("Sku", row["sku_id"]), "product": product, "price": money(row["price_fen"])}
    return {
        "id": encode_id("FlashSaleItem", row["id"]),
        "flashPrice": money(row["flash_price_fen"]),
        "soldPercent": 100 if total <= 0 else min(100, row["sold"] * 100 // total),
        "sku": sku,
    }


# --- product lists ------------------------------------------------------------------------------


def _brand(row: asyncpg.Record) -> Json | None:
    if row["brand_id"] is None or row["brand_name"] is None:
        return None
    return {"id": encode_id("Brand", row["brand_id"]), "name": row["brand_name"]}


async def product_list(db: Db, member_id: int | None, variables: Json) -> Json:
    """The ProductList document (category page), sorted by sales as RELEVANCE without a keyword is."""
    first = int(variables.get("first", 20))
    viewer = await load_viewer(db, member_id)
    categories = await _categories(db)
    pk = decode_id(str(variables.get("categoryId") or ""), "Category")
    category = next((c for c in categories if c["id"] == pk), None)
    ids = [] if category is None else [category["id"], *(c["id"] for c in categories if c["parent_id"] == pk)]
    rows = await db.rows(
        f"SELECT {_PRODUCT}, p.brand_id, b.name AS brand_name FROM product p"
        " LEFT JOIN brand b ON b.id = p.brand_id WHERE p.on_shelf AND p.category_id = ANY($1::int[])"
        " ORDER BY p.sales_count DESC, p.id LIMIT $2",
        ids,
        first + 1,
    )
    total = await db.value(
        "SELECT COUNT(*) FROM product WHERE on_shelf AND category_id = ANY($1::int[])", ids
    )
    page = rows[:first]
    cursors = [encode_cursor([r["sales_count"], r["id"]]) for r in page]
    category_json = None
    if category is not None:
        category_json = {
            "id": encode_id("Category", category["id"]),
            "name": category["name"],
            "children": [
                {"id": encode_id("Category", c["id"]), "name": c["name"], "iconUrl": c["icon_url"]}
                for c in categories
                if c["parent_id"] == category["id"]
            ],
        }
    return {
        "category": category_json,
        "products": {
            "totalCount": int(total),
            "edges": [
                {
                    "cursor": cursor,
                    "node": {
                        "id": encode_id("Product", r["id"]),
                        "title": r["title"],
                        "mainImageUrl": _main_image(r["images"]),
                        "price": money(r["price_fen"]),
                        "marketPrice": money(r["market_price_fen"]),
                        "memberPrice": viewer.member_price(r["price_fen"]),
                        "salesCount": r["sales_count"],
                        "inStock": r["in_stock"],
                        "brand": _brand(r),
                    },
                }
                for r, cursor in zip(page, cursors, strict=True)
            ],
            "pageInfo": {"hasNextPage": len(rows) > first, "endCursor": cursors[-1] if cursors else None},
        },
    }


def _token_ranges(prefixes: Sequence[str], start: int) -> tuple[str, list[str]]:
    parts: list[str] = []
    args: list[str] = []
    for prefix in prefixes:
        n = start + len(args)
        if len(prefix) >= TOKEN_MAX_LENGTH:
            parts.append(f"SELECT product_id FROM search_token WHERE token = ${n + 1}")
            args.append(prefix)
        else:
            parts.append(f"SELECT product_id FROM search_token WHERE token >= ${n + 1} AND token < ${n + 2}")
            args += [prefix, prefix + _TOP]
    return " INTERSECT ".join(parts), args


def _keyword_condition(terms: list[str], start: int) -> tuple[str, list[str]]:
    prefixes = list(dict.fromkeys(t[:TOKEN_MAX_LENGTH] for t in terms))
    subquery, args = _token_ranges(prefixes, start)
    condition = f"p.id IN ({subquery})"
    for term in terms:
        if len(term) > TOKEN_MAX_LENGTH:
            args.append(term)
            condition += f" AND strpos(p.search_text, ${start + len(args)}) > 0"
    return condition, args


async def _hot_keywords(db: Db, first: int, days: int) -> list[str]:
    today = shop_today()
    rows = await db.rows(
        "SELECT keyword FROM search_keyword_daily WHERE day > $1::date - $2::int AND day <= $1"
        " AND last_result_count > 0 GROUP BY keyword ORDER BY SUM(search_count) DESC, keyword LIMIT $3",
        today,
        days,
        first,
    )
    return [r["keyword"] for r in rows]


async def _suggestions(db: Db, raw: str, first: int) -> list[str]:
    prefix = normalise_keyword(raw)
    if not prefix or first <= 0:
        return []
    found: dict[str, None] = {}

    def add(names: list[str]) -> bool:
        for name in names:
            if len(found) >= first:
                return True
            found.setdefault(name.strip(), None)
        return len(found) >= first

    popular = await _hot_keywords(db, 500, 7)
    if add([k for k in popular if _matches_prefix(k, prefix)]):
        return list(found)
    names = await db.rows("SELECT name FROM category UNION ALL SELECT name FROM brand")
    if add([r["name"] for r in names if _matches_prefix(r["name"], prefix)]):
        return list(found)
    if len(prefix) < 2 and prefix.isascii():
        return list(found)
    terms = keyword_terms(prefix)
    if terms:
        condition, args = _keyword_condition(terms, 0)
        titles = await db.rows(
            f"SELECT p.title FROM product p WHERE {condition} AND p.on_shelf"
            f" ORDER BY p.sales_count DESC, p.id LIMIT ${len(args) + 1}",
            *args,
            first,
        )
        add([r["title"] for r in titles])
    return list(found)


async def search(db: Db, member_id: int | None, variables: Json) -> Json:
    """The Search document: hot keywords, suggestions, products by title relevance; records the search."""
    keyword = str(variables["keyword"]).strip()
    first = int(variables.get("first", 20))
    # Read before this search is counted, as the BFF's sibling fields do.
    hot = await _hot_keywords(db, 10, 7)
    suggestions = await _suggestions(db, keyword, 8)
    terms = keyword_terms(keyword)
    condition, args = _keyword_condition(terms, 0)
    hits = " + ".join(
        f"(CASE WHEN strpos(p.search_title, ${len(args) + i + 1}) > 0 THEN 1 ELSE 0 END)"
        for i in range(len(terms))
    )
    rows = await db.rows(
        f"SELECT {_PRODUCT}, {hits} AS relevance FROM product p WHERE p.on_shelf AND {condition}"
        f" ORDER BY relevance DESC, p.sales_count DESC, p.id LIMIT ${len(args) + len(terms) + 1}",
        *args,
        *terms,
        first + 1,
    )
    total = await db.value(f"SELECT COUNT(*) FROM product p WHERE p.on_shelf AND {condition}", *args)
    normalised = normalise_keyword(keyword)
    if normalised:
        await db.value(
            "INSERT INTO search_keyword_daily (day, keyword, search_count, last_result_count)"
            " VALUES ($1, $2, 1, $3) ON CONFLICT (day, keyword) DO UPDATE SET"
            " search_count = search_keyword_daily.search_count + 1,"
            " last_result_count = excluded.last_result_count",
            shop_today(),
            normalised,
            int(total) if rows else 0,
        )
    page = rows[:first]
    return {
        "hotKeywords": hot,
        "searchSuggestions": suggestions,
        "products": {
            "totalCount": int(total),
            "edges": [
                {
                    "node": {
                        "id": encode_id("Product", r["id"]),
                        "title": r["title"],
                        "mainImageUrl": _main_image(r["images"]),
                        "price": money(r["price_fen"]),
                        "salesCount": r["sales_count"],
                        "inStock": r["in_stock"],
                    }
                }
                for r in page
            ],
            "pageInfo": {
                "hasNextPage": len(rows) > first,
                "endCursor": encode_cursor([page[-1]["relevance"], page[-1]["sales_count"], page[-1]["id"]])
                if page
                else None,
            },
        },
    }
