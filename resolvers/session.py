"""Session entry points: sign out on every device."""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.services.errors import BusinessError
from bff.sessions import revoke_sessions
from schema.common import user_errors
from schema.session import SignOutPayload


@strawberry.type
class SessionMutation:
    @strawberry.mutation(
        description="Sign out everywhere: every token of the member, this one included, stops working."
    )
    async def sign_out_everywhere(self, info: Info) -> SignOutPayload:
        try:
            member_id = info.context.acting_member()
            if await revoke_sessions(member_id, info.context.services.cache) is None:
                raise BusinessError("NOT_FOUND", "账号不存在")
        except BusinessError as exc:
            return SignOutPayload(signed_out=False, user_errors=user_errors(exc))
        return SignOutPayload(signed_out=True, user_errors=[])
