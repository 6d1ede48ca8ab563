"""Lottery over real HTTP: an operator's pool, members drawing to the daily limit, the audit and the stock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bff.auth import Principal, Role, issue_token
from bff.ids import decode_id, encode_id
from bff.models.marketing import CouponTemplate, LotteryDraw, LotteryPrize, MemberCoupon
from bff.models.member import Member, PointsLedger
from bff.services import lottery, points
from bff.services.shop_time import shop_day
from tests.journey.conftest import Shop

COST = 100
DAILY = 2
PRIZE_POINTS = 30
COUPON_ROLL, POINTS_ROLL, SOLD_OUT_ROLL, NOTHING_ROLL = 123_456, 450_000, 700_000, 950_000


class ScriptedRolls:
    """Stands in for the lottery's system random: hands out the rolls a test lines up, in order."""

    def __init__(self) -> None:
        self.rolls: list[int] = []

    def randrange(self, stop: int) -> int:
        assert stop == lottery.ROLL_SPACE and self.rolls, "a draw rolled that the test did not line up"
        return self.rolls.pop(0)


@pytest.fixture
def rolls(monkeypatch: pytest.MonkeyPatch) -> ScriptedRolls:
    """The BFF runs in this process: its draws roll what the test lines up (the server is unchanged)."""
    scripted = ScriptedRolls()
    monkeypatch.setattr(lottery, "_SYSTEM_RANDOM", scripted)
    return scripted


def operator(shop: Shop) -> str:
    secret = shop.services.settings.jwt_secret
    return issue_token(Principal(role=Role.OPERATOR, name="ops"), secret, 3600).token


async def make_pool(shop: Shop) -> tuple[str, dict[str, str], CouponTemplate]:
    """A running pool, made by an operator: a coupon, 1 × points and a physical prize with no stock left."""
    ops = operator(shop)
    now = datetime.now(UTC)
    saved = (
        await shop.op(
            "SaveLotteryPool",
            {
                "input": {
                    "name": f"旅程抽奖 {uuid.uuid4().hex[:6]}",
                    "pointsCost": COST,
                    "dailyDraws": DAILY,
                    "startsAt": (now - timedelta(minutes=5)).isoformat(),
                    "endsAt": (now + timedelta(days=1)).isoformat(),
                }
            },
            ops,
        )
    )["saveLotteryPool"]
    assert saved["userErrors"] == [], saved
    pool_id: str = saved["pool"]["id"]
    template = await CouponTemplate.create(
        name=f"抽奖券 {uuid.uuid4().hex[:6]}",
        kind="FIXED",
        amount_fen=500,
        claimable=False,
        purpose="LOTTERY",
        valid_days=7,
    )
    # Ranges (by id): coupon [0, 300k), points [300k, 600k), sold-out cup [600k, 900k), nothing after.
    specs = {
        "coupon": {"kind": "COUPON", "name": "5 元券", "probabilityPpm": 300_000, "stock": -1,
                   "couponTemplateId": encode_id("CouponTemplate", template.id)},
        "points": {"kind": "POINTS", "name": "30 积分", "probabilityPpm": 300_000, "stock": 1,
                   "points": PRIZE_POINTS},
        "sold_out": {"kind": "PHYSICAL", "name": "保温杯", "probabilityPpm": 300_000, "stock": 0},
    }  # fmt: skip
    prizes: dict[str, str] = {}
    for key, spec in specs.items():
        made = (await shop.op("SaveLotteryPrize", {"input": {"poolId": pool_id, **spec}}, ops))[
            "saveLotteryPrize"
        ]
        assert made["userErrors"] == [], made
        prizes[key] = made["prize"]["id"]
    return pool_id, prizes, template


async def member_with_points(shop: Shop, amount: int) -> tuple[str, int]:
    token: str = (await shop.op("Login", {"code": f"sim_lt{uuid.uuid4().hex[:10]}"}))["login"]["token"]
    viewer = (await shop.op("MemberCenter", {}, token))["viewer"]
    member_id = decode_id(viewer["id"], "Member")
    assert member_id is not None
    await points.change_points(member_id, amount, "旅程测试发放")
    return token, member_id


async def draw(shop: Shop, pool_id: str, token: str) -> dict[str, Any]:
    result: dict[str, Any] = (await shop.op("DrawLottery", {"poolId": pool_id}, token))["drawLottery"]
    return result


async def test_a_member_draws_to_the_daily_limit_and_wins_what_the_rolls_say(
    shop: Shop, rolls: ScriptedRolls
) -> None:
    pool_id, prizes, template = await make_pool(shop)
    pool_pk = decode_id(pool_id, "LotteryPool")
    token, member_id = await member_with_points(shop, 500)

    rolls.rolls = [COUPON_ROLL, POINTS_ROLL]
    first = await draw(shop, pool_id, token)
    assert first["userErrors"] == [], first
    assert (first["draw"]["roll"], first["draw"]["won"], first["draw"]["prize"]["id"]) == (
        COUPON_ROLL, True, prizes["coupon"]
    )  # fmt: skip
    assert first["draw"]["prize"]["kind"] == "COUPON"
    assert (first["draw"]["pointsSpent"], first["pointsBalance"]) == (COST, 500 - COST)
    second = await draw(shop, pool_id, token)
    assert second["userErrors"] == [], second
    assert (second["draw"]["roll"], second["draw"]["won"], second["draw"]["prize"]["id"]) == (
        POINTS_ROLL, True, prizes["points"]
    )  # fmt: skip
    assert second["draw"]["prize"]["points"] == PRIZE_POINTS
    assert second["pointsBalance"] == 500 - 2 * COST + PRIZE_POINTS

    rolls.rolls = [COUPON_ROLL]  # would win, but the day's draws are used up
    third = await draw(shop, pool_id, token)
    assert third["draw"] is None and third["pointsBalance"] is None
    (error,) = third["userErrors"]
    assert error["code"] == "LIMIT_REACHED" and f"每天 {DAILY} 次" in error["message"], error

    # The audit: one row per accepted draw, with its roll, prize and the points it spent.
    rows = await LotteryDraw.filter(pool_id=pool_pk, member_id=member_id).order_by("id")
    assert [(r.roll, r.prize_id, r.points_spent) for r in rows] == [
        (COUPON_ROLL, decode_id(prizes["coupon"], "LotteryPrize"), COST),
        (POINTS_ROLL, decode_id(prizes["points"], "LotteryPrize"), COST),
    ]
    assert all(r.day == shop_day(r.created_at) for r in rows)
    mine = (await shop.op("LotteryPool", {"id": pool_id}, token))["lotteryPool"]["myDraws"]
    assert [d["id"] for d in mine] == [second["draw"]["id"], first["draw"]["id"]]  # newest first

    # Points: cost × draws spent (the refused draw spent nothing), the points prize credited.
    spent = await PointsLedger.filter(member_id=member_id, delta__lt=0)
    assert sum(row.delta for row in spent) == -COST * len(rows)
    viewer = (await shop.op("MemberCenter", {}, token))["viewer"]
    assert viewer["pointsBalance"] == 500 - COST * len(rows) + PRIZE_POINTS
    assert (await Member.get(id=member_id)).points_balance == viewer["pointsBalance"]

    # The coupon prize is in the wallet, once.
    assert [c["name"] for c in viewer["coupons"]].count(template.name) == 1
    assert (
        await MemberCoupon.filter(member_id=member_id, template_id=template.id, source="LOTTERY").count() == 1
    )

    page = (await shop.op("LotteryPool", {"id": pool_id}, token))["lotteryPool"]
    assert page["drawsLeftToday"] == 0
    assert {p["id"]: p["stockLeft"] for p in page["prizes"]} == {
        prizes["coupon"]: None, prizes["points"]: 0, prizes["sold_out"]: 0
    }  # fmt: skip


async def test_a_prize_with_no_stock_is_never_won(shop: Shop, rolls: ScriptedRolls) -> None:
    pool_id, prizes, _ = await make_pool(shop)
    pool_pk = decode_id(pool_id, "LotteryPool")
    first_token, _ = await member_with_points(shop, 500)
    rolls.rolls = [POINTS_ROLL]
    assert (await draw(shop, pool_id, first_token))["draw"]["prize"]["id"] == prizes["points"]  # its only one

    token, member_id = await member_with_points(shop, 2 * COST)
    rolls.rolls = [POINTS_ROLL, SOLD_OUT_ROLL]  # both land in the range of a prize with no stock
    results = [await draw(shop, pool_id, token) for _ in range(DAILY)]
    for result, roll in zip(results, [POINTS_ROLL, SOLD_OUT_ROLL], strict=True):
        assert result["userErrors"] == [], result
        assert (result["draw"]["roll"], result["draw"]["won"], result["draw"]["prize"]) == (roll, False, None)
        assert result["draw"]["pointsSpent"] == COST  # the draw happened and was paid for; it won nothing
    assert results[-1]["pointsBalance"] == 0

    rows = await LotteryDraw.filter(pool_id=pool_pk, member_id=member_id)
    assert len(rows) == DAILY and all(r.prize_id is None for r in rows)
    for key in ("points", "sold_out"):
        prize_pk = decode_id(prizes[key], "LotteryPrize")
        assert (await LotteryPrize.get(id=prize_pk)).stock == 0
    sold_out_pk = decode_id(prizes["sold_out"], "LotteryPrize")
    assert not await LotteryDraw.exists(pool_id=pool_pk, prize_id=sold_out_pk)
    assert (
        await LotteryDraw.filter(
            pool_id=pool_pk, prize_id=decode_id(prizes["points"], "LotteryPrize")
        ).count()
        == 1
    )
    assert (await Member.get(id=member_id)).points_balance == 0

    # The operators' audit lists every draw of the pool with its roll.
    audit = (await shop.op("LotteryDraws", {"poolId": pool_id}, operator(shop)))["lotteryDraws"]
    assert audit["totalCount"] == 3
    assert sorted(e["node"]["roll"] for e in audit["edges"]) == sorted(
        [POINTS_ROLL, POINTS_ROLL, SOLD_OUT_ROLL]
    )
    assert {e["node"]["pointsSpent"] for e in audit["edges"]} == {COST}

    rolls.rolls = [NOTHING_ROLL]
    poor, _ = await member_with_points(shop, COST - 1)
    refused = await draw(shop, pool_id, poor)
    assert refused["draw"] is None and refused["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
