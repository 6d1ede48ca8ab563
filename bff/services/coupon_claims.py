"""Claiming coupons, the coupon centre, coupons we grant, and operators' template edits.

Claim rules (product page and coupon centre alike):
- A template is claimable when `claimable` is set, it has no `purpose` (rewards are granted, never
  claimed), now is inside its claim window, and its fixed validity (if any) has not ended.
- Total quantity: one conditional `UPDATE … SET claimed_count = claimed_count + 1 WHERE
  claimed_count < total_quantity` (0 = unlimited); when it changes no row the template is SOLD_OUT.
- Per-member limit: the n-th claim of a template by a member takes slot `claim_seq = n`, and the
  unique (member, template, claim_seq) refuses a second holder of a slot, so concurrent claims by
  one member never exceed the limit (LIMIT_REACHED once slots 1..limit are taken).
- Slot and count change in one transaction: a claim that loses either leaves nothing behind.
- Expiry: a fixed window (`valid_to`) or `valid_days` days after the claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from bff.models.catalog import Category, Product
from bff.models.marketing import CouponTemplate, MemberCoupon
from bff.services.coupons import InvalidTemplate, TemplateFields, template_problems
from bff.services.errors import BusinessError

CLAIM = "CLAIM"  # MemberCoupon.source of a claim; granted coupons carry their purpose instead

# What a viewer sees on a template in the coupon centre.
CLAIMABLE = "CLAIMABLE"
LIMIT_REACHED = "LIMIT_REACHED"
SOLD_OUT = "SOLD_OUT"
NOT_STARTED = "NOT_STARTED"


@dataclass(frozen=True)
class Offer:
    """A template in the coupon centre as one viewer sees it."""

    template: CouponTemplate
    claimed: int  # by this viewer (0 for anonymous visitors)
    state: str


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def expires_at_for(template: CouponTemplate, claimed_at: datetime) -> datetime:
    """When a coupon of `template` claimed at `claimed_at` expires."""
    if template.valid_to is not None:
        return template.valid_to
    return claimed_at + timedelta(days=template.valid_days)


def _check_claimable(template: CouponTemplate, now: datetime) -> None:
    if not template.claimable or template.purpose:
        raise BusinessError("INVALID_STATE", "该优惠券不能领取", "templateId")
    if template.claim_starts_at is not None and now < template.claim_starts_at:
        raise BusinessError("INVALID_STATE", "领取尚未开始", "templateId")
    if template.claim_ends_at is not None and now >= template.claim_ends_at:
        raise BusinessError("INVALID_STATE", "领取已结束", "templateId")
    if template.valid_to is not None and template.valid_to <= now:
        raise BusinessError("INVALID_STATE", "优惠券已过期", "templateId")


def _sold_out(template: CouponTemplate) -> bool:
    return 0 < template.total_quantity <= template.claimed_count


async def _take_one(template_id: int) -> bool:
    """Count one more coupon of the template unless its total is reached (the race-free check)."""
    changed = await CouponTemplate.filter(
        Q(total_quantity=0) | Q(claimed_count__lt=F("total_quantity")), id=template_id
    ).update(claimed_count=F("claimed_count") + 1)
    return changed == 1


class _SoldOut(Exception):
    """Rolls back the slot of a claim that lost the race for the last coupons."""


async def claim(member_id: int, template_id: int, *, now: datetime | None = None) -> MemberCoupon:
    """Claim one coupon of a template for a member; BusinessError SOLD_OUT, LIMIT_REACHED, …"""
    at = _now(now)
    template = await CouponTemplate.get_or_none(id=template_id)
    if template is None:
        raise BusinessError("NOT_FOUND", "优惠券不存在", "templateId")
    _check_claimable(template, at)
    # Cheap refusals first; the slot insert and the conditional update below are what decide.
    if _sold_out(template):
        raise BusinessError("SOLD_OUT", "优惠券已抢光", "templateId")
    taken = await MemberCoupon.filter(member_id=member_id, template_id=template_id, source=CLAIM).count()
    for seq in range(taken + 1, template.per_member_limit + 1):
        try:
            async with in_transaction():
                coupon = await MemberCoupon.create(
                    member_id=member_id,
                    template_id=template_id,
                    status="UNUSED",
                    expires_at=expires_at_for(template, at),
                    claim_seq=seq,
                    source=CLAIM,
                )
                if not await _take_one(template_id):
                    raise _SoldOut
        except IntegrityError:
            continue  # a concurrent claim by the same member took this slot: try the next one
        except _SoldOut:
            raise BusinessError("SOLD_OUT", "优惠券已抢光", "templateId") from None
        return coupon
    raise BusinessError("LIMIT_REACHED", f"每人限领 {template.per_member_limit} 张", "templateId")


async def grant(
    member_id: int, template: CouponTemplate, source: str, *, now: datetime | None = None
) -> MemberCoupon | None:
    """Give a member a coupon (a reward): no per-member limit, within the total; None when none are left."""
    async with in_transaction():
        if not await _take_one(template.id):
            return None
        return await MemberCoupon.create(
            member_id=member_id,
            template_id=template.id,
            status="UNUSED",
            expires_at=expires_at_for(template, _now(now)),
            claim_seq=None,
            source=source,
        )


async def active_templates(purpose: str, *, now: datetime | None = None) -> list[CouponTemplate]:
    """Templates of a purpose (a reward) that can be granted now: inside the claim window, not expired."""
    at = _now(now)
    return await CouponTemplate.filter(
        Q(claim_starts_at__isnull=True) | Q(claim_starts_at__lte=at),
        Q(claim_ends_at__isnull=True) | Q(claim_ends_at__gt=at),
        Q(valid_to__isnull=True) | Q(valid_to__gt=at),
        purpose=purpose,
    ).order_by("id")


# --- the coupon centre ----------------------------------------------------------------------------


def _centre_filter(now: datetime) -> Q:
    # Templates whose claim window has not opened yet show as NOT_STARTED (即将开抢).
    return (
        Q(claimable=True, purpose="")
        & (Q(claim_ends_at__isnull=True) | Q(claim_ends_at__gt=now))
        & (Q(valid_to__isnull=True) | Q(valid_to__gt=now))
    )


async def centre_page(
    member_id: int | None, n: int, after_id: int | None, *, now: datetime | None = None
) -> list[Offer]:
    """Up to n+1 coupon-centre templates after `after_id` (by id), with the viewer's state on each."""
    at = _now(now)
    query = CouponTemplate.filter(_centre_filter(at))
    if after_id is not None:
        query = query.filter(id__gt=after_id)
    templates = await query.order_by("id").limit(n + 1)
    claimed = await claimed_counts(member_id, [t.id for t in templates]) if member_id is not None else {}
    return [offer(t, claimed.get(t.id, 0), at) for t in templates]


async def centre_count(*, now: datetime | None = None) -> int:
    """How many templates the coupon centre lists."""
    return await CouponTemplate.filter(_centre_filter(_now(now))).count()


async def claimed_counts(member_id: int, template_ids: Sequence[int]) -> dict[int, int]:
    """How many coupons of each template the member has claimed (one grouped query)."""
    if not template_ids:
        return {}
    rows = (
        await MemberCoupon.filter(member_id=member_id, template_id__in=list(template_ids), source=CLAIM)
        .annotate(n=Count("id"))
        .group_by("template_id")
        .values("template_id", "n")
    )
    return {int(r["template_id"]): int(r["n"]) for r in rows}


def offer(template: CouponTemplate, claimed: int, now: datetime) -> Offer:
    """The viewer's state on a template; the limit comes first: a sold-out coupon they hold shows 已领."""
    if claimed >= template.per_member_limit:
        state = LIMIT_REACHED
    elif _sold_out(template):
        state = SOLD_OUT
    elif template.claim_starts_at is not None and now < template.claim_starts_at:
        state = NOT_STARTED
    else:
        state = CLAIMABLE
    return Offer(template=template, claimed=claimed, state=state)


# --- operators --------------------------------------------------------------------------------------


async def _check_scope_ids(f: TemplateFields) -> None:
    model = {"PRODUCT": Product, "CATEGORY": Category}.get(f.scope)
    if model is None or not f.scope_ids:
        return
    found = {int(row["id"]) for row in await model.filter(id__in=list(f.scope_ids)).values("id")}
    if found != set(f.scope_ids):
        raise InvalidTemplate([("scopeIds", "适用范围里有不存在的商品或类目")])


async def create_template(f: TemplateFields) -> CouponTemplate:
    """Create a template after validating it; InvalidTemplate lists every broken rule."""
    problems = template_problems(f)
    if problems:
        raise InvalidTemplate(problems)
    await _check_scope_ids(f)
    values = {**vars(f), "scope_ids": list(f.scope_ids), "name": f.name.strip()}
    return await CouponTemplate.create(**values)


async def update_template(template_id: int, changes: dict[str, object]) -> CouponTemplate:
    """Apply an operator's changes (TemplateFields names) to a template after validating the result."""
    async with in_transaction():
        template = await CouponTemplate.filter(id=template_id).select_for_update().first()
        if template is None:
            raise BusinessError("NOT_FOUND", "优惠券模板不存在", "id")
        before = TemplateFields.of(template)
        after = replace(before, **changes)  # type: ignore[arg-type]
        problems = template_problems(after, before=before, claimed_count=template.claimed_count)
        if problems:
            raise InvalidTemplate(problems)
        await _check_scope_ids(after)
        values = {**vars(after), "scope_ids": list(after.scope_ids), "name": after.name.strip()}
        # A claim racing this edit: the total may only shrink to what is claimed when the row changes.
        query = CouponTemplate.filter(id=template_id)
        if after.total_quantity > 0:
            query = query.filter(claimed_count__lte=after.total_quantity)
        if not await query.update(**values):
            raise InvalidTemplate([("totalQuantity", "总量不能少于已领取的数量")])
        return await CouponTemplate.get(id=template_id)
