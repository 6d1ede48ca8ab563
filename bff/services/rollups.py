"""Daily analytics rollups: which days are stale, who a visitor is, and rebuilding a day's rollups.

A day's VisitorDay, ProductDay and KeywordDay rows are rebuilt from its raw events in one
transaction that first deletes the day's DirtyDay mark: of two concurrent rebuilders, the second
finds no mark to delete and skips the day. Ingestion re-marks a day in its own transaction with an
upsert, which waits for a rebuild holding the mark, so events are never left out of a rollup unseen.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from tortoise.transactions import in_transaction

from bff.models.analytics import DirtyDay
from bff.services.analytics_sql import Sql


def visitor_key(member_id: int | None, anonymous_id: str) -> str:
    """The identity a visitor is counted under: the member when signed in, else the device."""
    return f"m:{member_id}" if member_id is not None else f"a:{anonymous_id}"


async def mark_dirty(days: Iterable[date]) -> None:
    """Mark days whose rollups must be rebuilt (in the caller's transaction; existing marks stay)."""
    now = datetime.now(UTC)
    rows = [DirtyDay(day=d, marked_at=now) for d in sorted(set(days))]
    if rows:
        # An upsert, not "ignore": it locks an existing mark until the caller commits, so a rebuild
        # cannot consume the mark while this transaction's events are still invisible to it.
        await DirtyDay.bulk_create(rows, on_conflict=["day"], update_fields=["marked_at"])


# The same rule as `visitor_key`, in SQL.
_VISITOR_KEY = (
    "CASE WHEN member_id IS NULL THEN 'a:' || anonymous_id ELSE 'm:' || CAST(member_id AS TEXT) END"
)


def _count(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


_REBUILD = (
    f"""INSERT INTO analytics_visitor_day
        (day, visitor_key, member_id, page_views, product_views, add_to_carts, checkout_starts, shares)
    SELECT day, vk, MAX(member_id),
        {_count("type = 'page_view'")},
        {_count("(type = 'page_view' AND product_id IS NOT NULL) OR type = 'product_click'")},
        {_count("type = 'add_to_cart'")},
        {_count("type = 'checkout_start'")},
        {_count("type = 'share'")}
    FROM (SELECT day, member_id, type, product_id, {_VISITOR_KEY} AS vk
          FROM analytics_event WHERE day = $1) e
    GROUP BY day, vk""",  # nosec B608
    f"""INSERT INTO analytics_product_day (day, product_id, exposures, clicks, views, add_to_carts)
    SELECT day, product_id,
        {_count("type = 'product_exposure'")},
        {_count("type = 'product_click'")},
        {_count("type = 'page_view'")},
        {_count("type = 'add_to_cart'")}
    FROM analytics_event
    WHERE day = $1 AND product_id IS NOT NULL
        AND type IN ('product_exposure', 'product_click', 'page_view', 'add_to_cart')
    GROUP BY day, product_id""",  # nosec B608
    f"""INSERT INTO analytics_keyword_day (day, keyword, searches, zero_results)
    SELECT day, keyword, COUNT(*), {_count("result_count = 0")}
    FROM analytics_event
    WHERE day = $1 AND type = 'search' AND keyword IS NOT NULL
    GROUP BY day, keyword""",  # nosec B608
)
_ROLLUP_TABLES = ("analytics_visitor_day", "analytics_product_day", "analytics_keyword_day")


async def _rebuild_day(day: date, *, only_if_dirty: bool) -> bool:
    """Rebuild one day in one transaction; False when `only_if_dirty` and another rebuilder had it."""
    async with in_transaction() as connection:
        sql = Sql(connection)
        if not only_if_dirty:
            # Take the mark's row lock first, so two rebuilds of the same day run one after the other.
            await mark_dirty([day])
        claimed = await sql.execute("DELETE FROM analytics_dirty_day WHERE day = $1", sql.day(day))
        if only_if_dirty and not claimed:
            return False
        for table in _ROLLUP_TABLES:
            await sql.execute(f"DELETE FROM {table} WHERE day = $1", sql.day(day))  # nosec B608
        for statement in _REBUILD:
            await sql.execute(statement, sql.day(day))
    return True


async def rebuild_days(days: Iterable[date]) -> list[date]:
    """Rebuild the rollups of these days from their events (dirty or not); returns them sorted."""
    ordered = sorted(set(days))
    for day in ordered:
        await _rebuild_day(day, only_if_dirty=False)
    return ordered


async def rebuild_dirty(
    limit: int = 31, *, since: date | None = None, until: date | None = None
) -> list[date]:
    """Rebuild up to `limit` dirty days, oldest first, optionally only those from `since` and up to
    `until` (inclusive); returns the days this call rebuilt."""
    query = DirtyDay.all()
    if since is not None:
        query = query.filter(day__gte=since)
    if until is not None:
        query = query.filter(day__lte=until)
    days = [row[0] for row in await query.order_by("day").limit(limit).values_list("day")]
    return [day for day in days if await _rebuild_day(day, only_if_dirty=True)]
