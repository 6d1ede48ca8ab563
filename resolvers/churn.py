"""Operator entry points for churn warnings: the at-risk list, one member's score, scoring on demand.

Every field needs an operator token: anonymous callers get UNAUTHENTICATED, members FORBIDDEN.
"""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.ids import decode_id
from bff.pagination import decode_cursor, encode_cursor, page_size
from bff.services import churn
from schema.churn import ChurnScoringPayload, MemberScore
from schema.common import Connection, connection


def _after(cursor: str | None) -> tuple[int, int] | None:
    values = decode_cursor(cursor, 2)
    return (int(values[0]), int(values[1])) if values is not None else None


@strawberry.type
class ChurnQuery:
    @strawberry.field(
        description="Operators: high-value members drifting away, by lifetime value (highest first)."
    )
    async def at_risk_members(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[MemberScore]:
        info.context.require_operator()
        cursor = _after(after)
        rows, has_next = await churn.at_risk_page(page_size(first), cursor)
        return connection(
            [MemberScore.from_model(r) for r in rows],
            [encode_cursor([r.monetary_fen, r.member_id]) for r in rows],
            has_next=has_next,
            count=churn.at_risk_count,
            has_previous=cursor is not None,
        )

    @strawberry.field(description="Operators: a member's latest score; null when never scored.")
    async def member_score(self, info: Info, member_id: strawberry.ID) -> MemberScore | None:
        info.context.require_operator()
        pk = decode_id(str(member_id), "Member")
        row = await churn.score_of(pk) if pk is not None else None
        return MemberScore.from_model(row) if row is not None else None


@strawberry.type
class ChurnMutation:
    @strawberry.mutation(
        description="Operators: score every member now and start due care flows (idempotent within a day)."
    )
    async def run_churn_scoring(self, info: Info) -> ChurnScoringPayload:
        info.context.require_operator()
        return ChurnScoringPayload.from_summary(await churn.run_scoring())
