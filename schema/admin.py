"""Operator inputs and payloads: flash sales, group-buy, bargain, presale, lottery and activity pages.

Amounts are integer fen; times are ISO 8601 with a time zone.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.activity import ActivityPage
from schema.common import UserError
from schema.lottery import LotteryPool, LotteryPrize, LotteryPrizeKind
from schema.marketing import BargainCampaign, FlashSale, FlashSaleItem, GroupBuyCampaign, PresaleCampaign


@strawberry.input
class FlashSaleInput:
    id: strawberry.ID | None = strawberry.field(default=None, description="Omit to create.")
    title: str
    starts_at: datetime
    ends_at: datetime


@strawberry.input
class FlashSaleItemInput:
    flash_sale_id: strawberry.ID
    id: strawberry.ID | None = strawberry.field(default=None, description="Omit to add an item.")
    sku_id: strawberry.ID
    flash_price: int = strawberry.field(description="Fen; at most the SKU's list price.")
    stock_total: int
    per_member_limit: int = 1
    sort_order: int = 0


@strawberry.input
class GroupBuyCampaignInput:
    id: strawberry.ID | None = None
    title: str
    sku_id: strawberry.ID
    group_price: int = strawberry.field(description="Fen.")
    group_size: int = strawberry.field(description="2-50 members.")
    team_ttl_minutes: int = 24 * 60
    starts_at: datetime
    ends_at: datetime


@strawberry.input
class BargainCampaignInput:
    id: strawberry.ID | None = None
    title: str
    sku_id: strawberry.ID
    start_price: int = strawberry.field(description="Fen.")
    floor_price: int = strawberry.field(description="Fen; reached within helpersNeeded cuts.")
    helpers_needed: int
    session_ttl_minutes: int = 24 * 60
    starts_at: datetime
    ends_at: datetime


@strawberry.input
class PresaleCampaignInput:
    id: strawberry.ID | None = None
    title: str
    sku_id: strawberry.ID
    presale_price: int = strawberry.field(description="Fen.")
    deposit: int = strawberry.field(description="Fen, per unit.")
    deposit_deduction: int = strawberry.field(
        description="Fen the deposit counts for at balance time (定金膨胀)."
    )
    deposit_starts_at: datetime
    deposit_ends_at: datetime
    balance_starts_at: datetime
    balance_ends_at: datetime


@strawberry.input
class LotteryPoolInput:
    id: strawberry.ID | None = None
    name: str
    points_cost: int = 0
    daily_draws: int = 1
    starts_at: datetime
    ends_at: datetime


@strawberry.input
class LotteryPrizeInput:
    pool_id: strawberry.ID
    id: strawberry.ID | None = None
    kind: LotteryPrizeKind
    name: str
    probability_ppm: int = strawberry.field(
        description="Parts per million; a pool's prizes sum to ≤ 1000000."
    )
    stock: int = strawberry.field(default=-1, description="-1 = unlimited.")
    coupon_template_id: strawberry.ID | None = strawberry.field(default=None, description="COUPON prizes.")
    points: int = strawberry.field(default=0, description="POINTS prizes.")


@strawberry.type
class FlashSalePayload:
    flash_sale: FlashSale | None
    user_errors: list[UserError]


@strawberry.type
class FlashSaleItemPayload:
    item: FlashSaleItem | None
    user_errors: list[UserError]


@strawberry.type
class DeletePayload:
    deleted_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class GroupBuyCampaignPayload:
    campaign: GroupBuyCampaign | None
    user_errors: list[UserError]


@strawberry.type
class BargainCampaignPayload:
    campaign: BargainCampaign | None
    user_errors: list[UserError]


@strawberry.type
class PresaleCampaignPayload:
    campaign: PresaleCampaign | None
    user_errors: list[UserError]


@strawberry.type
class LotteryPoolPayload:
    pool: LotteryPool | None
    user_errors: list[UserError]


@strawberry.type
class LotteryPrizePayload:
    prize: LotteryPrize | None
    user_errors: list[UserError]


@strawberry.type
class ActivityPagePayload:
    page: ActivityPage | None
    user_errors: list[UserError]
