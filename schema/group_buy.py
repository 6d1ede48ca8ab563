"""Group-buy (拼团) types: a team with its seats and progress, and the open/join payloads."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import strawberry

from bff.ids import encode_id
from bff.pii_mask import mask_text
from bff.services.group_buy import TeamView
from schema.common import UserError
from schema.marketing import GroupBuyCampaign, campaign_type
from schema.order import Order


@strawberry.enum
class GroupBuyTeamStatus(enum.Enum):
    PENDING = strawberry.enum_value("PENDING", description="The leader has not paid yet: nobody can join.")
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    FAILED = strawberry.enum_value(
        "FAILED", description="Not complete at its deadline: paid members refunded."
    )


@strawberry.type(description="One member of a team.")
class GroupBuySeat:
    nickname: str
    avatar_url: str
    is_leader: bool
    paid: bool
    joined_at: datetime


@strawberry.type(description="A group-buy team: its share page and what its progress subscription sends.")
class GroupBuyTeamDetail:
    id: strawberry.ID
    status: GroupBuyTeamStatus
    group_size: int
    member_count: int = strawberry.field(description="Seats taken, paid or not.")
    paid_count: int
    missing_count: int
    expires_at: datetime
    members: list[GroupBuySeat]
    viewer_is_member: bool
    can_join: bool = strawberry.field(description="Whether the viewer could join now.")
    campaign: GroupBuyCampaign

    @classmethod
    def from_view(cls, view: TeamView, viewer_id: int | None) -> GroupBuyTeamDetail:
        campaign = campaign_type(view.campaign)
        assert isinstance(campaign, GroupBuyCampaign)
        member = viewer_id is not None and any(s.member_id == viewer_id for s in view.seats)
        return cls(
            id=strawberry.ID(encode_id("GroupBuyTeam", view.team_id)),
            status=GroupBuyTeamStatus(view.status),
            group_size=view.group_size,
            member_count=view.member_count,
            paid_count=view.paid_count,
            missing_count=view.missing_count,
            expires_at=view.expires_at,
            members=[
                GroupBuySeat(
                    nickname=mask_text(s.nickname),  # other shoppers: never a phone
                    avatar_url=s.avatar_url,
                    is_leader=s.leader,
                    paid=s.paid,
                    joined_at=s.joined_at,
                )
                for s in view.seats
            ],
            viewer_is_member=member,
            can_join=viewer_id is not None and view.joinable_by(viewer_id, datetime.now(UTC)),
            campaign=campaign,
        )


@strawberry.input
class OpenGroupBuyInput:
    campaign_id: strawberry.ID = strawberry.field(description="A GroupBuyCampaign id.")
    address_id: strawberry.ID | None = None
    remark: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Client-generated; a retry with the same key returns the same order."
    )
    expected_payable: int | None = None


@strawberry.input
class JoinGroupBuyInput:
    team_id: strawberry.ID = strawberry.field(description="A GroupBuyTeam id (from the share).")
    address_id: strawberry.ID | None = None
    remark: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Client-generated; a retry with the same key returns the same order."
    )
    expected_payable: int | None = None


@strawberry.type(description="The order that holds the seat (pay it with payOrder) and the team.")
class GroupBuyOrderPayload:
    order: Order | None
    team: GroupBuyTeamDetail | None
    user_errors: list[UserError]
