"""A/B test types: definitions, a shopper's assignment, and per-variant results with significance."""

from __future__ import annotations

import enum
from datetime import date, datetime

import strawberry

from bff.models.experiment import Experiment as ExperimentModel
from bff.services.experiment_results import Results, VariantResult
from bff.services.experiments import variants_of
from schema.common import Money, UserError, money


@strawberry.enum(
    description="DRAFT (editable, everyone sees the control) → RUNNING → STOPPED (control again)."
)
class ExperimentStatus(enum.Enum):
    DRAFT = "DRAFT"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


@strawberry.enum(description="The screen an experiment changes.")
class ExperimentScreen(enum.Enum):
    HOME = "HOME"
    CATEGORY = "CATEGORY"
    SEARCH = "SEARCH"
    PRODUCT = "PRODUCT"
    CART = "CART"
    CHECKOUT = "CHECKOUT"
    ORDERS = "ORDERS"
    MEMBER = "MEMBER"
    CAMPAIGN = "CAMPAIGN"


@strawberry.type
class ExperimentVariant:
    key: str
    weight: int = strawberry.field(description="Relative share of traffic (weights need not sum to 100).")
    is_control: bool


@strawberry.type(description="An A/B test as operators define it.")
class Experiment:
    key: str
    name: str
    screen: ExperimentScreen
    status: ExperimentStatus
    variants: list[ExperimentVariant] = strawberry.field(description="The control first.")
    created_by: str
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None

    @classmethod
    def from_model(cls, row: ExperimentModel) -> Experiment:
        return cls(
            key=row.key,
            name=row.name,
            screen=ExperimentScreen(row.screen),
            status=ExperimentStatus(row.status),
            variants=[
                ExperimentVariant(key=key, weight=weight, is_control=i == 0)
                for i, (key, weight) in enumerate(variants_of(row))
            ],
            created_by=row.created_by,
            created_at=row.created_at,
            started_at=row.started_at,
            stopped_at=row.stopped_at,
        )


@strawberry.type(description="The variant the viewer sees; the same one on every visit and device login.")
class ExperimentAssignment:
    key: str
    variant: str
    screen: ExperimentScreen


@strawberry.input
class ExperimentVariantInput:
    key: str = strawberry.field(description="1-32 of a-z, 0-9, _ and -.")
    weight: int = strawberry.field(description="An integer >= 0; the weights' total must be positive.")


@strawberry.input(description="A definition: 2-5 variants, the first is the control.")
class ExperimentInput:
    key: str = strawberry.field(description="2-64 of a-z, 0-9, _ and -; unique, and never changes.")
    name: str
    screen: ExperimentScreen
    variants: list[ExperimentVariantInput]


@strawberry.input(description="Inclusive days in the shop's calendar (UTC+8).")
class ExperimentRangeInput:
    from_: date = strawberry.field(name="from")
    to: date


@strawberry.type
class ExperimentPayload:
    experiment: Experiment | None
    user_errors: list[UserError]


@strawberry.type(description="One variant's numbers; the comparisons are against the control.")
class ExperimentVariantResult:
    key: str
    weight: int
    is_control: bool
    visitors: int = strawberry.field(description="Identities first exposed (in the range, if given).")
    conversions: int = strawberry.field(description="Exposed members who paid an order after exposure.")
    conversion_rate: float = strawberry.field(description="conversions / visitors, 0 to 1.")
    orders: int
    revenue: Money = strawberry.field(description="Payable amount of those orders.")
    average_order_value: Money = strawberry.field(description="revenue / orders, to the nearest fen.")
    uplift_vs_control: float | None = strawberry.field(
        description="Relative change of the conversion rate (0.25 = +25%); null for the control, or "
        "when the control has not converted anyone."
    )
    p_value: float | None = strawberry.field(
        description="Two-sided pooled two-proportion z-test of conversion; null for the control or "
        "when undefined (no visitors, or both rates 0% or 100%)."
    )
    aov_p_value: float | None = strawberry.field(
        description="Welch's test of order values (normal approximation); null with < 2 orders per arm."
    )
    minimum_sample_reached: bool = strawberry.field(
        description="This arm and the control each have at least 30 visitors."
    )
    significant: bool = strawberry.field(description="pValue < 0.05 and the minimum sample reached.")

    @classmethod
    def from_result(cls, r: VariantResult) -> ExperimentVariantResult:
        return cls(
            key=r.key,
            weight=r.weight,
            is_control=r.is_control,
            visitors=r.arm.visitors,
            conversions=r.arm.conversions,
            conversion_rate=r.arm.conversion_rate,
            orders=r.arm.orders,
            revenue=money(r.arm.revenue_fen),
            average_order_value=money(r.arm.average_order_value_fen),
            uplift_vs_control=r.uplift_vs_control,
            p_value=r.p_value,
            aov_p_value=r.aov_p_value,
            minimum_sample_reached=r.minimum_sample_reached,
            significant=r.significant,
        )


@strawberry.type
class ExperimentResults:
    experiment: Experiment
    from_: date | None = strawberry.field(name="from", description="Null: since the start.")
    to: date | None
    variants: list[ExperimentVariantResult] = strawberry.field(description="The control first.")

    @classmethod
    def from_results(cls, results: Results) -> ExperimentResults:
        return cls(
            experiment=Experiment.from_model(results.experiment),
            from_=results.from_day,
            to=results.to_day,
            variants=[ExperimentVariantResult.from_result(v) for v in results.variants],
        )
