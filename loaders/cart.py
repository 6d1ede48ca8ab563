"""Cart batch functions."""

from __future__ import annotations

from collections.abc import Sequence

from tortoise.functions import Sum

from bff.models.cart import CartItem
from loaders import sql

_LINES = "SELECT {columns} FROM cart_item WHERE member_id IN (:ids) ORDER BY id DESC"


async def load_cart_items_by_member(member_ids: Sequence[int]) -> list[list[CartItem]]:
    """Each member's cart lines, newest first."""
    rows = await sql.fetch(_LINES.format(columns=sql.columns(CartItem)), ids=list(member_ids))
    grouped: dict[int, list[CartItem]] = {m: [] for m in member_ids}
    for row in sql.as_models(CartItem, rows):
        grouped[row.member_id].append(row)
    return [grouped[m] for m in member_ids]


async def load_cart_quantities(member_ids: Sequence[int]) -> list[int]:
    """Total quantity in each member's cart (the badge on the cart tab)."""
    rows = (
        await CartItem.filter(member_id__in=list(member_ids))
        .annotate(total=Sum("quantity"))
        .group_by("member_id")
        .values("member_id", "total")
    )
    totals = {row["member_id"]: int(row["total"] or 0) for row in rows}
    return [totals.get(m, 0) for m in member_ids]
