"""Catalog batch functions: products, SKUs, brands, categories, reviews, related products."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bff.cache import Cache
from bff.models.catalog import Brand, Category, Product, Sku
from loaders import sql
from loaders.cached import as_datetime, read_through

PRODUCT_COLUMNS = (
    "id",
    "title",
    "subtitle",
    "category_id",
    "brand_id",
    "images",
    "tags",
    "on_shelf",
    "price_fen",
    "market_price_fen",
    "in_stock",
    "sales_count",
    "created_at",
)


@dataclass(frozen=True, slots=True)
class ProductRow:
    id: int
    title: str
    subtitle: str
    category_id: int
    brand_id: int | None
    images: list[str]
    tags: list[str]
    on_shelf: bool
    price_fen: int
    market_price_fen: int
    in_stock: bool
    sales_count: int
    created_at: datetime

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> ProductRow:
        """A row from `.values(*PRODUCT_COLUMNS)` or its cached JSON."""
        created = as_datetime(values["created_at"])
        assert created is not None
        return cls(**{**values, "created_at": created})

    @property
    def main_image_url(self) -> str | None:
        return self.images[0] if self.images else None


@dataclass(frozen=True, slots=True)
class SkuRow:
    id: int
    code: str
    product_id: int
    spec_values: list[dict[str, str]]
    price_fen: int
    market_price_fen: int
    stock: int  # buyable now: the ERP's stock less reservations


SKU_COLUMNS = (
    "id",
    "code",
    "product_id",
    "spec_values",
    "price_fen",
    "market_price_fen",
    "stock",
    "reserved",
)


def _sku_row(values: dict[str, Any]) -> SkuRow:
    # Shoppers see what they can buy: the ERP's stock less what unpaid orders hold.
    values = dict(values)
    reserved = values.pop("reserved", 0)
    return SkuRow(**{**values, "stock": max(0, values["stock"] - reserved)})


@dataclass(frozen=True, slots=True)
class CategoryRow:
    id: int
    name: str
    parent_id: int | None
    icon_url: str
    sort_order: int


@dataclass(frozen=True, slots=True)
class BrandRow:
    id: int
    name: str
    logo_url: str


@dataclass(frozen=True, slots=True)
class ReviewSummaryRow:
    count: int
    average_rating: float | None


async def load_products_by_id(cache: Cache, ttl: float, ids: Sequence[int]) -> list[ProductRow | None]:
    """Products by id (on or off shelf), through the catalog cache."""

    async def fetch(missing: list[int]) -> dict[int, Any]:
        rows = await Product.filter(id__in=missing).values(*PRODUCT_COLUMNS)
        return {row["id"]: row for row in rows}

    values = await read_through(cache, "catalog:product", ids, ttl, fetch)
    return [ProductRow.from_values(v) if v is not None else None for v in values]


async def load_skus_by_product_id(cache: Cache, ttl: float, product_ids: Sequence[int]) -> list[list[SkuRow]]:
    """Each product's SKUs in display order, through the catalog cache."""

    async def fetch(missing: list[int]) -> dict[int, Any]:
        grouped: dict[int, list[dict[str, Any]]] = {pid: [] for pid in missing}
        rows = await Sku.filter(product_id__in=missing).order_by("sort_order", "id").values(*SKU_COLUMNS)
        for row in rows:
            grouped[row["product_id"]].append(row)
        return dict(grouped)

    values = await read_through(cache, "catalog:skus", product_ids, ttl, fetch)
    return [[_sku_row(row) for row in (v or [])] for v in values]


_SKUS_BY_ID = f"SELECT {', '.join(SKU_COLUMNS)} FROM sku WHERE id IN (:ids)"  # nosec B608


async def load_skus_by_id(ids: Sequence[int]) -> list[SkuRow | None]:
    """SKUs by id, straight from the database: carts and checkout need the current price and stock."""
    rows = await sql.fetch(_SKUS_BY_ID, ids=list(ids))
    by_id = {row["id"]: _sku_row({**row, "spec_values": sql.json_value(row["spec_values"])}) for row in rows}
    return [by_id.get(i) for i in ids]


async def load_all_categories(cache: Cache, ttl: float) -> list[CategoryRow]:
    """The whole category tree (small), cached as one entry."""

    async def fetch(_: list[int]) -> dict[int, Any]:
        rows = (
            await Category.all()
            .order_by("sort_order", "id")
            .values("id", "name", "parent_id", "icon_url", "sort_order")
        )
        return {0: rows}

    (values,) = await read_through(cache, "catalog:categories", [0], ttl, fetch)
    return [CategoryRow(**row) for row in values or []]


async def load_brands_by_id(cache: Cache, ttl: float, ids: Sequence[int]) -> list[BrandRow | None]:
    """Brands by id, through the catalog cache."""

    async def fetch(missing: list[int]) -> dict[int, Any]:
        rows = await Brand.filter(id__in=missing).values("id", "name", "logo_url")
        return {row["id"]: row for row in rows}

    values = await read_through(cache, "catalog:brand", ids, ttl, fetch)
    return [BrandRow(**v) if v is not None else None for v in values]


_REVIEW_TOTALS = (
    "SELECT product_id, COUNT(id) AS count, SUM(rating) AS total"
    " FROM review WHERE product_id IN (:ids) GROUP BY product_id"
)


async def load_review_summaries(product_ids: Sequence[int]) -> list[ReviewSummaryRow]:
    """Review count and average rating per product, in one grouped query."""
    rows = await sql.fetch(_REVIEW_TOTALS, ids=list(product_ids))
    by_id = {row["product_id"]: row for row in rows}
    summaries = []
    for pid in product_ids:
        row = by_id.get(pid)
        if row is None:
            summaries.append(ReviewSummaryRow(count=0, average_rating=None))
        else:
            summaries.append(
                # Sum/count, not AVG(): Tortoise casts AVG of an integer column back to an integer.
                ReviewSummaryRow(
                    count=int(row["count"]), average_rating=round(int(row["total"]) / int(row["count"]), 2)
                )
            )
    return summaries


async def load_top_products_by_category(keys: Sequence[tuple[int, int]]) -> list[list[ProductRow]]:
    """For (category_id, n) keys: the n best-selling on-shelf, in-stock products of that category."""
    wanted: dict[int, int] = defaultdict(int)
    for category_id, n in keys:
        wanted[category_id] = max(wanted[category_id], n)
    by_category: dict[int, list[ProductRow]] = {}
    # One query per distinct category: a screen asks for one or two, never one per row.
    for category_id, n in wanted.items():
        rows = (
            await Product.filter(category_id=category_id, on_shelf=True, in_stock=True)
            .order_by("-sales_count", "id")
            .limit(n)
            .values(*PRODUCT_COLUMNS)
        )
        by_category[category_id] = [ProductRow.from_values(r) for r in rows]
    return [by_category[c][:n] for c, n in keys]


async def load_detail_html(cache: Cache, ttl: float, ids: Sequence[int]) -> list[str | None]:
    """Products' rich-text detail (large, so kept out of list rows), through the catalog cache."""

    async def fetch(missing: list[int]) -> dict[int, Any]:
        rows = await Product.filter(id__in=missing).values("id", "detail_html")
        return {row["id"]: row["detail_html"] for row in rows}

    return await read_through(cache, "catalog:detail", ids, ttl, fetch)
