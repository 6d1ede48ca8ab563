"""Order batch functions: a member's order pages; each order's lines, timeline, shipments, after-sales."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from tortoise.models import Model

from bff.models.order import AfterSale, Order, OrderEvent, OrderLine, Shipment

# Status tabs of the order list; AFTER_SALE lists orders that have after-sale requests.
STATUS_TABS: dict[str, tuple[str, ...]] = {
    "PENDING_PAYMENT": ("PENDING_PAYMENT",),
    "PAID": ("PAID",),
    "SHIPPED": ("SHIPPED", "DELIVERED"),
    "COMPLETED": ("COMPLETED",),
    "CLOSED": ("CLOSED", "CANCELLED"),
}

M = TypeVar("M", bound=Model)


async def load_order_pages(keys: Sequence[tuple[int, str, int, int | None]]) -> list[tuple[list[Order], int]]:
    """For (member_id, tab, n, before_id): up to n+1 orders newest first, and how many the tab holds."""
    results = []
    # The order list shows one member's tab: one key per request, never one per row.
    for member_id, tab, n, before_id in keys:
        query = Order.filter(member_id=member_id)
        if tab == "AFTER_SALE":
            query = query.filter(id__in=AfterSale.filter(member_id=member_id).values("order_id"))
        elif tab in STATUS_TABS:
            query = query.filter(status__in=STATUS_TABS[tab])
        total = await query.count()
        if before_id is not None:
            query = query.filter(id__lt=before_id)
        rows = await query.order_by("-id").limit(n + 1)
        results.append((rows, total))
    return results


async def load_orders_by_id(ids: Sequence[int]) -> list[Order | None]:
    """Orders by id (ownership is the resolver's job)."""
    rows = {o.id: o for o in await Order.filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


async def _grouped(model: type[M], order_ids: Sequence[int], order_by: str) -> list[list[M]]:
    rows = await model.filter(order_id__in=list(order_ids)).order_by(order_by)
    grouped: dict[int, list[M]] = {i: [] for i in order_ids}
    for row in rows:
        grouped[row.order_id].append(row)  # type: ignore[attr-defined]
    return [grouped[i] for i in order_ids]


async def load_lines_by_order(order_ids: Sequence[int]) -> list[list[OrderLine]]:
    """Each order's lines in the order they were placed."""
    return await _grouped(OrderLine, order_ids, "id")


async def load_events_by_order(order_ids: Sequence[int]) -> list[list[OrderEvent]]:
    """Each order's timeline, oldest first."""
    return await _grouped(OrderEvent, order_ids, "id")


async def load_shipments_by_order(order_ids: Sequence[int]) -> list[list[Shipment]]:
    """Each order's shipments."""
    return await _grouped(Shipment, order_ids, "id")


async def load_after_sales_by_order(order_ids: Sequence[int]) -> list[list[AfterSale]]:
    """Each order's after-sale requests, newest first."""
    return await _grouped(AfterSale, order_ids, "-id")
