"""Marketing batch functions: flash sales, group-buy, presale, bargain, coupon templates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.expressions import F, Q

from bff.models.marketing import (
    BargainCampaign,
    CouponTemplate,
    FlashSale,
    FlashSaleItem,
    GroupBuyCampaign,
    GroupBuyTeam,
    PresaleCampaign,
)
from bff.models.member import Member

Campaign = FlashSaleItem | GroupBuyCampaign | PresaleCampaign | BargainCampaign


@dataclass(frozen=True, slots=True)
class PublicProfile:
    """What other shoppers may see of a member: a nickname and an avatar."""

    nickname: str
    avatar_url: str


async def load_active_flash_sale(keys: Sequence[int]) -> list[FlashSale | None]:
    """The flash sale running now that ends first (one key: 0)."""
    now = datetime.now(UTC)
    sale = await FlashSale.filter(starts_at__lte=now, ends_at__gt=now).order_by("ends_at", "id").first()
    return [sale for _ in keys]


async def load_flash_sales_by_id(ids: Sequence[int]) -> list[FlashSale | None]:
    """Flash sales by id."""
    rows = {s.id: s for s in await FlashSale.filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


async def load_flash_items_by_sale(sale_ids: Sequence[int]) -> list[list[FlashSaleItem]]:
    """Each flash sale's items in display order."""
    rows = await FlashSaleItem.filter(flash_sale_id__in=list(sale_ids)).order_by("sort_order", "id")
    grouped: dict[int, list[FlashSaleItem]] = {s: [] for s in sale_ids}
    for row in rows:
        grouped[row.flash_sale_id].append(row)
    return [grouped[s] for s in sale_ids]


async def load_campaigns_by_product(product_ids: Sequence[int]) -> list[list[Campaign]]:
    """Campaigns running now for each product: flash-sale items, group-buys, presales, bargains."""
    now = datetime.now(UTC)
    ids = list(product_ids)
    running = Q(starts_at__lte=now, ends_at__gt=now)
    flash = await FlashSaleItem.filter(
        product_id__in=ids, flash_sale__starts_at__lte=now, flash_sale__ends_at__gt=now
    ).order_by("id")
    group_buys = await GroupBuyCampaign.filter(running, product_id__in=ids).order_by("id")
    presales = await PresaleCampaign.filter(
        product_id__in=ids, deposit_starts_at__lte=now, balance_ends_at__gt=now
    ).order_by("id")
    bargains = await BargainCampaign.filter(running, product_id__in=ids).order_by("id")
    grouped: dict[int, list[Campaign]] = {p: [] for p in ids}
    campaigns: list[Campaign] = [*flash, *group_buys, *presales, *bargains]
    for campaign in campaigns:
        grouped[campaign.product_id].append(campaign)
    return [grouped[p] for p in product_ids]


async def load_open_teams_by_campaign(keys: Sequence[tuple[int, int]]) -> list[list[GroupBuyTeam]]:
    """For (campaign_id, n): up to n open, unexpired teams, the closest to complete first."""
    now = datetime.now(UTC)
    campaign_ids = list({c for c, _ in keys})
    rows = await GroupBuyTeam.filter(
        campaign_id__in=campaign_ids, status="OPEN", expires_at__gt=now
    ).order_by("-member_count", "expires_at", "id")
    grouped: dict[int, list[GroupBuyTeam]] = {c: [] for c in campaign_ids}
    for row in rows:
        grouped[row.campaign_id].append(row)
    return [grouped[c][:n] for c, n in keys]


async def load_public_profiles(member_ids: Sequence[int]) -> list[PublicProfile | None]:
    """Nickname and avatar of members, for what other shoppers see (team leaders, helpers)."""
    rows = await Member.filter(id__in=list(member_ids)).values("id", "nickname", "avatar_url")
    by_id = {r["id"]: PublicProfile(nickname=r["nickname"], avatar_url=r["avatar_url"]) for r in rows}
    return [by_id.get(m) for m in member_ids]


async def load_claimable_templates(keys: Sequence[int]) -> list[list[CouponTemplate]]:
    """Coupon templates a shopper can claim now, with quantity left (one key: 0)."""
    now = datetime.now(UTC)
    rows = await CouponTemplate.filter(
        Q(claim_starts_at__isnull=True) | Q(claim_starts_at__lte=now),
        Q(claim_ends_at__isnull=True) | Q(claim_ends_at__gt=now),
        Q(total_quantity=0) | Q(claimed_count__lt=F("total_quantity")),
        claimable=True,
    ).order_by("id")
    return [rows for _ in keys]
