"""Churn warnings: each member's daily RFM score and the care flows started for at-risk members."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class MemberScore(Model):
    """The latest RFM score of a member, and whether a high-value member is drifting away (with reasons)."""

    member_id = fields.IntField(primary_key=True)
    scored_on = fields.DateField()
    recency_days = fields.IntField(null=True)  # days since the last paid order, None if never
    frequency = fields.IntField(default=0)  # paid orders in the scoring window
    monetary_fen = fields.BigIntField(default=0)  # lifetime paid minus refunded
    r_score = fields.SmallIntField(default=1)  # 1 (worst) to 5 (best)
    f_score = fields.SmallIntField(default=1)
    m_score = fields.SmallIntField(default=1)
    segment = fields.CharField(max_length=32, default="")
    high_value = fields.BooleanField(default=False)
    at_risk = fields.BooleanField(default=False)
    reasons: fields.JSONField[list[str]] = fields.JSONField(default=list)
    recent_activity = fields.IntField(default=0)  # active days in the last 30 days
    prior_activity = fields.IntField(default=0)  # active days in the 30 days before those
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "churn_member_score"
        indexes = (("at_risk", "monetary_fen"),)


class CareFlow(Model):
    """One care flow for an at-risk member: CRM task, targeted coupon, subscribe message (at most weekly)."""

    id = fields.IntField(primary_key=True)
    member_id = fields.IntField()
    started_on = fields.DateField()
    reasons: fields.JSONField[list[str]] = fields.JSONField(default=list)
    crm_task_id = fields.CharField(max_length=64, null=True)
    member_coupon_id = fields.IntField(null=True)
    # PENDING, SENT, NOT_SUBSCRIBED or FAILED
    message_status = fields.CharField(max_length=16, default="PENDING")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "churn_care_flow"
        unique_together = (("member_id", "started_on"),)
