"""The pricing engine: worked examples of every rule, and properties that hold for any order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bff.services.pricing import (
    CouponSpec,
    PricedOrder,
    PriceLine,
    PricingError,
    PricingRules,
    best_coupon,
    cart_totals,
    check_coupon,
    price_order,
)

RULES = PricingRules()  # no member discount, 100 points = ¥1, 50% points cap, ¥10 shipping, free from ¥99
VIP = PricingRules(member_discount_percent=10)


def line(
    key: str,
    price: int,
    quantity: int = 1,
    *,
    product: int = 1,
    categories: frozenset[int] = frozenset({1}),
    campaign: int | None = None,
) -> PriceLine:
    return PriceLine(
        key=key,
        product_id=product,
        category_ids=categories,
        list_price_fen=price,
        quantity=quantity,
        campaign_price_fen=campaign,
    )


def by_key(order: PricedOrder) -> dict[str, tuple[int, ...]]:
    return {
        pl.key: (
            pl.unit_price_fen,
            pl.line_total_fen,
            pl.coupon_discount_fen,
            pl.points_discount_fen,
            pl.paid_fen,
        )
        for pl in order.lines
    }


@contextmanager
def raises_code(code: str) -> Iterator[pytest.ExceptionInfo[PricingError]]:
    with pytest.raises(PricingError) as info:
        yield info
    assert info.value.code == code, info.value


# --- step 1: unit prices ---------------------------------------------------------------------------


def test_member_price_per_line_and_campaign_lines_get_no_member_discount() -> None:
    order = price_order(
        [line("a", 10000, 2), line("b", 5000, 1, campaign=3000)],
        VIP,
    )
    a, b = order.lines
    assert (a.unit_price_fen, a.line_total_fen, a.member_discount_fen, a.campaign_discount_fen) == (
        9000,
        18000,
        2000,
        0,
    )
    assert (b.unit_price_fen, b.line_total_fen, b.member_discount_fen, b.campaign_discount_fen) == (
        3000,
        3000,
        0,
        2000,
    )
    assert order.items_total_fen == 25000
    assert order.member_discount_fen == 2000
    assert order.campaign_discount_fen == 2000
    assert order.shipping_fee_fen == 0  # 210 yuan ≥ 99
    assert order.payable_fen == 21000


def test_member_price_rounds_half_up_and_never_below_one_fen() -> None:
    order = price_order([line("a", 15, 3), line("b", 1, 2)], PricingRules(member_discount_percent=10))
    a, b = order.lines
    assert a.unit_price_fen == 13  # 15 − round(1.5) = 13
    assert b.unit_price_fen == 1  # 1 − round(0.1) stays 1
    assert order.member_discount_fen == 6


def test_campaign_price_may_be_zero() -> None:
    order = price_order([line("a", 5000, campaign=0)], PricingRules(level_free_shipping=True))
    assert order.lines[0].line_total_fen == 0
    assert order.payable_fen == 0
    assert order.max_points_usable == 0


# --- step 2: coupons -------------------------------------------------------------------------------


def test_fixed_coupon_takes_its_amount_off() -> None:
    order = price_order([line("a", 12000)], RULES, coupon=CouponSpec(id=1, kind="FIXED", amount_fen=1000))
    assert order.coupon_discount_fen == 1000
    assert order.coupon is not None and order.coupon.applicable
    assert order.lines[0].coupon_discount_fen == 1000
    assert order.payable_fen == 11000


def test_threshold_coupon_needs_the_min_spend() -> None:
    coupon = CouponSpec(id=1, kind="THRESHOLD", amount_fen=2000, min_spend_fen=10000)
    below = check_coupon([line("a", 9999)], RULES, coupon)
    assert (below.applicable, below.reason_code, below.reason, below.discount_fen) == (
        False,
        "BELOW_MIN_SPEND",
        "未满100元",
        0,
    )
    at = check_coupon([line("a", 10000)], RULES, coupon)
    assert (at.applicable, at.discount_fen, at.reason_code) == (True, 2000, None)


def test_min_spend_message_shows_yuan_with_cents() -> None:
    coupon = CouponSpec(id=1, kind="THRESHOLD", amount_fen=500, min_spend_fen=9950)
    assert check_coupon([line("a", 100)], RULES, coupon).reason == "未满99.5元"


def test_min_spend_is_measured_after_member_price() -> None:
    coupon = CouponSpec(id=1, kind="THRESHOLD", amount_fen=1000, min_spend_fen=10000)
    assert check_coupon([line("a", 10000)], RULES, coupon).applicable
    check = check_coupon([line("a", 10000)], VIP, coupon)  # 9000 after the member price
    assert check.reason_code == "BELOW_MIN_SPEND"


def test_min_spend_applies_to_every_kind() -> None:
    lines = [line("a", 5000)]
    for kind in ("FIXED", "PERCENT", "FREE_SHIPPING"):
        coupon = CouponSpec(id=1, kind=kind, amount_fen=100, percent_off=10, min_spend_fen=6000)
        assert check_coupon(lines, RULES, coupon).reason_code == "BELOW_MIN_SPEND"


def test_percent_coupon_rounds_half_up_and_respects_its_cap() -> None:
    lines = [line("a", 12345)]
    uncapped = check_coupon(lines, RULES, CouponSpec(id=1, kind="PERCENT", percent_off=15))
    assert uncapped.discount_fen == 1852  # 1851.75 → 1852
    capped = check_coupon(lines, RULES, CouponSpec(id=1, kind="PERCENT", percent_off=15, cap_fen=1000))
    assert capped.discount_fen == 1000


def test_free_shipping_coupon_zeroes_the_fee_and_takes_nothing_off_the_goods() -> None:
    coupon = CouponSpec(id=1, kind="FREE_SHIPPING", min_spend_fen=3000)
    check = check_coupon([line("a", 5000)], RULES, coupon)
    assert (check.applicable, check.discount_fen, check.free_shipping) == (True, 0, True)
    order = price_order([line("a", 5000)], RULES, coupon=coupon)
    assert order.shipping_fee_fen == 0
    assert order.coupon_discount_fen == 0
    assert order.payable_fen == 5000
    assert price_order([line("a", 5000)], RULES).payable_fen == 6000


def test_category_scope_discounts_only_lines_in_the_categories() -> None:
    lines = [
        line("a", 6000, categories=frozenset({1, 10})),
        line("b", 4000, categories=frozenset({2})),
        line("c", 2000, categories=frozenset({3, 30})),
    ]
    coupon = CouponSpec(id=1, kind="PERCENT", percent_off=10, scope="CATEGORY", scope_ids=frozenset({10, 30}))
    order = price_order(lines, RULES, coupon=coupon)
    assert order.coupon_discount_fen == 800  # 10% of 8000 in scope
    assert {pl.key: pl.coupon_discount_fen for pl in order.lines} == {"a": 600, "b": 0, "c": 200}


def test_category_scope_min_spend_counts_only_in_scope_lines() -> None:
    lines = [line("a", 6000, categories=frozenset({1})), line("b", 9000, categories=frozenset({2}))]
    coupon = CouponSpec(
        id=1,
        kind="THRESHOLD",
        amount_fen=1000,
        min_spend_fen=8000,
        scope="CATEGORY",
        scope_ids=frozenset({1}),
    )
    assert check_coupon(lines, RULES, coupon).reason_code == "BELOW_MIN_SPEND"


def test_product_scope() -> None:
    lines = [line("a", 3000, product=7), line("b", 3000, product=8)]
    coupon = CouponSpec(id=1, kind="FIXED", amount_fen=500, scope="PRODUCT", scope_ids=frozenset({8}))
    order = price_order(lines, RULES, coupon=coupon)
    assert {pl.key: pl.coupon_discount_fen for pl in order.lines} == {"a": 0, "b": 500}


def test_coupon_with_no_line_in_scope_is_not_applicable() -> None:
    coupon = CouponSpec(id=1, kind="FIXED", amount_fen=500, scope="PRODUCT", scope_ids=frozenset({99}))
    check = check_coupon([line("a", 3000, product=7)], RULES, coupon)
    assert (check.applicable, check.reason_code, check.reason, check.free_shipping) == (
        False,
        "NOT_IN_SCOPE",
        "无适用商品",
        False,
    )
    with raises_code("COUPON_NOT_APPLICABLE") as info:
        price_order([line("a", 3000, product=7)], RULES, coupon=coupon)
    assert info.value.code == "COUPON_NOT_APPLICABLE"
    assert info.value.message == "无适用商品"


def test_coupon_never_exceeds_the_in_scope_subtotal() -> None:
    lines = [line("a", 300, product=1), line("b", 5000, product=2)]
    coupon = CouponSpec(id=1, kind="FIXED", amount_fen=1000, scope="PRODUCT", scope_ids=frozenset({1}))
    order = price_order(lines, RULES, coupon=coupon)
    assert order.coupon_discount_fen == 300
    assert order.lines[0].paid_fen == 0


def test_coupon_leaves_at_least_one_fen() -> None:
    order = price_order(
        [line("a", 800)],
        PricingRules(level_free_shipping=True),
        coupon=CouponSpec(id=1, kind="FIXED", amount_fen=1000),
    )
    assert order.coupon_discount_fen == 799
    assert order.payable_fen == 1


def test_coupon_that_would_take_nothing_off_is_not_applicable() -> None:
    check = check_coupon([line("a", 1)], RULES, CouponSpec(id=1, kind="FIXED", amount_fen=500))
    assert check.reason_code == "NO_DISCOUNT"
    assert not check.applicable


def test_best_coupon_counts_the_shipping_it_saves() -> None:
    lines = [line("a", 5000)]  # shipping is ¥10 below ¥99
    fixed = CouponSpec(id=1, kind="FIXED", amount_fen=800)
    free = CouponSpec(id=2, kind="FREE_SHIPPING")
    assert best_coupon(lines, RULES, [fixed, free]) == free
    bigger = CouponSpec(id=3, kind="FIXED", amount_fen=1200)
    assert best_coupon(lines, RULES, [fixed, free, bigger]) == bigger


def test_best_coupon_counts_the_shipping_a_coupon_brings_back() -> None:
    lines = [line("a", 10000)]  # ¥100: free shipping
    big = CouponSpec(id=1, kind="FIXED", amount_fen=1500)  # ¥85 left: ¥10 shipping, saves ¥5
    small = CouponSpec(id=2, kind="FIXED", amount_fen=100)  # ¥99 left: still free, saves ¥1
    percent = CouponSpec(id=3, kind="PERCENT", percent_off=100, cap_fen=2000)  # saves ¥10
    assert best_coupon(lines, RULES, [big, small]) == big
    assert best_coupon(lines, RULES, [big, small, percent]) == percent


def test_best_coupon_ties_go_to_the_lowest_id_and_nothing_useful_is_none() -> None:
    lines = [line("a", 12000)]
    assert best_coupon(
        lines,
        RULES,
        [CouponSpec(id=5, kind="FIXED", amount_fen=500)] * 1
        + [
            CouponSpec(id=3, kind="FIXED", amount_fen=500),
            CouponSpec(id=4, kind="FIXED", amount_fen=500),
        ],
    ) == CouponSpec(id=3, kind="FIXED", amount_fen=500)
    useless = [
        CouponSpec(id=1, kind="FREE_SHIPPING"),  # shipping is already free at ¥120
        CouponSpec(id=2, kind="THRESHOLD", amount_fen=500, min_spend_fen=20000),
    ]
    assert best_coupon(lines, RULES, useless) is None
    assert best_coupon(lines, RULES, []) is None


# --- step 3: points --------------------------------------------------------------------------------


def test_points_cap_is_half_the_goods_after_coupon_and_the_balance() -> None:
    lines = [line("a", 10000)]
    coupon = CouponSpec(id=1, kind="FIXED", amount_fen=2001)
    assert (
        price_order(lines, RULES, coupon=coupon, points_balance=100000).max_points_usable == 3999
    )  # ⌊7999/2⌋
    assert price_order(lines, RULES, coupon=coupon, points_balance=1234).max_points_usable == 1234


def test_points_take_one_fen_each_and_shipping_uses_the_total_before_points() -> None:
    order = price_order([line("a", 10000)], RULES, points_to_use=3000, points_balance=5000)
    assert order.points_discount_fen == 3000
    assert order.points_used == 3000
    assert order.shipping_fee_fen == 0  # ¥100 before points reaches ¥99
    assert order.payable_fen == 7000
    assert order.lines[0].points_discount_fen == 3000
    assert order.lines[0].paid_fen == 7000


def test_points_errors_are_raised_not_clamped() -> None:
    lines = [line("a", 10000)]
    with raises_code("INSUFFICIENT_POINTS"):
        price_order(lines, RULES, points_to_use=600, points_balance=500)
    with raises_code("POINTS_OVER_LIMIT"):
        price_order(lines, RULES, points_to_use=5001, points_balance=9000)
    with raises_code("INVALID_INPUT"):
        price_order(lines, RULES, points_to_use=-1, points_balance=9000)
    assert price_order(lines, RULES, points_to_use=5000, points_balance=9000).points_discount_fen == 5000


def test_points_never_leave_less_than_one_fen() -> None:
    rules = PricingRules(points_max_share_percent=100, level_free_shipping=True)
    order = price_order([line("a", 500)], rules, points_to_use=499, points_balance=1000)
    assert order.max_points_usable == 499
    assert order.payable_fen == 1


def test_points_per_yuan_other_than_100_spends_only_what_the_discount_needs() -> None:
    rules = PricingRules(points_per_yuan=150)  # 1.5 points per fen
    order = price_order([line("a", 10000)], rules, points_to_use=151, points_balance=10000)
    assert (order.points_discount_fen, order.points_used) == (100, 150)
    assert order.max_points_usable == 7500  # ¥50 = 5000 fen = 7500 points
    coarse = PricingRules(points_per_yuan=50, points_max_share_percent=100, level_free_shipping=True)
    # 1 point = 2 fen: on a 4-fen order the cap is 3 fen, so 1 point (2 fen) is the most worth using.
    small = price_order([line("a", 4)], coarse, points_to_use=1, points_balance=10)
    assert (small.max_points_usable, small.points_discount_fen, small.payable_fen) == (1, 2, 2)


def test_points_are_allocated_after_the_coupon() -> None:
    lines = [line("a", 6000, product=1), line("b", 4000, product=2)]
    coupon = CouponSpec(id=1, kind="FIXED", amount_fen=2000, scope="PRODUCT", scope_ids=frozenset({1}))
    order = price_order(lines, RULES, coupon=coupon, points_to_use=4000, points_balance=4000)
    # After the coupon a owes 4000 and b 4000: the points split evenly.
    assert by_key(order) == {"a": (6000, 6000, 2000, 2000, 2000), "b": (4000, 4000, 0, 2000, 2000)}
    assert order.shipping_fee_fen == 1000  # ¥80 after coupon < ¥99
    assert order.payable_fen == 5000


# --- step 4 and the whole stack --------------------------------------------------------------------


def test_shipping_threshold_is_checked_after_the_coupon() -> None:
    lines = [line("a", 10000)]
    assert price_order(lines, RULES).shipping_fee_fen == 0
    order = price_order(lines, RULES, coupon=CouponSpec(id=1, kind="FIXED", amount_fen=200))
    assert order.shipping_fee_fen == 1000
    assert order.payable_fen == 10800


def test_level_free_shipping() -> None:
    assert price_order([line("a", 100)], PricingRules(level_free_shipping=True)).shipping_fee_fen == 0
    assert price_order([line("a", 100)], RULES).shipping_fee_fen == 1000


def test_full_stack_in_order() -> None:
    lines = [
        line("sku-1", 19900, 2, categories=frozenset({5})),  # member: 17910 × 2
        line("sku-2", 9900, 1, categories=frozenset({6}), campaign=5900),  # flash sale
    ]
    coupon = CouponSpec(
        id=9,
        kind="THRESHOLD",
        amount_fen=3000,
        min_spend_fen=30000,
        scope="CATEGORY",
        scope_ids=frozenset({5}),
    )
    order = price_order(lines, VIP, coupon=coupon, points_to_use=2000, points_balance=50000)
    assert order.items_total_fen == 49700
    assert order.member_discount_fen == 3980
    assert order.campaign_discount_fen == 4000
    assert order.coupon_discount_fen == 3000
    assert order.points_discount_fen == 2000
    assert order.shipping_fee_fen == 0
    assert order.payable_fen == 49700 - 3980 - 4000 - 3000 - 2000
    assert order.max_points_usable == (41720 - 3000) // 2
    assert sum(pl.paid_fen for pl in order.lines) == order.payable_fen


def test_largest_remainder_ties_go_to_the_smaller_key() -> None:
    lines = [line("b", 100), line("a", 100), line("c", 100)]
    rules = PricingRules(level_free_shipping=True)
    order = price_order(lines, rules, coupon=CouponSpec(id=1, kind="FIXED", amount_fen=100))
    assert {pl.key: pl.coupon_discount_fen for pl in order.lines} == {"a": 34, "b": 33, "c": 33}
    assert [pl.key for pl in order.lines] == ["b", "a", "c"]  # the caller's order is kept


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "rules"),
    [
        ([line("a", 100, 0)], RULES),
        ([line("a", -1)], RULES),
        ([line("a", 100, campaign=-1)], RULES),
        ([line("a", 100, campaign=101)], RULES),
        ([line("a", 100), line("a", 200)], RULES),
        ([], RULES),
        ([line("a", 100)], PricingRules(member_discount_percent=101)),
        ([line("a", 100)], PricingRules(points_max_share_percent=-1)),
        ([line("a", 100)], PricingRules(points_per_yuan=0)),
        ([line("a", 100)], PricingRules(shipping_fee_fen=-1)),
    ],
)
def test_invalid_input(lines: list[PriceLine], rules: PricingRules) -> None:
    with raises_code("INVALID_INPUT"):
        price_order(lines, rules)


@pytest.mark.parametrize(
    "coupon",
    [
        CouponSpec(id=1, kind="BOGUS"),
        CouponSpec(id=1, kind="FIXED", scope="SHOP"),
        CouponSpec(id=1, kind="PERCENT", percent_off=120),
        CouponSpec(id=1, kind="FIXED", amount_fen=-5),
        CouponSpec(id=1, kind="FIXED", amount_fen=5, min_spend_fen=-1),
    ],
)
def test_invalid_coupon(coupon: CouponSpec) -> None:
    with raises_code("INVALID_INPUT"):
        check_coupon([line("a", 100)], RULES, coupon)


def test_cart_totals() -> None:
    totals = cart_totals([(10000, 2), (15, 3)], 10)
    assert (totals.items_total, totals.discount_total, totals.payable) == (20045, 2006, 18039)
    empty = cart_totals([], 10)
    assert (empty.items_total, empty.discount_total, empty.payable) == (0, 0, 0)


# --- properties ------------------------------------------------------------------------------------

PROPERTIES = settings(max_examples=400, derandomize=True, deadline=None)

_prices = st.one_of(st.integers(0, 3), st.integers(0, 50000))


@st.composite
def price_lines(draw: st.DrawFn) -> list[PriceLine]:
    n = draw(st.integers(1, 6))
    keys = draw(st.lists(st.text("abcdef", min_size=1, max_size=3), min_size=n, max_size=n, unique=True))
    lines = []
    for key in keys:
        price = draw(_prices)
        campaign = draw(st.one_of(st.none(), st.integers(0, price)))
        lines.append(
            PriceLine(
                key=key,
                product_id=draw(st.integers(1, 4)),
                category_ids=frozenset(draw(st.sets(st.integers(1, 5), max_size=2))),
                list_price_fen=price,
                quantity=draw(st.integers(1, 5)),
                campaign_price_fen=campaign,
            )
        )
    return lines


rules_strategy = st.builds(
    PricingRules,
    member_discount_percent=st.integers(0, 100),
    level_free_shipping=st.booleans(),
    points_per_yuan=st.sampled_from([1, 50, 100, 150, 1000]),
    points_max_share_percent=st.integers(0, 100),
    shipping_fee_fen=st.sampled_from([0, 600, 1000]),
    free_shipping_threshold_fen=st.sampled_from([0, 9900, 10**9]),
)

coupon_strategy = st.builds(
    CouponSpec,
    id=st.integers(1, 20),
    kind=st.sampled_from(["FIXED", "THRESHOLD", "PERCENT", "FREE_SHIPPING"]),
    amount_fen=_prices,
    percent_off=st.integers(0, 100),
    cap_fen=st.one_of(st.just(0), _prices),
    min_spend_fen=st.one_of(st.just(0), _prices),
    scope=st.sampled_from(["ALL", "CATEGORY", "PRODUCT"]),
    scope_ids=st.frozensets(st.integers(1, 5), max_size=3),
)


def _priced(
    data: st.DataObject, lines: list[PriceLine], rules: PricingRules
) -> tuple[PricedOrder, dict[str, object]]:
    """Price with a random applicable coupon (or none) and a random valid number of points."""
    coupon = data.draw(st.one_of(st.none(), coupon_strategy))
    if coupon is not None and not check_coupon(lines, rules, coupon).applicable:
        with raises_code("COUPON_NOT_APPLICABLE"):
            price_order(lines, rules, coupon=coupon)
        coupon = None
    balance = data.draw(st.integers(0, 100000))
    cap = price_order(lines, rules, coupon=coupon, points_balance=balance).max_points_usable
    points = data.draw(st.integers(0, cap))
    kwargs: dict[str, object] = {"coupon": coupon, "points_to_use": points, "points_balance": balance}
    return price_order(lines, rules, coupon=coupon, points_to_use=points, points_balance=balance), kwargs


@PROPERTIES
@given(lines=price_lines(), rules=rules_strategy, data=st.data())
def test_amounts_add_up_and_stay_in_bounds(
    lines: list[PriceLine], rules: PricingRules, data: st.DataObject
) -> None:
    order, _ = _priced(data, lines, rules)
    goods = sum(pl.line_total_fen for pl in order.lines)
    assert order.items_total_fen - order.member_discount_fen - order.campaign_discount_fen == goods
    assert (
        order.payable_fen
        == goods - order.coupon_discount_fen - order.points_discount_fen + order.shipping_fee_fen
    )
    assert order.payable_fen >= 0
    if goods > 0:
        assert goods - order.coupon_discount_fen - order.points_discount_fen >= 1
        assert order.payable_fen >= 1
    assert 0 <= order.coupon_discount_fen <= goods
    assert (
        0
        <= order.points_discount_fen
        <= (goods - order.coupon_discount_fen) * rules.points_max_share_percent // 100
    )
    assert order.points_used * 100 // rules.points_per_yuan == order.points_discount_fen
    assert order.shipping_fee_fen in (0, rules.shipping_fee_fen)
    for pl in order.lines:
        assert pl.member_discount_fen >= 0 and pl.campaign_discount_fen >= 0
        assert pl.member_discount_fen == 0 or pl.campaign_discount_fen == 0
        assert 0 <= pl.coupon_discount_fen and 0 <= pl.points_discount_fen
        assert pl.coupon_discount_fen + pl.points_discount_fen <= pl.line_total_fen
        assert pl.paid_fen == pl.line_total_fen - pl.coupon_discount_fen - pl.points_discount_fen >= 0


@PROPERTIES
@given(lines=price_lines(), rules=rules_strategy, data=st.data())
def test_allocations_sum_exactly_and_only_to_lines_in_scope(
    lines: list[PriceLine], rules: PricingRules, data: st.DataObject
) -> None:
    order, kwargs = _priced(data, lines, rules)
    assert sum(pl.coupon_discount_fen for pl in order.lines) == order.coupon_discount_fen
    assert sum(pl.points_discount_fen for pl in order.lines) == order.points_discount_fen
    assert sum(pl.paid_fen for pl in order.lines) + order.shipping_fee_fen == order.payable_fen
    coupon = kwargs["coupon"]
    if isinstance(coupon, CouponSpec) and coupon.scope != "ALL":
        scoped = {
            ln.key
            for ln in lines
            if (coupon.scope == "PRODUCT" and ln.product_id in coupon.scope_ids)
            or (coupon.scope == "CATEGORY" and ln.category_ids & coupon.scope_ids)
        }
        assert all(pl.coupon_discount_fen == 0 for pl in order.lines if pl.key not in scoped)


@PROPERTIES
@given(lines=price_lines(), rules=rules_strategy, data=st.data(), seed=st.integers(0, 2**32))
def test_line_order_and_repetition_change_nothing(
    lines: list[PriceLine], rules: PricingRules, data: st.DataObject, seed: int
) -> None:
    order, kwargs = _priced(data, lines, rules)
    coupon = kwargs["coupon"]
    assert coupon is None or isinstance(coupon, CouponSpec)
    points, balance = kwargs["points_to_use"], kwargs["points_balance"]
    assert isinstance(points, int) and isinstance(balance, int)
    shuffled = list(lines)
    random.Random(seed).shuffle(shuffled)
    again = price_order(shuffled, rules, coupon=coupon, points_to_use=points, points_balance=balance)
    assert by_key(again) == by_key(order)
    assert again.payable_fen == order.payable_fen
    assert again.max_points_usable == order.max_points_usable
    assert price_order(lines, rules, coupon=coupon, points_to_use=points, points_balance=balance) == order


@PROPERTIES
@given(lines=price_lines(), rules=rules_strategy, coupon=coupon_strategy)
def test_coupon_check_agrees_with_the_order(
    lines: list[PriceLine], rules: PricingRules, coupon: CouponSpec
) -> None:
    check = check_coupon(lines, rules, coupon)
    if not check.applicable:
        assert check.discount_fen == 0 and check.reason_code and check.reason
        return
    order = price_order(lines, rules, coupon=coupon)
    assert order.coupon == check
    assert order.coupon_discount_fen == check.discount_fen
    assert check.free_shipping == (coupon.kind == "FREE_SHIPPING")
    if check.free_shipping:
        assert order.shipping_fee_fen == 0


@PROPERTIES
@given(
    lines=price_lines(),
    rules=rules_strategy,
    coupons=st.lists(coupon_strategy, max_size=5, unique_by=lambda c: c.id),
)
def test_best_coupon_is_the_cheapest_order(
    lines: list[PriceLine], rules: PricingRules, coupons: list[CouponSpec]
) -> None:
    best = best_coupon(lines, rules, coupons)
    without = price_order(lines, rules).payable_fen
    payables = {
        c.id: price_order(lines, rules, coupon=c).payable_fen
        for c in coupons
        if check_coupon(lines, rules, c).applicable
    }
    if best is None:
        assert all(p >= without for p in payables.values())
    else:
        cheapest = min(payables.values())
        assert payables[best.id] == cheapest < without
        assert best.id == min(c.id for c in coupons if payables.get(c.id) == cheapest)


@PROPERTIES
@given(
    pairs=st.lists(st.tuples(_prices, st.integers(1, 5)), min_size=1, max_size=6),
    percent=st.integers(0, 100),
)
def test_cart_totals_agree_with_price_order(pairs: list[tuple[int, int]], percent: int) -> None:
    totals = cart_totals(pairs, percent)
    rules = PricingRules(member_discount_percent=percent)
    order = price_order(
        [line(str(i), price, quantity) for i, (price, quantity) in enumerate(pairs)],
        rules,
    )
    assert totals.items_total == order.items_total_fen
    assert totals.discount_total == order.member_discount_fen
    assert totals.payable == order.payable_fen - order.shipping_fee_fen
