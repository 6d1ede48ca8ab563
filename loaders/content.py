"""Content batch functions: banners by position."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q

from bff.cache import Cache
from bff.models.content import Banner
from loaders.cached import as_datetime, read_through


@dataclass(frozen=True, slots=True)
class BannerRow:
    id: int
    image_url: str
    link: str
    starts_at: datetime | None
    ends_at: datetime | None

    def live(self, now: datetime) -> bool:
        """Inside its display window."""
        return (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at
        )


BANNER_POSITIONS = ("HOME_TOP", "CATEGORY_TOP", "MEMBER_TOP")


async def load_banners_by_position(
    cache: Cache, ttl: float, positions: Sequence[str]
) -> list[list[BannerRow]]:
    """Active banners per position in display order.

    The display window is checked at read time, so a cached list stays right as time passes.
    """
    keys = [BANNER_POSITIONS.index(p) for p in positions]

    async def fetch(missing: list[int]) -> dict[int, Any]:
        wanted = [BANNER_POSITIONS[k] for k in missing]
        rows = (
            await Banner.filter(Q(position__in=wanted), active=True)
            .order_by("sort_order", "id")
            .values("id", "position", "image_url", "link", "starts_at", "ends_at")
        )
        grouped: dict[int, list[dict[str, Any]]] = {k: [] for k in missing}
        for row in rows:
            position = row.pop("position")
            grouped[BANNER_POSITIONS.index(position)].append(row)
        return dict(grouped)

    now = datetime.now(UTC)
    values = await read_through(cache, "content:banners", keys, ttl, fetch)
    result = []
    for group in values:
        banners = [
            BannerRow(
                id=r["id"],
                image_url=r["image_url"],
                link=r["link"],
                starts_at=as_datetime(r["starts_at"]),
                ends_at=as_datetime(r["ends_at"]),
            )
            for r in group or []
        ]
        result.append([b for b in banners if b.live(now)])
    return result
