"""Order entry points: checkout preview, place, pay, cancel, confirm receipt, after-sales, order detail."""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.ids import decode_id, encode_id
from bff.services import after_sales, campaign_checkout, orders, payments
from bff.services.checkout import CheckoutRequest, quote
from bff.services.errors import BusinessError
from bff.services.fulfilment import confirm_receipt
from loaders.registry import forget
from schema.catalog import Sku
from schema.checkout import (
    CampaignInput,
    CheckoutInput,
    CheckoutLine,
    CheckoutPreview,
    CheckoutSummary,
    InapplicableCoupon,
    PayOrderPayload,
    PayParams,
    PlaceOrderPayload,
)
from schema.common import money, user_errors
from schema.marketing import MemberCoupon
from schema.order import AfterSale, AfterSaleInput, AfterSalePayload, Order, OrderPayload


def _request(member_id: int, data: CheckoutInput) -> CheckoutRequest:
    """Decode the checkout input; a malformed id is a BusinessError naming the field."""
    campaign = _campaign(data.campaign) if data.campaign is not None else None
    lines: list[tuple[int, int]] = []
    for line in data.lines or []:
        sku_id = decode_id(str(line.sku_id), "Sku")
        if sku_id is None:
            raise BusinessError("NOT_FOUND", "商品规格不存在", "lines")
        lines.append((sku_id, line.quantity))
    address_id = decode_id(str(data.address_id), "Address") if data.address_id is not None else None
    if data.address_id is not None and address_id is None:
        raise BusinessError("ADDRESS_REQUIRED", "收货地址不存在，请重新选择", "addressId")
    coupon_id = decode_id(str(data.coupon_id), "MemberCoupon") if data.coupon_id is not None else None
    if data.coupon_id is not None and coupon_id is None:
        raise BusinessError("COUPON_NOT_APPLICABLE", "优惠券不存在", "couponId")
    return CheckoutRequest(
        member_id=member_id,
        source=data.source.value,
        lines=tuple(lines),
        address_id=address_id,
        member_coupon_id=coupon_id,
        points_to_use=data.points_to_use or 0,
        remark=(data.remark or "").strip(),
        idempotency_key=data.idempotency_key,
        expected_payable_fen=data.expected_payable,
        campaign=campaign,
    )


_CAMPAIGN_FIELDS = (
    ("flash_sale_item_id", campaign_checkout.FLASH_SALE, "FlashSaleItem"),
    ("group_buy_team_id", campaign_checkout.GROUP_BUY_JOIN, "GroupBuyTeam"),
    ("group_buy_campaign_id", campaign_checkout.GROUP_BUY_OPEN, "GroupBuyCampaign"),
    ("bargain_session_id", campaign_checkout.BARGAIN, "BargainSession"),
    ("presale_campaign_id", campaign_checkout.PRESALE, "PresaleCampaign"),
)


def _campaign(data: CampaignInput) -> campaign_checkout.CampaignRef:
    """The one campaign a checkout names; none or several is a clear error."""
    given = [(kind, type_name, getattr(data, attr)) for attr, kind, type_name in _CAMPAIGN_FIELDS]
    named = [(kind, type_name, value) for kind, type_name, value in given if value is not None]
    if len(named) != 1:
        raise BusinessError("INVALID_INPUT", "请只指定一个活动", "campaign")
    kind, type_name, value = named[0]
    pk = decode_id(str(value), type_name)
    if pk is None:
        raise BusinessError("NOT_FOUND", "活动不存在", "campaign")
    return campaign_checkout.CampaignRef(kind=kind, ref_id=pk)


def _order_pk(opaque: strawberry.ID, field: str = "orderId") -> int:
    pk = decode_id(str(opaque), "Order")
    if pk is None:
        raise BusinessError("NOT_FOUND", "订单不存在", field)
    return pk


def _empty_preview(exc: BusinessError) -> CheckoutPreview:
    return CheckoutPreview(
        lines=[],
        applicable_coupons=[],
        inapplicable_coupons=[],
        best_coupon_id=None,
        max_points_usable=0,
        summary=None,
        user_errors=user_errors(exc),
    )


@strawberry.type
class OrderQuery:
    @strawberry.field(description="One of the viewer's orders; someone else's is null.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        member_id = info.context.require_member()
        pk = decode_id(str(id), "Order")
        row = await info.context.loaders.order_by_id.load(pk) if pk is not None else None
        if row is None or row.member_id != member_id:
            return None
        return Order.from_model(row)

    @strawberry.field(description="Price a checkout without side effects.")
    async def checkout_preview(self, info: Info, input: CheckoutInput) -> CheckoutPreview:
        try:
            request = _request(info.context.acting_member(), input)
            q = await quote(request, info.context.settings)
        except BusinessError as exc:
            return _empty_preview(exc)
        by_key = {line.key: line for line in q.priced.lines}
        p = q.priced
        skus = await info.context.loaders.sku_by_id.load_many([line.sku.id for line in q.lines])
        return CheckoutPreview(
            lines=[
                CheckoutLine(
                    sku=Sku.from_row(row),
                    quantity=line.quantity,
                    unit_price=money(by_key[str(line.sku.id)].unit_price_fen),
                    line_total=money(by_key[str(line.sku.id)].line_total_fen),
                )
                for line, row in zip(q.lines, skus, strict=True)
                if row is not None
            ],
            applicable_coupons=[
                MemberCoupon.from_models(w.coupon, w.template, "UNUSED")
                for w in q.coupons
                if w.check.applicable
            ],
            inapplicable_coupons=[
                InapplicableCoupon(
                    coupon=MemberCoupon.from_models(w.coupon, w.template, "UNUSED"),
                    reason=w.check.reason or "",
                )
                for w in q.coupons
                if not w.check.applicable
            ],
            best_coupon_id=strawberry.ID(encode_id("MemberCoupon", q.best_coupon_id))
            if q.best_coupon_id is not None
            else None,
            max_points_usable=p.max_points_usable,
            summary=CheckoutSummary(
                items_total=money(p.items_total_fen),
                member_discount=money(p.member_discount_fen),
                campaign_discount=money(p.campaign_discount_fen),
                coupon_discount=money(p.coupon_discount_fen),
                points_discount=money(p.points_discount_fen),
                shipping_fee=money(p.shipping_fee_fen),
                payable=money(p.payable_fen),
            ),
            user_errors=[],
        )


@strawberry.type
class OrderMutation:
    @strawberry.mutation(
        description="Place the order: re-priced on the server, stock held until the pay deadline."
    )
    async def place_order(self, info: Info, input: CheckoutInput) -> PlaceOrderPayload:
        services = info.context.services
        try:
            request = _request(info.context.acting_member(), input)
            order = await orders.place_order(request, services.settings, services.cache, services.erp)
        except BusinessError as exc:
            return PlaceOrderPayload(order=None, user_errors=user_errors(exc))
        forget(info.context.loaders.cart_items_by_member, request.member_id)
        return PlaceOrderPayload(order=Order.from_model(order), user_errors=[])

    @strawberry.mutation(description="The parameters to hand to wx.requestPayment.")
    async def pay_order(self, info: Info, order_id: strawberry.ID) -> PayOrderPayload:
        services = info.context.services
        try:
            params = await payments.prepay(
                info.context.acting_member(),
                _order_pk(order_id),
                services.wechat_pay,
                services.settings.wechat_pay_notify_url,
            )
        except BusinessError as exc:
            return PayOrderPayload(pay_params=None, user_errors=user_errors(exc))
        return PayOrderPayload(
            pay_params=PayParams(
                app_id=params.app_id,
                time_stamp=params.time_stamp,
                nonce_str=params.nonce_str,
                package=params.package,
                sign_type=params.sign_type,
                pay_sign=params.pay_sign,
            ),
            user_errors=[],
        )

    @strawberry.mutation(description="Cancel an unpaid order (a paid one goes through after-sales).")
    async def cancel_order(
        self, info: Info, order_id: strawberry.ID, reason: str | None = None
    ) -> OrderPayload:
        try:
            order = await orders.cancel_unpaid(
                info.context.acting_member(),
                _order_pk(order_id, "id"),
                reason or "",
                info.context.services.cache,
            )
        except BusinessError as exc:
            return OrderPayload(order=None, user_errors=user_errors(exc))
        return OrderPayload(order=Order.from_model(order), user_errors=[])

    @strawberry.mutation
    async def confirm_receipt(self, info: Info, order_id: strawberry.ID) -> OrderPayload:
        try:
            member_id = info.context.acting_member()
            order = await confirm_receipt(_order_pk(order_id, "id"), member_id=member_id, auto=False)
        except BusinessError as exc:
            return OrderPayload(order=None, user_errors=user_errors(exc))
        return OrderPayload(order=Order.from_model(order), user_errors=[])

    @strawberry.mutation
    async def request_after_sale(self, info: Info, input: AfterSaleInput) -> AfterSalePayload:
        try:
            member_id = info.context.acting_member()
            items = []
            for line in input.lines:
                sku_id = decode_id(str(line.order_line_sku_id), "Sku")
                if sku_id is None:
                    raise BusinessError("NOT_FOUND", "订单中没有这件商品", "lines")
                items.append(after_sales.AfterSaleItem(sku_id=sku_id, quantity=line.quantity))
            row = await after_sales.request_after_sale(
                member_id,
                _order_pk(input.order_id),
                input.type.value,
                items,
                input.reason,
                input.description or "",
                input.image_urls or [],
            )
        except BusinessError as exc:
            return AfterSalePayload(after_sale=None, user_errors=user_errors(exc))
        return AfterSalePayload(after_sale=AfterSale.from_model(row), user_errors=[])
