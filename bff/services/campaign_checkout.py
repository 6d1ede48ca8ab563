"""How a campaign takes part in checkout: each campaign kind registers a handler; orders call its hooks.

The hooks run at fixed points of an order's life, so campaign rules live with their campaign:
- `quote` (read-only): validate the campaign for this member and price its one line;
- `pre_reserve` (before the order transaction): an atomic hold outside the database (Redis), if any;
- `hold` (inside the order transaction): record the hold in the database, the record of truth;
- `undo_pre_reserve`: the order transaction failed after `pre_reserve` succeeded;
- `on_paid` (inside the payment transaction): returns False when fulfilment must wait (group-buy
  teams ship when complete);
- `on_released` (inside the close/cancel transaction): give back what `hold` took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bff.models.order import Order
from bff.services.errors import BusinessError

# The kinds CheckoutInput.campaign can name, one per id field.
FLASH_SALE = "FLASH_SALE"
GROUP_BUY_OPEN = "GROUP_BUY_OPEN"  # open a new team of a group-buy campaign
GROUP_BUY_JOIN = "GROUP_BUY_JOIN"  # join an open team
BARGAIN = "BARGAIN"
PRESALE = "PRESALE"


# Paid orders of these kinds wait (for the team to complete, for the balance): no after-sale until
# they move on, since refunding one would break the campaign's own accounting.
WAITING_KINDS = (GROUP_BUY_OPEN, GROUP_BUY_JOIN, PRESALE)


def after_sale_allowed(status: str, campaign_kind: str | None) -> bool:
    """Whether a paid order may open an after-sale request now."""
    return not (status == "PAID" and campaign_kind in WAITING_KINDS)


@dataclass(frozen=True)
class CampaignRef:
    kind: str
    ref_id: int


@dataclass(frozen=True)
class CampaignLine:
    """The single line a campaign order buys, at its campaign unit price."""

    sku_id: int
    quantity: int
    unit_price_fen: int


class CampaignHandler(Protocol):
    kinds: tuple[str, ...]

    async def quote(
        self, member_id: int, ref: CampaignRef, lines: Sequence[tuple[int, int]]
    ) -> CampaignLine: ...

    async def pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None: ...

    async def undo_pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None: ...

    async def hold(self, order: Order, ref: CampaignRef, line: CampaignLine) -> None: ...

    async def on_paid(self, order: Order) -> bool: ...

    async def on_released(self, order: Order) -> None: ...


_HANDLERS: dict[str, CampaignHandler] = {}


def register(handler: CampaignHandler) -> CampaignHandler:
    """Make a campaign handler answer for its kinds (once per kind)."""
    for kind in handler.kinds:
        if kind in _HANDLERS:
            raise RuntimeError(f"campaign kind {kind} already has a handler")
        _HANDLERS[kind] = handler
    return handler


def handler_for(kind: str) -> CampaignHandler:
    """The handler of a campaign kind; an unknown or unavailable kind is a clear business error."""
    found = _HANDLERS.get(kind)
    if found is None:
        raise BusinessError("INVALID_INPUT", "该活动暂不支持下单", "campaign")
    return found
