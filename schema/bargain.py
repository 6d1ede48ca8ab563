"""Bargain (砍价) types: a session with its helpers' cuts, and the start/help payloads."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.pii_mask import mask_text
from bff.services.bargain import SessionView
from schema.catalog import Product
from schema.common import Money, UserError, money
from schema.marketing import BargainCampaign, PublicMember, campaign_type


@strawberry.enum
class BargainSessionStatus(enum.Enum):
    OPEN = "OPEN"
    FLOOR = strawberry.enum_value("FLOOR", description="The price reached the floor: buy it.")
    BOUGHT = "BOUGHT"
    EXPIRED = "EXPIRED"


@strawberry.type(description="One friend's cut.")
class BargainHelpEntry:
    helper: PublicMember
    cut: Money
    helped_at: datetime


@strawberry.type(description="A member's bargain: its page and what its progress subscription sends.")
class BargainSession:
    id: strawberry.ID
    status: BargainSessionStatus
    current_price: Money
    start_price: Money
    floor_price: Money
    cut_total: Money
    helpers_count: int
    helpers_needed: int
    expires_at: datetime
    helps: list[BargainHelpEntry]
    viewer_is_owner: bool
    viewer_has_helped: bool
    can_help: bool = strawberry.field(description="Whether the viewer could cut now.")
    can_buy: bool = strawberry.field(
        description="Whether the viewer (the owner) could place the order now, at currentPrice."
    )
    campaign: BargainCampaign
    product_id: strawberry.Private[int]

    @classmethod
    def from_view(cls, view: SessionView, viewer_id: int | None) -> BargainSession:
        campaign = campaign_type(view.campaign)
        assert isinstance(campaign, BargainCampaign)
        now = datetime.now(UTC)
        return cls(
            id=strawberry.ID(encode_id("BargainSession", view.session_id)),
            status=BargainSessionStatus(view.status),
            current_price=money(view.current_price_fen),
            start_price=money(view.campaign.start_price_fen),
            floor_price=money(view.campaign.floor_price_fen),
            cut_total=money(view.cut_total_fen),
            helpers_count=view.helpers_count,
            helpers_needed=view.campaign.helpers_needed,
            expires_at=view.expires_at,
            helps=[
                BargainHelpEntry(
                    helper=PublicMember(nickname=mask_text(h.nickname), avatar_url=h.avatar_url),
                    cut=money(h.cut_fen),
                    helped_at=h.at,
                )
                for h in view.helps
            ],
            viewer_is_owner=viewer_id is not None and viewer_id == view.member_id,
            viewer_has_helped=viewer_id is not None and any(h.helper_id == viewer_id for h in view.helps),
            can_help=viewer_id is not None and view.helpable_by(viewer_id, now),
            can_buy=view.buyable_by(viewer_id, now),
            campaign=campaign,
            product_id=view.campaign.product_id,
        )

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.product_by_id.load(self.product_id)
        return Product.from_row(row) if row is not None else None


@strawberry.type
class BargainSessionPayload:
    session: BargainSession | None
    user_errors: list[UserError]


@strawberry.type
class HelpBargainPayload:
    session: BargainSession | None
    cut: Money | None = strawberry.field(description="What this friend's help took off the price.")
    user_errors: list[UserError]
