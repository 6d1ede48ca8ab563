"""Member centre and the address book."""

from __future__ import annotations

from datetime import UTC, datetime

from bff.ids import decode_id
from bff.models.marketing import MemberCoupon
from bff.models.member import Address, Member, MemberLevel, PointsLedger
from bff.models.order import Order
from tests.support.api import Api

ADDRESS = {
    "name": "张三",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路 100 号",
}


async def test_member_centre_matches_the_member_records(api: Api, alice: str) -> None:
    viewer = (await api.op("MemberCenter", {"ledgerFirst": 5}, token=alice))["viewer"]
    member = await Member.get(openid="o_alice")
    levels = await MemberLevel.all().order_by("rank")
    level = next(lv for lv in levels if lv.id == member.level_id)
    assert viewer["level"]["name"] == level.name and viewer["level"]["benefits"] == level.benefits
    higher = [lv for lv in levels if lv.rank > level.rank]
    assert viewer["nextLevel"] == {
        "name": higher[0].name,
        "growthNeeded": higher[0].min_growth - member.growth_value,
    }
    assert viewer["growthValue"] == member.growth_value

    ledger = await PointsLedger.filter(member_id=member.id).order_by("-id")
    assert sum(e.delta for e in ledger) == member.points_balance == viewer["pointsBalance"]
    page = viewer["pointsLedger"]
    assert [e["node"]["delta"] for e in page["edges"]] == [e.delta for e in ledger[:5]]
    assert page["pageInfo"]["hasNextPage"] is (len(ledger) > 5)
    if page["pageInfo"]["hasNextPage"]:
        rest = await api.post(
            "query($a: String) { viewer { pointsLedger(first: 100, after: $a) "
            "{ edges { node { delta } } } } }",
            {"a": page["pageInfo"]["endCursor"]},
            token=alice,
        )
        deltas = [e["node"]["delta"] for e in rest.json()["data"]["viewer"]["pointsLedger"]["edges"]]
        assert deltas == [e.delta for e in ledger[5:]]

    now = datetime.now(UTC)
    unused = [
        c for c in await MemberCoupon.filter(member_id=member.id, status="UNUSED") if c.expires_at > now
    ]
    assert len(viewer["coupons"]) == len(unused) > 0
    assert all(c["discountText"] and c["minSpend"]["amount"] >= 0 for c in viewer["coupons"])

    addresses = await Address.filter(member_id=member.id)
    assert len(viewer["addresses"]) == len(addresses)
    assert [a["isDefault"] for a in viewer["addresses"]].count(True) == 1
    assert viewer["addresses"][0]["isDefault"] is True

    counts = viewer["orderCounts"]
    for key, status in (("pendingPayment", "PENDING_PAYMENT"), ("paid", "PAID"), ("shipped", "SHIPPED")):
        assert counts[key] == await Order.filter(member_id=member.id, status=status).count()
    assert sum(counts.values()) > 0


async def test_the_first_address_becomes_the_default(api: Api, shopper: str) -> None:
    first = (await api.op("SaveAddress", {"input": ADDRESS}, token=shopper))["saveAddress"]
    assert first["userErrors"] == [] and first["address"]["isDefault"] is True
    second = (await api.op("SaveAddress", {"input": {**ADDRESS, "name": "李四"}}, token=shopper))[
        "saveAddress"
    ]
    assert second["address"]["isDefault"] is False

    promoted = await api.op(
        "SaveAddress", {"input": {**ADDRESS, "id": second["address"]["id"], "isDefault": True}}, token=shopper
    )
    assert promoted["saveAddress"]["address"]["isDefault"] is True
    book = (await api.op("MemberCenter", token=shopper))["viewer"]["addresses"]
    assert [(a["id"], a["isDefault"]) for a in book] == [
        (second["address"]["id"], True),
        (first["address"]["id"], False),
    ]

    deleted = await api.op("DeleteAddress", {"id": second["address"]["id"]}, token=shopper)
    assert deleted["deleteAddress"] == {"deletedId": second["address"]["id"], "userErrors": []}
    book = (await api.op("MemberCenter", token=shopper))["viewer"]["addresses"]
    assert [(a["id"], a["isDefault"]) for a in book] == [(first["address"]["id"], True)]


async def test_invalid_addresses_are_refused_field_by_field(api: Api, shopper: str) -> None:
    for field, value in (("phone", "12345"), ("name", "  "), ("detail", "x")):
        data = await api.op("SaveAddress", {"input": {**ADDRESS, field: value}}, token=shopper)
        assert data["saveAddress"]["address"] is None
        assert data["saveAddress"]["userErrors"][0]["code"] == "INVALID_INPUT"
        assert data["saveAddress"]["userErrors"][0]["field"] == field
    viewer = (await api.op("MemberCenter", token=shopper))["viewer"]
    assert viewer["addresses"] == []


async def test_another_members_address_is_not_found(api: Api, shopper: str, alice: str) -> None:
    saved = (await api.op("SaveAddress", {"input": ADDRESS}, token=shopper))["saveAddress"]["address"]
    edit = await api.op("SaveAddress", {"input": {**ADDRESS, "id": saved["id"], "name": "王五"}}, token=alice)
    assert edit["saveAddress"]["userErrors"][0]["code"] == "NOT_FOUND"
    delete = await api.op("DeleteAddress", {"id": saved["id"]}, token=alice)
    assert delete["deleteAddress"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await Address.get(id=decode_id(saved["id"], "Address"))).name == "张三"


async def test_anonymous_member_centre_has_no_viewer(api: Api) -> None:
    assert (await api.op("MemberCenter"))["viewer"] is None
    data = await api.op("SaveAddress", {"input": ADDRESS})
    assert data["saveAddress"]["userErrors"][0]["code"] == "UNAUTHENTICATED"
