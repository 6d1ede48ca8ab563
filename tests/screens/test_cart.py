"""Cart screen and its mutations: current prices and stock, unavailable lines, stock limits."""

from __future__ import annotations

from typing import Any

from bff.cache import Cache
from bff.ids import encode_id
from bff.models.cart import CartItem
from bff.models.catalog import Product, Sku
from bff.services.catalog import refresh_product_aggregates
from tests.support.api import Api
from tests.support.factories import make_product


def _line(cart: dict[str, Any], sku: Sku) -> dict[str, Any]:
    return next(i for i in cart["items"] if i["sku"]["id"] == encode_id("Sku", sku.id))


async def test_cart_shows_current_prices_and_stock(api: Api, shopper: str, cache: Cache) -> None:
    product, (sku,) = await make_product([(12_900, 10)])
    added = await api.op("AddToCart", {"skuId": encode_id("Sku", sku.id), "quantity": 2}, token=shopper)
    assert added["addToCart"]["userErrors"] == []
    assert added["addToCart"]["cart"]["selectedCount"] == 2

    # The ERP changes price and stock after the line was added: the cart shows the new ones.
    await Sku.filter(id=sku.id).update(price_fen=9_900, stock=3)
    await refresh_product_aggregates(cache, [product.id])
    cart = (await api.op("Cart", token=shopper))["cart"]
    line = _line(cart, sku)
    assert line["unitPrice"]["amount"] == 9_900  # a new member is 普通: no level discount
    assert line["lineTotal"] == {"amount": 19_800, "formatted": "¥198.00"}
    assert line["sku"]["stock"] == 3 and line["available"] is True
    assert line["sku"]["product"]["title"] == product.title
    assert cart["summary"]["itemsTotal"]["amount"] == 19_800
    assert cart["summary"]["payable"]["amount"] == 19_800


async def test_unavailable_lines_carry_a_reason_and_leave_the_totals(
    api: Api, shopper: str, cache: Cache
) -> None:
    _, (good,) = await make_product([(5_000, 10)])
    sold_out_product, (sold_out,) = await make_product([(6_000, 5)])
    short_product, (short,) = await make_product([(7_000, 5)])
    off_product, (off,) = await make_product([(8_000, 5)])
    for sku, qty in ((good, 1), (sold_out, 1), (short, 4), (off, 1)):
        result = await api.op(
            "AddToCart", {"skuId": encode_id("Sku", sku.id), "quantity": qty}, token=shopper
        )
        assert result["addToCart"]["userErrors"] == []
    await Sku.filter(id=sold_out.id).update(stock=0)
    await Sku.filter(id=short.id).update(stock=2)
    await Product.filter(id=off_product.id).update(on_shelf=False)
    await refresh_product_aggregates(cache, [sold_out_product.id, short_product.id, off_product.id])

    cart = (await api.op("Cart", token=shopper))["cart"]
    assert (_line(cart, good)["available"], _line(cart, good)["unavailableReason"]) == (True, None)
    assert _line(cart, sold_out)["unavailableReason"] == "SOLD_OUT"
    assert _line(cart, short)["unavailableReason"] == "INSUFFICIENT_STOCK"
    assert _line(cart, off)["unavailableReason"] == "OFF_SHELF"
    assert not any(_line(cart, s)["available"] for s in (sold_out, short, off))
    assert cart["selectedCount"] == 1
    assert cart["summary"]["itemsTotal"]["amount"] == 5_000


async def test_adding_more_than_the_stock_is_out_of_stock_and_changes_nothing(api: Api, shopper: str) -> None:
    _, (sku,) = await make_product([(1_000, 3)])
    sku_id = encode_id("Sku", sku.id)
    refused = await api.op("AddToCart", {"skuId": sku_id, "quantity": 4}, token=shopper)
    assert refused["addToCart"]["cart"] is None
    assert [e["code"] for e in refused["addToCart"]["userErrors"]] == ["OUT_OF_STOCK"]
    assert await CartItem.filter(sku_id=sku.id).count() == 0

    await api.op("AddToCart", {"skuId": sku_id, "quantity": 2}, token=shopper)
    refused = await api.op("AddToCart", {"skuId": sku_id, "quantity": 2}, token=shopper)
    assert refused["addToCart"]["userErrors"][0]["code"] == "OUT_OF_STOCK"
    assert refused["addToCart"]["userErrors"][0]["field"] == "quantity"
    assert (await CartItem.get(sku_id=sku.id)).quantity == 2

    merged = await api.op("AddToCart", {"skuId": sku_id, "quantity": 1}, token=shopper)
    lines = merged["addToCart"]["cart"]["items"]
    assert [(i["sku"]["id"], i["quantity"]) for i in lines] == [(sku_id, 3)]


async def test_update_and_remove_lines(api: Api, shopper: str) -> None:
    _, (a, b) = await make_product([(1_000, 9), (2_000, 9)])
    for sku in (a, b):
        await api.op("AddToCart", {"skuId": encode_id("Sku", sku.id), "quantity": 1}, token=shopper)
    cart = (await api.op("Cart", token=shopper))["cart"]
    line_a, line_b = _line(cart, a), _line(cart, b)

    updated = await api.op(
        "UpdateCartItem", {"itemId": line_a["id"], "quantity": 5, "selected": False}, token=shopper
    )
    assert updated["updateCartItem"]["userErrors"] == []
    assert {"id": line_a["id"], "quantity": 5, "selected": False} in updated["updateCartItem"]["cart"][
        "items"
    ]

    too_many = await api.op("UpdateCartItem", {"itemId": line_a["id"], "quantity": 10}, token=shopper)
    assert too_many["updateCartItem"]["userErrors"][0]["code"] == "OUT_OF_STOCK"
    zero = await api.op("UpdateCartItem", {"itemId": line_a["id"], "quantity": 0}, token=shopper)
    assert zero["updateCartItem"]["userErrors"][0]["code"] == "INVALID_INPUT"

    partly_unknown = await api.op("RemoveCartItems", {"itemIds": [line_a["id"], "bm9wZQ"]}, token=shopper)
    assert partly_unknown["removeCartItems"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert len((await api.op("Cart", token=shopper))["cart"]["items"]) == 2

    removed = await api.op("RemoveCartItems", {"itemIds": [line_a["id"]]}, token=shopper)
    assert removed["removeCartItems"]["cart"]["items"] == [{"id": line_b["id"]}]


async def test_another_members_cart_line_is_not_found(api: Api, shopper: str, alice: str) -> None:
    _, (sku,) = await make_product([(1_000, 9)])
    await api.op("AddToCart", {"skuId": encode_id("Sku", sku.id), "quantity": 1}, token=shopper)
    line = _line((await api.op("Cart", token=shopper))["cart"], sku)
    for name, variables in (
        ("UpdateCartItem", {"itemId": line["id"], "quantity": 2}),
        ("RemoveCartItems", {"itemIds": [line["id"]]}),
    ):
        data = await api.op(name, variables, token=alice)
        payload = next(iter(data.values()))
        assert payload["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await CartItem.get(sku_id=sku.id)).quantity == 1


async def test_anonymous_visitors_have_no_cart(api: Api) -> None:
    body = await api.raw("Cart")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    added = await api.op("AddToCart", {"skuId": "eA", "quantity": 1})
    assert added["addToCart"]["userErrors"][0]["code"] == "UNAUTHENTICATED"


async def test_seeded_cart_marks_its_unavailable_lines(api: Api, alice: str) -> None:
    cart = (await api.op("Cart", token=alice))["cart"]
    assert cart["items"]
    reasons = {i["unavailableReason"] for i in cart["items"] if not i["available"]}
    assert {"SOLD_OUT", "OFF_SHELF"} <= reasons
    available_selected = [i for i in cart["items"] if i["available"] and i["selected"]]
    assert cart["selectedCount"] == sum(i["quantity"] for i in available_selected)
    assert cart["summary"]["payable"]["amount"] == sum(i["lineTotal"]["amount"] for i in available_selected)
    summary = cart["summary"]
    assert (
        summary["payable"]["amount"] == summary["itemsTotal"]["amount"] - summary["discountTotal"]["amount"]
    )
