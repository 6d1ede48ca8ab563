"""Loyalty types: the coupon centre and claims, share invites, sign-in, reviews, points, levels, and
operators' coupon templates."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from bff.ids import encode_id
from bff.models.catalog import Review as ReviewModel
from bff.models.marketing import CouponTemplate as CouponTemplateModel
from bff.models.order import OrderLine as OrderLineModel
from bff.services.coupon_claims import Offer
from bff.services.coupons import discount_text, validity_text
from bff.services.loyalty import SignInState
from bff.services.referrals import InviteStats
from loaders.member import LevelRow
from schema.common import Money, UserError, money
from schema.marketing import CouponTemplate, MemberCoupon, PublicMember

# --- coupons -----------------------------------------------------------------------------------------


@strawberry.enum(description="What the viewer can do with a coupon in the coupon centre.")
class CouponClaimState(enum.Enum):
    CLAIMABLE = "CLAIMABLE"
    LIMIT_REACHED = "LIMIT_REACHED"
    SOLD_OUT = "SOLD_OUT"
    NOT_STARTED = "NOT_STARTED"


@strawberry.type(description="A coupon in the coupon centre, with the viewer's state on it.")
class CouponOffer:
    id: strawberry.ID = strawberry.field(description="The CouponTemplate id `claimCoupon` takes.")
    template: CouponTemplate
    state: CouponClaimState
    claimed_by_viewer: int
    per_member_limit: int
    remaining_quantity: int | None = strawberry.field(description="Coupons left; null when unlimited.")
    claimed_percent: int = strawberry.field(description="Share of the total already claimed, 0-100.")
    claim_starts_at: datetime | None
    claim_ends_at: datetime | None
    validity_text: str = strawberry.field(description="领取后7天内有效, 2025.01.01-2025.01.31有效…")

    @classmethod
    def from_offer(cls, offer: Offer) -> CouponOffer:
        t = offer.template
        total = t.total_quantity
        return cls(
            id=strawberry.ID(encode_id("CouponTemplate", t.id)),
            template=CouponTemplate.from_model(t),
            state=CouponClaimState(offer.state),
            claimed_by_viewer=offer.claimed,
            per_member_limit=t.per_member_limit,
            remaining_quantity=max(0, total - t.claimed_count) if total else None,
            claimed_percent=min(100, t.claimed_count * 100 // total) if total else 0,
            claim_starts_at=t.claim_starts_at,
            claim_ends_at=t.claim_ends_at,
            validity_text=validity_text(t),
        )


@strawberry.type
class ClaimCouponPayload:
    coupon: MemberCoupon | None
    offer: CouponOffer | None = strawberry.field(description="The template as the viewer now sees it.")
    user_errors: list[UserError]


# --- share rewards ------------------------------------------------------------------------------------


@strawberry.type(description="分享得券: the viewer's invite code and how their invitations went.")
class ShareInvite:
    code: str
    share_path: str = strawberry.field(description="The mini-program page to share, with the code.")
    invited_count: int
    rewarded_count: int = strawberry.field(description="Invitees who paid a first order.")

    @classmethod
    def from_stats(cls, stats: InviteStats) -> ShareInvite:
        return cls(
            code=stats.code,
            share_path=stats.share_path,
            invited_count=stats.invited,
            rewarded_count=stats.rewarded,
        )


@strawberry.type
class AcceptInvitePayload:
    accepted: bool
    inviter: PublicMember | None
    user_errors: list[UserError]


# --- sign-in, points, levels --------------------------------------------------------------------------


@strawberry.type(description="签到: today's state of the viewer's daily sign-in.")
class SignInStatus:
    day: str = strawberry.field(description="The shop day (UTC+8), YYYY-MM-DD.")
    signed_today: bool
    streak: int = strawberry.field(description="Consecutive days, today included when signed.")
    today_points: int
    next_points: int = strawberry.field(description="What the next sign-in (today's or tomorrow's) earns.")

    @classmethod
    def from_state(cls, state: SignInState) -> SignInStatus:
        return cls(
            day=state.day.isoformat(),
            signed_today=state.signed_today,
            streak=state.streak,
            today_points=state.today_points,
            next_points=state.next_points,
        )


@strawberry.type
class SignInPayload:
    status: SignInStatus | None
    points_earned: int
    points_balance: int | None
    user_errors: list[UserError]


@strawberry.type
class PointsSummary:
    balance: int
    expiring_points: int = strawberry.field(description="Points that expire next (0 when none will).")
    expiring_at: datetime | None


@strawberry.type(description="A member level, its threshold and benefits.")
class LevelInfo:
    name: str
    rank: int
    min_growth: int
    discount_percent: int
    free_shipping: bool
    benefits: list[str]
    is_current: bool = strawberry.field(description="True for the viewer's own level.")

    @classmethod
    def from_row(cls, row: LevelRow, current_id: int | None) -> LevelInfo:
        return cls(
            name=row.name,
            rank=row.rank,
            min_growth=row.min_growth,
            discount_percent=row.discount_percent,
            free_shipping=row.free_shipping,
            benefits=row.benefits,
            is_current=row.id == current_id,
        )


# --- reviews ----------------------------------------------------------------------------------------


@strawberry.type(description="待评价: a line of a completed order the viewer has not reviewed.")
class ReviewableLine:
    order_line_id: strawberry.ID
    order_id: strawberry.ID
    product_title: str
    image_url: str
    spec_text: str

    @classmethod
    def from_model(cls, line: OrderLineModel) -> ReviewableLine:
        return cls(
            order_line_id=strawberry.ID(encode_id("OrderLine", line.id)),
            order_id=strawberry.ID(encode_id("Order", line.order_id)),
            product_title=line.product_title,
            image_url=line.image_url,
            spec_text=line.spec_text,
        )


@strawberry.input
class SubmitReviewInput:
    order_line_id: strawberry.ID
    rating: int = strawberry.field(description="1-5 stars.")
    content: str | None = strawberry.field(default="", description="Up to 500 characters.")


@strawberry.type
class ReviewEntry:
    id: strawberry.ID
    rating: int
    content: str
    created_at: datetime

    @classmethod
    def from_model(cls, row: ReviewModel) -> ReviewEntry:
        return cls(
            id=strawberry.ID(encode_id("Review", row.id)),
            rating=row.rating,
            content=row.content,
            created_at=row.created_at,
        )


@strawberry.type
class SubmitReviewPayload:
    review: ReviewEntry | None
    points_earned: int
    user_errors: list[UserError]


# --- operators: coupon templates ------------------------------------------------------------------


@strawberry.enum
class CouponKind(enum.Enum):
    FIXED = "FIXED"
    THRESHOLD = "THRESHOLD"
    PERCENT = "PERCENT"
    FREE_SHIPPING = "FREE_SHIPPING"


@strawberry.enum
class CouponScope(enum.Enum):
    ALL = "ALL"
    CATEGORY = "CATEGORY"
    PRODUCT = "PRODUCT"


@strawberry.enum(description="CLAIM: claimed by shoppers; the others are granted by that feature.")
class CouponPurpose(enum.Enum):
    CLAIM = ""
    SHARE_INVITER = "SHARE_INVITER"
    SHARE_INVITEE = "SHARE_INVITEE"
    LOTTERY = "LOTTERY"
    CARE = "CARE"


@strawberry.type(description="A coupon template as operators see and edit it.")
class ManagedCouponTemplate:
    id: strawberry.ID
    name: str
    description: str
    kind: CouponKind
    amount: Money
    percent_off: int
    cap: Money
    min_spend: Money
    scope: CouponScope
    scope_ids: list[strawberry.ID]
    total_quantity: int
    claimed_count: int
    per_member_limit: int
    claimable: bool
    purpose: CouponPurpose
    claim_starts_at: datetime | None
    claim_ends_at: datetime | None
    valid_from: datetime | None
    valid_to: datetime | None
    valid_days: int
    discount_text: str
    validity_text: str

    @classmethod
    def from_model(cls, t: CouponTemplateModel) -> ManagedCouponTemplate:
        scope_type = "Product" if t.scope == "PRODUCT" else "Category"
        return cls(
            id=strawberry.ID(encode_id("CouponTemplate", t.id)),
            name=t.name,
            description=t.description,
            kind=CouponKind(t.kind),
            amount=money(t.amount_fen),
            percent_off=t.percent_off,
            cap=money(t.cap_fen),
            min_spend=money(t.min_spend_fen),
            scope=CouponScope(t.scope),
            scope_ids=[strawberry.ID(encode_id(scope_type, int(i))) for i in t.scope_ids],
            total_quantity=t.total_quantity,
            claimed_count=t.claimed_count,
            per_member_limit=t.per_member_limit,
            claimable=t.claimable,
            purpose=CouponPurpose(t.purpose),
            claim_starts_at=t.claim_starts_at,
            claim_ends_at=t.claim_ends_at,
            valid_from=t.valid_from,
            valid_to=t.valid_to,
            valid_days=t.valid_days,
            discount_text=discount_text(t),
            validity_text=validity_text(t),
        )


@strawberry.input(description="A new coupon template. Amounts in fen; validity: validTo or validDays.")
class CouponTemplateInput:
    name: str
    kind: CouponKind
    description: str = ""
    amount: int = strawberry.field(default=0, description="FIXED/THRESHOLD: fen off.")
    percent_off: int = strawberry.field(default=0, description="PERCENT: 1-99 percent off.")
    cap: int = strawberry.field(default=0, description="PERCENT: most fen off, 0 = no cap.")
    min_spend: int = 0
    scope: CouponScope = CouponScope.ALL
    scope_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="Product/Category ids."
    )
    total_quantity: int = strawberry.field(default=0, description="0 = unlimited.")
    per_member_limit: int = 1
    claimable: bool = True
    purpose: CouponPurpose = CouponPurpose.CLAIM
    claim_starts_at: datetime | None = None
    claim_ends_at: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    valid_days: int = 0


@strawberry.input(description="Changes to a template: omitted fields stay; null clears a time.")
class CouponTemplatePatch:
    name: str | None = strawberry.UNSET
    kind: CouponKind | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    amount: int | None = strawberry.UNSET
    percent_off: int | None = strawberry.UNSET
    cap: int | None = strawberry.UNSET
    min_spend: int | None = strawberry.UNSET
    scope: CouponScope | None = strawberry.UNSET
    scope_ids: list[strawberry.ID] | None = strawberry.UNSET
    total_quantity: int | None = strawberry.UNSET
    per_member_limit: int | None = strawberry.UNSET
    claimable: bool | None = strawberry.UNSET
    purpose: CouponPurpose | None = strawberry.UNSET
    claim_starts_at: datetime | None = strawberry.UNSET
    claim_ends_at: datetime | None = strawberry.UNSET
    valid_from: datetime | None = strawberry.UNSET
    valid_to: datetime | None = strawberry.UNSET
    valid_days: int | None = strawberry.UNSET


@strawberry.type
class CouponTemplatePayload:
    coupon_template: ManagedCouponTemplate | None
    user_errors: list[UserError]
