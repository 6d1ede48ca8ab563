"""The benchmarked screens: which contract document, with which variables, as whom."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bench.data import Fixtures
from bff.documents import operations
from bff.ids import encode_id


@dataclass(frozen=True)
class Screen:
    """One request the mini-program sends to render a screen."""

    key: str
    label: str
    operation: str
    variables: dict[str, Any]
    member: bool

    def body(self) -> bytes:
        """The exact POST body, the contract's document text included."""
        return orjson.dumps(
            {
                "query": operations()[self.operation],
                "operationName": self.operation,
                "variables": self.variables,
            }
        )

    def headers(self, token: str) -> dict[str, str]:
        """Content type, and the member's bearer token for member screens."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.member:
            headers["Authorization"] = f"Bearer {token}"
        return headers


def screens(f: Fixtures) -> list[Screen]:
    """Home (anonymous and member), category (20 and 100), search, product detail, cart, order list."""
    category = encode_id("Category", f.category_id)
    return [
        Screen("home_anon", "home (anonymous)", "Home", {}, member=False),
        Screen("home_member", "home (member)", "Home", {}, member=True),
        Screen(
            "category_20", "category, 20 items", "ProductList", {"categoryId": category, "first": 20}, True
        ),
        Screen(
            "category_100", "category, 100 items", "ProductList", {"categoryId": category, "first": 100}, True
        ),
        Screen("search", "search", "Search", {"keyword": f.keyword}, member=True),
        Screen(
            "product", "product detail", "ProductDetail", {"id": encode_id("Product", f.product_id)}, True
        ),
        Screen("cart", "cart (10 lines)", "Cart", {}, member=True),
        Screen("orders", "order list", "MyOrders", {}, member=True),
    ]


def checkout_preview(f: Fixtures) -> Screen:
    """The checkout preview of the bench member's cart (the ERP target)."""
    variables = {"input": {"addressId": encode_id("Address", f.address_id), "source": "CART"}}
    return Screen("checkout_preview", "checkout preview", "CheckoutPreview", variables, member=True)
