"""Operator entry points: create and edit campaigns, lottery pools and activity pages.

Every field needs an operator token: anonymous callers get an UNAUTHENTICATED error, members a
FORBIDDEN one (GraphQL errors, as `require_operator` raises). Invalid input is a userError.
"""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.ids import decode_id
from bff.pagination import decode_cursor, encode_cursor, page_size
from bff.services import activity_pages, campaign_admin, lottery, presale
from bff.services.activity_pages import BlockSpec, PageSpec
from bff.services.errors import BusinessError
from schema.activity import ActivityBlockInput, ActivityPage, ActivityPageInput
from schema.admin import (
    ActivityPagePayload,
    BargainCampaignInput,
    BargainCampaignPayload,
    DeletePayload,
    FlashSaleInput,
    FlashSaleItemInput,
    FlashSaleItemPayload,
    FlashSalePayload,
    GroupBuyCampaignInput,
    GroupBuyCampaignPayload,
    LotteryPoolInput,
    LotteryPoolPayload,
    LotteryPrizeInput,
    LotteryPrizePayload,
    PresaleCampaignInput,
    PresaleCampaignPayload,
)
from schema.common import Connection, connection, user_errors
from schema.lottery import LotteryDrawRecord, LotteryPool, LotteryPrize
from schema.marketing import BargainCampaign, FlashSale, FlashSaleItem, GroupBuyCampaign, campaign_type
from schema.presale import presale_campaign


def _pk(opaque: strawberry.ID | None, type_name: str, field: str) -> int | None:
    """The pk of an optional id; a malformed one is NOT_FOUND naming the field."""
    if opaque is None:
        return None
    pk = decode_id(str(opaque), type_name)
    if pk is None:
        raise BusinessError("NOT_FOUND", "对象不存在", field)
    return pk


def _required(opaque: strawberry.ID, type_name: str, field: str) -> int:
    pk = _pk(opaque, type_name, field)
    assert pk is not None
    return pk


def _block(block: ActivityBlockInput, index: int) -> BlockSpec:
    products = [decode_id(str(i), "Product") for i in block.product_ids or []]
    templates = [decode_id(str(i), "CouponTemplate") for i in block.coupon_template_ids or []]
    if None in products:
        raise BusinessError("NOT_FOUND", "商品不存在", f"blocks[{index}].productIds")
    if None in templates:
        raise BusinessError("NOT_FOUND", "优惠券不存在", f"blocks[{index}].couponTemplateIds")
    return BlockSpec(
        type=block.type.value,
        title=block.title or "",
        image_url=block.image_url or "",
        link=block.link or "",
        product_ids=tuple(p for p in products if p is not None),
        template_ids=tuple(t for t in templates if t is not None),
        ends_at=block.ends_at,
        html=block.html or "",
    )


@strawberry.type
class AdminQuery:
    @strawberry.field(description="Operators: every draw of a pool with its roll, newest first (the audit).")
    async def lottery_draws(
        self, info: Info, pool_id: strawberry.ID, first: int | None = 50, after: str | None = None
    ) -> Connection[LotteryDrawRecord]:
        info.context.require_operator()
        cursor = decode_cursor(after, 1)
        pk = decode_id(str(pool_id), "LotteryPool") or 0
        page, has_next = await lottery.draw_page(
            pk, page_size(first), int(cursor[0]) if cursor is not None else None
        )

        async def count() -> int:
            return await lottery.draw_count(pk)

        return connection(
            [LotteryDrawRecord.from_model(draw, prize) for draw, prize in page],
            [encode_cursor([draw.id]) for draw, _ in page],
            has_next=has_next,
            count=count,
            has_previous=cursor is not None,
        )


@strawberry.type
class AdminMutation:
    @strawberry.mutation(description="Operators: create or edit a flash sale (once started, only its title).")
    async def save_flash_sale(self, info: Info, input: FlashSaleInput) -> FlashSalePayload:
        info.context.require_operator()
        try:
            sale = await campaign_admin.save_flash_sale(
                _pk(input.id, "FlashSale", "id"), input.title, input.starts_at, input.ends_at
            )
        except BusinessError as exc:
            return FlashSalePayload(flash_sale=None, user_errors=user_errors(exc))
        return FlashSalePayload(flash_sale=FlashSale.from_model(sale), user_errors=[])

    @strawberry.mutation(description="Operators: add or edit an item of a flash sale that has not started.")
    async def save_flash_sale_item(self, info: Info, input: FlashSaleItemInput) -> FlashSaleItemPayload:
        info.context.require_operator()
        try:
            item = await campaign_admin.save_flash_sale_item(
                _required(input.flash_sale_id, "FlashSale", "flashSaleId"),
                _pk(input.id, "FlashSaleItem", "id"),
                campaign_admin.FlashItemFields(
                    sku_id=_required(input.sku_id, "Sku", "skuId"),
                    flash_price_fen=input.flash_price,
                    stock_total=input.stock_total,
                    per_member_limit=input.per_member_limit,
                    sort_order=input.sort_order,
                ),
            )
        except BusinessError as exc:
            return FlashSaleItemPayload(item=None, user_errors=user_errors(exc))
        return FlashSaleItemPayload(item=FlashSaleItem.from_model(item), user_errors=[])

    @strawberry.mutation(description="Operators: remove an item from a flash sale that has not started.")
    async def delete_flash_sale_item(self, info: Info, id: strawberry.ID) -> DeletePayload:
        info.context.require_operator()
        try:
            await campaign_admin.delete_flash_sale_item(_required(id, "FlashSaleItem", "id"))
        except BusinessError as exc:
            return DeletePayload(deleted_id=None, user_errors=user_errors(exc))
        return DeletePayload(deleted_id=id, user_errors=[])

    @strawberry.mutation(description="Operators: create or edit a group-buy campaign.")
    async def save_group_buy_campaign(
        self, info: Info, input: GroupBuyCampaignInput
    ) -> GroupBuyCampaignPayload:
        info.context.require_operator()
        try:
            row = await campaign_admin.save_group_buy(
                _pk(input.id, "GroupBuyCampaign", "id"),
                campaign_admin.GroupBuyFields(
                    title=input.title,
                    sku_id=_required(input.sku_id, "Sku", "skuId"),
                    group_price_fen=input.group_price,
                    group_size=input.group_size,
                    team_ttl_minutes=input.team_ttl_minutes,
                    starts_at=input.starts_at,
                    ends_at=input.ends_at,
                ),
            )
        except BusinessError as exc:
            return GroupBuyCampaignPayload(campaign=None, user_errors=user_errors(exc))
        campaign = campaign_type(row)
        assert isinstance(campaign, GroupBuyCampaign)
        return GroupBuyCampaignPayload(campaign=campaign, user_errors=[])

    @strawberry.mutation(description="Operators: create or edit a bargain campaign.")
    async def save_bargain_campaign(self, info: Info, input: BargainCampaignInput) -> BargainCampaignPayload:
        info.context.require_operator()
        try:
            row = await campaign_admin.save_bargain(
                _pk(input.id, "BargainCampaign", "id"),
                campaign_admin.BargainFields(
                    title=input.title,
                    sku_id=_required(input.sku_id, "Sku", "skuId"),
                    start_price_fen=input.start_price,
                    floor_price_fen=input.floor_price,
                    helpers_needed=input.helpers_needed,
                    session_ttl_minutes=input.session_ttl_minutes,
                    starts_at=input.starts_at,
                    ends_at=input.ends_at,
                ),
            )
        except BusinessError as exc:
            return BargainCampaignPayload(campaign=None, user_errors=user_errors(exc))
        campaign = campaign_type(row)
        assert isinstance(campaign, BargainCampaign)
        return BargainCampaignPayload(campaign=campaign, user_errors=[])

    @strawberry.mutation(
        description="Operators: create or edit a presale (once the deposit opens, its title)."
    )
    async def save_presale_campaign(self, info: Info, input: PresaleCampaignInput) -> PresaleCampaignPayload:
        info.context.require_operator()
        try:
            row = await campaign_admin.save_presale(
                _pk(input.id, "PresaleCampaign", "id"),
                campaign_admin.PresaleFields(
                    title=input.title,
                    sku_id=_required(input.sku_id, "Sku", "skuId"),
                    presale_price_fen=input.presale_price,
                    deposit_fen=input.deposit,
                    deposit_deduction_fen=input.deposit_deduction,
                    deposit_starts_at=input.deposit_starts_at,
                    deposit_ends_at=input.deposit_ends_at,
                    balance_starts_at=input.balance_starts_at,
                    balance_ends_at=input.balance_ends_at,
                ),
            )
        except BusinessError as exc:
            return PresaleCampaignPayload(campaign=None, user_errors=user_errors(exc))
        return PresaleCampaignPayload(campaign=presale_campaign(row), user_errors=[])

    @strawberry.mutation(
        description="Operators: cancel a presale now; paid deposits without a paid balance are refunded."
    )
    async def cancel_presale_campaign(self, info: Info, id: strawberry.ID) -> PresaleCampaignPayload:
        info.context.require_operator()
        try:
            row = await presale.cancel_campaign(_required(id, "PresaleCampaign", "id"))
        except BusinessError as exc:
            return PresaleCampaignPayload(campaign=None, user_errors=user_errors(exc))
        return PresaleCampaignPayload(campaign=presale_campaign(row), user_errors=[])

    @strawberry.mutation(description="Operators: create or edit a lottery pool.")
    async def save_lottery_pool(self, info: Info, input: LotteryPoolInput) -> LotteryPoolPayload:
        info.context.require_operator()
        try:
            pool = await campaign_admin.save_lottery_pool(
                _pk(input.id, "LotteryPool", "id"),
                campaign_admin.LotteryPoolFields(
                    name=input.name,
                    points_cost=input.points_cost,
                    daily_draws=input.daily_draws,
                    starts_at=input.starts_at,
                    ends_at=input.ends_at,
                ),
            )
        except BusinessError as exc:
            return LotteryPoolPayload(pool=None, user_errors=user_errors(exc))
        view = await lottery.pool_view(pool.id, None)
        assert view is not None
        return LotteryPoolPayload(pool=LotteryPool.from_models(view.pool, view.prizes), user_errors=[])

    @strawberry.mutation(description="Operators: add or edit a prize; a pool's odds sum to at most 100%.")
    async def save_lottery_prize(self, info: Info, input: LotteryPrizeInput) -> LotteryPrizePayload:
        info.context.require_operator()
        try:
            prize = await campaign_admin.save_lottery_prize(
                _required(input.pool_id, "LotteryPool", "poolId"),
                _pk(input.id, "LotteryPrize", "id"),
                campaign_admin.LotteryPrizeFields(
                    kind=input.kind.value,
                    name=input.name,
                    weight=input.probability_ppm,
                    stock=input.stock,
                    coupon_template_id=_pk(input.coupon_template_id, "CouponTemplate", "couponTemplateId"),
                    points=input.points,
                ),
            )
        except BusinessError as exc:
            return LotteryPrizePayload(prize=None, user_errors=user_errors(exc))
        return LotteryPrizePayload(prize=LotteryPrize.from_model(prize), user_errors=[])

    @strawberry.mutation(
        description="Operators: create or edit an activity page (new pages are unpublished)."
    )
    async def save_activity_page(self, info: Info, input: ActivityPageInput) -> ActivityPagePayload:
        info.context.require_operator()
        try:
            page = await activity_pages.save_page(
                _pk(input.id, "ActivityPage", "id"),
                PageSpec(
                    slug=input.slug,
                    title=input.title,
                    blocks=tuple(_block(b, i) for i, b in enumerate(input.blocks)),
                    starts_at=input.starts_at,
                    ends_at=input.ends_at,
                ),
            )
        except BusinessError as exc:
            return ActivityPagePayload(page=None, user_errors=user_errors(exc))
        return ActivityPagePayload(page=ActivityPage.from_model(page), user_errors=[])

    @strawberry.mutation(description="Operators: publish or withdraw an activity page.")
    async def publish_activity_page(
        self, info: Info, id: strawberry.ID, published: bool
    ) -> ActivityPagePayload:
        info.context.require_operator()
        try:
            page = await activity_pages.set_published(_required(id, "ActivityPage", "id"), published)
        except BusinessError as exc:
            return ActivityPagePayload(page=None, user_errors=user_errors(exc))
        return ActivityPagePayload(page=ActivityPage.from_model(page), user_errors=[])
