"""Checkout: turn what the shopper asked for into priced lines, exactly as placeOrder will charge them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bff.models.cart import CartItem
from bff.models.catalog import Category, Product, Sku
from bff.models.marketing import CouponTemplate, MemberCoupon
from bff.models.member import Member, MemberLevel
from bff.services.campaign_checkout import PRESALE, CampaignLine, CampaignRef, handler_for
from bff.services.cart import MAX_LINE_QUANTITY, buyable
from bff.services.errors import BusinessError
from bff.services.pricing import (
    CouponCheck,
    CouponSpec,
    PricedOrder,
    PriceLine,
    PricingError,
    PricingRules,
    best_coupon,
    check_coupon,
    price_order,
)
from bff.settings import Settings

MAX_CHECKOUT_LINES = 50


@dataclass(frozen=True)
class CheckoutRequest:
    """What the mini-program sends (CheckoutInput), with ids decoded."""

    member_id: int
    source: str  # CART or BUY_NOW
    lines: tuple[tuple[int, int], ...] = ()  # (sku_id, quantity) for BUY_NOW
    address_id: int | None = None
    member_coupon_id: int | None = None
    points_to_use: int = 0
    remark: str = ""
    idempotency_key: str | None = None
    expected_payable_fen: int | None = None
    campaign: CampaignRef | None = None


@dataclass(frozen=True)
class CheckoutLine:
    sku: Sku
    product: Product
    quantity: int
    cart_item_id: int | None
    campaign_price_fen: int | None = None


@dataclass(frozen=True)
class WalletCoupon:
    coupon: MemberCoupon
    template: CouponTemplate
    check: CouponCheck


@dataclass(frozen=True)
class Quote:
    """A priced checkout: the lines, the coupons the member could use, and the amounts."""

    lines: tuple[CheckoutLine, ...]
    priced: PricedOrder
    coupons: tuple[WalletCoupon, ...]
    best_coupon_id: int | None
    member: Member
    level: MemberLevel
    campaign_line: CampaignLine | None = None


def coupon_spec(template: CouponTemplate, member_coupon_id: int) -> CouponSpec:
    """The pricing engine's view of a coupon the member holds."""
    return CouponSpec(
        id=member_coupon_id,
        kind=template.kind,
        amount_fen=template.amount_fen,
        percent_off=template.percent_off,
        cap_fen=template.cap_fen,
        min_spend_fen=template.min_spend_fen,
        scope=template.scope,
        scope_ids=frozenset(int(i) for i in template.scope_ids),
    )


def pricing_rules(settings: Settings, level: MemberLevel) -> PricingRules:
    """The shop's pricing configuration for a member at `level`."""
    return PricingRules(
        member_discount_percent=level.discount_percent,
        level_free_shipping=level.free_shipping,
        points_per_yuan=settings.points_per_yuan_redeem,
        points_max_share_percent=settings.points_max_share_percent,
        shipping_fee_fen=settings.shipping_fee_fen,
        free_shipping_threshold_fen=settings.free_shipping_threshold_fen,
    )


async def _requested_lines(request: CheckoutRequest) -> list[tuple[int, int, int | None]]:
    if request.source == "CART":
        items = await CartItem.filter(member_id=request.member_id, selected=True).order_by("-id")
        if not items:
            raise BusinessError("INVALID_INPUT", "请先在购物车中选择商品", "source")
        return [(i.sku_id, i.quantity, i.id) for i in items]
    if request.source != "BUY_NOW":
        raise BusinessError("INVALID_INPUT", "source 须为 CART 或 BUY_NOW", "source")
    if not request.lines:
        raise BusinessError("INVALID_INPUT", "请选择要购买的商品", "lines")
    merged: dict[int, int] = {}
    for sku_id, quantity in request.lines:
        if quantity < 1 or quantity > MAX_LINE_QUANTITY:
            raise BusinessError("INVALID_INPUT", f"数量须在 1 到 {MAX_LINE_QUANTITY} 之间", "lines")
        merged[sku_id] = merged.get(sku_id, 0) + quantity
    return [(sku_id, quantity, None) for sku_id, quantity in merged.items()]


async def load_lines(request: CheckoutRequest, campaign: CampaignLine | None = None) -> list[CheckoutLine]:
    """The SKUs to buy with their products; every one must exist, be on shelf and have the stock."""
    wanted = (
        [(campaign.sku_id, campaign.quantity, None)]
        if campaign is not None
        else await _requested_lines(request)
    )
    if len(wanted) > MAX_CHECKOUT_LINES:
        raise BusinessError("INVALID_INPUT", f"一次最多结算 {MAX_CHECKOUT_LINES} 种商品", "lines")
    skus = {s.id: s for s in await Sku.filter(id__in=[w[0] for w in wanted])}
    products = {p.id: p for p in await Product.filter(id__in=[s.product_id for s in skus.values()])}
    lines = []
    for sku_id, quantity, cart_item_id in wanted:
        sku = skus.get(sku_id)
        product = products.get(sku.product_id) if sku is not None else None
        if sku is None or product is None:
            raise BusinessError("NOT_FOUND", "商品规格不存在", "lines")
        if not product.on_shelf:
            raise BusinessError("PRODUCT_UNAVAILABLE", f"「{product.title}」已下架", "lines")
        if buyable(sku) < quantity:
            raise BusinessError(
                "OUT_OF_STOCK", f"「{product.title}」库存不足，剩余 {buyable(sku)} 件", "lines"
            )
        lines.append(
            CheckoutLine(
                sku=sku,
                product=product,
                quantity=quantity,
                cart_item_id=cart_item_id,
                campaign_price_fen=campaign.unit_price_fen if campaign is not None else None,
            )
        )
    return lines


async def _category_ids(products: Sequence[Product]) -> dict[int, frozenset[int]]:
    # A coupon scoped to a top-level category covers its subcategories' products too.
    parents = dict(
        await Category.filter(id__in=[p.category_id for p in products]).values_list("id", "parent_id")
    )
    return {
        p.id: frozenset({p.category_id} | ({parents[p.category_id]} if parents.get(p.category_id) else set()))
        for p in products
    }


def price_lines(lines: Sequence[CheckoutLine], categories: dict[int, frozenset[int]]) -> list[PriceLine]:
    """The pricing engine's lines for checkout lines."""
    return [
        PriceLine(
            key=str(line.sku.id),
            product_id=line.product.id,
            category_ids=categories[line.product.id],
            list_price_fen=line.sku.price_fen,
            quantity=line.quantity,
            campaign_price_fen=line.campaign_price_fen,
        )
        for line in lines
    ]


async def quote(request: CheckoutRequest, settings: Settings) -> Quote:
    """Price a checkout with no side effects; business problems raise BusinessError."""
    if request.points_to_use < 0:
        raise BusinessError("INVALID_INPUT", "积分数不能为负", "pointsToUse")
    member = await Member.get(id=request.member_id)
    level = await MemberLevel.get(id=member.level_id)
    campaign_line = None
    if request.campaign is not None:
        if request.member_coupon_id is not None:
            raise BusinessError("COUPON_NOT_APPLICABLE", "活动商品不能使用优惠券", "couponId")
        campaign_line = await handler_for(request.campaign.kind).quote(
            request.member_id, request.campaign, request.lines
        )
    lines = await load_lines(request, campaign_line)
    categories = await _category_ids([line.product for line in lines])
    engine_lines = price_lines(lines, categories)
    rules = pricing_rules(settings, level)
    if request.campaign is not None and request.campaign.kind == PRESALE:
        # A presale deposit ships nothing: the balance order carries the shipping fee.
        rules = replace(rules, shipping_fee_fen=0)

    now = datetime.now(UTC)
    # Campaign prices are already the deal: coupons do not stack on them.
    wallet = (
        []
        if campaign_line is not None
        else await MemberCoupon.filter(
            member_id=member.id, status="UNUSED", expires_at__gt=now
        ).select_related("template")
    )
    coupons = tuple(
        WalletCoupon(
            coupon=c,
            template=c.template,
            check=check_coupon(engine_lines, rules, coupon_spec(c.template, c.id)),
        )
        for c in wallet
    )
    best = best_coupon(
        engine_lines, rules, [coupon_spec(w.template, w.coupon.id) for w in coupons if w.check.applicable]
    )

    chosen: CouponSpec | None = None
    if request.member_coupon_id is not None:
        held = next((w for w in coupons if w.coupon.id == request.member_coupon_id), None)
        if held is None:
            raise BusinessError("COUPON_NOT_APPLICABLE", "优惠券不可用（已使用、已过期或不存在）", "couponId")
        if not held.check.applicable:
            raise BusinessError("COUPON_NOT_APPLICABLE", held.check.reason or "优惠券不适用", "couponId")
        chosen = coupon_spec(held.template, held.coupon.id)
    try:
        priced = price_order(
            engine_lines,
            rules,
            coupon=chosen,
            points_to_use=request.points_to_use,
            points_balance=member.points_balance,
        )
    except PricingError as exc:
        raise BusinessError(exc.code, exc.message, _pricing_field(exc.code)) from exc
    return Quote(
        lines=tuple(lines),
        priced=priced,
        coupons=coupons,
        best_coupon_id=best.id if best is not None else None,
        member=member,
        level=level,
        campaign_line=campaign_line,
    )


def _pricing_field(code: str) -> str | None:
    if code in ("INSUFFICIENT_POINTS", "POINTS_OVER_LIMIT"):
        return "pointsToUse"
    if code == "COUPON_NOT_APPLICABLE":
        return "couponId"
    return None
