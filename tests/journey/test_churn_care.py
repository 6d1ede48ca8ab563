"""Churn care end to end: a high-value member goes quiet, an operator runs scoring, the worker opens
the CRM task and sends the subscribe message once; reruns change nothing; a week later a new flow.

The member's order history is written directly (paid_at in the past); everything after that goes
through the BFF over HTTP, the outbox worker and the CRM / WeChat simulators.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bff.auth import Principal, Role, issue_token
from bff.ids import decode_id, encode_id
from bff.models.marketing import MemberCoupon
from bff.models.member import Member
from bff.models.order import COMPLETED, Order
from bff.services import churn
from bff.services.shop_time import shop_day
from bff.worker import Worker
from tests.journey.conftest import Shop

ORDER_FEN = 300_000_000  # ¥3M per order: far into the top 20% of lifetime value
DAY = 86_400
TOPICS = (churn.SCORE_TOPIC, churn.CARE_TASK_TOPIC, churn.CARE_MESSAGE_TOPIC)


@dataclass
class QuietMember:
    id: int
    openid: str
    ref: str


def operator(shop: Shop) -> str:
    secret = shop.services.settings.jwt_secret
    return issue_token(Principal(role=Role.OPERATOR, name="ops-churn"), secret, 3600).token


@pytest.fixture
async def quiet_member(shop: Shop) -> AsyncIterator[QuietMember]:
    """A member who bought every 20 days and stopped 62 days ago."""
    token = (await shop.op("Login", {"code": f"sim_churn{uuid.uuid4().hex[:10]}"}))["login"]["token"]
    member_id = decode_id((await shop.op("MemberCenter", {}, token))["viewer"]["id"], "Member")
    assert member_id is not None
    now = datetime.now(UTC)
    for k in range(6):
        await Order.create(
            order_no=f"CJ{uuid.uuid4().hex[:20]}",
            member_id=member_id,
            status=COMPLETED,
            payable_fen=ORDER_FEN,
            paid_at=now - timedelta(days=62 + 20 * k),
        )
    member = await Member.get(id=member_id)
    yield QuietMember(member_id, member.openid, f"m_{member_id}")


async def drain(shop: Shop, now: datetime | None = None) -> None:
    """Run the churn topics' due messages; only those, since `now` may be days ahead."""
    worker = Worker(shop.services, worker_id="journey-churn", topics=TOPICS)
    for _ in range(20):
        if not await worker.run_once(now=now):
            return


async def received(shop: Shop, member: QuietMember) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(CRM tasks, subscribe messages, care coupons) the member got so far."""
    tasks = [t for t in (await shop.sim_state(shop.crm_url))["tasks"] if t["member_ref"] == member.ref]
    messages = [
        m for m in (await shop.sim_state(shop.wechat_url))["messages"] if m["touser"] == member.openid
    ]
    coupons = await MemberCoupon.filter(member_id=member.id, source="CARE").count()
    return tasks, messages, coupons


async def test_a_quiet_high_value_member_is_cared_for_once_a_week(
    shop: Shop, quiet_member: QuietMember
) -> None:
    ops = operator(shop)
    run = (await shop.op("RunChurnScoring", {}, ops))["runChurnScoring"]
    assert run["userErrors"] == [] and run["flowsStarted"] >= 1 and run["careCouponConfigured"]
    await drain(shop)

    score = (await shop.op("ChurnMemberScore", {"memberId": encode_id("Member", quiet_member.id)}, ops))[
        "memberScore"
    ]
    assert (score["highValue"], score["atRisk"], score["recencyDays"], score["frequency"]) == (
        True,
        True,
        62,
        6,
    )
    assert score["reasons"] == ["NO_PURCHASE_IN_62_DAYS (usual gap 20 days)"]
    assert score["monetary"]["amount"] == 6 * ORDER_FEN
    (flow,) = score["careFlows"]
    tasks, messages, coupons = await received(shop, quiet_member)
    assert [t["task_id"] for t in tasks] == [flow["crmTaskId"]]
    assert tasks[0]["kind"] == "churn_risk" and tasks[0]["reason"] == score["reasons"][0]
    coupon = await MemberCoupon.get(id=decode_id(flow["couponId"], "MemberCoupon")).select_related("template")
    assert (coupon.member_id, coupon.template.purpose, coupon.status) == (quiet_member.id, "CARE", "UNUSED")
    assert tasks[0]["suggested_coupon_template"] == str(coupon.template_id)
    assert [(m["template_id"], m["page"]) for m in messages] == [
        (shop.services.settings.churn_message_template_id, "pages/member/coupons")
    ]
    assert (flow["messageStatus"], coupons) == ("SENT", 1)

    # The operator runs it again and the daily job runs too: nothing is started, granted or sent twice.
    again = (await shop.op("RunChurnScoring", {}, ops))["runChurnScoring"]
    assert again["atRisk"] >= 1
    await churn.enqueue_daily_scoring()
    await drain(shop, datetime.now(UTC) + timedelta(hours=3))  # the daily job is due from 02:00
    tasks, messages, coupons = await received(shop, quiet_member)
    assert (len(tasks), len(messages), coupons) == (1, 1, 1)
    listed = (await shop.op("AtRiskMembers", {"first": 100}, ops))["atRiskMembers"]
    mine = [e["node"] for e in listed["edges"] if e["node"]["memberId"] == score["memberId"]]
    assert len(mine) == 1 and len(mine[0]["careFlows"]) == 1

    # Eight days on, still quiet: a second flow (the CRM's 7-day dedupe has lapsed too).
    later = datetime.now(UTC) + timedelta(days=8)
    await shop.sims.post(f"{shop.crm_url}/_sim/config", json={"clock_offset": 8 * DAY})
    try:
        week = await churn.run_scoring(shop_day(later), now=later)
        assert week.flows_started >= 1
        await drain(shop, later)
    finally:
        await shop.sims.post(f"{shop.crm_url}/_sim/config", json={"clock_offset": 0})
    tasks, messages, coupons = await received(shop, quiet_member)
    assert (len(tasks), len(messages), coupons) == (2, 2, 2)
    flows = (await shop.op("ChurnMemberScore", {"memberId": score["memberId"]}, ops))["memberScore"][
        "careFlows"
    ]
    assert [f["startedOn"] for f in flows] == [shop_day(later).isoformat(), flow["startedOn"]]
    assert {f["crmTaskId"] for f in flows} == {t["task_id"] for t in tasks}
    assert [f["messageStatus"] for f in flows] == ["SENT", "SENT"]
