"""Checkout types: the input the mini-program sends, the preview, and payment parameters."""

from __future__ import annotations

import enum

import strawberry

from schema.catalog import Sku
from schema.common import Money, UserError
from schema.marketing import MemberCoupon
from schema.order import Order


@strawberry.enum
class CheckoutSource(enum.Enum):
    CART = "CART"
    BUY_NOW = "BUY_NOW"


@strawberry.input
class CheckoutLineInput:
    sku_id: strawberry.ID
    quantity: int


@strawberry.input(description="Buy through one campaign (one of these ids).")
class CampaignInput:
    flash_sale_item_id: strawberry.ID | None = None
    group_buy_team_id: strawberry.ID | None = None
    group_buy_campaign_id: strawberry.ID | None = None
    bargain_session_id: strawberry.ID | None = None
    presale_campaign_id: strawberry.ID | None = None


@strawberry.input
class CheckoutInput:
    source: CheckoutSource = CheckoutSource.CART
    address_id: strawberry.ID | None = None
    lines: list[CheckoutLineInput] | None = strawberry.field(default=None, description="For BUY_NOW.")
    coupon_id: strawberry.ID | None = strawberry.field(default=None, description="A MemberCoupon id.")
    points_to_use: int | None = 0
    campaign: CampaignInput | None = None
    remark: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Client-generated; a retry with the same key returns the same order."
    )
    expected_payable: int | None = strawberry.field(
        default=None, description="The payable (fen) the shopper saw; a different one is PRICE_CHANGED."
    )


@strawberry.type
class CheckoutLine:
    sku: Sku
    quantity: int
    unit_price: Money
    line_total: Money


@strawberry.type
class CheckoutSummary:
    items_total: Money
    member_discount: Money
    campaign_discount: Money
    coupon_discount: Money
    points_discount: Money
    shipping_fee: Money
    payable: Money


@strawberry.type
class InapplicableCoupon:
    coupon: MemberCoupon
    reason: str


@strawberry.type
class CheckoutPreview:
    lines: list[CheckoutLine]
    applicable_coupons: list[MemberCoupon]
    inapplicable_coupons: list[InapplicableCoupon] = strawberry.field(
        description="The member's other coupons and why each does not apply here."
    )
    best_coupon_id: strawberry.ID | None
    max_points_usable: int
    summary: CheckoutSummary | None
    user_errors: list[UserError]


@strawberry.type
class PlaceOrderPayload:
    order: Order | None
    user_errors: list[UserError]


@strawberry.type(description="Exactly what wx.requestPayment takes.")
class PayParams:
    app_id: str
    time_stamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str


@strawberry.type
class PayOrderPayload:
    pay_params: PayParams | None
    user_errors: list[UserError]
