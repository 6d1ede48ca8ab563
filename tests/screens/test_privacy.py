"""The member's privacy rights over HTTP: consent, data export, account deletion, and the masked forms
operators and other shoppers see (个人信息保护法)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from graphql import GraphQLObjectType
from starlette.applications import Starlette

from bff.auth import Principal, Role, issue_token
from bff.ids import decode_id, encode_id
from bff.models.analytics import TrackedEvent
from bff.models.cart import CartItem
from bff.models.catalog import Review, Sku
from bff.models.churn import MemberScore
from bff.models.marketing import CouponTemplate, MemberCoupon
from bff.models.member import Address, Member, PointsLedger
from bff.models.order import COMPLETED, PAID, Order, OrderLine, Payment
from bff.models.outbox import OutboxMessage
from bff.services.privacy import DELETED_NICKNAME
from tests.support.api import Api
from tests.support.sql_counter import count_sql

NOW = datetime.now(UTC)
GRAPHQL_PERSONAL_FIELDS = {"phone", "detail"}


@dataclass
class Shopper:
    token: str
    member: Member
    code: str  # the WeChat login code that signs this person in
    marker: str  # a unique string in every row made for this member


@pytest.fixture
def operator(app: Starlette) -> str:
    keys = app.state.services.settings.signing_keys
    return issue_token(Principal(role=Role.OPERATOR, name="ops-privacy"), keys, 3600).token


async def new_shopper(api: Api, phone: str = "") -> Shopper:
    name = f"p{uuid.uuid4().hex[:12]}"
    token = await api.login(name)
    data = await api.post("{ viewer { id } }", token=token)
    member_id = decode_id(data.json()["data"]["viewer"]["id"], "Member")
    assert member_id is not None
    await Member.filter(id=member_id).update(phone=phone)
    return Shopper(token, await Member.get(id=member_id), f"sim_{name}", name)


async def make_order(shopper: Shopper, status: str = COMPLETED) -> Order:
    """An order of `status` with a line and a payment, delivered to the shopper's marked address."""
    m, mark = shopper.member, shopper.marker
    sku = await Sku.all().order_by("id").first()
    assert sku is not None
    order = await Order.create(
        order_no=f"PV{uuid.uuid4().hex[:20]}",
        member_id=m.id,
        status=status,
        items_total_fen=8800,
        payable_fen=8800,
        paid_at=NOW,
        remark=mark,
        address_snapshot={
            "name": f"张三{mark}",
            "phone": "13812348000",
            "province": "上海市",
            "city": "上海市",
            "district": "浦东新区",
            "detail": f"世纪大道1号 {mark}",
        },
    )
    await OrderLine.create(
        order_id=order.id,
        sku_id=sku.id,
        product_id=sku.product_id,
        product_title=f"商品{mark}",
        quantity=1,
        unit_price_fen=8800,
        line_total_fen=8800,
        paid_fen=8800,
    )
    await Payment.create(
        order_id=order.id,
        out_trade_no=order.order_no,
        transaction_id=f"tx{uuid.uuid4().hex}",
        amount_fen=8800,
        status="SUCCESS",
        paid_at=NOW,
    )
    return order


async def give_data(shopper: Shopper, status: str = COMPLETED) -> Order:
    """An address, a cart line, an order (see make_order), points, a coupon, a review and a tracked
    event, each carrying the shopper's marker."""
    m, mark = shopper.member, shopper.marker
    await Address.create(
        member_id=m.id,
        name=f"张三{mark}",
        phone="13812348000",
        province="上海市",
        city="上海市",
        district="浦东新区",
        detail=f"世纪大道1号 {mark}",
        is_default=True,
    )
    sku = await Sku.all().order_by("id").first()
    assert sku is not None
    await CartItem.create(member_id=m.id, sku_id=sku.id, quantity=2)
    order = await make_order(shopper, status)
    await PointsLedger.create(member_id=m.id, delta=88, reason=f"订单 {mark}", balance_after=88)
    template = await CouponTemplate.all().order_by("id").first()
    assert template is not None
    await MemberCoupon.create(member_id=m.id, template_id=template.id, expires_at=NOW + timedelta(days=30))
    await Review.create(product_id=sku.product_id, member_id=m.id, rating=5, content=f"好评 {mark}")
    await TrackedEvent.create(
        client_event_id=mark,
        anonymous_id=f"anon-{mark}",
        member_id=m.id,
        type="page_view",
        occurred_at=NOW,
        received_at=NOW,
        day=NOW.date(),
    )
    return order


def errors(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


# --- consent ----------------------------------------------------------------------------------------


async def test_consent_records_only_the_policy_in_force(api: Api) -> None:
    shopper = await new_shopper(api)
    before = await api.op("PrivacyConsent", token=shopper.token)
    current = before["privacyPolicyVersion"]
    assert before["viewer"]["privacyConsent"] == {
        "acceptedVersion": None,
        "acceptedAt": None,
        "currentVersion": current,
        "isCurrent": False,
    }
    stale = await api.op("AcceptPrivacyPolicy", {"version": "2001-01"}, token=shopper.token)
    assert errors(stale["acceptPrivacyPolicy"]) == ["INVALID_INPUT"]
    assert (await Member.get(id=shopper.member.id)).privacy_version is None

    accepted = await api.op("AcceptPrivacyPolicy", {"version": current}, token=shopper.token)
    assert accepted["acceptPrivacyPolicy"]["consent"]["isCurrent"] is True
    after = (await api.op("PrivacyConsent", token=shopper.token))["viewer"]["privacyConsent"]
    assert after["acceptedVersion"] == current and after["isCurrent"] is True
    row = await Member.get(id=shopper.member.id)
    assert row.privacy_version == current and row.privacy_accepted_at is not None
    assert abs((row.privacy_accepted_at - datetime.now(UTC)).total_seconds()) < 60

    anonymous = await api.raw("AcceptPrivacyPolicy", {"version": current})
    assert errors(anonymous["data"]["acceptPrivacyPolicy"]) == ["UNAUTHENTICATED"]


# --- export -----------------------------------------------------------------------------------------


async def test_the_export_holds_the_members_data_and_nobody_elses(api: Api) -> None:
    mine, theirs = await new_shopper(api, "13812348000"), await new_shopper(api, "13912349000")
    order = await give_data(mine)
    await give_data(theirs)

    with count_sql() as sql:
        data = (await api.op("ExportMyData", token=mine.token))["exportMyData"]
    text = orjson.dumps(data).decode()
    assert theirs.marker not in text and "13912349000" not in text
    profile = data["profile"]
    assert profile["id"] == encode_id("Member", mine.member.id)
    assert profile["phone"] == "13812348000" and profile["nickname"] == mine.member.nickname
    assert [a["detail"] for a in data["addresses"]] == [f"世纪大道1号 {mine.marker}"]
    [exported] = data["orders"]
    assert exported["orderNo"] == order.order_no and exported["payableFen"] == 8800
    assert exported["address"]["detail"] == f"世纪大道1号 {mine.marker}"
    assert [x["productTitle"] for x in exported["lines"]] == [f"商品{mine.marker}"]
    assert [p["reason"] for p in data["pointsLedger"]] == [f"订单 {mine.marker}"]
    assert len(data["coupons"]) == 1 and data["coupons"][0]["status"] == "UNUSED"
    assert [r["content"] for r in data["reviews"]] == [f"好评 {mine.marker}"]
    assert data["trackedEventsCount"] == 1 and len(data["cart"]) == 1

    # One query per kind of row: more orders cost no more statements.
    await make_order(mine)
    with count_sql() as bigger:
        more = (await api.op("ExportMyData", token=mine.token))["exportMyData"]
    assert len(more["orders"]) == 2 and bigger.count == sql.count <= 12


async def test_only_members_can_export(api: Api, operator: str) -> None:
    for token in (None, operator):
        body = await api.raw("ExportMyData", token=token)
        assert body["data"] == {"exportMyData": None}
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- deletion ---------------------------------------------------------------------------------------


async def test_deleting_the_account_anonymises_it_and_keeps_the_orders_for_the_accounts(api: Api) -> None:
    shopper = await new_shopper(api, "13812348000")
    member_id = shopper.member.id
    order = await give_data(shopper)
    await MemberScore.create(
        member_id=member_id,
        scored_on=NOW.date(),
        recency_days=1,
        frequency=1,
        monetary_fen=8800,
        r_score=5,
        f_score=1,
        m_score=1,
        segment="new",
        high_value=False,
        at_risk=False,
        reasons=[],
        recent_activity=1,
        prior_activity=0,
    )
    before = await Member.get(id=member_id)

    wrong = (await api.op("DeleteMyAccount", {"confirm": "yes"}, token=shopper.token))["deleteMyAccount"]
    assert wrong["deleted"] is False and errors(wrong) == ["INVALID_INPUT"]
    assert (await Member.get(id=member_id)).deleted_at is None

    done = (await api.op("DeleteMyAccount", {"confirm": "DELETE"}, token=shopper.token))["deleteMyAccount"]
    assert done == {"deleted": True, "userErrors": []}

    member = await Member.get(id=member_id)
    assert (member.nickname, member.avatar_url, member.phone, member.unionid) == (
        DELETED_NICKNAME,
        "",
        "",
        None,
    )
    assert member.openid.startswith(f"deleted:{member_id}:") and member.deleted_at is not None
    assert member.token_version == before.token_version + 1
    assert not await Address.filter(member_id=member_id).exists()
    assert not await CartItem.filter(member_id=member_id).exists()
    kept = await Order.get(id=order.id)
    assert (kept.payable_fen, kept.status, kept.address_snapshot, kept.remark) == (8800, COMPLETED, {}, "")
    assert await OrderLine.filter(order_id=order.id).count() == 1
    assert await Payment.filter(order_id=order.id, amount_fen=8800).exists()
    coupon = await MemberCoupon.get(member_id=member_id)
    assert coupon.status == "UNUSED" and coupon.expires_at <= datetime.now(UTC)
    event = await TrackedEvent.get(client_event_id=shopper.marker)
    assert event.member_id is None
    assert not await MemberScore.filter(member_id=member_id).exists()
    assert await OutboxMessage.filter(
        topic="crm.upsert_member", dedupe_key=f"crm-erase:{member_id}", payload={"member_id": member_id}
    ).exists()

    # Deletion revoked every session: the old token is refused outright.
    response = await api.post(
        "{ viewer { nickname addresses { detail } } exportMyData }", token=shopper.token
    )
    assert response.status_code == 401, response.text
    assert "13812348000" not in response.text and shopper.marker not in response.text

    # The WeChat user can register afresh: a new member, not the anonymised one.
    login = await api.op("Login", {"code": shopper.code})
    assert login["login"]["member"]["isNew"] is True
    assert login["login"]["member"]["id"] != encode_id("Member", member_id)


async def test_an_order_in_progress_refuses_the_deletion_and_changes_nothing(api: Api) -> None:
    shopper = await new_shopper(api, "13812348000")
    member_id = shopper.member.id
    order = await give_data(shopper, status=PAID)
    before = await Member.get(id=member_id)

    payload = (await api.op("DeleteMyAccount", {"confirm": "DELETE"}, token=shopper.token))["deleteMyAccount"]
    assert payload["deleted"] is False and errors(payload) == ["ORDER_IN_PROGRESS"]

    after = await Member.get(id=member_id)
    fields = ("nickname", "openid", "phone", "token_version", "deleted_at")
    assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]
    assert await Address.filter(member_id=member_id).count() == 1
    assert await CartItem.filter(member_id=member_id).count() == 1
    assert (await Order.get(id=order.id)).address_snapshot["phone"] == "13812348000"
    assert (await TrackedEvent.get(client_event_id=shopper.marker)).member_id == member_id
    assert not await OutboxMessage.filter(dedupe_key=f"crm-erase:{member_id}").exists()
    viewer = (await api.post("{ viewer { nickname } }", token=shopper.token)).json()["data"]["viewer"]
    assert viewer == {"nickname": before.nickname}


# --- what others see --------------------------------------------------------------------------------


async def test_operators_see_a_masked_phone(api: Api, operator: str) -> None:
    shopper = await new_shopper(api, "13812348000")
    await MemberScore.create(
        member_id=shopper.member.id,
        scored_on=NOW.date(),
        recency_days=90,
        frequency=3,
        monetary_fen=100,
        r_score=1,
        f_score=2,
        m_score=1,
        segment="at_risk",
        high_value=False,
        at_risk=True,
        reasons=["NO_PURCHASE_IN_90_DAYS"],
        recent_activity=0,
        prior_activity=2,
    )
    query = "query($id: ID!) { memberScore(memberId: $id) { nickname phoneMasked } }"
    response = await api.post(query, {"id": encode_id("Member", shopper.member.id)}, token=operator)
    assert response.json()["data"]["memberScore"] == {
        "nickname": shopper.member.nickname,
        "phoneMasked": "138****8000",
    }
    assert "13812348000" not in response.text


async def test_other_shoppers_see_a_nickname_never_a_phone(api: Api) -> None:
    inviter, invitee = await new_shopper(api, "13812348000"), await new_shopper(api)
    # A nickname that is a phone number (WeChat users do that) is masked for everyone else.
    await Member.filter(id=inviter.member.id).update(nickname="13912345678")
    code = (await api.op("ShareInvite", token=inviter.token))["shareInvite"]["code"]
    accepted = (await api.op("AcceptInvite", {"code": code}, token=invitee.token))["acceptInvite"]
    assert accepted["inviter"]["nickname"] == "139****5678"

    # The owner's own order shows the full address; to anyone else the order does not exist.
    order = await give_data(inviter)
    detail = "query($id: ID!) { order(id: $id) { address { phone detail } } }"
    variables = {"id": encode_id("Order", order.id)}
    own = (await api.post(detail, variables, token=inviter.token)).json()["data"]["order"]
    assert own == {"address": {"phone": "13812348000", "detail": f"世纪大道1号 {inviter.marker}"}}
    assert (await api.post(detail, variables, token=invitee.token)).json()["data"]["order"] is None


def test_only_owner_only_types_carry_phones_and_street_addresses(app: Starlette) -> None:
    from schema.build import build_schema

    schema = build_schema()._schema
    holders = {
        name
        for name, type_ in schema.type_map.items()
        if isinstance(type_, GraphQLObjectType)
        and not name.startswith("__")
        and GRAPHQL_PERSONAL_FIELDS & set(type_.fields)
    }
    # Address: the viewer's address book; OrderAddress: the viewer's own orders (see test above).
    assert holders == {"Address", "OrderAddress"}
