"""Order types: the order list and detail with timeline, logistics, after-sales and allowed actions."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.models import order as status
from bff.models.order import AfterSale as AfterSaleModel
from bff.models.order import Order as OrderModel
from bff.models.order import OrderLine as OrderLineModel
from bff.services.campaign_checkout import after_sale_allowed
from schema.catalog import Sku
from schema.common import Money, UserError, money


@strawberry.enum
class OrderStatus(enum.Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"


@strawberry.enum(description="The order list's tabs.")
class OrderStatusFilter(enum.Enum):
    ALL = "ALL"
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CLOSED = "CLOSED"
    AFTER_SALE = "AFTER_SALE"


@strawberry.enum(description="What the shopper can do with the order now.")
class OrderAction(enum.Enum):
    PAY = "PAY"
    CANCEL = "CANCEL"
    CONFIRM_RECEIPT = "CONFIRM_RECEIPT"
    REQUEST_AFTER_SALE = "REQUEST_AFTER_SALE"
    VIEW_LOGISTICS = "VIEW_LOGISTICS"


def available_actions(order: OrderModel, has_shipments: bool, now: datetime) -> list[OrderAction]:
    """The buttons the order detail shows."""
    actions: list[OrderAction] = []
    if order.status == status.PENDING_PAYMENT and (order.pay_deadline is None or order.pay_deadline > now):
        actions += [OrderAction.PAY, OrderAction.CANCEL]
    if order.status in (status.SHIPPED, status.DELIVERED):
        actions.append(OrderAction.CONFIRM_RECEIPT)
    if order.status in (
        status.PAID,
        status.SHIPPED,
        status.DELIVERED,
        status.COMPLETED,
    ) and after_sale_allowed(order.status, order.campaign_kind):
        actions.append(OrderAction.REQUEST_AFTER_SALE)
    if has_shipments:
        actions.append(OrderAction.VIEW_LOGISTICS)
    return actions


@strawberry.type
class OrderAddress:
    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str

    @strawberry.field
    def full_text(self) -> str:
        return f"{self.province}{self.city}{self.district}{self.detail}"


@strawberry.type
class OrderLine:
    product_title: str
    image_url: str
    spec_text: str
    quantity: int
    unit_price: Money
    line_total: Money
    paid: Money = strawberry.field(description="The line's share of the payable after every discount.")
    model: strawberry.Private[OrderLineModel]

    @classmethod
    def from_model(cls, line: OrderLineModel) -> OrderLine:
        return cls(
            product_title=line.product_title,
            image_url=line.image_url,
            spec_text=line.spec_text,
            quantity=line.quantity,
            unit_price=money(line.unit_price_fen),
            line_total=money(line.line_total_fen),
            paid=money(line.paid_fen),
            model=line,
        )

    @strawberry.field
    async def sku(self, info: Info) -> Sku | None:
        row = await info.context.loaders.sku_by_id.load(self.model.sku_id)
        return Sku.from_row(row) if row is not None else None


@strawberry.type
class OrderSummary:
    items_total: Money
    member_discount: Money
    campaign_discount: Money
    coupon_discount: Money
    points_discount: Money
    shipping_fee: Money
    payable: Money
    refunded: Money


@strawberry.type
class TimelineEntry:
    status: OrderStatus
    at: datetime
    note: str


@strawberry.type
class ShipmentEvent:
    at: str
    description: str
    location: str


@strawberry.type
class Shipment:
    carrier: str
    tracking_no: str
    shipped_at: datetime
    events: list[ShipmentEvent]


@strawberry.type
class AfterSale:
    id: strawberry.ID
    type: str
    status: str
    amount: Money
    reason: str
    created_at: datetime

    @classmethod
    def from_model(cls, row: AfterSaleModel) -> AfterSale:
        return cls(
            id=strawberry.ID(encode_id("AfterSale", row.id)),
            type=row.type,
            status=row.status,
            amount=money(row.amount_fen),
            reason=row.reason,
            created_at=row.created_at,
        )


@strawberry.type
class Order:
    id: strawberry.ID
    order_no: str
    status: OrderStatus
    created_at: datetime
    paid_at: datetime | None
    pay_deadline: datetime | None
    payable: Money
    model: strawberry.Private[OrderModel]

    @classmethod
    def from_model(cls, row: OrderModel) -> Order:
        return cls(
            id=strawberry.ID(encode_id("Order", row.id)),
            order_no=row.order_no,
            status=OrderStatus(row.status),
            created_at=row.created_at,
            paid_at=row.paid_at,
            pay_deadline=row.pay_deadline,
            payable=money(row.payable_fen),
            model=row,
        )

    @strawberry.field
    def address(self) -> OrderAddress:
        a = self.model.address_snapshot
        return OrderAddress(
            name=a.get("name", ""),
            phone=a.get("phone", ""),
            province=a.get("province", ""),
            city=a.get("city", ""),
            district=a.get("district", ""),
            detail=a.get("detail", ""),
        )

    @strawberry.field
    def summary(self) -> OrderSummary:
        o = self.model
        return OrderSummary(
            items_total=money(o.items_total_fen),
            member_discount=money(o.member_discount_fen),
            campaign_discount=money(o.campaign_discount_fen),
            coupon_discount=money(o.coupon_discount_fen),
            points_discount=money(o.points_discount_fen),
            shipping_fee=money(o.shipping_fee_fen),
            payable=money(o.payable_fen),
            refunded=money(o.refunded_fen),
        )

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:
        return [
            OrderLine.from_model(line)
            for line in await info.context.loaders.lines_by_order.load(self.model.id)
        ]

    @strawberry.field(description="Total pieces in the order.")
    async def item_count(self, info: Info) -> int:
        return sum(line.quantity for line in await info.context.loaders.lines_by_order.load(self.model.id))

    @strawberry.field
    async def timeline(self, info: Info) -> list[TimelineEntry]:
        events = await info.context.loaders.events_by_order.load(self.model.id)
        return [TimelineEntry(status=OrderStatus(e.status), at=e.at, note=e.note) for e in events]

    @strawberry.field
    async def shipments(self, info: Info) -> list[Shipment]:
        rows = await info.context.loaders.shipments_by_order.load(self.model.id)
        return [
            Shipment(
                carrier=s.carrier,
                tracking_no=s.tracking_no,
                shipped_at=s.shipped_at,
                events=[
                    ShipmentEvent(
                        at=e.get("at", ""),
                        description=e.get("description", ""),
                        location=e.get("location", ""),
                    )
                    for e in s.events
                ],
            )
            for s in rows
        ]

    @strawberry.field
    async def after_sales(self, info: Info) -> list[AfterSale]:
        return [
            AfterSale.from_model(a)
            for a in await info.context.loaders.after_sales_by_order.load(self.model.id)
        ]

    @strawberry.field
    async def available_actions(self, info: Info) -> list[OrderAction]:
        shipments = await info.context.loaders.shipments_by_order.load(self.model.id)
        return available_actions(self.model, bool(shipments), datetime.now(UTC))


@strawberry.type
class OrderPayload:
    order: Order | None
    user_errors: list[UserError]


@strawberry.type
class AfterSalePayload:
    after_sale: AfterSale | None
    user_errors: list[UserError]


@strawberry.enum
class AfterSaleType(enum.Enum):
    REFUND_ONLY = "REFUND_ONLY"
    RETURN_AND_REFUND = "RETURN_AND_REFUND"
    EXCHANGE = "EXCHANGE"


@strawberry.input
class AfterSaleLineInput:
    order_line_sku_id: strawberry.ID
    quantity: int


@strawberry.input
class AfterSaleInput:
    order_id: strawberry.ID
    type: AfterSaleType
    lines: list[AfterSaleLineInput]
    reason: str
    description: str | None = None
    image_urls: list[str] | None = None
