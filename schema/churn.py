"""Churn warning types for operators: members' RFM scores, why they look like leaving, the care flows."""

from __future__ import annotations

import enum
from datetime import date

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.models.churn import CareFlow as CareFlowModel
from bff.models.churn import MemberScore as MemberScoreModel
from bff.pii_mask import mask_phone
from bff.services.churn import RunSummary
from schema.common import Money, UserError, money


@strawberry.enum(description="Where the care flow's subscribe message stands.")
class CareMessageStatus(enum.Enum):
    PENDING = "PENDING"
    SENT = "SENT"
    NOT_SUBSCRIBED = "NOT_SUBSCRIBED"
    FAILED = "FAILED"


@strawberry.type(description="One care flow for an at-risk member: CRM task, coupon, subscribe message.")
class CareFlow:
    id: strawberry.ID
    started_on: date
    reasons: list[str]
    crm_task_id: str | None = strawberry.field(description="The CRM's task; null until it is opened.")
    coupon_id: strawberry.ID | None = strawberry.field(
        description="The MemberCoupon granted; null when no CARE coupon template was available."
    )
    message_status: CareMessageStatus

    @classmethod
    def from_model(cls, flow: CareFlowModel) -> CareFlow:
        coupon = flow.member_coupon_id
        return cls(
            id=strawberry.ID(encode_id("CareFlow", flow.id)),
            started_on=flow.started_on,
            reasons=list(flow.reasons),
            crm_task_id=flow.crm_task_id,
            coupon_id=strawberry.ID(encode_id("MemberCoupon", coupon)) if coupon is not None else None,
            message_status=CareMessageStatus(flow.message_status),
        )


@strawberry.type(description="A member's latest RFM score (1 worst - 5 best) and churn warning.")
class MemberScore:
    model: strawberry.Private[MemberScoreModel]
    member_id: strawberry.ID
    scored_on: date
    recency_days: int | None = strawberry.field(description="Days since the last purchase.")
    frequency: int = strawberry.field(description="Purchases in the last 365 days.")
    monetary: Money = strawberry.field(description="Lifetime paid minus refunded.")
    r_score: int
    f_score: int
    m_score: int
    segment: str = strawberry.field(description="champions, loyal, new, at_risk, hibernating or others.")
    high_value: bool = strawberry.field(description="Monetary in the top 20% of paying members.")
    at_risk: bool
    reasons: list[str] = strawberry.field(description='e.g. "NO_PURCHASE_IN_62_DAYS (usual gap 20 days)".')
    recent_activity: int = strawberry.field(description="Active days in the last 30 days.")
    prior_activity: int = strawberry.field(description="Active days in the 30 days before those.")

    @classmethod
    def from_model(cls, row: MemberScoreModel) -> MemberScore:
        return cls(
            model=row,
            member_id=strawberry.ID(encode_id("Member", row.member_id)),
            scored_on=row.scored_on,
            recency_days=row.recency_days,
            frequency=row.frequency,
            monetary=money(row.monetary_fen),
            r_score=row.r_score,
            f_score=row.f_score,
            m_score=row.m_score,
            segment=row.segment,
            high_value=row.high_value,
            at_risk=row.at_risk,
            reasons=list(row.reasons),
            recent_activity=row.recent_activity,
            prior_activity=row.prior_activity,
        )

    @strawberry.field
    async def nickname(self, info: Info) -> str | None:
        member = await info.context.loaders.member_by_id.load(self.model.member_id)
        return member.nickname if member is not None else None

    @strawberry.field(description="The member's phone as operators see it: 138****8000 (never in full).")
    async def phone_masked(self, info: Info) -> str | None:
        member = await info.context.loaders.member_by_id.load(self.model.member_id)
        return mask_phone(member.phone) if member is not None else None

    @strawberry.field(description="The member's level name (普通会员, 黄金会员 …).")
    async def level_name(self, info: Info) -> str | None:
        member = await info.context.loaders.member_by_id.load(self.model.member_id)
        if member is None:
            return None
        levels = await info.context.loaders.levels()
        return next((lv.name for lv in levels if lv.id == member.level_id), None)

    @strawberry.field(description="The member's care flows, newest first (the last ten).")
    async def care_flows(self, info: Info) -> list[CareFlow]:
        flows = await info.context.loaders.care_flows_by_member.load(self.model.member_id)
        return [CareFlow.from_model(f) for f in flows]


@strawberry.type(description="What a scoring run did.")
class ChurnScoringPayload:
    scored_on: date | None
    scored: int
    at_risk: int
    flows_started: int
    care_coupon_configured: bool = strawberry.field(
        description="False when no active CARE coupon template exists: flows start without a coupon."
    )
    user_errors: list[UserError]

    @classmethod
    def from_summary(cls, summary: RunSummary) -> ChurnScoringPayload:
        return cls(
            scored_on=summary.scored_on,
            scored=summary.scored,
            at_risk=summary.at_risk,
            flows_started=summary.flows_started,
            care_coupon_configured=summary.care_coupon_configured,
            user_errors=[],
        )
