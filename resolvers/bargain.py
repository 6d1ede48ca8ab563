"""Bargain entry points: start a session, a friend's help, the session's page and its live progress.

Buying goes through placeOrder with campaign { bargainSessionId }.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from bff.context import Info
from bff.errors import PublicError
from bff.graphql_ws import progress_views
from bff.ids import decode_id
from bff.services import bargain
from bff.services.errors import BusinessError
from schema.bargain import BargainSession, BargainSessionPayload, HelpBargainPayload
from schema.common import money, user_errors


async def _session(session_id: int, viewer_id: int | None) -> BargainSession | None:
    view = await bargain.session_view(session_id)
    return BargainSession.from_view(view, viewer_id) if view is not None else None


@strawberry.type
class BargainQuery:
    @strawberry.field(description="A bargain session (its share page); null when there is no such session.")
    async def bargain_session(self, info: Info, id: strawberry.ID) -> BargainSession | None:
        pk = decode_id(str(id), "BargainSession")
        return await _session(pk, info.context.member_id) if pk is not None else None


@strawberry.type
class BargainMutation:
    @strawberry.mutation(description="Start bargaining (or get back the session already running) to share.")
    async def start_bargain(self, info: Info, campaign_id: strawberry.ID) -> BargainSessionPayload:
        try:
            member_id = info.context.acting_member()
            pk = decode_id(str(campaign_id), "BargainCampaign")
            if pk is None:
                raise BusinessError("NOT_FOUND", "砍价活动不存在", "campaignId")
            session = await bargain.start(member_id, pk)
        except BusinessError as exc:
            return BargainSessionPayload(session=None, user_errors=user_errors(exc))
        return BargainSessionPayload(session=await _session(session.id, member_id), user_errors=[])

    @strawberry.mutation(description="A friend cuts the price once (not the owner).")
    async def help_bargain(self, info: Info, session_id: strawberry.ID) -> HelpBargainPayload:
        try:
            member_id = info.context.acting_member()
            pk = decode_id(str(session_id), "BargainSession")
            if pk is None:
                raise BusinessError("NOT_FOUND", "砍价不存在", "sessionId")
            helped = await bargain.help_cut(member_id, pk)
        except BusinessError as exc:
            return HelpBargainPayload(session=None, cut=None, user_errors=user_errors(exc))
        await bargain.publish_progress(info.context.settings, pk)
        return HelpBargainPayload(
            session=await _session(pk, member_id), cut=money(helped.cut_fen), user_errors=[]
        )


@strawberry.type
class BargainSubscription:
    @strawberry.subscription(
        description="The session now, then again whenever it changes; ends once it is bought or expired."
    )
    async def bargain_progress(
        self, info: Info, session_id: strawberry.ID
    ) -> AsyncGenerator[BargainSession, None]:
        pk = decode_id(str(session_id), "BargainSession")
        if pk is None:
            raise PublicError("no such bargain session", "NOT_FOUND")
        views = progress_views(
            info.context,
            bargain.session_topic(pk),
            lambda: bargain.session_view(pk),
            "no such bargain session",
        )
        async for view in views:
            yield BargainSession.from_view(view, info.context.member_id)
