"""Activity page types (活动页): the page, its blocks as a union, and the operator's input."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.models.marketing import ActivityPage as ActivityPageModel
from schema.catalog import Product
from schema.marketing import CouponTemplate


@strawberry.type
class BannerBlock:
    image_url: str
    link: str


@strawberry.type(description="Products in the order chosen; ones taken off the shelf are left out.")
class ProductGridBlock:
    title: str
    product_ids: strawberry.Private[list[int]]

    @strawberry.field
    async def products(self, info: Info) -> list[Product]:
        rows = await info.context.loaders.product_by_id.load_many(self.product_ids)
        return [Product.from_row(r) for r in rows if r is not None and r.on_shelf]


@strawberry.type(description="Coupons in the order chosen; only those claimable now are shown.")
class CouponBlock:
    title: str
    template_ids: strawberry.Private[list[int]]

    @strawberry.field
    async def coupons(self, info: Info) -> list[CouponTemplate]:
        claimable = {t.id: t for t in await info.context.loaders.claimable_templates.load(0)}
        return [CouponTemplate.from_model(claimable[i]) for i in self.template_ids if i in claimable]


@strawberry.type
class CountdownBlock:
    title: str
    ends_at: datetime


@strawberry.type(description="HTML of an allowlisted subset, for the mini-program's rich-text component.")
class RichTextBlock:
    html: str


ActivityBlock = Annotated[
    BannerBlock | ProductGridBlock | CouponBlock | CountdownBlock | RichTextBlock,
    strawberry.union("ActivityBlock"),
]


def block_type(
    data: dict[str, Any],
) -> BannerBlock | ProductGridBlock | CouponBlock | CountdownBlock | RichTextBlock | None:
    """The GraphQL block of a stored block; an unknown type (written by a newer release) is skipped."""
    kind = data.get("type")
    if kind == "BANNER":
        return BannerBlock(image_url=str(data.get("image_url", "")), link=str(data.get("link", "")))
    if kind == "PRODUCT_GRID":
        return ProductGridBlock(
            title=str(data.get("title", "")), product_ids=[int(i) for i in data.get("product_ids", [])]
        )
    if kind == "COUPONS":
        return CouponBlock(
            title=str(data.get("title", "")), template_ids=[int(i) for i in data.get("template_ids", [])]
        )
    if kind == "COUNTDOWN":
        return CountdownBlock(
            title=str(data.get("title", "")), ends_at=datetime.fromisoformat(str(data["ends_at"]))
        )
    if kind == "RICH_TEXT":
        return RichTextBlock(html=str(data.get("html", "")))
    return None


@strawberry.type(description="活动页: a campaign page assembled from blocks.")
class ActivityPage:
    id: strawberry.ID
    slug: str
    title: str
    published: bool
    starts_at: datetime | None
    ends_at: datetime | None
    updated_at: datetime
    blocks: list[ActivityBlock]

    @classmethod
    def from_model(cls, page: ActivityPageModel) -> ActivityPage:
        return cls(
            id=strawberry.ID(encode_id("ActivityPage", page.id)),
            slug=page.slug,
            title=page.title,
            published=page.published,
            starts_at=page.starts_at,
            ends_at=page.ends_at,
            updated_at=page.updated_at,
            blocks=[b for b in (block_type(d) for d in page.blocks) if b is not None],
        )


@strawberry.enum
class ActivityBlockType(enum.Enum):
    BANNER = "BANNER"
    PRODUCT_GRID = "PRODUCT_GRID"
    COUPONS = "COUPONS"
    COUNTDOWN = "COUNTDOWN"
    RICH_TEXT = "RICH_TEXT"


@strawberry.input(description="One block; the fields its type uses: see each field.")
class ActivityBlockInput:
    type: ActivityBlockType
    title: str | None = strawberry.field(default=None, description="PRODUCT_GRID, COUPONS, COUNTDOWN.")
    image_url: str | None = strawberry.field(default=None, description="BANNER (https).")
    link: str | None = strawberry.field(default=None, description="BANNER: a mini-program path.")
    product_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="PRODUCT_GRID.")
    coupon_template_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="COUPONS.")
    ends_at: datetime | None = strawberry.field(default=None, description="COUNTDOWN.")
    html: str | None = strawberry.field(default=None, description="RICH_TEXT.")


@strawberry.input
class ActivityPageInput:
    id: strawberry.ID | None = strawberry.field(default=None, description="Omit to create a page.")
    slug: str
    title: str
    blocks: list[ActivityBlockInput]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
