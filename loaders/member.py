"""Member batch functions: members, levels, addresses, coupons, order counts, public profiles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.functions import Count

from bff.cache import Cache
from bff.models.marketing import MemberCoupon
from bff.models.member import Address, Member, MemberLevel, PointsLedger
from bff.models.order import AfterSale, Order
from loaders.cached import read_through

# After-sale requests still being handled count on the member centre's 售后 tab.
OPEN_AFTER_SALE_STATUSES = ("REQUESTED", "APPROVED", "RETURNING", "REFUNDING")


@dataclass(frozen=True, slots=True)
class LevelRow:
    id: int
    name: str
    rank: int
    min_growth: int
    discount_percent: int
    free_shipping: bool
    benefits: list[str]


@dataclass(frozen=True, slots=True)
class OrderCountsRow:
    pending_payment: int
    paid: int
    shipped: int
    after_sale: int


async def load_members_by_id(ids: Sequence[int]) -> list[Member | None]:
    """Members by id."""
    rows = {m.id: m for m in await Member.filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


async def load_levels(cache: Cache, ttl: float) -> list[LevelRow]:
    """All member levels by rank (four rows), cached as one entry."""

    async def fetch(_: list[int]) -> dict[int, object]:
        rows = (
            await MemberLevel.all()
            .order_by("rank")
            .values("id", "name", "rank", "min_growth", "discount_percent", "free_shipping", "benefits")
        )
        return {0: rows}

    (values,) = await read_through(cache, "member:levels", [0], ttl, fetch)
    return [LevelRow(**row) for row in values or []]


async def load_addresses_by_member(member_ids: Sequence[int]) -> list[list[Address]]:
    """Each member's addresses, default first, then newest."""
    rows = await Address.filter(member_id__in=list(member_ids)).order_by("-is_default", "-id")
    grouped: dict[int, list[Address]] = {m: [] for m in member_ids}
    for row in rows:
        grouped[row.member_id].append(row)
    return [grouped[m] for m in member_ids]


async def load_coupons_by_member_status(keys: Sequence[tuple[int, str]]) -> list[list[MemberCoupon]]:
    """Member coupons per (member_id, status) where status is UNUSED, USED or EXPIRED."""
    now = datetime.now(UTC)
    member_ids = list({m for m, _ in keys})
    rows = (
        await MemberCoupon.filter(member_id__in=member_ids)
        .select_related("template")
        .order_by("expires_at", "id")
    )
    grouped: dict[tuple[int, str], list[MemberCoupon]] = {key: [] for key in keys}
    for row in rows:
        if row.status == "UNUSED":
            status = "UNUSED" if row.expires_at > now else "EXPIRED"
        elif row.status in ("USED", "LOCKED"):
            # A coupon locked by an unpaid order is not spendable again; it shows as used until released.
            status = "USED"
        else:
            status = row.status
        if (row.member_id, status) in grouped:
            grouped[(row.member_id, status)].append(row)
    return [grouped[key] for key in keys]


async def load_unused_coupon_counts(member_ids: Sequence[int]) -> list[int]:
    """How many spendable (unused, unexpired) coupons each member holds."""
    rows = (
        await MemberCoupon.filter(
            member_id__in=list(member_ids), status="UNUSED", expires_at__gt=datetime.now(UTC)
        )
        .annotate(n=Count("id"))
        .group_by("member_id")
        .values("member_id", "n")
    )
    counts = {row["member_id"]: int(row["n"]) for row in rows}
    return [counts.get(m, 0) for m in member_ids]


async def load_order_counts(member_ids: Sequence[int]) -> list[OrderCountsRow]:
    """Orders per status tab and open after-sale requests, per member."""
    ids = list(member_ids)
    order_rows = (
        await Order.filter(member_id__in=ids, status__in=("PENDING_PAYMENT", "PAID", "SHIPPED"))
        .annotate(n=Count("id"))
        .group_by("member_id", "status")
        .values("member_id", "status", "n")
    )
    after_rows = (
        await AfterSale.filter(member_id__in=ids, status__in=OPEN_AFTER_SALE_STATUSES)
        .annotate(n=Count("id"))
        .group_by("member_id")
        .values("member_id", "n")
    )
    by_status = {(r["member_id"], r["status"]): int(r["n"]) for r in order_rows}
    after = {r["member_id"]: int(r["n"]) for r in after_rows}
    return [
        OrderCountsRow(
            pending_payment=by_status.get((m, "PENDING_PAYMENT"), 0),
            paid=by_status.get((m, "PAID"), 0),
            shipped=by_status.get((m, "SHIPPED"), 0),
            after_sale=after.get(m, 0),
        )
        for m in member_ids
    ]


async def load_points_pages(
    keys: Sequence[tuple[int, int, int | None]],
) -> list[tuple[list[PointsLedger], int]]:
    """For (member_id, n, before_id): up to n+1 ledger entries newest first, and the member's entry count."""
    results = []
    # The member centre shows one member's ledger; a key per member is one query, never one per row.
    for member_id, n, before_id in keys:
        query = PointsLedger.filter(member_id=member_id)
        if before_id is not None:
            query = query.filter(id__lt=before_id)
        rows = await query.order_by("-id").limit(n + 1)
        total = await PointsLedger.filter(member_id=member_id).count()
        results.append((rows, total))
    return results
