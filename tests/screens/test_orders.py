"""Order list tabs, order detail and cancelling an unpaid order, with their SQL statement counts."""

from __future__ import annotations

from typing import Any

from bff.cache import Cache
from bff.documents import operations
from bff.ids import decode_id, encode_id
from bff.models.catalog import Sku
from bff.models.member import Member
from bff.models.order import Order, OrderLine
from tests.support.api import Api
from tests.support.factories import make_product
from tests.support.sql_counter import count_sql

TABS = {
    "ALL": None,
    "PENDING_PAYMENT": ("PENDING_PAYMENT",),
    "PAID": ("PAID",),
    "SHIPPED": ("SHIPPED", "DELIVERED"),
    "COMPLETED": ("COMPLETED",),
}


async def _walk(api: Api, token: str, status: str, first: int) -> tuple[list[dict[str, Any]], int]:
    nodes: list[dict[str, Any]] = []
    after = None
    total = -1
    for _ in range(50):
        page = (await api.op("MyOrders", {"status": status, "first": first, "after": after}, token=token))[
            "viewer"
        ]["orders"]
        total = page["totalCount"]
        nodes.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    return nodes, total


async def test_each_tab_lists_the_members_orders_newest_first(api: Api, alice: str) -> None:
    member = await Member.get(openid="o_alice")
    for tab, statuses in TABS.items():
        nodes, total = await _walk(api, alice, tab, 2)
        query = Order.filter(member_id=member.id)
        expected = await (query if statuses is None else query.filter(status__in=statuses)).order_by("-id")
        assert total == len(nodes) == len(expected), tab
        assert [n["orderNo"] for n in nodes] == [o.order_no for o in expected], tab
    nodes, _ = await _walk(api, alice, "ALL", 10)
    assert len({n["status"] for n in nodes}) >= 4
    for node in nodes:
        lines = await OrderLine.filter(order_id=decode_id(node["id"], "Order")).order_by("id")
        assert node["itemCount"] == sum(line.quantity for line in lines)
        assert [(x["productTitle"], x["quantity"]) for x in node["lines"]] == [
            (line.product_title, line.quantity) for line in lines
        ]


async def _statements(api: Api, cache: Cache, name: str, variables: dict[str, Any], token: str) -> int:
    await cache.clear()
    with count_sql() as counter:
        response = await api.post(operations()[name], variables, token=token, operation_name=name)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return counter.count


async def test_order_screens_cost_a_fixed_number_of_queries(api: Api, cache: Cache, alice: str) -> None:
    small = await _statements(api, cache, "MyOrders", {"first": 1}, alice)
    large = await _statements(api, cache, "MyOrders", {"first": 10}, alice)
    assert small == large <= 6
    member = await Member.get(openid="o_alice")
    counts = {
        await _statements(api, cache, "OrderDetail", {"id": encode_id("Order", order.id)}, alice)
        for order in await Order.filter(member_id=member.id).order_by("id")
    }
    assert len(counts) == 1 and counts.pop() <= 10


async def test_cancelling_an_unpaid_order_gives_the_stock_back(api: Api, shopper: str) -> None:
    _, (sku,) = await make_product([(3_000, 5)])
    address = (
        await api.op(
            "SaveAddress",
            {"input": {"name": "赵六", "phone": "13600001111", "province": "广东省", "city": "深圳市",
                       "district": "南山区", "detail": "科技园 1 号"}},
            token=shopper,
        )
    )["saveAddress"]["address"]["id"]  # fmt: skip
    line = {"skuId": encode_id("Sku", sku.id), "quantity": 2}
    placed = await api.op(
        "PlaceOrder", {"input": {"source": "BUY_NOW", "addressId": address, "lines": [line]}}, token=shopper
    )
    order = placed["placeOrder"]["order"]
    assert placed["placeOrder"]["userErrors"] == [] and order["status"] == "PENDING_PAYMENT"
    assert (await Sku.get(id=sku.id)).reserved == 2

    cancelled = (await api.op("CancelOrder", {"id": order["id"], "reason": "不想要了"}, token=shopper))[
        "cancelOrder"
    ]
    assert cancelled == {"order": {"id": order["id"], "status": "CANCELLED"}, "userErrors": []}
    assert (await Sku.get(id=sku.id)).reserved == 0
    detail = (await api.op("OrderDetail", {"id": order["id"]}, token=shopper))["order"]
    assert [t["status"] for t in detail["timeline"]] == ["PENDING_PAYMENT", "CANCELLED"]
    assert detail["availableActions"] == []

    again = (await api.op("CancelOrder", {"id": order["id"]}, token=shopper))["cancelOrder"]
    assert again["order"] is None and again["userErrors"][0]["code"] == "INVALID_STATE"
