"""Marketing entry points: the flash sale running now."""

from __future__ import annotations

import strawberry

from bff.context import Info
from schema.marketing import FlashSale


@strawberry.type
class MarketingQuery:
    @strawberry.field(description="The flash sale running now (the one ending first), or null.")
    async def active_flash_sale(self, info: Info) -> FlashSale | None:
        sale = await info.context.loaders.active_flash_sale.load(0)
        return FlashSale.from_model(sale) if sale is not None else None
