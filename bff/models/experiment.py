"""A/B tests defined by operators: variants with weights, shown on one screen."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Experiment(Model):
    """An experiment: members and visitors are assigned a variant by a stable hash of key and identity."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)
    screen = fields.CharField(max_length=32)
    # [{"key": "control", "weight": 50}, {"key": "b", "weight": 50}], the first is the control
    variants: fields.JSONField[list[dict[str, object]]] = fields.JSONField(default=list)
    # DRAFT, RUNNING or STOPPED
    status = fields.CharField(max_length=16, default="DRAFT")
    created_by = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    stopped_at = fields.DatetimeField(null=True)

    class Meta:
        table = "experiment"
