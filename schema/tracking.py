"""Behaviour tracking types: the events the mini-program reports and what became of each."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import cache
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.schema.name_converter import NameConverter
from strawberry.types.arguments import InputContext
from strawberry.types.base import get_object_definition

from bff.services.tracking import Rejection
from schema.common import UserError


@strawberry.input(
    description="One behaviour event. `type` and `clientTime` are plain strings so that one bad "
    "event is rejected alone instead of failing the whole batch."
)
class TrackEventInput:
    client_event_id: str = strawberry.field(description="Unique per device; a resent id is a duplicate.")
    anonymous_id: str = strawberry.field(description="The device's stable anonymous id.")
    session_id: str
    type: str = strawberry.field(
        description="page_view, product_exposure, product_click, search, add_to_cart, checkout_start, "
        "share or experiment_exposure."
    )
    client_time: str = strawberry.field(description="ISO 8601 with an offset, e.g. 2025-06-01T08:00:00Z.")
    page: str | None = strawberry.field(default=None, description="The page path; page_view needs it.")
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="Product events and add_to_cart need it."
    )
    keyword: str | None = strawberry.field(default=None, description="search needs it.")
    result_count: int | None = strawberry.field(default=None, description="search needs it (≥ 0).")
    experiment_key: str | None = strawberry.field(default=None, description="experiment_exposure needs it.")
    variant: str | None = strawberry.field(
        default=None, description="The variant the client showed; must be the server's assignment."
    )
    properties: JSON | None = strawberry.field(
        default=None,
        description="A flat object: at most 20 scalar values, 2 KB of JSON, no personal data.",
    )


@cache
def _field_names(converter: NameConverter) -> tuple[tuple[str, str], ...]:
    definition = get_object_definition(TrackEventInput, strict=True)
    return tuple((converter.from_field(f), f.python_name) for f in definition.fields)


def _event_from_input(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
    """Build the input straight from graphql-core's coerced value (every field is a scalar)."""
    return cls(
        **{
            python: value[name]
            for name, python in _field_names(context.config.name_converter)
            if name in value
        }
    )


# Strawberry converts input fields one at a time, resolving each field's type: for 100 events of 12
# fields that was the largest cost of a batch. Every field here is a scalar graphql-core has already
# coerced, so there is nothing left to convert.
get_object_definition(TrackEventInput, strict=True).from_input = _event_from_input


@strawberry.enum(description="Why one tracked event was not stored.")
class TrackRejectCode(enum.Enum):
    INVALID_TYPE = "INVALID_TYPE"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_TIME = "INVALID_TIME"
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    UNKNOWN_EXPERIMENT = "UNKNOWN_EXPERIMENT"
    VARIANT_MISMATCH = "VARIANT_MISMATCH"
    TOO_LARGE = "TOO_LARGE"
    PERSONAL_DATA = "PERSONAL_DATA"


@strawberry.type(description="An event of the batch that was not stored, and why.")
class RejectedEvent:
    index: int = strawberry.field(description="Its position in the `events` argument, from 0.")
    client_event_id: str
    code: TrackRejectCode
    message: str

    @classmethod
    def from_rejection(cls, rejection: Rejection) -> RejectedEvent:
        return cls(
            index=rejection.index,
            client_event_id=rejection.client_event_id,
            code=TrackRejectCode(rejection.code),
            message=rejection.message,
        )


@strawberry.type(description="What became of a batch: accepted + duplicates + rejected = the batch size.")
class TrackEventsPayload:
    accepted: int = strawberry.field(description="Events stored now.")
    duplicates: int = strawberry.field(description="Events already stored (a retry), not stored again.")
    rejected: list[RejectedEvent]
    user_errors: list[UserError] = strawberry.field(
        description="Set when the whole batch was refused (too large, operator token): nothing stored."
    )
