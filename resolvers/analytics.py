"""The operators' dashboard entry point.

Needs an operator token: anonymous callers get UNAUTHENTICATED, members FORBIDDEN (GraphQL
errors, as `require_operator` raises); a range that is reversed or longer than 366 days is a
BAD_USER_INPUT error. Dirty days up to the end of the range are rebuilt first, so figures are fresh.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from bff.context import Info
from bff.errors import PublicError
from bff.services import dashboard, rollups
from schema.analytics import Dashboard, DateRange, DateRangeInput, Granularity

# Dirty days are normally only the last day or two; a backfill beyond this is left to the worker.
_FRESHEN_LIMIT = 400


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description="Operators: traffic, funnel, retention, sales and search over a range.")
    async def dashboard(
        self,
        info: Info,
        range_: Annotated[DateRangeInput, strawberry.argument(name="range")],
        granularity: Granularity,
    ) -> Dashboard:
        info.context.require_operator()
        problem = dashboard.period_problem(range_.from_, range_.to)
        if problem is not None:
            raise PublicError(problem)
        period = dashboard.Period(range_.from_, range_.to, weekly=granularity is Granularity.WEEK)
        # Days before the range count too: retention looks back for each visitor's first visit.
        await rollups.rebuild_dirty(_FRESHEN_LIMIT, until=period.last)
        return Dashboard(
            range=DateRange(from_=period.first, to=period.last),
            granularity=granularity,
            figures=dashboard.Dashboard(period),
        )
