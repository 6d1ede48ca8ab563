"""Lottery entry points: a pool with its odds and the viewer's draws, and drawing."""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.ids import decode_id
from bff.services import lottery
from bff.services.errors import BusinessError
from schema.common import user_errors
from schema.lottery import DrawLotteryPayload, LotteryDraw, LotteryPool


@strawberry.type
class LotteryQuery:
    @strawberry.field(description="A lottery pool with its published odds; the viewer's draws if signed in.")
    async def lottery_pool(self, info: Info, id: strawberry.ID) -> LotteryPool | None:
        pk = decode_id(str(id), "LotteryPool")
        view = await lottery.pool_view(pk, info.context.member_id) if pk is not None else None
        if view is None:
            return None
        return LotteryPool.from_models(view.pool, view.prizes, view.draws_today, view.recent)


@strawberry.type
class LotteryMutation:
    @strawberry.mutation(
        description="Draw once: spends the pool's points cost and counts against today's draws."
    )
    async def draw_lottery(self, info: Info, pool_id: strawberry.ID) -> DrawLotteryPayload:
        try:
            member_id = info.context.acting_member()
            pk = decode_id(str(pool_id), "LotteryPool")
            if pk is None:
                raise BusinessError("NOT_FOUND", "抽奖活动不存在", "poolId")
            result = await lottery.draw(member_id, pk)
        except BusinessError as exc:
            return DrawLotteryPayload(draw=None, points_balance=None, user_errors=user_errors(exc))
        return DrawLotteryPayload(
            draw=LotteryDraw.from_model(result.draw, result.prize),
            points_balance=result.points_balance,
            user_errors=[],
        )
