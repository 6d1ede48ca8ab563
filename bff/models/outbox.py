"""Durable work: the outbox of side effects and the inbox of received webhook events."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class OutboxMessage(Model):
    """A side effect to perform (push an order, send a message, close an order at its deadline)."""

    id = fields.BigIntField(primary_key=True)
    topic = fields.CharField(max_length=64)
    payload: fields.JSONField[dict[str, object]] = fields.JSONField(default=dict)
    # Work that must happen once whatever enqueues it twice carries a dedupe key.
    dedupe_key = fields.CharField(max_length=128, null=True, unique=True)
    status = fields.CharField(max_length=12, default="PENDING")  # PENDING, DONE, DEAD
    attempts = fields.IntField(default=0)
    run_at = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    done_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_message"
        indexes = (("status", "run_at"), ("topic", "status"))


class InboundEvent(Model):
    """A webhook event, stored before it is acknowledged and applied exactly once afterwards."""

    id = fields.BigIntField(primary_key=True)
    source = fields.CharField(max_length=16)  # erp, wechatpay
    event_id = fields.CharField(max_length=128)
    type = fields.CharField(max_length=64)
    version = fields.BigIntField(default=0)
    occurred_at = fields.DatetimeField(null=True)
    payload: fields.JSONField[dict[str, object]] = fields.JSONField(default=dict)
    status = fields.CharField(max_length=12, default="PENDING")  # PENDING, APPLIED, STALE, FAILED
    received_at = fields.DatetimeField(auto_now_add=True)
    applied_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(default="")

    class Meta:
        table = "inbound_event"
        unique_together = (("source", "event_id"),)
        indexes = (("status", "id"),)
