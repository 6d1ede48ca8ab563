"""The operators' dashboard figures over a range of shop-local days, read from the daily rollups and
the orders. Every figure is a fixed number of SQL queries, whatever the number of events or days.

Definitions (the README repeats them): visitors are distinct visitor keys with a VisitorDay row in
the range; orders are counted by `created_at`, paid orders and GMV by `paid_at`, refunds by the
`succeeded_at` of successful refunds; trend and retention buckets are days or ISO weeks (Mondays).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from bff.services.analytics_sql import Sql, as_date
from bff.services.dashboard_campaigns import CampaignSales, campaign_sales
from bff.services.shop_time import SHOP_TZ

__all__ = [
    "MAX_DAYS",
    "CampaignSales",
    "Cohort",
    "Dashboard",
    "FunnelStep",
    "KeywordStats",
    "Period",
    "ProductSales",
    "Summary",
    "TrendPoint",
    "period_problem",
]

MAX_DAYS = 366
RETENTION_DAYS = (1, 7, 30)
T = TypeVar("T")


@dataclass(frozen=True)
class Period:
    """Shop-local days `first`..`last` (inclusive), bucketed by day or by ISO week."""

    first: date
    last: date
    weekly: bool = False

    @property
    def start(self) -> datetime:
        """The first moment of the range."""
        return datetime.combine(self.first, time(), SHOP_TZ)

    @property
    def end(self) -> datetime:
        """The first moment after the range."""
        return datetime.combine(self.last + timedelta(days=1), time(), SHOP_TZ)

    def bucket_of(self, day: date) -> date:
        """The trend bucket a day falls in."""
        return day - timedelta(days=day.weekday()) if self.weekly else day

    def buckets(self) -> list[date]:
        """Every bucket of the range, in order (a partial first or last week included)."""
        days = (self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1))
        return sorted({self.bucket_of(day) for day in days})


def period_problem(first: date, last: date) -> str | None:
    """Why a range cannot be reported on, or None when it can."""
    if first > last:
        return "range.from must not be after range.to"
    if (last - first).days + 1 > MAX_DAYS:
        return f"a range covers at most {MAX_DAYS} days"
    return None


@dataclass(frozen=True)
class VisitorTotals:
    visitors: int
    page_views: int
    viewers: int  # visitors with a page view
    carters: int  # visitors who added to cart
    checkouts: int  # visitors who started a checkout


@dataclass(frozen=True)
class PaidTotals:
    paid_orders: int
    gmv_fen: int
    paying_members: int
    repeat_members: int  # members with two or more orders paid in the range


def average_fen(total_fen: int, count: int) -> int:
    """total / count rounded half up to a fen; 0 when count is 0."""
    return (2 * total_fen + count) // (2 * count) if count else 0


def ratio(part: int, whole: int) -> float:
    """part / whole as a fraction; 0 when whole is 0."""
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class Summary:
    visitors: int
    page_views: int
    orders: int
    paid_orders: int
    paying_members: int
    gmv_fen: int
    refunds_fen: int
    repeat_members: int
    new_members: int
    returning_members: int

    @property
    def average_order_value_fen(self) -> int:
        return average_fen(self.gmv_fen, self.paid_orders)

    @property
    def conversion_rate(self) -> float:
        return ratio(self.paying_members, self.visitors)

    @property
    def repurchase_rate(self) -> float:
        return ratio(self.repeat_members, self.paying_members)


@dataclass(frozen=True)
class TrendPoint:
    bucket: date
    visitors: int
    page_views: int
    paid_orders: int
    gmv_fen: int

    @property
    def average_order_value_fen(self) -> int:
        return average_fen(self.gmv_fen, self.paid_orders)


@dataclass(frozen=True)
class FunnelStep:
    step: str  # VIEW, ADD_TO_CART, CHECKOUT, PAY
    visitors: int
    rate_from_previous: float
    rate_from_first: float


@dataclass(frozen=True)
class Cohort:
    cohort: date
    size: int
    returned: dict[int, float | None]  # day N → share of the cohort back on its day N; None: not yet known


@dataclass(frozen=True)
class ProductSales:
    product_id: int
    title: str
    views: int
    add_to_carts: int
    units_sold: int
    sales_fen: int


@dataclass(frozen=True)
class KeywordStats:
    keyword: str
    searches: int
    zero_results: int


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


class Dashboard:
    """The figures of one period. Figures that share a query (summary and funnel) run it once."""

    def __init__(self, period: Period) -> None:
        self.period = period
        self._shared: dict[str, asyncio.Future[Any]] = {}

    def _once(self, key: str, compute: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        # Sibling GraphQL fields resolve concurrently: the first caller starts the query, the
        # others await the same future.
        future = self._shared.get(key)
        if future is None:
            future = self._shared[key] = asyncio.ensure_future(compute())
        return future

    def _days(self, sql: Sql) -> tuple[date | str, date | str]:
        return sql.day(self.period.first), sql.day(self.period.last)

    def _moments(self, sql: Sql) -> tuple[datetime | str, datetime | str]:
        return sql.moment(self.period.start), sql.moment(self.period.end)

    # --- shared queries -------------------------------------------------------------------------

    def visitor_totals(self) -> Awaitable[VisitorTotals]:
        """Visitors, page views and the funnel's visitor steps over the range."""
        return self._once("visitors", self._visitor_totals)

    async def _visitor_totals(self) -> VisitorTotals:
        sql = Sql()
        (row,) = await sql.rows(
            # One row per visitor first (a hash aggregate), rather than four COUNT(DISTINCT)s that
            # each sort the range's rows.
            """SELECT COUNT(*) AS visitors, SUM(pv) AS page_views,
                SUM(CASE WHEN pv > 0 THEN 1 ELSE 0 END) AS viewers,
                SUM(CASE WHEN carts > 0 THEN 1 ELSE 0 END) AS carters,
                SUM(CASE WHEN checkouts > 0 THEN 1 ELSE 0 END) AS checkouts
            FROM (SELECT visitor_key, SUM(page_views) AS pv, SUM(add_to_carts) AS carts,
                    SUM(checkout_starts) AS checkouts
                  FROM analytics_visitor_day WHERE day BETWEEN $1 AND $2 GROUP BY visitor_key) visitors""",
            *self._days(sql),
        )
        return VisitorTotals(**{key: _int(value) for key, value in row.items()})

    def paid_totals(self) -> Awaitable[PaidTotals]:
        """Orders paid in the range: count, GMV, paying and repeat members."""
        return self._once("paid", self._paid_totals)

    async def _paid_totals(self) -> PaidTotals:
        sql = Sql()
        (row,) = await sql.rows(
            """SELECT SUM(n) AS paid_orders, SUM(gmv) AS gmv_fen, COUNT(*) AS paying_members,
                SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END) AS repeat_members
            FROM (SELECT member_id, COUNT(*) AS n, SUM(payable_fen) AS gmv FROM orders
                  WHERE paid_at >= $1 AND paid_at < $2 GROUP BY member_id) paying""",
            *self._moments(sql),
        )
        return PaidTotals(**{key: _int(value) for key, value in row.items()})

    # --- figures --------------------------------------------------------------------------------

    async def summary(self) -> Summary:
        """The headline figures of the range."""
        visitors, paid, counts = await asyncio.gather(
            self.visitor_totals(), self.paid_totals(), self._counts()
        )
        return Summary(
            visitors=visitors.visitors,
            page_views=visitors.page_views,
            orders=_int(counts["orders"]),
            paid_orders=paid.paid_orders,
            paying_members=paid.paying_members,
            gmv_fen=paid.gmv_fen,
            refunds_fen=_int(counts["refunds"]),
            repeat_members=paid.repeat_members,
            new_members=_int(counts["new_members"]),
            returning_members=_int(counts["returning_members"]),
        )

    async def _counts(self) -> dict[str, Any]:
        sql = Sql()
        start, end = self._moments(sql)
        (counts,) = await sql.rows(
            """SELECT
                (SELECT COUNT(*) FROM orders WHERE created_at >= $1 AND created_at < $2) AS orders,
                (SELECT SUM(amount_fen) FROM refund
                 WHERE status = 'SUCCESS' AND succeeded_at >= $1 AND succeeded_at < $2) AS refunds,
                (SELECT COUNT(*) FROM member WHERE created_at >= $1 AND created_at < $2) AS new_members,
                (SELECT COUNT(*) FROM member WHERE created_at < $1 AND id IN (
                    SELECT member_id FROM analytics_visitor_day
                    WHERE day BETWEEN $3 AND $4 AND member_id IS NOT NULL
                    UNION SELECT member_id FROM orders WHERE paid_at >= $1 AND paid_at < $2
                )) AS returning_members""",
            start,
            end,
            *self._days(sql),
        )
        return counts

    async def trend(self) -> list[TrendPoint]:
        """One point per bucket of the range, empty buckets included."""
        sql = Sql()
        weekly = self.period.weekly
        # A visitor has one row per day: days count rows; weeks first fold each visitor's days.
        rows = (
            f"""SELECT {sql.week_start("day")} AS bucket, visitor_key, SUM(page_views) AS page_views
            FROM analytics_visitor_day WHERE day BETWEEN $1 AND $2 GROUP BY 1, 2"""  # nosec B608
            if weekly
            else "SELECT day AS bucket, page_views FROM analytics_visitor_day WHERE day BETWEEN $1 AND $2"
        )
        visits = await sql.rows(
            f"""SELECT bucket, COUNT(*) AS visitors, SUM(page_views) AS page_views
            FROM ({rows}) visits GROUP BY bucket""",  # nosec B608
            *self._days(sql),
        )
        sales = await sql.rows(
            f"""SELECT {sql.bucket(sql.shop_day_of("paid_at"), weekly)} AS bucket,
                COUNT(*) AS paid_orders, SUM(payable_fen) AS gmv_fen
            FROM orders WHERE paid_at >= $1 AND paid_at < $2 GROUP BY 1""",  # nosec B608
            *self._moments(sql),
        )
        visits_by = {as_date(row["bucket"]): row for row in visits}
        sales_by = {as_date(row["bucket"]): row for row in sales}
        return [
            TrendPoint(
                bucket=bucket,
                visitors=_int(visits_by.get(bucket, {}).get("visitors")),
                page_views=_int(visits_by.get(bucket, {}).get("page_views")),
                paid_orders=_int(sales_by.get(bucket, {}).get("paid_orders")),
                gmv_fen=_int(sales_by.get(bucket, {}).get("gmv_fen")),
            )
            for bucket in self.period.buckets()
        ]

    async def funnel(self) -> list[FunnelStep]:
        """View → add to cart → checkout → pay, in distinct visitors (members for PAY)."""
        visitors, paid = await self.visitor_totals(), await self.paid_totals()
        counts = [
            ("VIEW", visitors.viewers),
            ("ADD_TO_CART", visitors.carters),
            ("CHECKOUT", visitors.checkouts),
            ("PAY", paid.paying_members),
        ]
        first = counts[0][1]
        steps = []
        for index, (step, count) in enumerate(counts):
            previous = counts[index - 1][1] if index else count
            steps.append(
                FunnelStep(
                    step=step,
                    visitors=count,
                    # Capped at 1: members who pay without a tracked checkout (another device, an
                    # untracked app version) would otherwise make a step "convert" above 100%.
                    rate_from_previous=1.0 if index == 0 else min(1.0, ratio(count, previous)),
                    rate_from_first=1.0 if index == 0 else min(1.0, ratio(count, first)),
                )
            )
        return steps

    async def retention(self) -> list[Cohort]:
        """Cohorts of visitors whose first visit ever falls in a bucket, and how many came back."""
        sql = Sql()
        back = {n: sql.plus_days("f.first_day", n) for n in RETENTION_DAYS}
        came_back = ", ".join(
            f"MAX(CASE WHEN r.day = {back[n]} THEN 1 ELSE 0 END) AS day{n}" for n in RETENTION_DAYS
        )
        # Set-based, so it stays fast with many visitors: each visitor's first day in the range, less
        # those seen before it (an anti-join), then one join to their visits on the days that count.
        rows = await sql.rows(
            f"""WITH seen AS (
                SELECT visitor_key, MIN(day) AS first_day FROM analytics_visitor_day
                WHERE day BETWEEN $1 AND $2 GROUP BY visitor_key
            ), firsts AS (
                SELECT s.visitor_key, s.first_day FROM seen s
                WHERE NOT EXISTS (SELECT 1 FROM analytics_visitor_day e
                                  WHERE e.visitor_key = s.visitor_key AND e.day < $1)
            ), visitors AS (
                SELECT f.first_day, {came_back}
                FROM firsts f LEFT JOIN analytics_visitor_day r ON r.visitor_key = f.visitor_key
                    AND r.day IN ({", ".join(back.values())}) AND r.day > $1 AND r.day <= $2
                GROUP BY f.visitor_key, f.first_day
            )
            SELECT {sql.bucket("first_day", self.period.weekly)} AS cohort, COUNT(*) AS size,
                MAX(first_day) AS last_first_day,
                {", ".join(f"SUM(day{n}) AS day{n}" for n in RETENTION_DAYS)}
            FROM visitors GROUP BY 1 ORDER BY 1""",  # nosec B608
            *self._days(sql),
        )
        cohorts = []
        for row in rows:
            size = _int(row["size"])
            last_first_day = as_date(row["last_first_day"])
            cohorts.append(
                Cohort(
                    cohort=as_date(row["cohort"]),
                    size=size,
                    returned={
                        # Known only once day N is inside the range for every member of the cohort.
                        n: None
                        if last_first_day + timedelta(days=n) > self.period.last
                        else ratio(_int(row[f"day{n}"]), size)
                        for n in RETENTION_DAYS
                    },
                )
            )
        return cohorts

    async def top_products(self, first: int) -> list[ProductSales]:
        """Best sellers of the range by net sales (paid minus refunded), then units, then id."""
        sql = Sql()
        sold = await sql.rows(
            """SELECT l.product_id AS product_id, COALESCE(MAX(p.title), MAX(l.product_title)) AS title,
                SUM(l.quantity - l.refunded_quantity) AS units, SUM(l.paid_fen - l.refunded_fen) AS sales
            FROM order_line l JOIN orders o ON o.id = l.order_id LEFT JOIN product p ON p.id = l.product_id
            WHERE o.paid_at >= $1 AND o.paid_at < $2
            GROUP BY l.product_id ORDER BY sales DESC, units DESC, l.product_id LIMIT $3""",
            *self._moments(sql),
            first,
        )
        if not sold:
            return []
        ids = [int(row["product_id"]) for row in sold]
        marks = ", ".join(f"${n}" for n in range(3, 3 + len(ids)))
        behaviour = await sql.rows(
            f"""SELECT product_id, SUM(views) AS views, SUM(add_to_carts) AS add_to_carts
            FROM analytics_product_day WHERE day BETWEEN $1 AND $2 AND product_id IN ({marks})
            GROUP BY product_id""",  # nosec B608
            *self._days(sql),
            *ids,
        )
        seen = {int(row["product_id"]): row for row in behaviour}
        return [
            ProductSales(
                product_id=int(row["product_id"]),
                title=str(row["title"]),
                views=_int(seen.get(int(row["product_id"]), {}).get("views")),
                add_to_carts=_int(seen.get(int(row["product_id"]), {}).get("add_to_carts")),
                units_sold=_int(row["units"]),
                sales_fen=_int(row["sales"]),
            )
            for row in sold
        ]

    async def top_keywords(self, first: int) -> list[KeywordStats]:
        """The most searched keywords of the range."""
        sql = Sql()
        rows = await sql.rows(
            """SELECT keyword, SUM(searches) AS total, SUM(zero_results) AS zero
            FROM analytics_keyword_day WHERE day BETWEEN $1 AND $2
            GROUP BY keyword ORDER BY total DESC, keyword LIMIT $3""",
            *self._days(sql),
            first,
        )
        return [KeywordStats(str(row["keyword"]), _int(row["total"]), _int(row["zero"])) for row in rows]

    async def zero_result_keywords(self, first: int) -> list[KeywordStats]:
        """Keywords whose searches found nothing, most such searches first."""
        sql = Sql()
        rows = await sql.rows(
            """SELECT keyword, SUM(searches) AS total, SUM(zero_results) AS zero
            FROM analytics_keyword_day WHERE day BETWEEN $1 AND $2
            GROUP BY keyword HAVING SUM(zero_results) > 0 ORDER BY zero DESC, keyword LIMIT $3""",
            *self._days(sql),
            first,
        )
        return [KeywordStats(str(row["keyword"]), _int(row["total"]), _int(row["zero"])) for row in rows]

    async def sales_by_campaign(self) -> list[CampaignSales]:
        """Orders paid in the range grouped by the campaign they were bought in (NONE: none)."""
        sql = Sql()
        rows = await sql.rows(
            """SELECT campaign_kind, campaign_ref, COUNT(*) AS orders, SUM(payable_fen) AS gmv_fen
            FROM orders WHERE paid_at >= $1 AND paid_at < $2 GROUP BY campaign_kind, campaign_ref""",
            *self._moments(sql),
        )
        return await campaign_sales(
            [
                (row["campaign_kind"], row["campaign_ref"], _int(row["orders"]), _int(row["gmv_fen"]))
                for row in rows
            ]
        )
