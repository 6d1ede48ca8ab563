"""Coupon claims (total and per-member limits under concurrency, expiry), grants, template rules, the
coupon centre, and share rewards (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bff.models.marketing import CouponTemplate, MemberCoupon, Referral
from bff.models.member import Member, MemberLevel
from bff.models.order import Order
from bff.services import coupon_claims, referrals
from bff.services.coupons import InvalidTemplate, TemplateFields, template_problems
from bff.services.errors import BusinessError


async def new_member(created_at: datetime | None = None) -> Member:
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    member = await Member.create(openid=f"sim_{uuid.uuid4().hex[:12]}", level_id=level.id)
    if created_at is not None:
        await Member.filter(id=member.id).update(created_at=created_at)
    return member


async def new_template(**values: Any) -> CouponTemplate:
    defaults: dict[str, Any] = {
        "name": f"测试券 {uuid.uuid4().hex[:6]}",
        "kind": "FIXED",
        "amount_fen": 500,
        "valid_days": 7,
    }
    return await CouponTemplate.create(**{**defaults, **values})


async def outcome(member_id: int, template_id: int) -> str:
    try:
        await coupon_claims.claim(member_id, template_id)
    except BusinessError as exc:
        return exc.code
    return "OK"


async def check_counts(template: CouponTemplate) -> list[MemberCoupon]:
    """The template's claimed_count is exactly its coupons, and no slot exceeds the limit."""
    fresh = await CouponTemplate.get(id=template.id)
    coupons = await MemberCoupon.filter(template_id=template.id)
    assert fresh.claimed_count == len(coupons)
    assert all(c.claim_seq is not None and 1 <= c.claim_seq <= fresh.per_member_limit for c in coupons)
    per_member = Counter(c.member_id for c in coupons)
    assert all(n <= fresh.per_member_limit for n in per_member.values())
    return coupons


async def test_a_claim_expires_after_its_days_or_at_the_fixed_end(seeded: str) -> None:
    member = await new_member()
    days = await new_template(valid_days=10)
    now = datetime.now(UTC)
    coupon = await coupon_claims.claim(member.id, days.id, now=now)
    assert (coupon.status, coupon.claim_seq, coupon.source) == ("UNUSED", 1, "CLAIM")
    assert coupon.expires_at == now + timedelta(days=10)
    end = now + timedelta(days=3)
    fixed = await new_template(valid_days=0, valid_from=now - timedelta(days=1), valid_to=end)
    assert (await coupon_claims.claim(member.id, fixed.id)).expires_at == end


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"claimable": False}, "INVALID_STATE"),
        ({"claimable": False, "purpose": "SHARE_INVITER"}, "INVALID_STATE"),
        ({"claim_starts_at": datetime.now(UTC) + timedelta(hours=1)}, "INVALID_STATE"),
        ({"claim_ends_at": datetime.now(UTC) - timedelta(hours=1)}, "INVALID_STATE"),
        ({"valid_days": 0, "valid_to": datetime.now(UTC) - timedelta(minutes=1)}, "INVALID_STATE"),
        ({"total_quantity": 3, "claimed_count": 3}, "SOLD_OUT"),
    ],
)
async def test_claims_refused_with_a_clear_code(seeded: str, values: dict[str, Any], code: str) -> None:
    template = await new_template(**values)
    assert await outcome((await new_member()).id, template.id) == code
    assert await outcome((await new_member()).id, 10**9) == "NOT_FOUND"


async def test_limits_one_claim_at_a_time(seeded: str) -> None:
    template = await new_template(total_quantity=3, per_member_limit=2)
    first, second = await new_member(), await new_member()
    assert [await outcome(first.id, template.id) for _ in range(3)] == ["OK", "OK", "LIMIT_REACHED"]
    assert [await outcome(second.id, template.id) for _ in range(2)] == ["OK", "SOLD_OUT"]
    assert sorted(c.claim_seq or 0 for c in await check_counts(template) if c.member_id == first.id) == [1, 2]


@pytest.mark.parametrize(
    ("members", "claims_each", "total", "limit", "expected"),
    [
        (50, 1, 20, 1, 20),  # the total decides
        (5, 10, 0, 3, 15),  # the per-member limit decides
        (10, 5, 15, 2, 15),  # both at once
    ],
)
async def test_fifty_simultaneous_claims_respect_both_limits(
    seeded: str, members: int, claims_each: int, total: int, limit: int, expected: int
) -> None:
    template = await new_template(total_quantity=total, per_member_limit=limit)
    people = [await new_member() for _ in range(members)]
    outcomes = await asyncio.gather(*(outcome(p.id, template.id) for p in people for _ in range(claims_each)))
    assert len(outcomes) == 50
    assert outcomes.count("OK") == expected
    assert set(outcomes) <= {"OK", "SOLD_OUT", "LIMIT_REACHED"}
    coupons = await check_counts(template)
    assert len(coupons) == expected


async def test_grants_ignore_the_member_limit_but_not_the_total(seeded: str) -> None:
    template = await new_template(total_quantity=2, per_member_limit=1, claimable=False, purpose="CARE")
    member = await new_member()
    granted = [await coupon_claims.grant(member.id, template, "CARE") for _ in range(3)]
    assert [g is not None for g in granted] == [True, True, False]
    assert all(g.claim_seq is None and g.source == "CARE" for g in granted if g is not None)
    assert (await CouponTemplate.get(id=template.id)).claimed_count == 2


async def test_the_coupon_centre_shows_each_viewer_their_state(seeded: str) -> None:
    now = datetime.now(UTC)
    limited = await new_template(per_member_limit=1)
    sold = await new_template(total_quantity=1)
    soon = await new_template(claim_starts_at=now + timedelta(days=1))
    hidden = [
        await new_template(claimable=False),
        await new_template(claimable=False, purpose="LOTTERY"),
        await new_template(claim_ends_at=now - timedelta(seconds=1)),
    ]
    viewer, other = await new_member(), await new_member()
    await coupon_claims.claim(viewer.id, limited.id)
    await coupon_claims.claim(other.id, sold.id)
    ids = [limited.id, sold.id, soon.id, *(t.id for t in hidden)]
    offers = await coupon_claims.centre_page(viewer.id, 100, min(ids) - 1)
    states = {o.template.id: (o.state, o.claimed) for o in offers if o.template.id in ids}
    assert states == {
        limited.id: ("LIMIT_REACHED", 1),
        sold.id: ("SOLD_OUT", 0),
        soon.id: ("NOT_STARTED", 0),
    }
    anonymous = await coupon_claims.centre_page(None, 100, min(ids) - 1)
    assert {o.template.id: o.state for o in anonymous if o.template.id == limited.id} == {
        limited.id: "CLAIMABLE"
    }


# --- operators' template rules ----------------------------------------------------------------------

JAN1, JAN2 = datetime(2031, 1, 1, tzinfo=UTC), datetime(2031, 1, 2, tzinfo=UTC)
VALID = TemplateFields(name="满100减10", kind="THRESHOLD", amount_fen=1000, min_spend_fen=10000, valid_days=7)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "  "}, "name"),
        ({"kind": "BOGUS"}, "kind"),
        ({"amount_fen": 0}, "amount"),
        ({"min_spend_fen": 1000}, "minSpend"),
        ({"kind": "PERCENT", "amount_fen": 0, "min_spend_fen": 0, "percent_off": 100}, "percentOff"),
        ({"kind": "PERCENT", "amount_fen": 0, "min_spend_fen": 0, "percent_off": 0}, "percentOff"),
        ({"kind": "FREE_SHIPPING", "min_spend_fen": 0}, "amount"),
        ({"scope": "PRODUCT"}, "scopeIds"),
        ({"scope_ids": (1,)}, "scopeIds"),
        ({"total_quantity": -1}, "totalQuantity"),
        ({"per_member_limit": 0}, "perMemberLimit"),
        ({"purpose": "SHARE_INVITER"}, "claimable"),
        ({"claim_starts_at": JAN2, "claim_ends_at": JAN1}, "claimEndsAt"),
        ({"valid_days": 0}, "validDays"),
        ({"valid_to": JAN1}, "validDays"),
        ({"valid_days": 0, "valid_from": JAN2, "valid_to": JAN1}, "validTo"),
        ({"valid_days": 0, "valid_to": JAN1, "claim_ends_at": JAN2}, "validTo"),
    ],
)  # fmt: skip
def test_template_rules_name_the_field(changes: dict[str, Any], field: str) -> None:
    assert template_problems(VALID) == []
    assert field in [f for f, _ in template_problems(replace(VALID, **changes))]


def test_percent_free_shipping_and_fixed_templates_pass() -> None:
    assert (
        template_problems(replace(VALID, kind="PERCENT", amount_fen=0, min_spend_fen=0, percent_off=15)) == []
    )
    assert template_problems(replace(VALID, kind="FREE_SHIPPING", amount_fen=0, min_spend_fen=0)) == []
    assert template_problems(replace(VALID, kind="FIXED", min_spend_fen=0)) == []


async def test_editing_a_claimed_template(seeded: str) -> None:
    template = await coupon_claims.create_template(replace(VALID, total_quantity=5))
    for _ in range(3):
        await coupon_claims.claim((await new_member()).id, template.id)
    with pytest.raises(InvalidTemplate) as smaller:
        await coupon_claims.update_template(template.id, {"total_quantity": 2})
    assert smaller.value.problems[0][0] == "totalQuantity"
    with pytest.raises(InvalidTemplate) as worth:
        await coupon_claims.update_template(template.id, {"amount_fen": 2000})
    assert worth.value.problems == [("amount", "已有会员领取，不能修改优惠内容")]
    edited = await coupon_claims.update_template(template.id, {"total_quantity": 3, "name": "改名"})
    assert (edited.total_quantity, edited.name, edited.amount_fen) == (3, "改名", 1000)
    assert await outcome((await new_member()).id, template.id) == "SOLD_OUT"


# --- share rewards ---------------------------------------------------------------------------------


async def paid_order(member_id: int) -> Order:
    return await Order.create(
        order_no=f"T{uuid.uuid4().hex[:20]}",
        member_id=member_id,
        status="PAID",
        paid_at=datetime.now(UTC),
        payable_fen=10_000,
    )


async def test_who_may_accept_an_invitation(seeded: str) -> None:
    inviter, other = await new_member(), await new_member()
    code = referrals.invite_code(inviter.id)

    async def accept(member: Member, with_code: str = code) -> str:
        try:
            await referrals.accept_invite(member.id, with_code)
        except BusinessError as exc:
            return exc.code
        return "OK"

    assert await accept(inviter) == "INVALID_STATE"  # oneself
    assert await accept(await new_member(), "not-a-code") == "INVALID_CODE"
    assert await accept(await new_member(), referrals.invite_code(10**9)) == "INVALID_CODE"
    assert await accept(await new_member(datetime.now(UTC) - timedelta(hours=25))) == "INVALID_STATE"
    buyer = await new_member()
    await paid_order(buyer.id)
    assert await accept(buyer) == "INVALID_STATE"
    fresh = await new_member()
    assert [await accept(fresh), await accept(fresh)] == ["OK", "OK"]  # the same inviter again: no-op
    assert await accept(fresh, referrals.invite_code(other.id)) == "INVALID_STATE"
    racer = await new_member()
    assert await asyncio.gather(*(accept(racer) for _ in range(5))) == ["OK"] * 5
    assert await Referral.filter(invitee_id__in=[fresh.id, racer.id]).count() == 2


async def test_the_first_paid_order_rewards_both_once(seeded: str) -> None:
    now = datetime.now(UTC)
    inviter_template = await new_template(claimable=False, purpose="SHARE_INVITER", amount_fen=1000)
    invitee_template = await new_template(claimable=False, purpose="SHARE_INVITEE", amount_fen=500)
    try:
        inviter, invitee = await new_member(), await new_member()
        await referrals.accept_invite(invitee.id, referrals.invite_code(inviter.id))
        first = await paid_order(invitee.id)
        rewarded = await asyncio.gather(*(referrals.on_order_paid(first) for _ in range(4)))
        assert sorted(rewarded) == [False, False, False, True]
        assert not await referrals.on_order_paid(await paid_order(invitee.id))
        mine = await MemberCoupon.filter(template_id__in=[inviter_template.id, invitee_template.id])
        assert sorted((c.member_id, c.template_id, c.source) for c in mine) == sorted(
            [
                (inviter.id, inviter_template.id, "SHARE_INVITER"),
                (invitee.id, invitee_template.id, "SHARE_INVITEE"),
            ]
        )
        referral = await Referral.get(invitee_id=invitee.id)
        assert referral.rewarded_order_id == first.id
        stats = await referrals.invite_stats(inviter.id)
        assert (stats.invited, stats.rewarded) == (1, 1) and stats.code in stats.share_path
    finally:
        # Other tests' invitations must not receive these rewards.
        await CouponTemplate.filter(id__in=[inviter_template.id, invitee_template.id]).update(
            claim_ends_at=now
        )


async def test_an_order_paid_before_accepting_means_no_reward(seeded: str) -> None:
    inviter, invitee = await new_member(), await new_member()
    await referrals.accept_invite(invitee.id, referrals.invite_code(inviter.id))
    earlier = await paid_order(invitee.id)  # paid while the invitation was being accepted
    later = await paid_order(invitee.id)
    assert not await referrals.on_order_paid(later)
    assert earlier.id < later.id
    assert (await Referral.get(invitee_id=invitee.id)).rewarded_at is None
