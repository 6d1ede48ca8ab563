"""Lottery types: a prize pool with its published odds, the viewer's draws, and a draw's result."""

from __future__ import annotations

import enum
from datetime import date, datetime

import strawberry

from bff.ids import encode_id
from bff.models.marketing import LotteryDraw as LotteryDrawModel
from bff.models.marketing import LotteryPool as LotteryPoolModel
from bff.models.marketing import LotteryPrize as LotteryPrizeModel
from bff.services import lottery
from schema.common import UserError


@strawberry.enum
class LotteryPrizeKind(enum.Enum):
    COUPON = "COUPON"
    POINTS = "POINTS"
    PHYSICAL = "PHYSICAL"
    NOTHING = "NOTHING"


@strawberry.type
class LotteryPrize:
    id: strawberry.ID
    name: str
    kind: LotteryPrizeKind
    probability_ppm: int = strawberry.field(description="Chance per draw in parts per million (公示概率).")
    points: int = strawberry.field(description="Points a POINTS prize gives; 0 otherwise.")
    stock_left: int | None = strawberry.field(description="Null when unlimited.")

    @classmethod
    def from_model(cls, prize: LotteryPrizeModel) -> LotteryPrize:
        return cls(
            id=strawberry.ID(encode_id("LotteryPrize", prize.id)),
            name=prize.name,
            kind=LotteryPrizeKind(prize.kind),
            probability_ppm=prize.weight,
            points=prize.points,
            stock_left=None if prize.stock < 0 else prize.stock,
        )


@strawberry.type(description="One draw, as recorded: the roll (0-999999) and what it won.")
class LotteryDraw:
    id: strawberry.ID
    roll: int
    won: bool
    prize: LotteryPrize | None
    points_spent: int
    created_at: datetime

    @classmethod
    def from_model(cls, draw: LotteryDrawModel, prize: LotteryPrizeModel | None) -> LotteryDraw:
        return cls(
            id=strawberry.ID(encode_id("LotteryDraw", draw.id)),
            roll=draw.roll,
            won=lottery.won(prize),
            prize=LotteryPrize.from_model(prize) if prize is not None else None,
            points_spent=draw.points_spent,
            created_at=draw.created_at,
        )


@strawberry.type(description="A draw as operators audit it: who, the roll, the prize.")
class LotteryDrawRecord:
    id: strawberry.ID
    member_id: strawberry.ID
    day: date
    roll: int
    prize: LotteryPrize | None
    points_spent: int
    created_at: datetime

    @classmethod
    def from_model(cls, draw: LotteryDrawModel, prize: LotteryPrizeModel | None) -> LotteryDrawRecord:
        return cls(
            id=strawberry.ID(encode_id("LotteryDraw", draw.id)),
            member_id=strawberry.ID(encode_id("Member", draw.member_id)),
            day=draw.day,
            roll=draw.roll,
            prize=LotteryPrize.from_model(prize) if prize is not None else None,
            points_spent=draw.points_spent,
            created_at=draw.created_at,
        )


@strawberry.type
class LotteryPool:
    id: strawberry.ID
    name: str
    points_cost: int
    daily_draws: int
    starts_at: datetime
    ends_at: datetime
    prizes: list[LotteryPrize]
    draws_left_today: int | None = strawberry.field(
        description="Draws the viewer has left today (shop day); null for anonymous visitors."
    )
    my_draws: list[LotteryDraw] = strawberry.field(
        description="The viewer's latest draws here, newest first."
    )

    @classmethod
    def from_models(
        cls,
        pool: LotteryPoolModel,
        prizes: list[LotteryPrizeModel],
        draws_today: int | None = None,
        my_draws: list[LotteryDrawModel] | None = None,
    ) -> LotteryPool:
        by_id = {p.id: p for p in prizes}
        return cls(
            id=strawberry.ID(encode_id("LotteryPool", pool.id)),
            name=pool.name,
            points_cost=pool.points_cost,
            daily_draws=pool.daily_draws,
            starts_at=pool.starts_at,
            ends_at=pool.ends_at,
            prizes=[LotteryPrize.from_model(p) for p in prizes],
            draws_left_today=None if draws_today is None else max(0, pool.daily_draws - draws_today),
            my_draws=[
                LotteryDraw.from_model(d, by_id.get(d.prize_id) if d.prize_id is not None else None)
                for d in my_draws or []
            ],
        )


@strawberry.type
class DrawLotteryPayload:
    draw: LotteryDraw | None
    points_balance: int | None
    user_errors: list[UserError]
