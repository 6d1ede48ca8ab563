"""Cart lines: one row per (member, SKU)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class CartItem(Model):
    id = fields.IntField(primary_key=True)
    member_id = fields.IntField()
    sku_id = fields.IntField()
    quantity = fields.IntField()
    selected = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "cart_item"
        unique_together = (("member_id", "sku_id"),)
