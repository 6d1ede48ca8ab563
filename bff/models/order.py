"""Orders, their lines, timeline, shipments, payments, refunds and after-sale requests."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from bff.models.encrypted import EncryptedJSONField

# Order statuses as the mini-program's tabs see them.
PENDING_PAYMENT = "PENDING_PAYMENT"
PAID = "PAID"
SHIPPED = "SHIPPED"
DELIVERED = "DELIVERED"
COMPLETED = "COMPLETED"
CLOSED = "CLOSED"
CANCELLED = "CANCELLED"


class Order(Model):
    id = fields.IntField(primary_key=True)
    order_no = fields.CharField(max_length=32, unique=True)
    member_id = fields.IntField()
    status = fields.CharField(max_length=24, default=PENDING_PAYMENT)
    items_total_fen = fields.IntField(default=0)
    member_discount_fen = fields.IntField(default=0)
    campaign_discount_fen = fields.IntField(default=0)
    coupon_discount_fen = fields.IntField(default=0)
    points_discount_fen = fields.IntField(default=0)
    shipping_fee_fen = fields.IntField(default=0)
    payable_fen = fields.IntField(default=0)
    refunded_fen = fields.IntField(default=0, db_default=0)
    points_used = fields.IntField(default=0)
    member_coupon_id = fields.IntField(null=True)
    campaign_kind = fields.CharField(max_length=24, null=True)  # FLASH_SALE, GROUP_BUY, BARGAIN, PRESALE
    campaign_ref = fields.IntField(null=True)
    address_snapshot: fields.JSONField[dict[str, str]] = EncryptedJSONField(default=dict)
    remark = fields.CharField(max_length=256, default="")
    idempotency_key = fields.CharField(max_length=64, null=True)
    pay_deadline = fields.DatetimeField(null=True)
    prepay_id = fields.CharField(max_length=128, null=True)
    paid_at = fields.DatetimeField(null=True)
    shipped_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    close_reason = fields.CharField(max_length=128, default="", db_default="")
    erp_order_id = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "orders"
        unique_together = (("member_id", "idempotency_key"),)
        # paid_at and created_at serve the dashboard's range scans (GMV, orders per day).
        indexes = (
            ("member_id", "status", "id"),
            ("member_id", "id"),
            ("status", "pay_deadline"),
            ("paid_at",),
            ("created_at",),
        )


class OrderLine(Model):
    """A line as it was sold: snapshot of the product and the discounts allocated to it."""

    id = fields.IntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="lines", on_delete=fields.CASCADE
    )
    order_id: int
    sku_id = fields.IntField()
    sku_code = fields.CharField(max_length=64, default="", db_default="")
    product_id = fields.IntField()
    product_title = fields.CharField(max_length=200)
    image_url = fields.CharField(max_length=512, default="")
    spec_text = fields.CharField(max_length=200, default="")
    quantity = fields.IntField()
    list_price_fen = fields.IntField(default=0, db_default=0)
    unit_price_fen = fields.IntField()  # after member/campaign price
    line_total_fen = fields.IntField()  # unit price x quantity
    member_discount_fen = fields.IntField(default=0, db_default=0)
    campaign_discount_fen = fields.IntField(default=0, db_default=0)
    coupon_discount_fen = fields.IntField(default=0, db_default=0)
    points_discount_fen = fields.IntField(default=0, db_default=0)
    paid_fen = fields.IntField(default=0, db_default=0)  # after every allocated discount
    refunded_quantity = fields.IntField(default=0, db_default=0)
    refunded_fen = fields.IntField(default=0, db_default=0)

    class Meta:
        table = "order_line"
        indexes = (("order_id",),)


class OrderEvent(Model):
    """The order's timeline: every status change with when and why."""

    id = fields.IntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="events", on_delete=fields.CASCADE
    )
    order_id: int
    status = fields.CharField(max_length=24)
    note = fields.CharField(max_length=256, default="")
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "order_event"
        indexes = (("order_id", "id"),)


class Shipment(Model):
    id = fields.IntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="shipments", on_delete=fields.CASCADE
    )
    order_id: int
    carrier = fields.CharField(max_length=64)
    tracking_no = fields.CharField(max_length=64, unique=True)
    shipped_at = fields.DatetimeField()
    # [{"at", "description", "location"}] as the ERP last reported them, oldest first.
    events: fields.JSONField[list[dict[str, str]]] = fields.JSONField(default=list)
    events_version = fields.BigIntField(default=0)

    class Meta:
        table = "shipment"
        indexes = (("order_id",),)


class Payment(Model):
    """A WeChat Pay transaction for an order, recorded once per transaction id."""

    id = fields.IntField(primary_key=True)
    order_id = fields.IntField()
    out_trade_no = fields.CharField(max_length=64)
    transaction_id = fields.CharField(max_length=64, unique=True)
    amount_fen = fields.IntField()
    status = fields.CharField(max_length=16)  # SUCCESS; a late one is REFUNDING
    paid_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment"
        indexes = (("order_id",),)


class Refund(Model):
    id = fields.IntField(primary_key=True)
    order_id = fields.IntField()
    after_sale_id = fields.IntField(null=True)
    out_refund_no = fields.CharField(max_length=64, unique=True)
    amount_fen = fields.IntField()
    reason = fields.CharField(max_length=128, default="")
    status = fields.CharField(max_length=16, default="PENDING")  # PENDING, PROCESSING, SUCCESS, FAILED
    refund_id = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    succeeded_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refund"
        indexes = (("order_id",),)


class AfterSale(Model):
    id = fields.IntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="after_sales", on_delete=fields.CASCADE
    )
    order_id: int
    member_id = fields.IntField()
    type = fields.CharField(max_length=24)  # REFUND_ONLY, RETURN_AND_REFUND, EXCHANGE
    status = fields.CharField(max_length=24, default="REQUESTED")
    amount_fen = fields.IntField(default=0)
    # [{"order_line_id", "sku_id", "quantity", "amount_fen"}]
    lines: fields.JSONField[list[dict[str, int]]] = fields.JSONField(default=list, db_default=[])
    reason = fields.CharField(max_length=256, default="")
    description = fields.TextField(default="", db_default="")
    image_urls: fields.JSONField[list[str]] = fields.JSONField(default=list, db_default=[])
    erp_return_id = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "after_sale"
        indexes = (("member_id", "status"), ("order_id",))
