"""Loyalty screens over HTTP: coupon centre and claims, wallet, share invites, sign-in, reviews, operators.

Until schema/build.py merges LoyaltyQuery/LoyaltyMutation, the documents go to a /graphql endpoint
built on the merged schema and the app's own services; afterwards, to the app itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
from graphql import OperationDefinitionNode, parse
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

import bff.documents
from bff.auth import Principal, Role, issue_token, verify_token
from bff.cache import Cache
from bff.context import Services
from bff.documents import operations
from bff.graphql_http import GraphQLEndpoint
from bff.ids import encode_id
from bff.models.catalog import Product, Review
from bff.models.marketing import MemberCoupon
from bff.models.member import Member, PointsLedger
from bff.models.order import Order, OrderLine
from resolvers.loyalty import LoyaltyMutation, LoyaltyQuery
from schema.build import Mutation, Query, build_schema
from tests.support.api import Api
from tests.support.sql_counter import count_sql

EXTRA = Path(bff.documents.__file__).parent / "screens_extra" / "loyalty.graphql"


def loyalty_operations() -> dict[str, str]:
    """The loyalty document's text by operation name."""
    text = EXTRA.read_text(encoding="utf-8")
    return {
        d.name.value: text
        for d in parse(text).definitions
        if isinstance(d, OperationDefinitionNode) and d.name is not None
    }


def merged() -> bool:
    mutation = build_schema()._schema.mutation_type
    return mutation is not None and "claimCoupon" in mutation.fields


class LoyaltyApi(Api):
    """Api that also knows the loyalty operations."""

    def document(self, name: str) -> str:
        return {**operations(), **loyalty_operations()}[name]

    async def op(
        self, name: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Any:
        response = await self.post(self.document(name), variables, token=token, operation_name=name)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def raw(
        self, name: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Any:
        response = await self.post(self.document(name), variables, token=token, operation_name=name)
        return response.json()


@pytest.fixture(scope="module")
async def lapi(app: Starlette, client: httpx.AsyncClient) -> AsyncIterator[LoyaltyApi]:
    if merged():
        yield LoyaltyApi(client)
        return
    schema = strawberry.Schema(
        query=merge_types("Query", (Query, LoyaltyQuery)),
        mutation=merge_types("Mutation", (Mutation, LoyaltyMutation)),
        config=StrawberryConfig(auto_camel_case=True),
    )
    endpoint = GraphQLEndpoint(schema)
    endpoint.attach(app.state.services)
    asgi = Starlette(routes=[Route("/graphql", endpoint.handle, methods=["GET", "POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://bff.test") as http:
        yield LoyaltyApi(http)


@pytest.fixture
async def member(lapi: LoyaltyApi) -> str:
    """A brand-new member's token."""
    return await lapi.login(f"l{uuid.uuid4().hex[:12]}")


@pytest.fixture
def operator(services: Services) -> str:
    principal = Principal(role=Role.OPERATOR, name="ops-test")
    return issue_token(principal, services.settings.jwt_secret, 3600).token


def member_id(token: str, services: Services) -> int:
    principal = verify_token(token, services.settings.jwt_secret)
    assert principal.member_id is not None
    return principal.member_id


async def create_template(lapi: LoyaltyApi, operator: str, **values: Any) -> dict[str, Any]:
    data = {"name": f"测试券{uuid.uuid4().hex[:6]}", "kind": "FIXED", "amount": 500, "validDays": 7, **values}
    payload = (await lapi.op("CreateCouponTemplate", {"input": data}, token=operator))["createCouponTemplate"]
    assert payload["userErrors"] == [], payload
    template: dict[str, Any] = payload["couponTemplate"]
    return template


async def claim(lapi: LoyaltyApi, token: str | None, template_id: str) -> str:
    payload = (await lapi.op("ClaimCoupon", {"templateId": template_id}, token=token))["claimCoupon"]
    if payload["userErrors"]:
        return str(payload["userErrors"][0]["code"])
    assert payload["coupon"]["status"] == "UNUSED" and payload["offer"]["id"] == template_id
    return "OK"


async def centre(lapi: LoyaltyApi, token: str | None) -> dict[str, dict[str, Any]]:
    """Every coupon-centre entry by template id, page by page."""
    found: dict[str, dict[str, Any]] = {}
    after = None
    while True:
        page = (await lapi.op("CouponCenter", {"first": 100, "after": after}, token=token))["couponCenter"]
        found.update({e["node"]["id"]: e["node"] for e in page["edges"]})
        if not page["pageInfo"]["hasNextPage"]:
            assert page["totalCount"] == len(found)
            return found
        after = page["pageInfo"]["endCursor"]


async def test_claim_from_the_coupon_centre_into_the_wallet(
    lapi: LoyaltyApi, operator: str, member: str, services: Services
) -> None:
    template = await create_template(
        lapi, operator, kind="THRESHOLD", totalQuantity=3, perMemberLimit=2, minSpend=5000
    )
    entry = (await centre(lapi, None))[template["id"]]
    assert entry["state"] == "CLAIMABLE" and entry["remainingQuantity"] == 3
    assert entry["template"]["discountText"] == "满¥50减¥5" and entry["validityText"] == "领取后7天内有效"

    assert [await claim(lapi, member, template["id"]) for _ in range(3)] == ["OK", "OK", "LIMIT_REACHED"]
    mine = (await centre(lapi, member))[template["id"]]
    assert (mine["state"], mine["claimedByViewer"], mine["remainingQuantity"]) == ("LIMIT_REACHED", 2, 1)
    other = await lapi.login(f"l{uuid.uuid4().hex[:12]}")
    assert await claim(lapi, other, template["id"]) == "OK"
    assert await claim(lapi, await lapi.login(f"l{uuid.uuid4().hex[:12]}"), template["id"]) == "SOLD_OUT"
    assert await claim(lapi, None, template["id"]) == "UNAUTHENTICATED"
    assert await claim(lapi, member, encode_id("Product", 1)) == "NOT_FOUND"

    wallet = (await lapi.op("MyCoupons", {}, token=member))["viewer"]
    assert wallet["unusedCouponCount"] == 2 and len(wallet["coupons"]) == 2
    coupon = await MemberCoupon.filter(member_id=member_id(member, services)).order_by("id").first()
    assert coupon is not None
    await MemberCoupon.filter(id=coupon.id).update(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    expired = (await lapi.op("MyCoupons", {"status": "EXPIRED"}, token=member))["viewer"]["coupons"]
    assert [c["id"] for c in expired] == [encode_id("MemberCoupon", coupon.id)]
    assert len((await lapi.op("MyCoupons", {}, token=member))["viewer"]["coupons"]) == 1


async def test_a_product_page_coupon_is_claimed_with_its_id(
    lapi: LoyaltyApi, operator: str, member: str
) -> None:
    product = await Product.filter(on_shelf=True).order_by("id").first()
    assert product is not None
    product_id = encode_id("Product", product.id)
    template = await create_template(lapi, operator, scope="PRODUCT", scopeIds=[product_id])
    shown = (await lapi.op("ProductDetail", {"id": product_id}, token=member))["product"]["claimableCoupons"]
    assert template["id"] in [c["id"] for c in shown]
    assert await claim(lapi, member, template["id"]) == "OK"


async def test_fifty_simultaneous_claims_over_http(lapi: LoyaltyApi, operator: str) -> None:
    template = await create_template(lapi, operator, totalQuantity=12, perMemberLimit=2)
    tokens = [await lapi.login(f"l{uuid.uuid4().hex[:12]}") for _ in range(10)]
    outcomes = await asyncio.gather(*(claim(lapi, t, template["id"]) for t in tokens for _ in range(5)))
    assert outcomes.count("OK") == 12 and set(outcomes) <= {"OK", "SOLD_OUT", "LIMIT_REACHED"}
    listed = (await lapi.op("CouponTemplates", {"first": 5}, token=operator))["couponTemplates"]
    stored = next(e["node"] for e in listed["edges"] if e["node"]["id"] == template["id"])
    assert stored["claimedCount"] == 12


async def test_the_coupon_centre_costs_the_same_for_any_page_size(
    lapi: LoyaltyApi, cache: Cache, alice: str
) -> None:
    counts = set()
    for first in (5, 50):
        await cache.clear()
        with count_sql() as counter:
            await lapi.op("CouponCenter", {"first": first}, token=alice)
        counts.add(counter.count)
    # + the member's session version (read once the cache is cleared; bff/sessions.py).
    assert len(counts) == 1 and counts.pop() <= 4


async def test_share_invite_and_who_may_accept_it(lapi: LoyaltyApi, member: str, alice: str) -> None:
    invite = (await lapi.op("ShareInvite", {}, token=alice))["shareInvite"]
    assert invite["code"] in invite["sharePath"]

    async def accept(token: str, code: str) -> str:
        payload = (await lapi.op("AcceptInvite", {"code": code}, token=token))["acceptInvite"]
        return str(payload["userErrors"][0]["code"]) if payload["userErrors"] else "OK"

    assert await accept(alice, invite["code"]) == "INVALID_STATE"  # one's own code
    assert await accept(member, "nonsense") == "INVALID_CODE"
    accepted = (await lapi.op("AcceptInvite", {"code": invite["code"]}, token=member))["acceptInvite"]
    assert accepted["accepted"] is True and accepted["inviter"]["nickname"]
    bob = await lapi.login("bob")  # registered long ago, with paid orders
    assert await accept(bob, invite["code"]) == "INVALID_STATE"
    after = (await lapi.op("ShareInvite", {}, token=alice))["shareInvite"]
    assert after["invitedCount"] == invite["invitedCount"] + 1
    body = await lapi.raw("ShareInvite", {})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_sign_in_once_a_day_and_the_points_centre(lapi: LoyaltyApi, member: str) -> None:
    before = await lapi.op("PointsCenter", {}, token=member)
    assert before["signInStatus"]["signedToday"] is False and before["signInStatus"]["nextPoints"] == 5
    signed = (await lapi.op("SignIn", {}, token=member))["signIn"]
    assert signed["userErrors"] == [] and signed["pointsEarned"] == 5 and signed["pointsBalance"] == 5
    assert signed["status"]["signedToday"] is True and signed["status"]["streak"] == 1
    again = (await lapi.op("SignIn", {}, token=member))["signIn"]
    assert again["userErrors"][0]["code"] == "LIMIT_REACHED"
    after = await lapi.op("PointsCenter", {}, token=member)
    summary = after["pointsSummary"]
    assert summary["balance"] == 5 and summary["expiringPoints"] == 5 and summary["expiringAt"]
    assert [e["node"]["delta"] for e in after["viewer"]["pointsLedger"]["edges"]] == [5]
    levels = after["memberLevels"]
    assert [lv["rank"] for lv in levels] == sorted(lv["rank"] for lv in levels)
    assert [lv["isCurrent"] for lv in levels].count(True) == 1 and levels[0]["isCurrent"]
    anonymous = (await lapi.op("SignIn", {}))["signIn"]
    assert anonymous["userErrors"][0]["code"] == "UNAUTHENTICATED"


async def completed_order(member_pk: int, status: str = "COMPLETED") -> list[OrderLine]:
    product = await Product.filter(on_shelf=True).order_by("id").first()
    assert product is not None
    order = await Order.create(
        order_no=f"T{uuid.uuid4().hex[:20]}", member_id=member_pk, status=status, payable_fen=2000
    )
    return [
        await OrderLine.create(
            order_id=order.id,
            sku_id=1,
            product_id=product.id,
            product_title=product.title,
            quantity=1,
            unit_price_fen=1000,
            line_total_fen=1000,
        )
        for _ in range(2)
    ]


async def test_review_a_completed_line_once_for_points(
    lapi: LoyaltyApi, member: str, services: Services
) -> None:
    pk = member_id(member, services)
    lines = await completed_order(pk)
    pending = (await lapi.op("ReviewableLines", {}, token=member))["reviewableLines"]
    line_id = encode_id("OrderLine", lines[0].id)
    assert [p["orderLineId"] for p in pending] == [encode_id("OrderLine", line.id) for line in lines]

    async def review(token: str, line: str, rating: int = 5) -> dict[str, Any]:
        variables = {"input": {"orderLineId": line, "rating": rating, "content": "很好用"}}
        payload: dict[str, Any] = (await lapi.op("SubmitReview", variables, token=token))["submitReview"]
        return payload

    assert (await review(member, line_id, 6))["userErrors"][0]["field"] == "rating"
    done = await review(member, line_id)
    assert done["userErrors"] == [] and done["pointsEarned"] == 20 and done["review"]["rating"] == 5
    assert (await review(member, line_id))["userErrors"][0]["code"] == "LIMIT_REACHED"
    stranger = await lapi.login(f"l{uuid.uuid4().hex[:12]}")
    assert (await review(stranger, line_id))["userErrors"][0]["code"] == "NOT_FOUND"
    not_received = await completed_order(pk, status="SHIPPED")
    shipped = await review(member, encode_id("OrderLine", not_received[0].id))
    assert shipped["userErrors"][0]["code"] == "INVALID_STATE"
    pending = (await lapi.op("ReviewableLines", {}, token=member))["reviewableLines"]
    assert [p["orderLineId"] for p in pending] == [encode_id("OrderLine", lines[1].id)]
    assert await Review.filter(member_id=pk).count() == 1
    ledger = await PointsLedger.filter(member_id=pk)
    assert sum(e.delta for e in ledger) == (await Member.get(id=pk)).points_balance == 20


async def test_operators_create_and_edit_templates_with_validation(
    lapi: LoyaltyApi, operator: str, member: str
) -> None:
    bad = {
        "name": "",
        "kind": "PERCENT",
        "percentOff": 100,
        "validDays": 0,
        "claimStartsAt": "2030-02-01T00:00:00Z",
        "claimEndsAt": "2030-01-01T00:00:00Z",
    }
    payload = (await lapi.op("CreateCouponTemplate", {"input": bad}, token=operator))["createCouponTemplate"]
    assert payload["couponTemplate"] is None
    assert {e["field"] for e in payload["userErrors"]} == {"name", "percentOff", "claimEndsAt", "validDays"}
    assert {e["code"] for e in payload["userErrors"]} == {"INVALID_INPUT"}

    template = await create_template(lapi, operator, kind="PERCENT", amount=0, percentOff=15, cap=2000)
    assert template["discountText"] == "8.5折 最高减¥20" and template["purpose"] == "CLAIM"
    assert await claim(lapi, member, template["id"]) == "OK"

    async def update(changes: dict[str, Any], token: str = operator) -> dict[str, Any]:
        variables = {"id": template["id"], "input": changes}
        result: dict[str, Any] = (await lapi.op("UpdateCouponTemplate", variables, token=token))[
            "updateCouponTemplate"
        ]
        return result

    assert (await update({"percentOff": 20}))["userErrors"][0]["field"] == "percentOff"  # claimed: frozen
    assert (await update({"name": None}))["userErrors"][0]["field"] == "name"
    edited = await update({"name": "新名字", "totalQuantity": 10, "claimEndsAt": "2099-01-01T00:00:00Z"})
    assert edited["userErrors"] == []
    assert (edited["couponTemplate"]["name"], edited["couponTemplate"]["totalQuantity"]) == ("新名字", 10)
    cleared = await update({"claimEndsAt": None})
    assert cleared["couponTemplate"]["claimEndsAt"] is None
    missing = await lapi.op(
        "UpdateCouponTemplate",
        {"id": encode_id("CouponTemplate", 10**9), "input": {"name": "x"}},
        token=operator,
    )
    assert missing["updateCouponTemplate"]["userErrors"][0]["code"] == "NOT_FOUND"

    for token, code in ((member, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        body = await lapi.raw("CreateCouponTemplate", {"input": {"name": "x", "kind": "FIXED"}}, token=token)
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == code
        body = await lapi.raw("CouponTemplates", {}, token=token)
        assert body["errors"][0]["extensions"]["code"] == code
