"""B1's product detail, cart and order list: hand-written SQL producing the BFF's JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]

from bench.b1_screens import Db, Json, Viewer, _main_image, load_viewer, money
from bff.ids import decode_id, encode_id
from bff.models.marketing import CouponTemplate
from bff.pagination import encode_cursor
from bff.services.cart import unavailable_reason
from bff.services.coupons import discount_text, template_applies_to
from bff.services.money import member_price
from bff.services.pricing import cart_totals

_SKU = "s.id, s.code, s.product_id, s.spec_values, s.price_fen, s.stock, s.reserved"


def _spec_values(row: asyncpg.Record) -> list[Json]:
    return [{"name": s["name"], "value": s["value"]} for s in row["spec_values"]]


def _stock(row: asyncpg.Record) -> int:
    return max(0, int(row["stock"]) - int(row["reserved"]))


def _template(row: asyncpg.Record) -> CouponTemplate:
    # The product's pure coupon rules read attributes only; a namespace stands in for the model.
    return cast(CouponTemplate, SimpleNamespace(**dict(row)))


async def product_detail(db: Db, member_id: int | None, variables: Json) -> Json:
    """The ProductDetail document."""
    pk = decode_id(str(variables["id"]), "Product")
    viewer = await load_viewer(db, member_id)
    p = await db.row(
        "SELECT p.*, b.name AS brand_name, b.logo_url, c.name AS category_name, c.parent_id"
        " FROM product p LEFT JOIN brand b ON b.id = p.brand_id LEFT JOIN category c ON c.id = p.category_id"
        " WHERE p.id = $1 AND p.on_shelf",
        pk,
    )
    if p is None:
        return {"product": None}
    now = datetime.now(UTC)
    skus = await db.rows(
        f"SELECT {_SKU} FROM sku s WHERE s.product_id = $1 ORDER BY s.sort_order, s.id", p["id"]
    )
    templates = await db.rows(
        "SELECT * FROM coupon_template WHERE claimable AND (claim_starts_at IS NULL OR claim_starts_at <= $1)"
        " AND (claim_ends_at IS NULL OR claim_ends_at > $1)"
        " AND (total_quantity = 0 OR claimed_count < total_quantity) ORDER BY id",
        now,
    )
    reviews = await db.row(
        "SELECT COUNT(*) AS n, SUM(rating) AS total FROM review WHERE product_id = $1", p["id"]
    )
    related = await db.rows(
        "SELECT id, title, images, price_fen FROM product WHERE category_id = $1 AND on_shelf AND in_stock"
        " ORDER BY sales_count DESC, id LIMIT 7",
        p["category_id"],
    )
    specs: dict[str, list[str]] = {}
    for sku in skus:
        for spec in sku["spec_values"]:
            seen = specs.setdefault(spec["name"], [])
            if spec["value"] not in seen:
                seen.append(spec["value"])
    category_ids = {p["category_id"]} | ({p["parent_id"]} if p["parent_id"] is not None else set())
    count = int(reviews["n"]) if reviews is not None else 0
    return {
        "product": {
            "id": encode_id("Product", p["id"]),
            "title": p["title"],
            "subtitle": p["subtitle"],
            "images": p["images"],
            "detailHtml": p["detail_html"] or "",
            "price": money(p["price_fen"]),
            "marketPrice": money(p["market_price_fen"]),
            "memberPrice": viewer.member_price(p["price_fen"]),
            "salesCount": p["sales_count"],
            "inStock": p["in_stock"],
            "brand": {
                "id": encode_id("Brand", p["brand_id"]),
                "name": p["brand_name"],
                "logoUrl": p["logo_url"],
            }
            if p["brand_name"] is not None
            else None,
            "category": {"id": encode_id("Category", p["category_id"]), "name": p["category_name"]}
            if p["category_name"] is not None
            else None,
            "specs": [{"name": name, "values": values} for name, values in specs.items()],
            "skus": [
                {
                    "id": encode_id("Sku", s["id"]),
                    "code": s["code"],
                    "specValues": _spec_values(s),
                    "price": money(s["price_fen"]),
                    "memberPrice": viewer.member_price(s["price_fen"]),
                    "stock": _stock(s),
                }
                for s in skus
            ],
            "claimableCoupons": [
                {
                    "id": encode_id("CouponTemplate", t["id"]),
                    "name": t["name"],
                    "description": t["description"],
                    "minSpend": {"amount": t["min_spend_fen"]},
                    "discountText": discount_text(_template(t)),
                }
                for t in templates
                if template_applies_to(_template(t), p["id"], category_ids)
            ],
            "activeCampaigns": await _campaigns(db, p["id"], now),
            "reviewSummary": {
                "count": count,
                "averageRating": round(int(reviews["total"]) / count, 2) if reviews and count else None,
            },
            "relatedProducts": [
                {
                    "id": encode_id("Product", r["id"]),
                    "title": r["title"],
                    "mainImageUrl": _main_image(r["images"]),
                    "price": money(r["price_fen"]),
                }
                for r in related
                if r["id"] != p["id"]
            ][:6],
        }
    }


async def _campaigns(db: Db, product_id: int, now: datetime) -> list[Json]:
    """Flash-sale items, group-buys, presales and bargains running now, in that order, in one statement."""
    rows = await db.rows(
        "SELECT 0 AS kind, i.id, i.flash_price_fen AS a, i.stock_total AS b, i.sold AS c, f.ends_at AS t"
        " FROM flash_sale_item i JOIN flash_sale f ON f.id = i.flash_sale_id"
        " WHERE i.product_id = $1 AND f.starts_at <= $2 AND f.ends_at > $2"
        " UNION ALL SELECT 1, id, group_price_fen, group_size, 0, ends_at FROM group_buy_campaign"
        " WHERE product_id = $1 AND starts_at <= $2 AND ends_at > $2"
        " UNION ALL SELECT 2, id, deposit_fen, deposit_deduction_fen, 0, balance_starts_at"
        " FROM presale_campaign"
        " WHERE product_id = $1 AND deposit_starts_at <= $2 AND balance_ends_at > $2"
        " UNION ALL SELECT 3, id, floor_price_fen, helpers_needed, 0, ends_at FROM bargain_campaign"
        " WHERE product_id = $1 AND starts_at <= $2 AND ends_at > $2 ORDER BY kind, id",
        product_id,
        now,
    )
    group_ids = [r["id"] for r in rows if r["kind"] == 1]
    teams: dict[int, list[asyncpg.Record]] = {g: [] for g in group_ids}
    if group_ids:
        for team in await db.rows(
            "SELECT t.id, t.campaign_id, t.member_count, t.expires_at, m.nickname, m.avatar_url"
            " FROM group_buy_team t LEFT JOIN member m ON m.id = t.leader_id"
            " WHERE t.campaign_id = ANY($1::int[]) AND t.status = 'OPEN' AND t.expires_at > $2"
            " ORDER BY t.member_count DESC, t.expires_at, t.id",
            group_ids,
            now,
        ):
            teams[team["campaign_id"]].append(team)
    result: list[Json] = []
    for r in rows:
        kind = r["kind"]
        if kind == 0:
            total = r["b"]
            result.append(
                {
                    "__typename": "FlashSaleItem",
                    "id": encode_id("FlashSaleItem", r["id"]),
                    "flashPrice": money(r["a"]),
                    "soldPercent": 100 if total <= 0 else min(100, r["c"] * 100 // total),
                    "flashSale": {"endsAt": r["t"].isoformat()},
                }
            )
        elif kind == 1:
            result.append(
                {
                    "__typename": "GroupBuyCampaign",
                    "id": encode_id("GroupBuyCampaign", r["id"]),
                    "groupPrice": money(r["a"]),
                    "groupSize": r["b"],
                    "openTeams": [
                        {
                            "id": encode_id("GroupBuyTeam", t["id"]),
                            "leader": {"nickname": t["nickname"], "avatarUrl": t["avatar_url"]}
                            if t["nickname"] is not None
                            else None,
                            "missingCount": max(0, r["b"] - t["member_count"]),
                            "expiresAt": t["expires_at"].isoformat(),
                        }
                        for t in teams[r["id"]][:3]
                    ],
                }
            )
        elif kind == 2:
            result.append(
                {
                    "__typename": "PresaleCampaign",
                    "id": encode_id("PresaleCampaign", r["id"]),
                    "deposit": money(r["a"]),
                    "depositDeduction": money(r["b"]),
                    "balanceStartsAt": r["t"].isoformat(),
                }
            )
        else:
            result.append(
                {
                    "__typename": "BargainCampaign",
                    "id": encode_id("BargainCampaign", r["id"]),
                    "floorPrice": money(r["a"]),
                    "helpersNeeded": r["b"],
                }
            )
    return result


async def cart(db: Db, member_id: int | None, _: Json) -> Json:
    """The Cart document (a member's cart priced now)."""
    if member_id is None:
        raise PermissionError("sign in")
    viewer: Viewer = await load_viewer(db, member_id)
    rows = await db.rows(
        f"SELECT c.id AS item_id, c.quantity, c.selected, {_SKU}, p.title, p.images, p.on_shelf"
        " FROM cart_item c LEFT JOIN sku s ON s.id = c.sku_id LEFT JOIN product p ON p.id = s.product_id"
        " WHERE c.member_id = $1 ORDER BY c.id DESC",
        member_id,
    )
    discount = viewer.discount
    items: list[Json] = []
    buy: list[tuple[int, int]] = []
    for r in rows:
        has_sku = r["id"] is not None
        stock = _stock(r) if has_sku else 0
        reason = unavailable_reason(
            sku_exists=has_sku and r["title"] is not None,
            on_shelf=bool(r["on_shelf"]),
            stock=stock,
            quantity=r["quantity"],
        )
        unit = member_price(r["price_fen"], discount) if has_sku else 0
        sku: Json | None = None
        if has_sku:
            sku = {
                "id": encode_id("Sku", r["id"]),
                "specValues": _spec_values(r),
                "stock": stock,
                "product": {
                    "id": encode_id("Product", r["product_id"]),
                    "title": r["title"],
                    "mainImageUrl": _main_image(r["images"]),
                }
                if r["title"] is not None
                else None,
            }
        items.append(
            {
                "id": encode_id("CartItem", r["item_id"]),
                "quantity": r["quantity"],
                "selected": r["selected"],
                "sku": sku,
                "unitPrice": money(unit),
                "lineTotal": money(unit * r["quantity"]),
                "available": reason is None,
                "unavailableReason": reason,
            }
        )
        if reason is None and r["selected"] and has_sku:
            buy.append((r["price_fen"], r["quantity"]))
    totals = cart_totals(buy, discount)
    return {
        "cart": {
            "items": items,
            "selectedCount": sum(q for _, q in buy),
            "summary": {
                "itemsTotal": money(totals.items_total),
                "discountTotal": money(totals.discount_total),
                "payable": money(totals.payable),
            },
        }
    }


async def my_orders(db: Db, member_id: int | None, variables: Json) -> Json:
    """The MyOrders document on the ALL tab."""
    if member_id is None:
        return {"viewer": None}
    first = int(variables.get("first", 10))
    total = await db.value("SELECT COUNT(*) FROM orders WHERE member_id = $1", member_id)
    orders = await db.rows(
        "SELECT id, order_no, status, created_at, payable_fen FROM orders WHERE member_id = $1"
        " ORDER BY id DESC LIMIT $2",
        member_id,
        first + 1,
    )
    page = orders[:first]
    lines: dict[int, list[asyncpg.Record]] = {o["id"]: [] for o in page}
    if page:
        for line in await db.rows(
            "SELECT order_id, product_title, image_url, spec_text, quantity, unit_price_fen FROM order_line"
            " WHERE order_id = ANY($1::int[]) ORDER BY id",
            list(lines),
        ):
            lines[line["order_id"]].append(line)
    return {
        "viewer": {
            "orders": {
                "totalCount": int(total),
                "edges": [{"node": _order(o, lines[o["id"]])} for o in page],
                "pageInfo": {
                    "hasNextPage": len(orders) > first,
                    "endCursor": encode_cursor([page[-1]["id"]]) if page else None,
                },
            }
        }
    }


def _order(o: asyncpg.Record, lines: list[asyncpg.Record]) -> Json:
    return {
        "id": encode_id("Order", o["id"]),
        "orderNo": o["order_no"],
        "status": o["status"],
        "createdAt": o["created_at"].isoformat(),
        "payable": money(o["payable_fen"]),
        "itemCount": sum(line["quantity"] for line in lines),
        "lines": [
            {
                "productTitle": line["product_title"],
                "imageUrl": line["image_url"],
                "specText": line["spec_text"],
                "quantity": line["quantity"],
                "unitPrice": money(line["unit_price_fen"]),
            }
            for line in lines
        ],
    }


SCREENS: dict[str, Any] = {"ProductDetail": product_detail, "Cart": cart, "MyOrders": my_orders}
