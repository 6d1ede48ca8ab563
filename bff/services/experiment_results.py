"""A/B results: per variant visitors, conversions, orders, revenue and AOV, each compared with the control.

A visitor is an `analytics_experiment_visitor` row (first exposure, with the server-assigned variant).
A conversion is an exposed member with at least one order paid after their first exposure; anonymous
visitors count as visitors but cannot convert (orders belong to members). With a range of shop days,
visitors are those first exposed in it and orders those paid in it (before its end). All of it is one
GROUP BY query, whatever the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise import connections

from bff.models.experiment import Experiment
from bff.services.errors import BusinessError
from bff.services.experiment_stats import Sample, two_proportion_p, welch_p
from bff.services.experiments import variants_of
from bff.services.shop_time import SHOP_TZ

ALPHA = 0.05
# Below this many visitors in an arm the normal approximations behind both tests are not trusted.
MIN_VISITORS_PER_ARM = 30


@dataclass(frozen=True)
class Arm:
    """What the database aggregates for one variant."""

    visitors: int = 0
    conversions: int = 0
    orders: int = 0
    revenue_fen: int = 0
    squares: int = 0  # sum of payable_fen² over the orders, for the variance

    @property
    def order_values(self) -> Sample:
        return Sample(n=self.orders, total=self.revenue_fen, squares=self.squares)

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.visitors if self.visitors else 0.0

    @property
    def average_order_value_fen(self) -> int:
        """Revenue per order, rounded half up to the fen; 0 without orders."""
        if not self.orders:
            return 0
        return (2 * self.revenue_fen + self.orders) // (2 * self.orders)


@dataclass(frozen=True)
class VariantResult:
    key: str
    weight: int
    is_control: bool
    arm: Arm
    uplift_vs_control: float | None  # relative change of the conversion rate; None for the control
    p_value: float | None  # two-proportion z-test against the control
    aov_p_value: float | None  # Welch's test of order values against the control
    minimum_sample_reached: bool  # this arm and the control each have MIN_VISITORS_PER_ARM visitors
    significant: bool  # p_value < ALPHA with the minimum sample reached


@dataclass(frozen=True)
class Results:
    experiment: Experiment
    from_day: date | None
    to_day: date | None
    variants: list[VariantResult]


def shop_window(from_day: date, to_day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start of from_day, start of the day after to_day) in the shop's calendar."""
    if from_day > to_day:
        raise BusinessError("INVALID_INPUT", "开始日期不能晚于结束日期", "range")
    start = datetime.combine(from_day, time(), SHOP_TZ)
    end = datetime.combine(to_day + timedelta(days=1), time(), SHOP_TZ)
    return start.astimezone(UTC), end.astimezone(UTC)


_RESULTS_SQL = """
SELECT v.variant AS variant,
       COUNT(DISTINCT v.id) AS visitors,
       COUNT(DISTINCT o.member_id) AS conversions,
       COUNT(o.id) AS orders,
       COALESCE(SUM(o.payable_fen), 0) AS revenue,
       COALESCE(SUM(CAST(o.payable_fen AS DOUBLE PRECISION) * o.payable_fen), 0) AS squares
FROM analytics_experiment_visitor v
LEFT JOIN orders o
  ON o.member_id = v.member_id AND o.paid_at IS NOT NULL AND o.paid_at >= v.first_exposed_at{paid_before}
WHERE v.experiment_key = {key}{exposed_within}
GROUP BY v.variant
"""


async def _arms(key: str, window: tuple[datetime, datetime] | None) -> dict[str, Arm]:
    connection = connections.get("default")
    postgres = connection.capabilities.dialect == "postgres"
    params: list[Any] = []

    def mark(value: Any) -> str:
        params.append(value)
        return f"${len(params)}" if postgres else "?"

    # Placeholders are numbered in the order they appear in the statement.
    paid_before = f" AND o.paid_at < {mark(window[1])}" if window else ""
    key_mark = mark(key)
    exposed_within = (
        f" AND v.first_exposed_at >= {mark(window[0])} AND v.first_exposed_at < {mark(window[1])}"
        if window
        else ""
    )
    sql = _RESULTS_SQL.format(paid_before=paid_before, key=key_mark, exposed_within=exposed_within)
    _, rows = await connection.execute_query(sql, params)
    return {
        str(row["variant"]): Arm(
            visitors=int(row["visitors"]),
            conversions=int(row["conversions"]),
            orders=int(row["orders"]),
            revenue_fen=int(row["revenue"]),
            # A double sums squares without overflow; exact while the total stays below 2**53.
            squares=round(float(row["squares"])),
        )
        for row in rows
    }


def _compare(key: str, weight: int, arm: Arm, control: Arm) -> VariantResult:
    sample_ok = min(arm.visitors, control.visitors) >= MIN_VISITORS_PER_ARM
    p_value = two_proportion_p(control.conversions, control.visitors, arm.conversions, arm.visitors)
    control_rate = control.conversion_rate
    return VariantResult(
        key=key,
        weight=weight,
        is_control=False,
        arm=arm,
        uplift_vs_control=(arm.conversion_rate - control_rate) / control_rate if control_rate else None,
        p_value=p_value,
        aov_p_value=welch_p(control.order_values, arm.order_values),
        minimum_sample_reached=sample_ok,
        significant=sample_ok and p_value is not None and p_value < ALPHA,
    )


async def results(experiment: Experiment, days: tuple[date, date] | None = None) -> Results:
    """Every variant's numbers (control first), in one query; `days` is an inclusive shop-day range."""
    window = shop_window(*days) if days else None
    arms = await _arms(experiment.key, window)
    (control_key, control_weight), *others = variants_of(experiment)
    control = arms.get(control_key, Arm())
    rows = [
        VariantResult(
            key=control_key,
            weight=control_weight,
            is_control=True,
            arm=control,
            uplift_vs_control=None,
            p_value=None,
            aov_p_value=None,
            minimum_sample_reached=control.visitors >= MIN_VISITORS_PER_ARM,
            significant=False,
        )
    ]
    rows += [_compare(key, weight, arms.get(key, Arm()), control) for key, weight in others]
    return Results(
        experiment=experiment,
        from_day=days[0] if days else None,
        to_day=days[1] if days else None,
        variants=rows,
    )
