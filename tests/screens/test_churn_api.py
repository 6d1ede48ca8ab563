"""The operators' churn warnings over HTTP: the at-risk list (order, fields, paging, SQL count), one
member's score, and who may see them.

Rows are inserted directly with lifetime values far above anything else, so they head the list.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from starlette.applications import Starlette

from bff.auth import Principal, Role, issue_token
from bff.ids import encode_id
from bff.models.churn import CareFlow, MemberScore
from bff.models.member import Member, MemberLevel
from tests.support.api import Api
from tests.support.sql_counter import count_sql

TOP = 2_000_000_000  # fen (Money is a 32-bit Int): above any other member's lifetime value
SCORED_ON = date(2031, 6, 1)


@pytest.fixture
def operator(app: Starlette) -> str:
    secret = app.state.services.settings.jwt_secret
    return issue_token(Principal(role=Role.OPERATOR, name="ops-churn"), secret, 3600).token


async def at_risk_members(count: int, top: int) -> list[Member]:
    """`count` fresh at-risk members worth top, top-1, …; each with one care flow."""
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    members = []
    for i in range(count):
        member = await Member.create(
            openid=f"churn_api_{uuid.uuid4().hex[:12]}", nickname=f"老客{i}", level_id=level.id
        )
        await MemberScore.create(
            member_id=member.id,
            scored_on=SCORED_ON,
            recency_days=60 + i,
            frequency=8,
            monetary_fen=top - i,
            r_score=1,
            f_score=4,
            m_score=5,
            segment="at_risk",
            high_value=True,
            at_risk=True,
            reasons=[f"NO_PURCHASE_IN_{60 + i}_DAYS (usual gap 20 days)"],
            recent_activity=0,
            prior_activity=5,
        )
        await CareFlow.create(
            member_id=member.id, started_on=SCORED_ON, reasons=["r"], crm_task_id=f"task_api_{i}"
        )
        members.append(member)
    return members


async def first_page(api: Api, operator: str, first: int, after: str | None = None) -> dict[str, Any]:
    data = await api.op("AtRiskMembers", {"first": first, "after": after}, token=operator)
    page: dict[str, Any] = data["atRiskMembers"]
    return page


async def test_operators_list_at_risk_members_by_value_with_their_care_flows(api: Api, operator: str) -> None:
    members = await at_risk_members(3, TOP - 100)
    page = await first_page(api, operator, 2)
    nodes = [e["node"] for e in page["edges"]]
    assert [n["memberId"] for n in nodes] == [encode_id("Member", m.id) for m in members[:2]]
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    first = nodes[0]
    assert first == {
        "memberId": encode_id("Member", members[0].id),
        "nickname": "老客0",
        "levelName": level.name,
        "recencyDays": 60,
        "frequency": 8,
        "monetary": {"amount": TOP - 100, "formatted": first["monetary"]["formatted"]},
        "rScore": 1,
        "fScore": 4,
        "mScore": 5,
        "segment": "at_risk",
        "reasons": ["NO_PURCHASE_IN_60_DAYS (usual gap 20 days)"],
        "recentActivity": 0,
        "priorActivity": 5,
        "scoredOn": "2031-06-01",
        "careFlows": [
            {
                "id": first["careFlows"][0]["id"],
                "startedOn": "2031-06-01",
                "reasons": ["r"],
                "crmTaskId": "task_api_0",
                "couponId": None,
                "messageStatus": "PENDING",
            }
        ],
    }
    assert page["pageInfo"]["hasNextPage"] and page["totalCount"] >= 3
    rest = await first_page(api, operator, 1, page["pageInfo"]["endCursor"])
    assert rest["edges"][0]["node"]["memberId"] == encode_id("Member", members[2].id)


async def test_the_list_costs_the_same_queries_for_two_rows_or_ten(api: Api, operator: str) -> None:
    await at_risk_members(10, TOP)
    await first_page(api, operator, 10)  # warm the level cache
    with count_sql() as two:
        small = await first_page(api, operator, 2)
    with count_sql() as ten:
        large = await first_page(api, operator, 10)
    assert len(small["edges"]) == 2 and len(large["edges"]) == 10
    assert all(e["node"]["careFlows"] for e in large["edges"])
    assert ten.count == two.count, ten.statements


async def test_one_members_score(api: Api, operator: str) -> None:
    (member,) = await at_risk_members(1, TOP // 2)
    data = await api.op("ChurnMemberScore", {"memberId": encode_id("Member", member.id)}, token=operator)
    score = data["memberScore"]
    assert (score["highValue"], score["atRisk"], score["segment"]) == (True, True, "at_risk")
    assert score["careFlows"][0]["crmTaskId"] == "task_api_0"
    unknown = await api.op(
        "ChurnMemberScore", {"memberId": encode_id("Member", 2_000_000_000)}, token=operator
    )
    assert unknown["memberScore"] is None


@pytest.mark.parametrize("operation", ["AtRiskMembers", "RunChurnScoring"])
async def test_members_and_anonymous_callers_are_refused(api: Api, shopper: str, operation: str) -> None:
    as_member = await api.raw(operation, {}, token=shopper)
    assert as_member["data"] is None and as_member["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await api.raw(operation, {})
    assert anonymous["data"] is None and anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
