"""Presale types: a member's presale order (deposit, deduction, balance) and the balance input."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.models.marketing import PresaleCampaign as PresaleCampaignModel
from bff.services.presale import PresaleView, balance_unit_fen
from schema.common import Money, UserError, money
from schema.marketing import PresaleCampaign
from schema.order import Order


def presale_campaign(campaign: PresaleCampaignModel) -> PresaleCampaign:
    """The GraphQL presale campaign of a row."""
    return PresaleCampaign(
        id=strawberry.ID(encode_id("PresaleCampaign", campaign.id)),
        title=campaign.title,
        presale_price=money(campaign.presale_price_fen),
        deposit=money(campaign.deposit_fen),
        deposit_deduction=money(campaign.deposit_deduction_fen),
        deposit_ends_at=campaign.deposit_ends_at,
        balance_starts_at=campaign.balance_starts_at,
        balance_ends_at=campaign.balance_ends_at,
    )


@strawberry.enum(description="Where a presale stands.")
class PresaleOrderStatus(enum.Enum):
    DEPOSIT_PENDING = "DEPOSIT_PENDING"
    DEPOSIT_PAID = "DEPOSIT_PAID"
    BALANCE_PENDING = "BALANCE_PENDING"
    BALANCE_PAID = "BALANCE_PAID"
    FORFEITED = "FORFEITED"
    REFUNDED = "REFUNDED"
    CLOSED = "CLOSED"


@strawberry.type(description="A presale purchase: the deposit order, then the balance order.")
class PresaleOrder:
    id: strawberry.ID
    status: PresaleOrderStatus
    quantity: int
    deposit: Money = strawberry.field(description="The deposit for all units.")
    deduction: Money = strawberry.field(description="What the deposit counts for at balance time (定金膨胀).")
    balance: Money = strawberry.field(
        description="What the balance order charges for the goods (before shipping)."
    )
    balance_starts_at: datetime
    balance_ends_at: datetime
    can_pay_balance: bool
    campaign: PresaleCampaign
    view: strawberry.Private[PresaleView]

    @classmethod
    def from_view(cls, view: PresaleView) -> PresaleOrder:
        c, q = view.campaign, view.quantity
        return cls(
            id=strawberry.ID(encode_id("PresaleOrder", view.presale.id)),
            status=PresaleOrderStatus(view.presale.status),
            quantity=q,
            deposit=money(c.deposit_fen * q),
            deduction=money(c.deposit_deduction_fen * q),
            balance=money(balance_unit_fen(c) * q),
            balance_starts_at=c.balance_starts_at,
            balance_ends_at=c.balance_ends_at,
            can_pay_balance=view.can_pay_balance,
            campaign=presale_campaign(c),
            view=view,
        )

    @strawberry.field
    async def deposit_order(self, info: Info) -> Order | None:
        row = await info.context.loaders.order_by_id.load(self.view.presale.deposit_order_id)
        return Order.from_model(row) if row is not None else None

    @strawberry.field
    async def balance_order(self, info: Info) -> Order | None:
        order_id = self.view.presale.balance_order_id
        row = await info.context.loaders.order_by_id.load(order_id) if order_id is not None else None
        return Order.from_model(row) if row is not None else None


@strawberry.input
class PresaleBalanceInput:
    presale_order_id: strawberry.ID
    address_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the deposit order's address."
    )


@strawberry.type
class PresaleBalancePayload:
    presale_order: PresaleOrder | None
    order: Order | None = strawberry.field(description="The balance order to pay with payOrder.")
    user_errors: list[UserError]
