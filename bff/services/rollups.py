"""Daily analytics rollups: which days are stale, and who a visitor is."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from bff.models.analytics import DirtyDay


def visitor_key(member_id: int | None, anonymous_id: str) -> str:
    """The identity a visitor is counted under: the member when signed in, else the device."""
    return f"m:{member_id}" if member_id is not None else f"a:{anonymous_id}"


async def mark_dirty(days: Iterable[date]) -> None:
    """Mark days whose rollups must be rebuilt (in the caller's transaction; existing marks stay)."""
    now = datetime.now(UTC)
    rows = [DirtyDay(day=d, marked_at=now) for d in sorted(set(days))]
    if rows:
        await DirtyDay.bulk_create(rows, ignore_conflicts=True)
