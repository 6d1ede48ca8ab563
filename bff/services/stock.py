"""Stock: reservations by unpaid orders (conditional updates, never read-then-write) and the ERP check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from tortoise.expressions import F, RawSQL

from bff.models.catalog import Sku
from bff.services.errors import BusinessError
from integrations.erp import ErpClient
from integrations.errors import IntegrationError

log = logging.getLogger("bff.stock")


async def reserve(quantities: Mapping[int, int]) -> None:
    """Hold stock for an unpaid order; all or nothing (raise inside the caller's transaction)."""
    for sku_id, quantity in sorted(quantities.items()):  # a fixed order avoids deadlocks between orders
        held = await Sku.filter(id=sku_id, stock__gte=RawSQL(f'"reserved" + {int(quantity)}')).update(
            reserved=F("reserved") + quantity
        )
        if not held:
            raise BusinessError("OUT_OF_STOCK", "库存不足，请减少数量或稍后再试", "lines")


async def release(quantities: Mapping[int, int]) -> None:
    """Give back an unpaid order's holds (it closed or was cancelled)."""
    for sku_id, quantity in sorted(quantities.items()):
        await Sku.filter(id=sku_id, reserved__gte=quantity).update(reserved=F("reserved") - quantity)


async def consume(quantities: Mapping[int, int]) -> None:
    """A paid order's holds become sales: the mirror drops until the ERP reports its new figure."""
    for sku_id, quantity in sorted(quantities.items()):
        await Sku.filter(id=sku_id, reserved__gte=quantity).update(
            reserved=F("reserved") - quantity, stock=F("stock") - quantity
        )


async def check_with_erp(erp: ErpClient, wanted: Mapping[str, int], within: float) -> None:
    """Ask the ERP for the live stock of what is being bought; use the mirror when it is slow or down."""
    try:
        # The HTTP timeout ends a slow answer as an upstream failure, which the ERP's circuit breaker
        # counts (so a slow ERP soon costs nothing); the outer bound also covers retries' pauses.
        async with asyncio.timeout(within * 2):
            items = await erp.query_inventory(list(wanted), http_timeout=within)
    except (TimeoutError, IntegrationError) as exc:
        log.warning("ERP inventory check skipped, using the mirror: %s", exc)
        return
    for code, quantity in wanted.items():
        item = items.get(code)
        if item is None:
            continue
        # Refresh the mirror with what the ERP just said (never over a newer version).
        await Sku.filter(code=code, stock_version__lt=item.version).update(
            stock=item.available, stock_version=item.version
        )
        if item.available < quantity:
            raise BusinessError(
                "OUT_OF_STOCK", f"库存不足（{code} 仅剩 {max(0, item.available)} 件）", "lines"
            )
