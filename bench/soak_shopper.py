"""One simulated shopper of the soak (`bench/soak.py`) and the tally every shopper writes into.

A shopper signs in through the WeChat simulator, then loops until the deadline: home → category →
product → add to cart → checkout preview → place order → pay (the WeChat Pay simulator posts the
signed notification to the BFF), now and then trying the flash sale instead.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bff.documents import operations
from bff.ids import decode_id, encode_id

CATALOG_SCREENS = ("Home", "ProductList", "ProductDetail")
PLACE_ATTEMPTS = 4  # a failed placeOrder is retried with the same idempotency key, as the app does
PAY_DELIVERIES = 5  # WeChat Pay redelivers a notification the BFF did not acknowledge
FLASH_SHARE = 0.15  # of loops that go for the flash sale instead of the cart
ADDRESS = {"name": "压测用户", "phone": "13600001111", "province": "广东省", "city": "深圳市",
           "district": "南山区", "detail": "科技园 1 号"}  # fmt: skip


@dataclass
class Tally:
    """Everything the shoppers saw, per screen and per order."""

    requests: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)  # HTTP 5xx
    transport_errors: Counter[str] = field(default_factory=Counter)  # no HTTP answer at all
    graphql_errors: Counter[str] = field(default_factory=Counter)  # 200 with top-level errors, other 4xx
    user_errors: Counter[str] = field(default_factory=Counter)  # "screen:CODE"
    placed: dict[str, int] = field(default_factory=dict)  # idempotency key -> order id, as answered
    unanswered_keys: set[str] = field(default_factory=set)  # placeOrder never answered for these keys
    flash: Counter[str] = field(default_factory=Counter)  # ORDER or the userError code
    flash_units: int = 0  # units the shoppers were told they bought
    payers: set[str] = field(default_factory=set)  # order numbers the payer paid in the simulator
    notified: set[str] = field(default_factory=set)  # order numbers whose notification the BFF acknowledged
    unacknowledged: int = 0  # notifications still refused after every redelivery


@dataclass(frozen=True)
class Plan:
    """What the shoppers browse and buy."""

    bff_url: str
    wechat_url: str
    category_ids: list[int]
    products: list[tuple[int, int]]  # (product id, sku id)
    flash_item_id: int
    flash_sku_id: int
    run: str
    deadline: float


class Shopper:
    """One member's session against the BFF."""

    def __init__(self, number: int, plan: Plan, http: httpx.AsyncClient, tally: Tally) -> None:
        self.number = number
        self.plan = plan
        self.http = http
        self.tally = tally
        self.rng = random.Random(number)
        self.token = ""
        self.address_id = ""

    async def call(self, name: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """Send a contract operation; tally the outcome; the data, or None when it failed."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = {"query": operations()[name], "operationName": name, "variables": variables}
        self.tally.requests[name] += 1
        try:
            response = await self.http.post(f"{self.plan.bff_url}/graphql", json=body, headers=headers)
        except httpx.TransportError:
            self.tally.transport_errors[name] += 1
            return None
        if response.status_code >= 500:
            self.tally.server_errors[name] += 1
            return None
        payload = response.json()
        if response.status_code != 200 or payload.get("errors"):
            self.tally.graphql_errors[name] += 1
            return None
        data: dict[str, Any] = payload["data"]
        for value in data.values():
            for error in (value or {}).get("userErrors", []) if isinstance(value, dict) else []:
                self.tally.user_errors[f"{name}:{error['code']}"] += 1
        return data

    async def run(self) -> None:
        """Sign in, then shop until the deadline."""
        code = f"sim_soak{self.plan.run}s{self.number}"
        while time.monotonic() < self.plan.deadline and not self.address_id:
            login = await self.call("Login", {"code": code})
            if login and login["login"]["token"]:
                self.token = login["login"]["token"]
                saved = await self.call("SaveAddress", {"input": ADDRESS})
                if saved and saved["saveAddress"]["address"]:
                    self.address_id = saved["saveAddress"]["address"]["id"]
            if not self.address_id:
                await asyncio.sleep(0.5)
        while time.monotonic() < self.plan.deadline:
            if self.rng.random() < FLASH_SHARE:
                await self.flash_attempt()
            else:
                await self.shop_once()

    async def shop_once(self) -> None:
        """Home, a category, a product, into the cart, preview, order, pay."""
        await self.call("Home", {})
        await self.call(
            "ProductList", {"categoryId": encode_id("Category", self.rng.choice(self.plan.category_ids))}
        )
        product_id, sku_id = self.rng.choice(self.plan.products)
        await self.call("ProductDetail", {"id": encode_id("Product", product_id)})
        added = await self.call("AddToCart", {"skuId": encode_id("Sku", sku_id), "quantity": 1})
        if not added or added["addToCart"]["userErrors"]:
            return
        order_input = {"source": "CART", "addressId": self.address_id}
        await self.call("CheckoutPreview", {"input": order_input})
        order = await self.place(order_input)
        if order is None:
            await self.empty_cart()
            return
        await self.pay(order)

    async def flash_attempt(self) -> None:
        """One unit of the flash-sale item, bought now."""
        order_input = {
            "source": "BUY_NOW",
            "addressId": self.address_id,
            "lines": [{"skuId": encode_id("Sku", self.plan.flash_sku_id), "quantity": 1}],
            "campaign": {"flashSaleItemId": encode_id("FlashSaleItem", self.plan.flash_item_id)},
        }
        order = await self.place(order_input, flash=True)
        if order is not None:
            self.tally.flash_units += 1
            await self.pay(order)

    async def place(self, order_input: dict[str, Any], *, flash: bool = False) -> dict[str, Any] | None:
        """placeOrder, retried with the same idempotency key while it fails without an answer."""
        key = uuid.uuid4().hex
        for attempt in range(PLACE_ATTEMPTS):
            data = await self.call("PlaceOrder", {"input": {**order_input, "idempotencyKey": key}})
            if data is not None:
                placed = data["placeOrder"]
                if placed["order"] is None:
                    if flash:
                        self.tally.flash[placed["userErrors"][0]["code"]] += 1
                    return None
                order: dict[str, Any] = placed["order"]
                self.tally.placed[key] = _order_pk(order["id"])
                if flash:
                    self.tally.flash["ORDER"] += 1
                return order
            await asyncio.sleep(0.5 * (attempt + 1))
        self.tally.unanswered_keys.add(key)
        if flash:
            self.tally.flash["NO_ANSWER"] += 1
        return None

    async def pay(self, order: dict[str, Any]) -> None:
        """payOrder; the payer pays in the simulator; its signed notification is delivered to the BFF.

        Delivery is done here rather than by the simulator so that it can be redelivered as WeChat Pay
        does (same body, until a 2xx), whatever the BFF answered or failed to answer the first time.
        """
        paid = await self.call("PayOrder", {"orderId": order["id"]})
        if not paid or paid["payOrder"]["userErrors"]:
            return
        try:
            held = await self.http.post(
                f"{self.plan.wechat_url}/_sim/pay/{order['orderNo']}", json={"deliver": False}
            )
            note = held.json()["notification"]
        except (httpx.TransportError, KeyError, ValueError):
            self.tally.transport_errors["payer (simulator)"] += 1
            return
        self.tally.payers.add(order["orderNo"])
        screen = "wechatpay-notification"
        for attempt in range(PAY_DELIVERIES):
            self.tally.requests[screen] += 1
            try:
                answer = await self.http.post(
                    f"{self.plan.bff_url}/webhooks/wechatpay", content=note["body"], headers=note["headers"]
                )
            except httpx.TransportError:
                self.tally.transport_errors[screen] += 1
            else:
                if answer.status_code in (200, 204):
                    self.tally.notified.add(order["orderNo"])
                    return
                if answer.status_code >= 500:
                    self.tally.server_errors[screen] += 1
                else:
                    self.tally.graphql_errors[screen] += 1
            await asyncio.sleep(1.0 * (attempt + 1))
        self.tally.unacknowledged += 1

    async def empty_cart(self) -> None:
        """Drop what a refused order left in the cart, so the next loop starts clean."""
        cart = await self.call("Cart", {})
        if cart and cart["cart"]["items"]:
            await self.call("RemoveCartItems", {"itemIds": [item["id"] for item in cart["cart"]["items"]]})


def _order_pk(global_id: str) -> int:
    pk = decode_id(global_id, "Order")
    if pk is None:
        raise ValueError(f"not an Order id: {global_id}")
    return pk
