"""Pricing: the one engine that turns lines, a member level, a coupon and points into what is paid.

Pure functions over plain values; every amount is integer fen (1/100 CNY), never a float.
The cart summary, the checkout preview and the placed order all come from here, so a preview
always equals the order placed from it.

Stacking order (each step works on the result of the previous one):

1. Unit price per line. A line bought through a campaign (flash sale, group-buy, bargain,
   presale) pays its campaign unit price and gets no member discount on top; any other line
   pays the member-level price, `member_price(list, member_discount_percent)` (percent off,
   rounded half up, never below 1 fen). line total = unit price × quantity;
   campaign discount = (list − campaign price) × quantity;
   member discount = (list − member price) × quantity.
   goods subtotal = Σ line totals.
2. Coupon, at most one per order. Its scope picks the in-scope lines: ALL (every line),
   CATEGORY (the line's category_ids meet scope_ids), PRODUCT (product_id ∈ scope_ids); the
   in-scope subtotal is the sum of their step-1 line totals. No in-scope line → NOT_IN_SCOPE;
   in-scope subtotal < min_spend (every kind; 0 = none) → BELOW_MIN_SPEND. Discount by kind:
   FIXED and THRESHOLD (满减) take amount_fen off; PERCENT takes percent_off% of the in-scope
   subtotal (rounded half up), capped at cap_fen when cap_fen > 0; FREE_SHIPPING takes nothing
   off the goods and makes shipping free. The discount never exceeds the in-scope subtotal and
   never leaves the goods below 1 fen when the goods subtotal is positive; a money coupon whose
   discount comes to 0 is not applicable (NO_DISCOUNT), so nobody spends a coupon for nothing.
   goods after coupon = goods subtotal − coupon discount.
3. Points. points_per_yuan points = ¥1, so p points take p × 100 // points_per_yuan fen off,
   and only the points that discount corresponds to are spent. Points pay at most
   points_max_share_percent% of the goods after coupon (rounded down), never leave the goods
   below 1 fen, and never exceed the member's balance; `max_points_usable` is that cap in
   points. Asking for more than the balance raises INSUFFICIENT_POINTS, more than the cap
   POINTS_OVER_LIMIT; the engine does not clamp.
4. Shipping. shipping_fee_fen, unless the member level has free shipping, an applicable
   FREE_SHIPPING coupon is used, or the goods after coupon (before points) reach
   free_shipping_threshold_fen. Shipping is not allocated to lines.

payable = goods subtotal − coupon discount − points discount + shipping fee
        = items total (list prices) − member − campaign − coupon − points discounts + shipping;
payable ≥ 0, and ≥ 1 fen whenever the goods subtotal is positive.

Allocation: the coupon discount is spread over the in-scope lines in proportion to their line
totals, then the points discount over all lines in proportion to what each still owes, by the
largest-remainder method: the shares sum exactly to the discount, no line gets more than it
owes, and equal remainders go to the smaller line key, so the order of the lines never changes
any line's share. paid_fen = line total − coupon share − points share is what a refund of the
whole line gives back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bff.services.money import member_price, percent_of

COUPON_KINDS = frozenset({"FIXED", "THRESHOLD", "PERCENT", "FREE_SHIPPING"})
COUPON_SCOPES = frozenset({"ALL", "CATEGORY", "PRODUCT"})


class PricingError(Exception):
    """A pricing request that cannot be honoured: `code` is a userError code, `message` is for the shopper."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PriceLine:
    key: str  # unique within an order; the stable tie-break of allocations
    product_id: int
    category_ids: frozenset[int]
    list_price_fen: int
    quantity: int
    campaign_price_fen: int | None = None


@dataclass(frozen=True)
class CouponSpec:
    id: int
    kind: str  # FIXED, THRESHOLD, PERCENT, FREE_SHIPPING
    amount_fen: int = 0
    percent_off: int = 0
    cap_fen: int = 0  # PERCENT: 0 = no cap
    min_spend_fen: int = 0  # 0 = none
    scope: str = "ALL"  # ALL, CATEGORY, PRODUCT
    scope_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class PricingRules:
    member_discount_percent: int = 0
    level_free_shipping: bool = False
    points_per_yuan: int = 100
    points_max_share_percent: int = 50
    shipping_fee_fen: int = 1000
    free_shipping_threshold_fen: int = 9900


@dataclass(frozen=True)
class PricedLine:
    key: str
    quantity: int
    list_price_fen: int
    unit_price_fen: int
    line_total_fen: int
    member_discount_fen: int
    campaign_discount_fen: int
    coupon_discount_fen: int
    points_discount_fen: int
    paid_fen: int


@dataclass(frozen=True)
class CouponCheck:
    applicable: bool
    discount_fen: int
    reason_code: str | None
    reason: str | None
    free_shipping: bool


@dataclass(frozen=True)
class PricedOrder:
    lines: tuple[PricedLine, ...]
    items_total_fen: int  # list prices × quantities
    member_discount_fen: int
    campaign_discount_fen: int
    coupon_discount_fen: int
    points_discount_fen: int
    points_used: int
    shipping_fee_fen: int
    payable_fen: int
    max_points_usable: int
    coupon: CouponCheck | None


@dataclass(frozen=True)
class _Line:
    """A line after step 1."""

    source: PriceLine
    unit_price_fen: int
    member_discount_fen: int
    campaign_discount_fen: int

    @property
    def total_fen(self) -> int:
        return self.unit_price_fen * self.source.quantity


@dataclass(frozen=True)
class _CouponResult:
    check: CouponCheck
    in_scope: tuple[_Line, ...]


def _invalid(message: str) -> PricingError:
    return PricingError("INVALID_INPUT", message)


def _check_percent(value: int, what: str) -> None:
    if not 0 <= value <= 100:
        raise _invalid(f"{what}须在 0 到 100 之间")


def _validate_rules(rules: PricingRules) -> None:
    _check_percent(rules.member_discount_percent, "会员折扣")
    _check_percent(rules.points_max_share_percent, "积分抵扣比例")
    if rules.points_per_yuan < 1:
        raise _invalid("积分兑换比例须为正数")
    if rules.shipping_fee_fen < 0 or rules.free_shipping_threshold_fen < 0:
        raise _invalid("运费和包邮门槛不能为负")


def _validate_coupon(coupon: CouponSpec) -> None:
    if coupon.kind not in COUPON_KINDS:
        raise _invalid(f"不支持的优惠券类型 {coupon.kind}")
    if coupon.scope not in COUPON_SCOPES:
        raise _invalid(f"不支持的优惠券适用范围 {coupon.scope}")
    _check_percent(coupon.percent_off, "优惠券折扣")
    if coupon.amount_fen < 0 or coupon.cap_fen < 0 or coupon.min_spend_fen < 0:
        raise _invalid("优惠券金额不能为负")


def _step1(lines: Sequence[PriceLine], rules: PricingRules) -> tuple[_Line, ...]:
    """Validate the lines and price each at its campaign or member price."""
    _validate_rules(rules)
    keys = {line.key for line in lines}
    if len(keys) != len(lines):
        raise _invalid("商品行的 key 不能重复")
    priced = []
    for line in lines:
        if line.quantity < 1:
            raise _invalid("购买数量须至少为 1")
        if line.list_price_fen < 0:
            raise _invalid("价格不能为负")
        campaign = line.campaign_price_fen
        if campaign is not None:
            if not 0 <= campaign <= line.list_price_fen:
                raise _invalid("活动价须在 0 和原价之间")
            priced.append(
                _Line(
                    source=line,
                    unit_price_fen=campaign,
                    member_discount_fen=0,
                    campaign_discount_fen=(line.list_price_fen - campaign) * line.quantity,
                )
            )
        else:
            unit = member_price(line.list_price_fen, rules.member_discount_percent)
            priced.append(
                _Line(
                    source=line,
                    unit_price_fen=unit,
                    member_discount_fen=(line.list_price_fen - unit) * line.quantity,
                    campaign_discount_fen=0,
                )
            )
    return tuple(priced)


def _in_scope(line: PriceLine, coupon: CouponSpec) -> bool:
    if coupon.scope == "CATEGORY":
        return not line.category_ids.isdisjoint(coupon.scope_ids)
    if coupon.scope == "PRODUCT":
        return line.product_id in coupon.scope_ids
    return True


def _yuan(fen: int) -> str:
    yuan, cents = divmod(fen, 100)
    if cents == 0:
        return str(yuan)
    return f"{yuan}.{cents:02d}".rstrip("0")


def _not_applicable(code: str, reason: str) -> CouponCheck:
    return CouponCheck(applicable=False, discount_fen=0, reason_code=code, reason=reason, free_shipping=False)


def _apply_coupon(lines: tuple[_Line, ...], coupon: CouponSpec) -> _CouponResult:
    _validate_coupon(coupon)
    in_scope = tuple(line for line in lines if _in_scope(line.source, coupon))
    if not in_scope:
        return _CouponResult(_not_applicable("NOT_IN_SCOPE", "无适用商品"), ())
    subtotal = sum(line.total_fen for line in in_scope)
    if subtotal < coupon.min_spend_fen:
        return _CouponResult(_not_applicable("BELOW_MIN_SPEND", f"未满{_yuan(coupon.min_spend_fen)}元"), ())
    if coupon.kind == "FREE_SHIPPING":
        check = CouponCheck(
            applicable=True, discount_fen=0, reason_code=None, reason=None, free_shipping=True
        )
        return _CouponResult(check, in_scope)
    if coupon.kind == "PERCENT":
        discount = percent_of(subtotal, coupon.percent_off)
        if coupon.cap_fen > 0:
            discount = min(discount, coupon.cap_fen)
    else:
        discount = coupon.amount_fen
    goods = sum(line.total_fen for line in lines)
    # The 1-fen floor: an order that charges for goods never becomes free through a coupon.
    discount = min(discount, subtotal, max(goods - 1, 0))
    if discount <= 0:
        return _CouponResult(_not_applicable("NO_DISCOUNT", "本单无可优惠金额"), ())
    check = CouponCheck(
        applicable=True, discount_fen=discount, reason_code=None, reason=None, free_shipping=False
    )
    return _CouponResult(check, in_scope)


def _shipping_fee(rules: PricingRules, goods_after_coupon: int, coupon: CouponCheck | None) -> int:
    free = (
        rules.level_free_shipping
        or (coupon is not None and coupon.free_shipping)
        or goods_after_coupon >= rules.free_shipping_threshold_fen
    )
    return 0 if free else rules.shipping_fee_fen


def _allocate(amount: int, weights: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Split `amount` (≤ Σ weights) over keys in proportion to their weights, by largest remainder."""
    total = sum(weight for _, weight in weights)
    if amount == 0 or total == 0:
        return {key: 0 for key, _ in weights}
    shares = {key: amount * weight // total for key, weight in weights}
    left = amount - sum(shares.values())
    # Remainders, largest first, ties by key: independent of the order the lines came in. Every
    # line that receives a leftover fen has a non-zero remainder, so its share stays ≤ its weight.
    by_remainder = sorted(weights, key=lambda kw: (-(amount * kw[1] % total), kw[0]))
    for key, _ in by_remainder[:left]:
        shares[key] += 1
    return shares


def _points_cap(goods_after_coupon: int, rules: PricingRules, balance: int) -> int:
    """The most points worth using: the fewest points that reach the largest allowed discount."""
    limit = goods_after_coupon * rules.points_max_share_percent // 100
    limit = min(limit, max(goods_after_coupon - 1, 0))
    # The most points whose discount stays within `limit`, then the fewest points giving that
    # discount (when points_per_yuan is not 100, several point counts give the same fen).
    most = min(balance, ((limit + 1) * rules.points_per_yuan - 1) // 100)
    return _points_for(_points_fen(most, rules), rules)


def _points_fen(points: int, rules: PricingRules) -> int:
    return points * 100 // rules.points_per_yuan


def _points_for(fen: int, rules: PricingRules) -> int:
    return -(-fen * rules.points_per_yuan // 100)


def check_coupon(lines: Sequence[PriceLine], rules: PricingRules, coupon: CouponSpec) -> CouponCheck:
    """Whether `coupon` applies to these lines, and what it takes off (or why not)."""
    return _apply_coupon(_step1(lines, rules), coupon).check


def best_coupon(
    lines: Sequence[PriceLine], rules: PricingRules, coupons: Sequence[CouponSpec]
) -> CouponSpec | None:
    """The applicable coupon that lowers the payable (before points) the most, ties by lowest id.

    None when no coupon saves anything, so nobody is advised to spend a coupon for nothing.
    """
    priced = _step1(lines, rules)
    goods = sum(line.total_fen for line in priced)
    base = goods + _shipping_fee(rules, goods, None)
    best: tuple[int, int, CouponSpec] | None = None
    for coupon in coupons:
        check = _apply_coupon(priced, coupon).check
        if not check.applicable:
            continue
        after = goods - check.discount_fen
        # A money coupon that drops the goods under the free-shipping threshold saves less than it says.
        saving = base - (after + _shipping_fee(rules, after, check))
        if saving > 0 and (best is None or (-saving, coupon.id) < (-best[0], best[1])):
            best = (saving, coupon.id, coupon)
    return best[2] if best is not None else None


def price_order(
    lines: Sequence[PriceLine],
    rules: PricingRules,
    *,
    coupon: CouponSpec | None = None,
    points_to_use: int = 0,
    points_balance: int = 0,
) -> PricedOrder:
    """Price an order through the four steps of the module docstring.

    Raises PricingError: INVALID_INPUT, COUPON_NOT_APPLICABLE, INSUFFICIENT_POINTS, POINTS_OVER_LIMIT.
    """
    if not lines:
        raise _invalid("没有要结算的商品")
    if points_to_use < 0 or points_balance < 0:
        raise _invalid("积分数不能为负")
    priced = _step1(lines, rules)
    goods = sum(line.total_fen for line in priced)

    check: CouponCheck | None = None
    coupon_shares: dict[str, int] = {}
    if coupon is not None:
        result = _apply_coupon(priced, coupon)
        check = result.check
        if not check.applicable:
            raise PricingError("COUPON_NOT_APPLICABLE", check.reason or "优惠券不适用")
        coupon_shares = _allocate(
            check.discount_fen, [(line.source.key, line.total_fen) for line in result.in_scope]
        )
    coupon_fen = check.discount_fen if check is not None else 0
    after_coupon = goods - coupon_fen

    max_points = _points_cap(after_coupon, rules, points_balance)
    if points_to_use > points_balance:
        raise PricingError("INSUFFICIENT_POINTS", f"积分不足，当前可用 {points_balance} 积分")
    if points_to_use > max_points:
        raise PricingError("POINTS_OVER_LIMIT", f"本单最多可用 {max_points} 积分")
    points_fen = _points_fen(points_to_use, rules)
    points_used = _points_for(points_fen, rules)
    owed = {line.source.key: line.total_fen - coupon_shares.get(line.source.key, 0) for line in priced}
    points_shares = _allocate(points_fen, list(owed.items()))

    shipping = _shipping_fee(rules, after_coupon, check)
    priced_lines = tuple(
        PricedLine(
            key=line.source.key,
            quantity=line.source.quantity,
            list_price_fen=line.source.list_price_fen,
            unit_price_fen=line.unit_price_fen,
            line_total_fen=line.total_fen,
            member_discount_fen=line.member_discount_fen,
            campaign_discount_fen=line.campaign_discount_fen,
            coupon_discount_fen=coupon_shares.get(line.source.key, 0),
            points_discount_fen=points_shares[line.source.key],
            paid_fen=owed[line.source.key] - points_shares[line.source.key],
        )
        for line in priced
    )
    return PricedOrder(
        lines=priced_lines,
        items_total_fen=sum(line.source.list_price_fen * line.source.quantity for line in priced),
        member_discount_fen=sum(line.member_discount_fen for line in priced),
        campaign_discount_fen=sum(line.campaign_discount_fen for line in priced),
        coupon_discount_fen=coupon_fen,
        points_discount_fen=points_fen,
        points_used=points_used,
        shipping_fee_fen=shipping,
        payable_fen=after_coupon - points_fen + shipping,
        max_points_usable=max_points,
        coupon=check,
    )


@dataclass(frozen=True)
class CartTotals:
    items_total: int
    discount_total: int
    payable: int


def cart_totals(lines: Iterable[tuple[int, int]], discount_percent: int) -> CartTotals:
    """Totals of (unit list price, quantity) lines at a member level's discount: step 1 only, no shipping."""
    priced = _step1(
        [
            PriceLine(
                key=str(i), product_id=0, category_ids=frozenset(), list_price_fen=price, quantity=quantity
            )
            for i, (price, quantity) in enumerate(lines)
        ],
        PricingRules(member_discount_percent=discount_percent),
    )
    items_total = sum(line.source.list_price_fen * line.source.quantity for line in priced)
    payable = sum(line.total_fen for line in priced)
    return CartTotals(items_total=items_total, discount_total=items_total - payable, payable=payable)
