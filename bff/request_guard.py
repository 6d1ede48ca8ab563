"""Refuses, before anything runs, documents over the cost budget and callers over their rate limits.

Every caller spends query cost (bff/query_cost.py) from a sliding one-minute budget: a member from
theirs, an anonymous caller from their IP's. Mutations that attract abuse (sign-in, coupon claims,
lottery draws, orders — which is where flash sales are bought) also count against a small per-caller
allowance of their own. Operators are not limited here (their tokens are issued by hand).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension

from bff.auth import Role
from bff.context import Context
from bff.query_cost import CostError, document_cost

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-minute allowances: query cost per member and per anonymous IP, and calls of sensitive mutations."""

    member_cost: int = 60_000
    ip_cost: int = 120_000
    # A mutation field → how many calls one caller may make per minute.
    sensitive: tuple[tuple[str, int], ...] = (
        ("login", 20),
        ("claimCoupon", 20),
        ("drawLottery", 10),
        ("placeOrder", 30),
        ("helpBargain", 20),
        ("acceptInvite", 10),
    )


def _refusal(message: str, code: str, **extra: object) -> GraphQLExecutionResult:
    return GraphQLExecutionResult(
        data=None, errors=[GraphQLError(message, extensions={"code": code, **extra})]
    )


def _identity(context: Context) -> str | None:
    principal = context.principal
    if principal is not None and principal.role is Role.OPERATOR:
        return None
    if principal is not None and principal.member_id is not None:
        return f"m:{principal.member_id}"
    return f"ip:{context.client_ip or 'unknown'}"


class WorstCases:
    """The most each document (by its text and operation) can cost, computed once per document."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._costs: dict[tuple[str, str | None], int | None] = {}

    def get(
        self, schema: GraphQLSchema, text: str, document: DocumentNode, operation: str | None
    ) -> int | None:
        """The worst-case cost, or None when the document cannot be costed (execution reports why)."""
        key = (text, operation)
        if key not in self._costs:
            if len(self._costs) >= self.maxsize:
                self._costs.clear()  # a flood of distinct documents: start over rather than grow
            try:
                self._costs[key] = document_cost(schema, document, operation, worst_case=True)
            except CostError:
                self._costs[key] = None
        return self._costs[key]


class RequestGuard(SchemaExtension):
    """Cost budget and rate limits, checked after validation and before execution.

    The shipped screens can never exceed the budget; without rate limits to charge, such a document
    is not costed per request at all (its worst case is computed once, in `worst_cases`).
    """

    def __init__(self, *, max_cost: int, limits: Limits | None, worst_cases: WorstCases) -> None:
        self.max_cost = max_cost
        self.limits = limits
        self.worst_cases = worst_cases

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        document = ctx.graphql_document
        if document is not None and ctx.result is None:
            ctx.result = await self._check(ctx.context, document, ctx.operation_name, ctx.variables or {})
        yield

    async def _check(
        self,
        context: Context,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, object],
    ) -> GraphQLExecutionResult | None:
        schema = self.execution_context.schema._schema
        text = self.execution_context.query
        if self.limits is None and text is not None:
            worst = self.worst_cases.get(schema, text, document, operation_name)
            if worst is not None and worst <= self.max_cost:
                return None
        try:
            cost = document_cost(schema, document, operation_name, variables)
        except CostError:
            return None  # execution reports the ambiguous or unknown operation
        if cost > self.max_cost:
            return _refusal(
                f"this query costs {cost}, over the budget of {self.max_cost}: ask for smaller pages",
                "QUERY_TOO_COSTLY",
                cost=cost,
                budget=self.max_cost,
            )
        identity = _identity(context)
        if self.limits is None or identity is None:
            return None
        limiter = context.services.rate_limiter
        budget = self.limits.member_cost if identity.startswith("m:") else self.limits.ip_cost
        charges = [(f"cost:{identity}", cost, budget)]
        allowances = dict(self.limits.sensitive)
        for field in _mutation_fields(document, operation_name):
            if field in allowances:
                charges.append((f"{field}:{identity}", 1, allowances[field]))
        for key, amount, limit in charges:
            decision = await limiter.hit(key, amount, limit, WINDOW_SECONDS)
            if not decision.allowed:
                context.retry_after = decision.retry_after
                return _refusal(
                    "too many requests: slow down and try again shortly",
                    "RATE_LIMITED",
                    retryAfter=round(decision.retry_after, 1),
                )
        return None


def _mutation_fields(document: DocumentNode, operation_name: str | None) -> list[str]:
    """The root fields of the operation if it is a mutation (none for queries and subscriptions)."""
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        name = definition.name.value if definition.name else None
        if operation_name is not None and name != operation_name:
            continue
        if definition.operation is not OperationType.MUTATION:
            return []
        return [s.name.value for s in definition.selection_set.selections if isinstance(s, FieldNode)]
    return []
