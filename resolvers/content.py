"""Content entry points: banners."""

from __future__ import annotations

import strawberry

from bff.context import Info
from schema.content import Banner, BannerPosition


@strawberry.type
class ContentQuery:
    @strawberry.field(description="Banners live now at a position, in display order.")
    async def banners(self, info: Info, position: BannerPosition) -> list[Banner]:
        rows = await info.context.loaders.banners_by_position.load(position.value)
        return [Banner.from_row(r) for r in rows]
