"""Session types: the payload of signing out on every device."""

from __future__ import annotations

import strawberry

from schema.common import UserError


@strawberry.type(description="Every token issued to the member so far is refused from now on (HTTP 401).")
class SignOutPayload:
    signed_out: bool
    user_errors: list[UserError]
