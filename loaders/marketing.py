"""Marketing batch functions: flash sales, group-buy, presale, bargain, coupon templates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise import connections

from bff.models.marketing import (
    BargainCampaign,
    CouponTemplate,
    FlashSale,
    FlashSaleItem,
    GroupBuyCampaign,
    GroupBuyTeam,
    PresaleCampaign,
)
from loaders import sql

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


# The four campaign kinds in the order a product lists them, with what makes each one "running".
_CAMPAIGN_KINDS: tuple[tuple[type[Campaign], str, str], ...] = (
    (
        FlashSaleItem,
        "JOIN flash_sale s ON s.id = c.flash_sale_id",
        "s.starts_at <= :now AND s.ends_at > :now",
    ),
    (GroupBuyCampaign, "", "c.starts_at <= :now AND c.ends_at > :now"),
    (PresaleCampaign, "", "c.deposit_starts_at <= :now AND c.balance_ends_at > :now"),
    (BargainCampaign, "", "c.starts_at <= :now AND c.ends_at > :now"),
)
_campaign_sql: dict[str, str] = {}


def _campaigns_union(dialect: str) -> str:
    """One UNION ALL over the four tables, each row padded to the union of their columns."""
    if dialect not in _campaign_sql:
        types: dict[str, str] = {}
        for model, _, _ in _CAMPAIGN_KINDS:
            for column in sorted(model._meta.db_fields):
                field = model._meta.fields_map[model._meta.fields_db_projection_reverse[column]]
                types.setdefault(column, field.get_for_dialect(dialect, "SQL_TYPE"))
        branches = []
        for kind, (model, join, running) in enumerate(_CAMPAIGN_KINDS):
            own = model._meta.db_fields
            # Typed NULLs: PostgreSQL resolves an untyped NULL column of the first branches as text.
            select = ", ".join(
                f'c."{c}"' if c in own else f'CAST(NULL AS {t}) AS "{c}"' for c, t in types.items()
            )
            branches.append(
                f"SELECT {kind} AS kind, {select} FROM {model._meta.db_table} c {join}"  # nosec B608
                f" WHERE c.product_id IN (:ids) AND {running}"
            )
        _campaign_sql[dialect] = " UNION ALL ".join(branches) + ' ORDER BY kind, "id"'
    return _campaign_sql[dialect]


async def load_campaigns_by_product(product_ids: Sequence[int]) -> list[list[Campaign]]:
    """Campaigns running now for each product: flash-sale items, group-buys, presales, bargains.

    One statement for the four kinds: most products have none, and four queries cost four times
    the query building and round trips for nothing.
    """
    dialect = connections.get("default").capabilities.dialect
    rows = await sql.fetch(_campaigns_union(dialect), ids=list(product_ids), now=datetime.now(UTC))
    grouped: dict[int, list[Campaign]] = {p: [] for p in product_ids}
    for row in rows:
        (campaign,) = sql.as_models(_CAMPAIGN_KINDS[row["kind"]][0], [row])
        grouped[campaign.product_id].append(campaign)
    return [grouped[p] for p in product_ids]


_OPEN_TEAMS = (
    "SELECT {columns} FROM group_buy_team"
    " WHERE campaign_id IN (:ids) AND status = 'OPEN' AND expires_at > :now"
    " ORDER BY member_count DESC, expires_at, id"
)


async def load_open_teams_by_campaign(keys: Sequence[tuple[int, int]]) -> list[list[GroupBuyTeam]]:
    """For (campaign_id, n): up to n open, unexpired teams, the closest to complete first."""
    campaign_ids = list({c for c, _ in keys})
    rows = await sql.fetch(
        _OPEN_TEAMS.format(columns=sql.columns(GroupBuyTeam)), ids=campaign_ids, now=datetime.now(UTC)
    )
    grouped: dict[int, list[GroupBuyTeam]] = {c: [] for c in campaign_ids}
    for team in sql.as_models(GroupBuyTeam, rows):
        grouped[team.campaign_id].append(team)
    return [grouped[c][:n] for c, n in keys]


_PROFILES = "SELECT id, nickname, avatar_url FROM member WHERE id IN (:ids)"


async def load_public_profiles(member_ids: Sequence[int]) -> list[PublicProfile | None]:
    """Nickname and avatar of members, for what other shoppers see (team leaders, helpers)."""
    rows = await sql.fetch(_PROFILES, ids=list(member_ids))
    by_id = {r["id"]: PublicProfile(nickname=r["nickname"], avatar_url=r["avatar_url"]) for r in rows}
    return [by_id.get(m) for m in member_ids]


_CLAIMABLE = (
    "SELECT {columns} FROM coupon_template"
    " WHERE claimable = :yes"
    " AND (claim_starts_at IS NULL OR claim_starts_at <= :now)"
    " AND (claim_ends_at IS NULL OR claim_ends_at > :now)"
    " AND (total_quantity = 0 OR claimed_count < total_quantity)"
    " ORDER BY id"
)


async def load_claimable_templates(keys: Sequence[int]) -> list[list[CouponTemplate]]:
    """Coupon templates a shopper can claim now, with quantity left (one key: 0)."""
    rows = sql.as_models(
        CouponTemplate,
        await sql.fetch(
            _CLAIMABLE.format(columns=sql.columns(CouponTemplate)), yes=True, now=datetime.now(UTC)
        ),
    )
    return [rows for _ in keys]
