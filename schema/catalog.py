"""Catalog types: categories, brands, products, SKUs, specs, reviews, product lists."""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Optional

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.pagination import page_size
from bff.services.coupons import template_applies_to
from bff.services.money import member_price
from loaders.catalog import BrandRow, CategoryRow, ProductRow, SkuRow
from schema.common import Money, money

if TYPE_CHECKING:
    from schema.marketing import CouponTemplate, ProductCampaign


async def _member_price(info: Info, price_fen: int) -> Money | None:
    level = await info.context.viewer_level()
    if level is None:
        return None
    return money(member_price(price_fen, level.discount_percent))


@strawberry.type
class Brand:
    id: strawberry.ID
    name: str
    logo_url: str

    @classmethod
    def from_row(cls, row: BrandRow) -> Brand:
        return cls(id=strawberry.ID(encode_id("Brand", row.id)), name=row.name, logo_url=row.logo_url)


@strawberry.type
class Category:
    id: strawberry.ID
    name: str
    icon_url: str
    pk: strawberry.Private[int]
    parent_pk: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: CategoryRow) -> Category:
        return cls(
            id=strawberry.ID(encode_id("Category", row.id)),
            name=row.name,
            icon_url=row.icon_url,
            pk=row.id,
            parent_pk=row.parent_id,
        )

    @strawberry.field
    async def parent(self, info: Info) -> Category | None:
        if self.parent_pk is None:
            return None
        rows = await info.context.loaders.categories()
        return next((Category.from_row(r) for r in rows if r.id == self.parent_pk), None)

    @strawberry.field
    async def children(self, info: Info) -> list[Category]:
        rows = await info.context.loaders.categories()
        return [Category.from_row(r) for r in rows if r.parent_id == self.pk]


@strawberry.type
class SpecValue:
    name: str
    value: str


@strawberry.type(description="One spec dimension of a product (颜色, 尺码…) and its values in display order.")
class ProductSpec:
    name: str
    values: list[str]


@strawberry.type
class ReviewSummary:
    count: int
    average_rating: float | None


@strawberry.type
class Sku:
    id: strawberry.ID
    code: str
    spec_values: list[SpecValue]
    price: Money
    market_price: Money
    stock: int
    row: strawberry.Private[SkuRow]
    # Set when the caller already holds the product (the cart): the field then resolves without a task.
    product_row: strawberry.Private[ProductRow | None] = None

    @classmethod
    def from_row(cls, row: SkuRow, product: ProductRow | None = None) -> Sku:
        return cls(
            id=strawberry.ID(encode_id("Sku", row.id)),
            code=row.code,
            spec_values=[SpecValue(name=s["name"], value=s["value"]) for s in row.spec_values],
            price=money(row.price_fen),
            market_price=money(row.market_price_fen),
            stock=max(0, row.stock),
            row=row,
            product_row=product,
        )

    @strawberry.field(
        description="What the signed-in member pays at their level; null for anonymous visitors."
    )
    async def member_price(self, info: Info) -> Money | None:
        return await _member_price(info, self.row.price_fen)

    @strawberry.field(graphql_type=Optional["Product"])
    def product(self, info: Info) -> Product | Awaitable[Product | None] | None:
        # Sync when the product is at hand: graphql-core completes a plain value in place, while
        # every awaitable in a list costs a task.
        if self.product_row is not None:
            return Product.from_row(self.product_row)
        return self._load_product(info)

    async def _load_product(self, info: Info) -> Product | None:
        row = await info.context.loaders.product_by_id.load(self.row.product_id)
        return Product.from_row(row) if row is not None else None


@strawberry.type
class Product:
    id: strawberry.ID
    title: str
    subtitle: str
    images: list[str]
    main_image_url: str | None
    price: Money = strawberry.field(description="The lowest SKU price.")
    market_price: Money
    sales_count: int
    in_stock: bool = strawberry.field(description="True when any SKU has stock.")
    tags: list[str]
    row: strawberry.Private[ProductRow]

    @classmethod
    def from_row(cls, row: ProductRow) -> Product:
        return cls(
            id=strawberry.ID(encode_id("Product", row.id)),
            title=row.title,
            subtitle=row.subtitle,
            images=row.images,
            main_image_url=row.main_image_url,
            price=money(row.price_fen),
            market_price=money(row.market_price_fen),
            sales_count=row.sales_count,
            in_stock=row.in_stock,
            tags=row.tags,
            row=row,
        )

    @strawberry.field(description="The lowest SKU price at the viewer's level; null for anonymous visitors.")
    async def member_price(self, info: Info) -> Money | None:
        return await _member_price(info, self.row.price_fen)

    @strawberry.field
    async def detail_html(self, info: Info) -> str:
        return await info.context.loaders.detail_html_by_product_id.load(self.row.id) or ""

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        if self.row.brand_id is None:
            return None
        row = await info.context.loaders.brand_by_id.load(self.row.brand_id)
        return Brand.from_row(row) if row is not None else None

    @strawberry.field
    async def category(self, info: Info) -> Category | None:
        rows = await info.context.loaders.categories()
        return next((Category.from_row(r) for r in rows if r.id == self.row.category_id), None)

    @strawberry.field
    async def skus(self, info: Info) -> list[Sku]:
        return [Sku.from_row(r) for r in await info.context.loaders.skus_by_product_id.load(self.row.id)]

    @strawberry.field(description="Spec dimensions and their values, in the order the SKUs first use them.")
    async def specs(self, info: Info) -> list[ProductSpec]:
        values: dict[str, list[str]] = {}
        for sku in await info.context.loaders.skus_by_product_id.load(self.row.id):
            for spec in sku.spec_values:
                seen = values.setdefault(spec["name"], [])
                if spec["value"] not in seen:
                    seen.append(spec["value"])
        return [ProductSpec(name=name, values=vals) for name, vals in values.items()]

    @strawberry.field
    async def review_summary(self, info: Info) -> ReviewSummary:
        row = await info.context.loaders.review_summary_by_product_id.load(self.row.id)
        return ReviewSummary(count=row.count, average_rating=row.average_rating)

    @strawberry.field(
        description="Products often viewed, carted or bought with this one, then best sellers of its "
        "category; in stock, leaving out what the viewer bought in the last 30 days."
    )
    async def related_products(self, info: Info, first: int = 6) -> list[Product]:
        key = (self.row.id, page_size(first), info.context.member_id)
        return [Product.from_row(r) for r in await info.context.loaders.related_products.load(key)]

    @strawberry.field(description="Coupons a shopper can claim now that apply to this product.")
    async def claimable_coupons(
        self, info: Info
    ) -> list[Annotated[CouponTemplate, strawberry.lazy("schema.marketing")]]:
        from schema.marketing import CouponTemplate

        rows = await info.context.loaders.categories()
        parent = next((r.parent_id for r in rows if r.id == self.row.category_id), None)
        category_ids = {self.row.category_id} | ({parent} if parent is not None else set())
        templates = await info.context.loaders.claimable_templates.load(0)
        return [
            CouponTemplate.from_model(t)
            for t in templates
            if template_applies_to(t, self.row.id, category_ids)
        ]

    @strawberry.field(description="Campaigns running now for this product.")
    async def active_campaigns(
        self, info: Info
    ) -> list[Annotated[ProductCampaign, strawberry.lazy("schema.marketing")]]:
        from schema.marketing import campaign_type

        return [campaign_type(c) for c in await info.context.loaders.campaigns_by_product.load(self.row.id)]


@strawberry.enum
class ProductSort(enum.Enum):
    RELEVANCE = "RELEVANCE"
    SALES = "SALES"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    NEWEST = "NEWEST"


@strawberry.input
class ProductFilter:
    category_id: strawberry.ID | None = None
    brand_ids: list[strawberry.ID] | None = None
    min_price: int | None = strawberry.field(default=None, description="In fen, inclusive.")
    max_price: int | None = strawberry.field(default=None, description="In fen, inclusive.")
    in_stock_only: bool | None = False
    keyword: str | None = None
