"""Content shown on screens: banners."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Banner(Model):
    id = fields.IntField(primary_key=True)
    position = fields.CharField(max_length=32)  # HOME_TOP, CATEGORY_TOP, …
    image_url = fields.CharField(max_length=512)
    link = fields.CharField(max_length=512, default="")
    sort_order = fields.IntField(default=0)
    starts_at = fields.DatetimeField(null=True)
    ends_at = fields.DatetimeField(null=True)
    active = fields.BooleanField(default=True)

    class Meta:
        table = "banner"
        indexes = (("position", "sort_order"),)
