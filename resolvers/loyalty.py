"""Loyalty entry points: coupon centre and claims, share invites, sign-in, reviews, points, levels, and
operators' coupon templates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry

from bff.context import Info
from bff.ids import decode_id, decode_ids
from bff.models.marketing import CouponTemplate as CouponTemplateModel
from bff.pagination import decode_cursor, encode_cursor, page_size
from bff.pii_mask import mask_text
from bff.services import coupon_claims, loyalty, points, referrals
from bff.services.coupons import InvalidTemplate, TemplateFields
from bff.services.errors import BusinessError
from loaders.registry import forget
from schema.common import Connection, ErrorCode, UserError, connection, user_error, user_errors
from schema.loyalty import (
    AcceptInvitePayload,
    ClaimCouponPayload,
    CouponOffer,
    CouponTemplateInput,
    CouponTemplatePatch,
    CouponTemplatePayload,
    LevelInfo,
    ManagedCouponTemplate,
    PointsSummary,
    ReviewableLine,
    ReviewEntry,
    ShareInvite,
    SignInPayload,
    SignInStatus,
    SubmitReviewInput,
    SubmitReviewPayload,
)
from schema.marketing import MemberCoupon, PublicMember

# Patch fields whose null means "clear it"; for the others null is a mistake.
_CLEARABLE = frozenset({"claim_starts_at", "claim_ends_at", "valid_from", "valid_to"})
# GraphQL input field → TemplateFields name, where they differ.
_RENAMED = {"amount": "amount_fen", "cap": "cap_fen", "min_spend": "min_spend_fen"}


def _template_pk(opaque: strawberry.ID, field: str) -> int:
    pk = decode_id(str(opaque), "CouponTemplate")
    if pk is None:
        raise BusinessError("NOT_FOUND", "优惠券不存在", field)
    return pk


def _scope_pks(scope: str, ids: list[strawberry.ID]) -> tuple[int, ...]:
    type_name = "Product" if scope == "PRODUCT" else "Category"
    pks = decode_ids([str(i) for i in ids], type_name)
    if pks is None:
        raise InvalidTemplate([("scopeIds", f"适用范围须为 {type_name} 的 id")])
    return tuple(pks)


def _template_errors(exc: BusinessError) -> list[UserError]:
    if isinstance(exc, InvalidTemplate):
        return [user_error(ErrorCode.INVALID_INPUT, message, field) for field, message in exc.problems]
    return user_errors(exc)


def _fields(data: CouponTemplateInput) -> TemplateFields:
    return TemplateFields(
        name=data.name,
        kind=data.kind.value,
        description=data.description,
        amount_fen=data.amount,
        percent_off=data.percent_off,
        cap_fen=data.cap,
        min_spend_fen=data.min_spend,
        scope=data.scope.value,
        scope_ids=_scope_pks(data.scope.value, data.scope_ids),
        total_quantity=data.total_quantity,
        per_member_limit=data.per_member_limit,
        claimable=data.claimable,
        purpose=data.purpose.value,
        claim_starts_at=data.claim_starts_at,
        claim_ends_at=data.claim_ends_at,
        valid_from=data.valid_from,
        valid_to=data.valid_to,
        valid_days=data.valid_days,
    )


async def _changes(data: CouponTemplatePatch, template_id: int) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, value in vars(data).items():
        if value is strawberry.UNSET:
            continue
        if value is None and name not in _CLEARABLE:
            raise InvalidTemplate([(strawberry_name(name), "不能为 null（不修改请省略该字段）")])
        changes[_RENAMED.get(name, name)] = getattr(value, "value", value)
    if "scope_ids" in changes:
        scope = changes.get("scope")
        if scope is None:
            stored = await CouponTemplateModel.get_or_none(id=template_id)
            scope = stored.scope if stored is not None else "ALL"
        changes["scope_ids"] = _scope_pks(str(scope), list(changes["scope_ids"]))
    return changes


def strawberry_name(name: str) -> str:
    """The camelCase GraphQL name of a snake_case field."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@strawberry.type
class LoyaltyQuery:
    @strawberry.field(
        description="领券中心: coupons to claim now (or soon), with the viewer's state on each."
    )
    async def coupon_center(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[CouponOffer]:
        n = page_size(first)
        cursor = decode_cursor(after, 1)
        after_id = int(cursor[0]) if cursor is not None else None
        offers = await coupon_claims.centre_page(info.context.member_id, n, after_id)
        page = offers[:n]

        async def count() -> int:
            return await coupon_claims.centre_count()

        return connection(
            [CouponOffer.from_offer(o) for o in page],
            [encode_cursor([o.template.id]) for o in page],
            has_next=len(offers) > n,
            count=count,
            has_previous=after_id is not None,
        )

    @strawberry.field(description="分享得券: the viewer's invite code and share link.")
    async def share_invite(self, info: Info) -> ShareInvite:
        return ShareInvite.from_stats(await referrals.invite_stats(info.context.require_member()))

    @strawberry.field(description="签到: today's sign-in state of the viewer.")
    async def sign_in_status(self, info: Info) -> SignInStatus:
        return SignInStatus.from_state(await loyalty.sign_in_state(info.context.require_member()))

    @strawberry.field(description="The viewer's points balance and the points that expire next.")
    async def points_summary(self, info: Info) -> PointsSummary:
        member_id = info.context.require_member()
        member = await info.context.loaders.member_by_id.load(member_id)
        expiring, at = await points.expiring_soon(member_id, datetime.now(UTC))
        return PointsSummary(
            balance=member.points_balance if member is not None else 0,
            expiring_points=expiring,
            expiring_at=at,
        )

    @strawberry.field(description="Every member level by rank; the viewer's own is marked.")
    async def member_levels(self, info: Info) -> list[LevelInfo]:
        level = await info.context.viewer_level()
        return [
            LevelInfo.from_row(row, level.id if level else None)
            for row in await info.context.loaders.levels()
        ]

    @strawberry.field(description="待评价: lines of the viewer's completed orders still to review.")
    async def reviewable_lines(self, info: Info, first: int | None = 20) -> list[ReviewableLine]:
        lines = await loyalty.reviewable_lines(info.context.require_member(), page_size(first))
        return [ReviewableLine.from_model(line) for line in lines]

    @strawberry.field(description="Operators: every coupon template, newest first.")
    async def coupon_templates(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[ManagedCouponTemplate]:
        info.context.require_operator()
        n = page_size(first)
        cursor = decode_cursor(after, 1)
        query = CouponTemplateModel.all()
        if cursor is not None:
            query = query.filter(id__lt=int(cursor[0]))
        rows = await query.order_by("-id").limit(n + 1)

        async def count() -> int:
            return await CouponTemplateModel.all().count()

        page = rows[:n]
        return connection(
            [ManagedCouponTemplate.from_model(r) for r in page],
            [encode_cursor([r.id]) for r in page],
            has_next=len(rows) > n,
            count=count,
            has_previous=cursor is not None,
        )


@strawberry.type
class LoyaltyMutation:
    @strawberry.mutation(description="领券: claim one coupon of a template (product page or coupon centre).")
    async def claim_coupon(self, info: Info, template_id: strawberry.ID) -> ClaimCouponPayload:
        try:
            member_id = info.context.acting_member()
            coupon = await coupon_claims.claim(member_id, _template_pk(template_id, "templateId"))
        except BusinessError as exc:
            return ClaimCouponPayload(coupon=None, offer=None, user_errors=user_errors(exc))
        template = await CouponTemplateModel.get(id=coupon.template_id)
        claimed = await coupon_claims.claimed_counts(member_id, [template.id])
        offer = coupon_claims.offer(template, claimed.get(template.id, 0), datetime.now(UTC))
        forget(info.context.loaders.unused_coupon_count, member_id)
        return ClaimCouponPayload(
            coupon=MemberCoupon.from_models(coupon, template, "UNUSED"),
            offer=CouponOffer.from_offer(offer),
            user_errors=[],
        )

    @strawberry.mutation(description="分享得券: a new member accepts an invitation (from a shared link).")
    async def accept_invite(self, info: Info, code: str) -> AcceptInvitePayload:
        try:
            referral = await referrals.accept_invite(info.context.acting_member(), code)
        except BusinessError as exc:
            return AcceptInvitePayload(accepted=False, inviter=None, user_errors=user_errors(exc))
        profile = await info.context.loaders.public_profile.load(referral.inviter_id)
        inviter = (
            PublicMember(nickname=mask_text(profile.nickname), avatar_url=profile.avatar_url)
            if profile
            else None
        )
        return AcceptInvitePayload(accepted=True, inviter=inviter, user_errors=[])

    @strawberry.mutation(description="签到: once per day (UTC+8); streaks earn a bonus every 7th day.")
    async def sign_in(self, info: Info) -> SignInPayload:
        try:
            member_id = info.context.acting_member()
            row, balance = await loyalty.sign_in(member_id)
        except BusinessError as exc:
            return SignInPayload(
                status=None, points_earned=0, points_balance=None, user_errors=user_errors(exc)
            )
        state = await loyalty.sign_in_state(member_id)
        return SignInPayload(
            status=SignInStatus.from_state(state),
            points_earned=row.points,
            points_balance=balance,
            user_errors=[],
        )

    @strawberry.mutation(description="评价: review a line of a completed order once and earn points.")
    async def submit_review(self, info: Info, input: SubmitReviewInput) -> SubmitReviewPayload:
        try:
            member_id = info.context.acting_member()
            line_id = decode_id(str(input.order_line_id), "OrderLine")
            if line_id is None:
                raise BusinessError("NOT_FOUND", "订单商品不存在", "orderLineId")
            review, earned = await loyalty.submit_review(
                member_id, line_id, input.rating, input.content or ""
            )
        except BusinessError as exc:
            return SubmitReviewPayload(review=None, points_earned=0, user_errors=user_errors(exc))
        return SubmitReviewPayload(
            review=ReviewEntry.from_model(review), points_earned=earned, user_errors=[]
        )

    @strawberry.mutation(description="Operators: create a coupon template.")
    async def create_coupon_template(self, info: Info, input: CouponTemplateInput) -> CouponTemplatePayload:
        info.context.require_operator()
        try:
            template = await coupon_claims.create_template(_fields(input))
        except BusinessError as exc:
            return CouponTemplatePayload(coupon_template=None, user_errors=_template_errors(exc))
        return CouponTemplatePayload(
            coupon_template=ManagedCouponTemplate.from_model(template), user_errors=[]
        )

    @strawberry.mutation(
        description="Operators: edit a template; what a coupon is worth is fixed once claimed."
    )
    async def update_coupon_template(
        self, info: Info, id: strawberry.ID, input: CouponTemplatePatch
    ) -> CouponTemplatePayload:
        info.context.require_operator()
        try:
            pk = _template_pk(id, "id")
            template = await coupon_claims.update_template(pk, await _changes(input, pk))
        except BusinessError as exc:
            return CouponTemplatePayload(coupon_template=None, user_errors=_template_errors(exc))
        return CouponTemplatePayload(
            coupon_template=ManagedCouponTemplate.from_model(template), user_errors=[]
        )
