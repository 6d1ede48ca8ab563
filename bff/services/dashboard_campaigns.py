"""Sales by campaign: each order's (campaign_kind, campaign_ref) resolved to the campaign it sold in.

An order's ref is what its checkout named, not always the campaign: a flash-sale item, a group-buy
team (when joining) or a bargain session. Those are followed to their campaign, so a campaign's
orders are counted together whichever way they were placed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tortoise.models import Model

from bff.models.marketing import (
    BargainCampaign,
    BargainSession,
    FlashSale,
    FlashSaleItem,
    GroupBuyCampaign,
    GroupBuyTeam,
    PresaleCampaign,
)

NONE = "NONE"
# Order campaign_kind → (reported kind, the model its ref points at, and how to reach the campaign).
_REF_TO_CAMPAIGN: dict[str, tuple[str, type[Model] | None, str]] = {
    "FLASH_SALE": ("FLASH_SALE", FlashSaleItem, "flash_sale_id"),
    "GROUP_BUY_OPEN": ("GROUP_BUY", None, ""),
    "GROUP_BUY_JOIN": ("GROUP_BUY", GroupBuyTeam, "campaign_id"),
    "BARGAIN": ("BARGAIN", BargainSession, "campaign_id"),
    "PRESALE": ("PRESALE", None, ""),
}
_CAMPAIGNS: dict[str, type[Model]] = {
    "FLASH_SALE": FlashSale,
    "GROUP_BUY": GroupBuyCampaign,
    "BARGAIN": BargainCampaign,
    "PRESALE": PresaleCampaign,
}


@dataclass(frozen=True)
class CampaignSales:
    kind: str  # FLASH_SALE, GROUP_BUY, BARGAIN, PRESALE, or NONE for regular orders
    campaign_id: int | None  # the campaign's id (FlashSale, GroupBuyCampaign, …); None when unknown
    name: str | None  # the campaign's title when the campaign still exists
    orders: int
    gmv_fen: int


async def _lookup(model: type[Model], ids: Iterable[int], column: str) -> dict[int, object]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return dict(await model.filter(id__in=wanted).values_list("id", column))


async def campaign_sales(groups: list[tuple[str | None, int | None, int, int]]) -> list[CampaignSales]:
    """Fold (campaign_kind, campaign_ref, orders, gmv_fen) groups into one row per campaign, best
    selling first; one query per kind of ref and of campaign present, at most seven."""
    refs: dict[str, set[int]] = {}
    for raw_kind, ref, _, _ in groups:
        if raw_kind in _REF_TO_CAMPAIGN and ref is not None:
            refs.setdefault(raw_kind, set()).add(ref)
    hops: dict[str, dict[int, object]] = {}
    for raw_kind, ids in refs.items():
        _, model, column = _REF_TO_CAMPAIGN[raw_kind]
        if model is not None:
            hops[raw_kind] = await _lookup(model, ids, column)

    totals: dict[tuple[str, int | None], tuple[int, int]] = {}
    for raw_kind, ref, orders, gmv in groups:
        kind, campaign_id = NONE, None  # regular orders (and kinds this report does not know)
        if raw_kind in _REF_TO_CAMPAIGN:
            kind = _REF_TO_CAMPAIGN[raw_kind][0]
            campaign_id = ref if raw_kind not in hops or ref is None else _as_id(hops[raw_kind].get(ref))
        before = totals.get((kind, campaign_id), (0, 0))
        totals[(kind, campaign_id)] = (before[0] + orders, before[1] + gmv)

    names: dict[str, dict[int, object]] = {}
    for kind, model in _CAMPAIGNS.items():
        campaign_ids = [cid for (k, cid) in totals if k == kind and cid is not None]
        names[kind] = await _lookup(model, campaign_ids, "title")
    rows = [
        CampaignSales(
            kind=kind,
            campaign_id=campaign_id,
            name=_as_name(names.get(kind, {}).get(campaign_id)) if campaign_id is not None else None,
            orders=orders,
            gmv_fen=gmv,
        )
        for (kind, campaign_id), (orders, gmv) in totals.items()
    ]
    return sorted(rows, key=lambda r: (-r.gmv_fen, -r.orders, r.kind, r.campaign_id or 0))


def _as_id(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


def _as_name(value: object) -> str | None:
    return str(value) if value is not None else None
