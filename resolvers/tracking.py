"""Behaviour tracking entry point: the mini-program's batched event reports."""

from __future__ import annotations

import strawberry

from bff.auth import Role
from bff.context import Info
from bff.services import tracking
from bff.services.errors import BusinessError
from schema.common import ErrorCode, UserError, user_error, user_errors
from schema.tracking import RejectedEvent, TrackEventInput, TrackEventsPayload


def _event(data: TrackEventInput) -> tracking.EventIn:
    return tracking.EventIn(
        client_event_id=data.client_event_id,
        anonymous_id=data.anonymous_id,
        session_id=data.session_id,
        type=data.type,
        client_time=data.client_time,
        page=data.page,
        product_id=str(data.product_id) if data.product_id is not None else None,
        keyword=data.keyword,
        result_count=data.result_count,
        experiment_key=data.experiment_key,
        variant=data.variant,
        properties=data.properties,
    )


def _refused(errors: list[UserError]) -> TrackEventsPayload:
    return TrackEventsPayload(accepted=0, duplicates=0, rejected=[], user_errors=errors)


@strawberry.type
class TrackingMutation:
    @strawberry.mutation(
        description="Report up to 100 behaviour events (anonymous or signed in: the member comes from "
        "the token only). Bad events are rejected one by one; the good ones are kept."
    )
    async def track_events(self, info: Info, events: list[TrackEventInput]) -> TrackEventsPayload:
        principal = info.context.principal
        if principal is not None and principal.role is Role.OPERATOR:
            # Operators previewing screens are not shoppers: their clicks would skew the shop's numbers.
            return _refused([user_error(ErrorCode.FORBIDDEN, "运营账号的行为不计入埋点")])
        try:
            result = await tracking.ingest([_event(e) for e in events], info.context.member_id)
        except BusinessError as exc:
            return _refused(user_errors(exc))
        return TrackEventsPayload(
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=[RejectedEvent.from_rejection(r) for r in result.rejected],
            user_errors=[],
        )
