"""A/B test entry points: a shopper's variant, and operators' definitions, lifecycle and results.

Operator fields need an operator token (anonymous: UNAUTHENTICATED, members: FORBIDDEN, as GraphQL
errors); invalid definitions and wrong states are userErrors.
"""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.errors import PublicError
from bff.pagination import decode_cursor, encode_cursor, page_size
from bff.services import experiment_results, experiments
from bff.services.errors import BusinessError
from bff.services.experiments import Definition, InvalidExperiment
from bff.services.rollups import visitor_key
from schema.common import Connection, ErrorCode, UserError, connection, user_error, user_errors
from schema.experiment import (
    Experiment,
    ExperimentAssignment,
    ExperimentInput,
    ExperimentPayload,
    ExperimentRangeInput,
    ExperimentResults,
    ExperimentScreen,
    ExperimentStatus,
)

# The longest anonymous id the event log stores (analytics_event.anonymous_id).
ANONYMOUS_ID_MAX_LENGTH = 64


def _identity(info: Info, anonymous_id: str | None) -> str:
    member_id = info.context.member_id
    if member_id is not None:  # the token decides: a member is the same person on every device
        return visitor_key(member_id, "")
    if not anonymous_id or len(anonymous_id) > ANONYMOUS_ID_MAX_LENGTH:
        raise PublicError(
            f"visitors who are not signed in must pass anonymousId (1-{ANONYMOUS_ID_MAX_LENGTH} characters)"
        )
    return visitor_key(None, anonymous_id)


def _definition(data: ExperimentInput) -> Definition:
    return Definition(
        key=data.key,
        name=data.name,
        screen=data.screen.value,
        variants=tuple((v.key, v.weight) for v in data.variants),
    )


def _errors(exc: BusinessError) -> list[UserError]:
    if isinstance(exc, InvalidExperiment):
        return [user_error(ErrorCode.INVALID_INPUT, message, field) for field, message in exc.problems]
    return user_errors(exc)


@strawberry.type
class ExperimentQuery:
    @strawberry.field(
        description="The viewer's variant of an experiment: stable per member (or per anonymousId when "
        "not signed in, where it is required); the control unless RUNNING; null for an unknown key."
    )
    async def experiment(
        self, info: Info, key: str, anonymous_id: str | None = None
    ) -> ExperimentAssignment | None:
        identity = _identity(info, anonymous_id)
        found = await experiments.find(key)
        if found is None:
            return None
        return ExperimentAssignment(
            key=found.key,
            variant=experiments.served_variant(found, identity),
            screen=ExperimentScreen(found.screen),
        )

    @strawberry.field(description="Operators: experiments, newest first.")
    async def experiments(
        self,
        info: Info,
        status: ExperimentStatus | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Experiment]:
        info.context.require_operator()
        n = page_size(first)
        cursor = decode_cursor(after, 1)
        wanted = status.value if status is not None else None
        rows = await experiments.page(wanted, n, int(cursor[0]) if cursor is not None else None)

        async def count() -> int:
            return await experiments.count(wanted)

        page = rows[:n]
        return connection(
            [Experiment.from_model(r) for r in page],
            [encode_cursor([r.id]) for r in page],
            has_next=len(rows) > n,
            count=count,
            has_previous=cursor is not None,
        )

    @strawberry.field(
        description="Operators: per-variant visitors, conversion and AOV against the control, with "
        "p-values; `range` limits exposures and orders to those shop days. Null for an unknown key."
    )
    async def experiment_results(
        self, info: Info, key: str, range: ExperimentRangeInput | None = None
    ) -> ExperimentResults | None:
        info.context.require_operator()
        found = await experiments.find(key)
        if found is None:
            return None
        try:
            results = await experiment_results.results(
                found, (range.from_, range.to) if range is not None else None
            )
        except BusinessError as exc:  # a range that ends before it starts
            raise PublicError(f"range: {exc.message}") from exc
        return ExperimentResults.from_results(results)


@strawberry.type
class ExperimentMutation:
    @strawberry.mutation(description="Operators: define an experiment (a DRAFT until started).")
    async def create_experiment(self, info: Info, input: ExperimentInput) -> ExperimentPayload:
        operator = info.context.require_operator()
        try:
            row = await experiments.create(_definition(input), operator)
        except BusinessError as exc:
            return ExperimentPayload(experiment=None, user_errors=_errors(exc))
        return ExperimentPayload(experiment=Experiment.from_model(row), user_errors=[])

    @strawberry.mutation(
        description="Operators: replace a DRAFT's name, screen and variants (INVALID_STATE once started)."
    )
    async def update_experiment(self, info: Info, input: ExperimentInput) -> ExperimentPayload:
        info.context.require_operator()
        try:
            row = await experiments.update_draft(_definition(input))
        except BusinessError as exc:
            return ExperimentPayload(experiment=None, user_errors=_errors(exc))
        return ExperimentPayload(experiment=Experiment.from_model(row), user_errors=[])

    @strawberry.mutation(description="Operators: start a DRAFT; its variants are frozen from now on.")
    async def start_experiment(self, info: Info, key: str) -> ExperimentPayload:
        info.context.require_operator()
        try:
            row = await experiments.start(key)
        except BusinessError as exc:
            return ExperimentPayload(experiment=None, user_errors=_errors(exc))
        return ExperimentPayload(experiment=Experiment.from_model(row), user_errors=[])

    @strawberry.mutation(description="Operators: stop a RUNNING experiment; everyone sees the control again.")
    async def stop_experiment(self, info: Info, key: str) -> ExperimentPayload:
        info.context.require_operator()
        try:
            row = await experiments.stop(key)
        except BusinessError as exc:
            return ExperimentPayload(experiment=None, user_errors=_errors(exc))
        return ExperimentPayload(experiment=Experiment.from_model(row), user_errors=[])
