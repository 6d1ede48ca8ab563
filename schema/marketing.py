"""Marketing types: flash sales, group-buy teams, presales, bargains and coupons."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.models.marketing import BargainCampaign as BargainModel
from bff.models.marketing import CouponTemplate as CouponTemplateModel
from bff.models.marketing import FlashSale as FlashSaleModel
from bff.models.marketing import FlashSaleItem as FlashSaleItemModel
from bff.models.marketing import GroupBuyCampaign as GroupBuyModel
from bff.models.marketing import GroupBuyTeam as GroupBuyTeamModel
from bff.models.marketing import MemberCoupon as MemberCouponModel
from bff.models.marketing import PresaleCampaign as PresaleModel
from bff.pagination import encode_cursor, page_size
from bff.pii_mask import mask_text
from bff.services.coupons import discount_text
from loaders.marketing import Campaign
from schema.catalog import Product, Sku
from schema.common import Connection, Money, connection, money


@strawberry.type(description="What other shoppers may see of a member.")
class PublicMember:
    nickname: str
    avatar_url: str


@strawberry.type
class FlashSale:
    id: strawberry.ID
    title: str
    starts_at: datetime
    ends_at: datetime
    pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, sale: FlashSaleModel) -> FlashSale:
        return cls(
            id=strawberry.ID(encode_id("FlashSale", sale.id)),
            title=sale.title,
            starts_at=sale.starts_at,
            ends_at=sale.ends_at,
            pk=sale.id,
        )

    @strawberry.field
    async def items(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[FlashSaleItem]:
        n = page_size(first)
        rows = await info.context.loaders.flash_items_by_sale.load(self.pk)
        start = 0
        if after is not None:
            ids = [encode_cursor([r.id]) for r in rows]
            start = ids.index(after) + 1 if after in ids else len(rows)
        page = rows[start : start + n]

        async def count() -> int:
            return len(rows)

        return connection(
            [FlashSaleItem.from_model(r) for r in page],
            [encode_cursor([r.id]) for r in page],
            has_next=start + n < len(rows),
            count=count,
            has_previous=start > 0,
        )


@strawberry.type
class FlashSaleItem:
    id: strawberry.ID
    flash_price: Money
    per_member_limit: int
    model: strawberry.Private[FlashSaleItemModel]

    @classmethod
    def from_model(cls, item: FlashSaleItemModel) -> FlashSaleItem:
        return cls(
            id=strawberry.ID(encode_id("FlashSaleItem", item.id)),
            flash_price=money(item.flash_price_fen),
            per_member_limit=item.per_member_limit,
            model=item,
        )

    @strawberry.field(description="Share of the flash stock already sold, 0-100.")
    def sold_percent(self) -> int:
        total = self.model.stock_total
        return 100 if total <= 0 else min(100, self.model.sold * 100 // total)

    @strawberry.field
    def stock_left(self) -> int:
        return max(0, self.model.stock_total - self.model.sold)

    @strawberry.field
    async def sku(self, info: Info) -> Sku | None:
        skus = await info.context.loaders.skus_by_product_id.load(self.model.product_id)
        row = next((s for s in skus if s.id == self.model.sku_id), None)
        return Sku.from_row(row) if row is not None else None

    @strawberry.field
    async def flash_sale(self, info: Info) -> FlashSale | None:
        sale = await info.context.loaders.flash_sale_by_id.load(self.model.flash_sale_id)
        return FlashSale.from_model(sale) if sale is not None else None


@strawberry.type
class GroupBuyTeam:
    id: strawberry.ID
    status: str
    member_count: int
    missing_count: int
    expires_at: datetime
    leader_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, team: GroupBuyTeamModel, group_size: int) -> GroupBuyTeam:
        return cls(
            id=strawberry.ID(encode_id("GroupBuyTeam", team.id)),
            status=team.status,
            member_count=team.member_count,
            missing_count=max(0, group_size - team.member_count),
            expires_at=team.expires_at,
            leader_id=team.leader_id,
        )

    @strawberry.field
    async def leader(self, info: Info) -> PublicMember | None:
        profile = await info.context.loaders.public_profile.load(self.leader_id)
        if profile is None:
            return None
        return PublicMember(nickname=mask_text(profile.nickname), avatar_url=profile.avatar_url)


@strawberry.type
class GroupBuyCampaign:
    id: strawberry.ID
    title: str
    group_price: Money
    group_size: int
    ends_at: datetime
    model: strawberry.Private[GroupBuyModel]

    @strawberry.field(description="Teams still open for joining, the closest to complete first.")
    async def open_teams(self, info: Info, first: int = 3) -> list[GroupBuyTeam]:
        teams = await info.context.loaders.open_teams_by_campaign.load((self.model.id, page_size(first)))
        return [GroupBuyTeam.from_model(t, self.model.group_size) for t in teams]

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.product_by_id.load(self.model.product_id)
        return Product.from_row(row) if row is not None else None


@strawberry.type
class PresaleCampaign:
    id: strawberry.ID
    title: str
    presale_price: Money
    deposit: Money
    deposit_deduction: Money = strawberry.field(description="What the deposit counts for at balance time.")
    deposit_ends_at: datetime
    balance_starts_at: datetime
    balance_ends_at: datetime


@strawberry.type
class BargainCampaign:
    id: strawberry.ID
    title: str
    start_price: Money
    floor_price: Money
    helpers_needed: int
    ends_at: datetime


ProductCampaign = Annotated[
    FlashSaleItem | GroupBuyCampaign | PresaleCampaign | BargainCampaign,
    strawberry.union("ProductCampaign"),
]


def campaign_type(campaign: Campaign) -> FlashSaleItem | GroupBuyCampaign | PresaleCampaign | BargainCampaign:
    """The GraphQL type for a running campaign row."""
    if isinstance(campaign, FlashSaleItemModel):
        return FlashSaleItem.from_model(campaign)
    if isinstance(campaign, GroupBuyModel):
        return GroupBuyCampaign(
            id=strawberry.ID(encode_id("GroupBuyCampaign", campaign.id)),
            title=campaign.title,
            group_price=money(campaign.group_price_fen),
            group_size=campaign.group_size,
            ends_at=campaign.ends_at,
            model=campaign,
        )
    if isinstance(campaign, PresaleModel):
        return PresaleCampaign(
            id=strawberry.ID(encode_id("PresaleCampaign", campaign.id)),
            title=campaign.title,
            presale_price=money(campaign.presale_price_fen),
            deposit=money(campaign.deposit_fen),
            deposit_deduction=money(campaign.deposit_deduction_fen),
            deposit_ends_at=campaign.deposit_ends_at,
            balance_starts_at=campaign.balance_starts_at,
            balance_ends_at=campaign.balance_ends_at,
        )
    assert isinstance(campaign, BargainModel)
    return BargainCampaign(
        id=strawberry.ID(encode_id("BargainCampaign", campaign.id)),
        title=campaign.title,
        start_price=money(campaign.start_price_fen),
        floor_price=money(campaign.floor_price_fen),
        helpers_needed=campaign.helpers_needed,
        ends_at=campaign.ends_at,
    )


@strawberry.type(description="A kind of coupon a shopper can claim.")
class CouponTemplate:
    id: strawberry.ID
    name: str
    description: str
    discount_text: str
    min_spend: Money

    @classmethod
    def from_model(cls, template: CouponTemplateModel) -> CouponTemplate:
        return cls(
            id=strawberry.ID(encode_id("CouponTemplate", template.id)),
            name=template.name,
            description=template.description,
            discount_text=discount_text(template),
            min_spend=money(template.min_spend_fen),
        )


@strawberry.type(description="A coupon in a member's wallet.")
class MemberCoupon:
    id: strawberry.ID
    name: str
    description: str
    discount_text: str
    min_spend: Money
    expires_at: datetime
    status: str

    @classmethod
    def from_models(
        cls, coupon: MemberCouponModel, template: CouponTemplateModel, status: str
    ) -> MemberCoupon:
        return cls(
            id=strawberry.ID(encode_id("MemberCoupon", coupon.id)),
            name=template.name,
            description=template.description,
            discount_text=discount_text(template),
            min_spend=money(template.min_spend_fen),
            expires_at=coupon.expires_at,
            status=status,
        )
