"""Raw SQL for the analytics rollups and the dashboard, written once for PostgreSQL and SQLite.

Queries are written with PostgreSQL's `$1` placeholders; SQLite gets `?1`, its numbered form.
Dates come back from SQLite as text: read them with `as_date`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from bff.services.shop_time import SHOP_TZ

_PLACEHOLDER = re.compile(r"\$(\d+)")
_SHOP_OFFSET_MINUTES = int(SHOP_TZ.utcoffset(None).total_seconds()) // 60


class Sql:
    """One connection (or transaction) and the dialect's spelling of dates and parameters."""

    def __init__(self, connection: BaseDBAsyncClient | None = None) -> None:
        self.connection = connection if connection is not None else connections.get("default")
        self.postgres = self.connection.capabilities.dialect == "postgres"

    def day(self, value: date) -> date | str:
        """A date parameter: SQLite stores dates as ISO text."""
        return value if self.postgres else value.isoformat()

    def moment(self, value: datetime) -> datetime | str:
        """A timestamp parameter, in UTC as Tortoise stores it on SQLite."""
        value = value.astimezone(UTC)
        return value if self.postgres else value.isoformat(" ")

    def shop_day_of(self, column: str) -> str:
        """The shop-local calendar day of a timestamp column."""
        if self.postgres:
            return f"CAST(({column} AT TIME ZONE 'UTC') + INTERVAL '{_SHOP_OFFSET_MINUTES} minutes' AS DATE)"
        return f"date({column}, '{_SHOP_OFFSET_MINUTES:+d} minutes')"

    def plus_days(self, expression: str, days: int) -> str:
        """A date expression moved by whole days."""
        if self.postgres:
            return f"({expression} + {days:d})"
        return f"date({expression}, '{days:+d} days')"

    def week_start(self, expression: str) -> str:
        """The Monday of a date expression's ISO week."""
        if self.postgres:
            return f"({expression} - CAST(EXTRACT(ISODOW FROM {expression}) AS INTEGER) + 1)"
        # 'weekday 0' moves forward to the Sunday ending the ISO week (or stays on it).
        return f"date({expression}, 'weekday 0', '-6 days')"

    def bucket(self, expression: str, weekly: bool) -> str:
        """The trend bucket of a date expression: the day itself, or its week's Monday."""
        return self.week_start(expression) if weekly else expression

    def _text(self, query: str) -> str:
        return query if self.postgres else _PLACEHOLDER.sub(r"?\1", query)

    async def rows(self, query: str, *values: Any) -> list[dict[str, Any]]:
        """The rows a SELECT returns, as dicts."""
        return await self.connection.execute_query_dict(self._text(query), list(values))

    async def execute(self, query: str, *values: Any) -> int:
        """Run a DELETE/INSERT/UPDATE; returns the rows it changed (not reliable for INSERT … SELECT)."""
        changed, _ = await self.connection.execute_query(self._text(query), list(values))
        return changed


def as_date(value: object) -> date:
    """A date column's value as a date, whichever form the driver returned."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
