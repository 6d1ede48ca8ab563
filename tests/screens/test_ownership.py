"""Authorization on every path: member B tries each shipped operation on member A's objects.

B's answer must be exactly the answer for an id that does not exist (NOT_FOUND, or the operation's
own "no such …" code), A's rows must be unchanged afterwards, and B's lists never show A's rows while
A's own lists do. Operator operations refuse member tokens with FORBIDDEN; the ERP webhook takes no
bearer token at all (its signature checks are tested in tests/integrations/test_erp_webhook.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
    parse,
)
from graphql.pyutils import Undefined
from graphql.utilities import type_from_ast
from starlette.applications import Starlette

from bff.auth import Principal, Role, issue_token
from bff.documents import operations
from bff.ids import decode_id, encode_id
from bff.models.cart import CartItem
from bff.models.catalog import Review
from bff.models.marketing import (
    BargainCampaign,
    BargainSession,
    CouponTemplate,
    LotteryDraw,
    LotteryPool,
    MemberCoupon,
    PresaleCampaign,
    PresaleOrder,
)
from bff.models.member import Address, Member, PointsLedger
from bff.models.order import COMPLETED, PAID, SHIPPED, AfterSale, Order, OrderEvent, OrderLine
from bff.services import bargain, points
from bff.services.shop_time import shop_today
from schema.build import build_schema
from tests.support.api import Api
from tests.support.factories import make_product

GHOST = 2_000_000_000  # a primary key no row has
ADDRESS = {
    "name": "甲",
    "phone": "13700001111",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路 1 号",
}


@dataclass(frozen=True)
class Owner:
    """Member A and the opaque ids of everything A owns."""

    token: str
    member_id: int
    sku: str
    address: str
    cart_item: str
    coupon: str
    pending: str
    paid: str
    shipped: str
    completed: str
    completed_line: str
    idempotency_key: str
    bargain_session: str
    presale_order: str
    lottery_pool: str

    def ids(self) -> set[str]:
        """Every opaque id of A's own rows (not the shared SKU and pool)."""
        return {
            self.address,
            self.cart_item,
            self.coupon,
            self.pending,
            self.paid,
            self.shipped,
            self.completed,
            self.completed_line,
            self.bargain_session,
            self.presale_order,
        }


def _member_id(token: str) -> int:
    # The `sub` claim, read without the key: the tests only need to know whose token it is.
    claims = jwt.decode(token, options={"verify_signature": False})
    return int(str(claims["sub"]).split(":")[1])


async def _place(api: Api, token: str, sku: str, address: str, key: str | None = None) -> str:
    line = {"skuId": sku, "quantity": 1}
    data = {"source": "BUY_NOW", "addressId": address, "lines": [line], "idempotencyKey": key}
    placed = (await api.op("PlaceOrder", {"input": data}, token=token))["placeOrder"]
    assert placed["userErrors"] == [], placed
    return str(placed["order"]["id"])


@pytest.fixture(scope="module")
async def owner(api: Api) -> Owner:
    """A fresh member A with an address, a cart line, a coupon, orders in four states, an after-sale,
    points, a bargain session, a presale order and a lottery draw."""
    token = await api.login(f"ownA{uuid.uuid4().hex[:10]}")
    member_id = _member_id(token)
    now = datetime.now(UTC)
    product, (sku_row,) = await make_product([(5_000, 500)])
    sku = encode_id("Sku", sku_row.id)
    saved = (await api.op("SaveAddress", {"input": ADDRESS}, token=token))["saveAddress"]
    address = saved["address"]["id"]
    added = (await api.op("AddToCart", {"skuId": sku, "quantity": 2}, token=token))["addToCart"]
    cart_item = added["cart"]["items"][0]["id"]

    template = await CouponTemplate.create(
        name=f"ownership {uuid.uuid4().hex[:6]}", kind="FIXED", amount_fen=300, claimable=False, valid_days=30
    )
    coupon = await MemberCoupon.create(
        member_id=member_id, template_id=template.id, expires_at=now + timedelta(days=30), source="GRANT"
    )
    key = f"own-{uuid.uuid4().hex}"
    pending = await _place(api, token, sku, address, key)
    paid, shipped, completed, deposit = [await _place(api, token, sku, address) for _ in range(4)]
    for opaque, state in ((paid, PAID), (shipped, SHIPPED), (completed, COMPLETED), (deposit, PAID)):
        await Order.filter(id=decode_id(opaque, "Order")).update(status=state, paid_at=now)
    await AfterSale.create(
        order_id=decode_id(paid, "Order"),
        member_id=member_id,
        type="REFUND_ONLY",
        amount_fen=100,
        reason="甲",
    )
    line = await OrderLine.filter(order_id=decode_id(completed, "Order")).first()
    assert line is not None
    await points.change_points(member_id, 700, "ownership test")

    campaign = await BargainCampaign.create(
        title="ownership bargain",
        product_id=product.id,
        sku_id=sku_row.id,
        start_price_fen=5_000,
        floor_price_fen=1_000,
        helpers_needed=3,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )
    session = await bargain.start(member_id, campaign.id)
    presale_campaign = await PresaleCampaign.create(
        title="ownership presale",
        product_id=product.id,
        sku_id=sku_row.id,
        presale_price_fen=5_000,
        deposit_fen=500,
        deposit_deduction_fen=1_000,
        deposit_starts_at=now - timedelta(days=3),
        deposit_ends_at=now - timedelta(days=1),
        balance_starts_at=now - timedelta(hours=1),
        balance_ends_at=now + timedelta(days=1),
    )
    presale = await PresaleOrder.create(
        campaign_id=presale_campaign.id,
        member_id=member_id,
        deposit_order_id=decode_id(deposit, "Order"),
        status="DEPOSIT_PAID",
    )
    pool = await LotteryPool.create(
        name="ownership pool",
        daily_draws=3,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )
    await LotteryDraw.create(pool_id=pool.id, member_id=member_id, day=shop_today(), roll=4242)
    return Owner(
        token=token,
        member_id=member_id,
        sku=sku,
        address=address,
        cart_item=cart_item,
        coupon=encode_id("MemberCoupon", coupon.id),
        pending=pending,
        paid=paid,
        shipped=shipped,
        completed=completed,
        completed_line=encode_id("OrderLine", line.id),
        idempotency_key=key,
        bargain_session=encode_id("BargainSession", session.id),
        presale_order=encode_id("PresaleOrder", presale.id),
        lottery_pool=encode_id("LotteryPool", pool.id),
    )


@dataclass(frozen=True)
class Intruder:
    token: str
    address: str  # B's own address: checkouts get past the address to the object under test


@pytest.fixture
async def intruder(api: Api) -> Intruder:
    """Member B: a fresh member with an address of their own."""
    token = await api.login(f"ownB{uuid.uuid4().hex[:10]}")
    saved = (await api.op("SaveAddress", {"input": {**ADDRESS, "name": "乙"}}, token=token))["saveAddress"]
    return Intruder(token=token, address=saved["address"]["id"])


async def snapshot(member_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every row a member owns, as stored."""
    orders = Order.filter(member_id=member_id)
    order_ids = await orders.values_list("id", flat=True)
    return {
        "member": await Member.filter(id=member_id).values(),
        "addresses": await Address.filter(member_id=member_id).order_by("id").values(),
        "cart": await CartItem.filter(member_id=member_id).order_by("id").values(),
        "coupons": await MemberCoupon.filter(member_id=member_id).order_by("id").values(),
        "points": await PointsLedger.filter(member_id=member_id).order_by("id").values(),
        "orders": await orders.order_by("id").values(),
        "order_events": await OrderEvent.filter(order_id__in=list(order_ids)).order_by("id").values(),
        "after_sales": await AfterSale.filter(member_id=member_id).order_by("id").values(),
        "reviews": await Review.filter(member_id=member_id).order_by("id").values(),
        "bargains": await BargainSession.filter(member_id=member_id).order_by("id").values(),
        "presales": await PresaleOrder.filter(member_id=member_id).order_by("id").values(),
        "draws": await LotteryDraw.filter(member_id=member_id).order_by("id").values(),
    }


def ghost(type_name: str) -> str:
    return encode_id(type_name, GHOST)


def _first_error(payload: dict[str, Any]) -> str:
    errors = payload["userErrors"]
    assert len(errors) == 1, payload
    return str(errors[0]["code"])


# Each case: (operation, variables on A's object, the same variables on a ghost, the expected code).
def _cases(a: Owner, b: Intruder) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], str]]:
    address_input = {**ADDRESS, "name": "乙改"}
    yield (
        "UpdateCartItem",
        {"itemId": a.cart_item, "quantity": 1},
        {"itemId": ghost("CartItem"), "quantity": 1},
        "NOT_FOUND",
    )
    yield "RemoveCartItems", {"itemIds": [a.cart_item]}, {"itemIds": [ghost("CartItem")]}, "NOT_FOUND"
    yield (
        "SaveAddress",
        {"input": {**address_input, "id": a.address}},
        {"input": {**address_input, "id": ghost("Address")}},
        "NOT_FOUND",
    )
    yield "DeleteAddress", {"id": a.address}, {"id": ghost("Address")}, "NOT_FOUND"
    yield "CancelOrder", {"id": a.pending}, {"id": ghost("Order")}, "NOT_FOUND"
    yield "PayOrder", {"orderId": a.pending}, {"orderId": ghost("Order")}, "NOT_FOUND"
    yield "ConfirmReceipt", {"id": a.shipped}, {"id": ghost("Order")}, "NOT_FOUND"
    refund = {"type": "REFUND_ONLY", "lines": [{"orderLineSkuId": a.sku, "quantity": 1}], "reason": "不想要"}
    yield (
        "RequestAfterSale",
        {"input": {**refund, "orderId": a.paid}},
        {"input": {**refund, "orderId": ghost("Order")}},
        "NOT_FOUND",
    )
    review = {"rating": 5, "content": "好"}
    yield (
        "SubmitReview",
        {"input": {**review, "orderLineId": a.completed_line}},
        {"input": {**review, "orderLineId": ghost("OrderLine")}},
        "NOT_FOUND",
    )
    yield (
        "PlacePresaleBalanceOrder",
        {"input": {"presaleOrderId": a.presale_order}},
        {"input": {"presaleOrderId": ghost("PresaleOrder")}},
        "NOT_FOUND",
    )
    buy = {"source": "BUY_NOW", "lines": [{"skuId": a.sku, "quantity": 1}]}
    yield (
        "PlaceOrder",
        {"input": {**buy, "addressId": a.address}},
        {"input": {**buy, "addressId": ghost("Address")}},
        "ADDRESS_REQUIRED",
    )
    buy = {**buy, "addressId": b.address}
    for operation, field, ref in (
        ("OpenGroupBuy", "campaignId", ghost("GroupBuyCampaign")),
        ("JoinGroupBuy", "teamId", ghost("GroupBuyTeam")),
    ):
        # The address is checked before the campaign: A's address must fail like a missing one.
        yield (
            operation,
            {"input": {field: ref, "addressId": a.address}},
            {"input": {field: ref, "addressId": ghost("Address")}},
            "ADDRESS_REQUIRED",
        )
    for operation in ("CheckoutPreview", "PlaceOrder"):
        yield (
            operation,
            {"input": {**buy, "couponId": a.coupon}},
            {"input": {**buy, "couponId": ghost("MemberCoupon")}},
            "COUPON_NOT_APPLICABLE",
        )
        yield (
            operation,
            {"input": {**buy, "campaign": {"bargainSessionId": a.bargain_session}}},
            {"input": {**buy, "campaign": {"bargainSessionId": ghost("BargainSession")}}},
            "NOT_FOUND",
        )


def _payload(data: dict[str, Any]) -> dict[str, Any]:
    (payload,) = data.values()
    assert isinstance(payload, dict)
    return payload


async def test_b_acting_on_a_objects_gets_not_found_and_changes_nothing(
    api: Api, owner: Owner, intruder: Intruder
) -> None:
    b_id = _member_id(intruder.token)
    before_a, before_b = await snapshot(owner.member_id), await snapshot(b_id)
    tried = set()
    for operation, on_a, on_ghost, code in _cases(owner, intruder):
        tried.add(operation)
        answer = _payload(await api.op(operation, on_a, token=intruder.token))
        assert _first_error(answer) == code, (operation, answer)
        assert answer == _payload(await api.op(operation, on_ghost, token=intruder.token)), operation
    assert await snapshot(owner.member_id) == before_a
    assert await snapshot(b_id) == before_b
    assert tried >= OWNED_MUTATIONS


async def test_b_reading_a_objects_gets_what_a_missing_id_gets(
    api: Api, owner: Owner, intruder: Intruder
) -> None:
    reads = (
        ("OrderDetail", "order", owner.pending, "Order"),
        ("OrderDetail", "order", owner.paid, "Order"),
        ("PresaleOrder", "presaleOrder", owner.presale_order, "PresaleOrder"),
    )
    for operation, field, mine, type_name in reads:
        assert (await api.op(operation, {"id": mine}, token=owner.token))[field]["id"] == mine  # A sees it
        theirs = await api.raw(operation, {"id": mine}, token=intruder.token)
        assert theirs == await api.raw(operation, {"id": ghost(type_name)}, token=intruder.token)
        assert theirs["data"][field] is None, theirs


async def test_lists_never_show_the_other_members_rows(api: Api, owner: Owner, intruder: Intruder) -> None:
    screens: tuple[tuple[str, dict[str, Any]], ...] = (
        ("MemberCenter", {}),
        ("MyCoupons", {"status": "UNUSED"}),
        ("Cart", {}),
        ("MyOrders", {"status": "ALL", "first": 50}),
        ("PointsCenter", {}),
        ("MyPresaleOrders", {}),
        ("ReviewableLines", {}),
        ("LotteryPool", {"id": owner.lottery_pool}),
        ("OrderDetail", {"id": owner.paid}),
    )
    seen_by_a: set[str] = set()
    for operation, variables in screens:
        seen_by_a |= _strings(await api.op(operation, variables, token=owner.token))
        leaked = _strings(await api.op(operation, variables, token=intruder.token)) & (
            owner.ids() | {encode_id("Member", owner.member_id)}
        )
        assert leaked == set(), (operation, leaked)
    # The lists do carry A's rows for A: the absence above is filtering, not empty screens.
    assert owner.ids() - {owner.bargain_session} <= seen_by_a
    a_pool = (await api.op("LotteryPool", {"id": owner.lottery_pool}, token=owner.token))["lotteryPool"]
    b_pool = (await api.op("LotteryPool", {"id": owner.lottery_pool}, token=intruder.token))["lotteryPool"]
    assert [d["roll"] for d in a_pool["myDraws"]] == [4242] and a_pool["drawsLeftToday"] == 2
    assert b_pool["myDraws"] == [] and b_pool["drawsLeftToday"] == 3
    a_points = (await api.op("PointsCenter", {}, token=owner.token))["pointsSummary"]["balance"]
    assert a_points >= 700
    assert (await api.op("PointsCenter", {}, token=intruder.token))["pointsSummary"]["balance"] == 0
    after_sales = (await api.op("OrderDetail", {"id": owner.paid}, token=owner.token))["order"]["afterSales"]
    assert len(after_sales) == 1


def _strings(value: Any) -> set[str]:
    """Every string in a JSON answer (ids of any field name: id, orderLineId, orderId …)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


async def test_a_share_page_shows_a_session_but_only_its_owner_may_buy(
    api: Api, owner: Owner, intruder: Intruder
) -> None:
    # Bargain sessions and group-buy teams are share pages by design: friends open them to help or join.
    mine = (await api.op("BargainSession", {"id": owner.bargain_session}, token=owner.token))[
        "bargainSession"
    ]
    theirs = (await api.op("BargainSession", {"id": owner.bargain_session}, token=intruder.token))[
        "bargainSession"
    ]
    assert mine["viewerIsOwner"] is True
    assert theirs["viewerIsOwner"] is False and theirs["canBuy"] is False


async def test_an_idempotency_key_never_returns_another_members_order(
    api: Api, owner: Owner, intruder: Intruder
) -> None:
    placed = (
        await api.op(
            "PlaceOrder",
            {
                "input": {
                    "source": "BUY_NOW",
                    "lines": [{"skuId": owner.sku, "quantity": 1}],
                    "idempotencyKey": owner.idempotency_key,
                }
            },
            token=intruder.token,
        )
    )["placeOrder"]
    assert placed["order"] is None and placed["userErrors"][0]["code"] == "ADDRESS_REQUIRED"


# --- which operations are covered ---------------------------------------------------------------

OWNED_MUTATIONS = {
    "UpdateCartItem",
    "RemoveCartItems",
    "SaveAddress",
    "DeleteAddress",
    "CancelOrder",
    "PayOrder",
    "ConfirmReceipt",
    "RequestAfterSale",
    "SubmitReview",
    "PlacePresaleBalanceOrder",
    "PlaceOrder",
    "CheckoutPreview",
    "OpenGroupBuy",
    "JoinGroupBuy",
}
OWNED_READS = {"OrderDetail", "PresaleOrder", "LotteryPool"}
# Ids that name no member's object, or a share page anyone may open (friends help and join).
PUBLIC_BY_DESIGN = {
    "AddToCart": "a SKU",
    "ProductDetail": "a product",
    "ProductList": "categories and brands",
    "ClaimCoupon": "a coupon template",
    "StartBargain": "a bargain campaign",
    "DrawLottery": "a lottery pool (the draw is the caller's own)",
    "BargainSession": "share page",
    "BargainProgress": "share page",
    "HelpBargain": "friends help",
    "GroupBuyTeam": "share page",
    "GroupBuyTeamProgress": "share page",
    "TrackEvents": "the member comes from the token only",
}
OPERATOR_OPERATIONS = {
    "CancelPresaleCampaign",
    "ChurnMemberScore",
    "CreateCouponTemplate",
    "DeleteFlashSaleItem",
    "LotteryDraws",
    "PublishActivityPage",
    "SaveActivityPage",
    "SaveBargainCampaign",
    "SaveFlashSale",
    "SaveFlashSaleItem",
    "SaveGroupBuyCampaign",
    "SaveLotteryPool",
    "SaveLotteryPrize",
    "SavePresaleCampaign",
    "UpdateCouponTemplate",
}


@pytest.fixture(scope="module")
def graphql_schema() -> GraphQLSchema:
    return build_schema()._schema


def _takes_an_id(schema: GraphQLSchema, definition: OperationDefinitionNode) -> bool:
    def has_id(kind: Any, seen: frozenset[str]) -> bool:
        named = get_named_type(kind)
        if isinstance(named, GraphQLScalarType):
            return named.name == "ID"
        if isinstance(named, GraphQLInputObjectType) and named.name not in seen:
            return any(has_id(f.type, seen | {named.name}) for f in named.fields.values())
        return False

    return any(
        has_id(type_from_ast(schema, v.type), frozenset()) for v in definition.variable_definitions or ()
    )


def test_every_shipped_operation_that_takes_an_id_is_classified(graphql_schema: GraphQLSchema) -> None:
    taking_ids = {
        name
        for name, text in operations().items()
        for definition in parse(text).definitions
        if isinstance(definition, OperationDefinitionNode)
        and definition.name is not None
        and definition.name.value == name
        and _takes_an_id(graphql_schema, definition)
    }
    classified = OWNED_MUTATIONS | OWNED_READS | set(PUBLIC_BY_DESIGN) | OPERATOR_OPERATIONS
    assert taking_ids - classified == set(), "classify (and test) these operations"


# --- operators and the ERP --------------------------------------------------------------------------

OPERATOR_FIELDS = {
    "query": (
        "lotteryDraws",
        "couponTemplates",
        "experiments",
        "experimentResults",
        "dashboard",
        "atRiskMembers",
        "memberScore",
    ),
    "mutation": (
        "saveFlashSale",
        "saveFlashSaleItem",
        "deleteFlashSaleItem",
        "saveGroupBuyCampaign",
        "saveBargainCampaign",
        "savePresaleCampaign",
        "cancelPresaleCampaign",
        "saveLotteryPool",
        "saveLotteryPrize",
        "saveActivityPage",
        "publishActivityPage",
        "createCouponTemplate",
        "updateCouponTemplate",
        "createExperiment",
        "updateExperiment",
        "startExperiment",
        "stopExperiment",
        "runChurnScoring",
    ),
}
_SCALARS = {
    "ID": '"x"',
    "String": '"x"',
    "Int": "1",
    "Float": "1.0",
    "Boolean": "false",
    "DateTime": '"2031-01-01T00:00:00+00:00"',
    "Date": '"2031-01-01"',
}


def _literal(kind: GraphQLInputType) -> str:
    """A valid literal of an input type: only the required fields of input objects."""
    if isinstance(kind, GraphQLNonNull):
        return _literal(kind.of_type)
    if isinstance(kind, GraphQLList):
        return f"[{_literal(kind.of_type)}]"
    if isinstance(kind, GraphQLEnumType):
        return str(next(iter(kind.values)))
    if isinstance(kind, GraphQLInputObjectType):
        required = [
            f"{name}: {_literal(f.type)}"
            for name, f in kind.fields.items()
            if isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined
        ]
        return "{" + ", ".join(required) + "}"
    assert isinstance(kind, GraphQLScalarType)
    return _SCALARS.get(kind.name, '"x"')


def _document(schema: GraphQLSchema, operation: str, field_name: str) -> str:
    root = schema.query_type if operation == "query" else schema.mutation_type
    assert root is not None
    field = root.fields[field_name]
    args = [
        f"{name}: {_literal(a.type)}" for name, a in field.args.items() if isinstance(a.type, GraphQLNonNull)
    ]
    call = f"{field_name}({', '.join(args)})" if args else field_name
    selection = " { __typename }" if isinstance(get_named_type(field.type), GraphQLObjectType) else ""
    return f"{operation} {{ {call}{selection} }}"


async def test_operator_operations_refuse_member_tokens(
    api: Api, graphql_schema: GraphQLSchema, intruder: Intruder
) -> None:
    for operation, fields in OPERATOR_FIELDS.items():
        for field_name in fields:
            document = _document(graphql_schema, operation, field_name)
            body = (await api.post(document, token=intruder.token)).json()
            codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
            assert codes == ["FORBIDDEN"], (document, body)
            anonymous = (await api.post(document)).json()
            assert [e["extensions"]["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"], document


async def test_the_erp_webhook_takes_no_bearer_token(client: httpx.AsyncClient, app: Starlette) -> None:
    keys = app.state.services.settings.signing_keys
    operator = issue_token(Principal(role=Role.OPERATOR, name="ops-erp"), keys, 600).token
    response = await client.post(
        "/webhooks/erp",
        json={"events": []},
        headers={"Authorization": f"Bearer {operator}", "content-type": "application/json"},
    )
    assert response.status_code == 401, response.text
