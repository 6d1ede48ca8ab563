"""The whole journey over real HTTP against the simulators, and the ways it can go wrong."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bff.ids import decode_id, encode_id
from bff.models.catalog import Product, Sku
from bff.models.member import Member, PointsLedger
from bff.models.order import Order, Payment, Refund
from bff.models.outbox import OutboxMessage
from bff.settings import DEV_KEYS_DIR
from integrations.simulators.erp_webhooks import erp_event, send_events
from tests.journey.conftest import Shop

ADDRESS = {
    "name": "王小明",
    "phone": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "浦东新区",
    "detail": "世纪大道 100 号",
}
ORDER_STATUS = "query($id: ID!) { order(id: $id) { status paidAt timeline { status note } } }"


async def _sign_in(shop: Shop) -> str:
    data = await shop.op("Login", {"code": f"sim_j{uuid.uuid4().hex[:10]}"})
    token: str = data["login"]["token"]
    return token


async def _sku_in_stock(shop: Shop, quantity: int) -> Sku:
    """An on-shelf SKU with stock to spare, which the ERP simulator knows too."""
    product = await Product.filter(on_shelf=True, in_stock=True, price_fen__gte=5_000).order_by("id").first()
    assert product is not None
    sku = await Sku.filter(product_id=product.id, stock__gte=quantity + 20).order_by("id").first()
    assert sku is not None
    await shop.sims.post(
        f"{shop.erp_url}/_sim/inventory", json={"items": [{"sku_code": sku.code, "available": sku.stock}]}
    )
    return sku


async def _cart_and_address(shop: Shop, token: str, sku: Sku, quantity: int) -> str:
    saved = await shop.op("SaveAddress", {"input": ADDRESS}, token)
    added = await shop.op("AddToCart", {"skuId": encode_id("Sku", sku.id), "quantity": quantity}, token)
    assert added["addToCart"]["userErrors"] == []
    address_id: str = saved["saveAddress"]["address"]["id"]
    return address_id


async def _place(shop: Shop, token: str, address_id: str, key: str | None = None) -> dict[str, Any]:
    data = await shop.op(
        "PlaceOrder",
        {"input": {"source": "CART", "addressId": address_id, "idempotencyKey": key or uuid.uuid4().hex}},
        token,
    )
    assert data["placeOrder"]["userErrors"] == [], data
    order: dict[str, Any] = data["placeOrder"]["order"]
    return order


def _verify_pay_sign(params: dict[str, str]) -> None:
    """paySign is RSA-SHA256 by the merchant key over appId, timeStamp, nonceStr and package."""
    public = serialization.load_pem_public_key((DEV_KEYS_DIR / "merchant_public_key.pem").read_bytes())
    assert isinstance(public, rsa.RSAPublicKey)
    message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    public.verify(base64.b64decode(params["paySign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256())


async def _wait_for(check: Any, seconds: float = 5.0) -> None:
    """Poll a condition that another server makes true (a notification in flight); bounded."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_browse_to_refund_journey(shop: Shop) -> None:
    first_message = await OutboxMessage.all().order_by("-id").first()
    token = await _sign_in(shop)
    member = await Member.get(
        id=decode_id((await shop.op("MemberCenter", {}, token))["viewer"]["id"], "Member")
    )
    sku = await _sku_in_stock(shop, 2)
    address_id = await _cart_and_address(shop, token, sku, 2)
    stock_before = (await Sku.get(id=sku.id)).stock

    preview = (
        await shop.op("CheckoutPreview", {"input": {"source": "CART", "addressId": address_id}}, token)
    )["checkoutPreview"]
    assert preview["userErrors"] == []
    payable = preview["summary"]["payable"]["amount"]
    assert preview["lines"][0]["quantity"] == 2

    key = uuid.uuid4().hex
    order = await _place(shop, token, address_id, key)
    assert order["status"] == "PENDING_PAYMENT" and order["payable"]["amount"] == payable
    assert (await _place(shop, token, address_id, key))["id"] == order["id"]  # a retry is the same order
    assert (await shop.op("Cart", {}, token))["cart"]["items"] == []
    assert (await Sku.get(id=sku.id)).reserved >= 2

    pay = (await shop.op("PayOrder", {"orderId": order["id"]}, token))["payOrder"]
    assert pay["userErrors"] == []
    params = pay["payParams"]
    assert params["signType"] == "RSA" and params["package"].startswith("prepay_id=")
    _verify_pay_sign({**params, "appId": shop.services.settings.wechat_appid})

    paid = await shop.sims.post(f"{shop.wechat_url}/_sim/pay/{order['orderNo']}", json={})
    assert paid.status_code == 200 and paid.json()["deliveries"][0]["acknowledged"], paid.text
    detail = (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]
    assert detail["status"] == "PAID" and detail["paidAt"]
    assert [t["status"] for t in detail["timeline"]] == ["PENDING_PAYMENT", "PAID"]
    assert "PAY" not in detail["availableActions"] and "REQUEST_AFTER_SALE" in detail["availableActions"]
    sku_after = await Sku.get(id=sku.id)
    assert sku_after.stock == stock_before - 2
    earned = payable // 100
    assert (await Member.get(id=member.id)).points_balance == member.points_balance + earned

    await shop.drain()
    erp_orders = {
        o["received"]["order_no"]: o["received"] for o in (await shop.sim_state(shop.erp_url))["orders"]
    }
    assert erp_orders[order["orderNo"]]["payable_fen"] == payable
    messages = (await shop.sim_state(shop.wechat_url))["messages"]
    assert any(m["touser"] == member.openid for m in messages)

    secret = shop.services.settings.erp_webhook_secret
    tracking = f"SF{uuid.uuid4().hex[:10].upper()}"
    shipped_at = datetime.now(UTC)
    response = await send_events(
        shop.bff,
        f"{shop.bff_url}/webhooks/erp",
        [
            erp_event(
                "shipment.created",
                {"order_no": order["orderNo"], "carrier": "顺丰速运", "tracking_no": tracking,
                 "shipped_at": shipped_at.isoformat()},
                version=1,
            ),
            erp_event(
                "shipment.tracking",
                {"tracking_no": tracking, "events": [
                    {"at": shipped_at.isoformat(), "description": "已揽收", "location": "上海"}]},
                version=2,
            ),
        ],
        secret,
    )  # fmt: skip
    assert response.status_code == 200 and response.json()["accepted"] == 2, response.text
    await _wait_for(lambda: _status_is(shop, token, order["id"], "SHIPPED"))
    detail = (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]
    assert detail["shipments"][0]["trackingNo"] == tracking
    assert detail["shipments"][0]["events"][0]["description"] == "已揽收"

    response = await send_events(
        shop.bff,
        f"{shop.bff_url}/webhooks/erp",
        [erp_event("order.delivered", {"order_no": order["orderNo"], "delivered_at": shipped_at.isoformat()},
                   version=1)],
        secret,
    )  # fmt: skip
    assert response.status_code == 200
    await _wait_for(lambda: _status_is(shop, token, order["id"], "DELIVERED"))
    auto_confirm = await OutboxMessage.get(dedupe_key=f"auto-confirm:{decode_id(order['id'], 'Order')}")
    assert auto_confirm.run_at > datetime.now(UTC) + timedelta(days=6)

    confirmed = (await shop.op("ConfirmReceipt", {"id": order["id"]}, token))["confirmReceipt"]
    assert confirmed == {"order": {"id": order["id"], "status": "COMPLETED"}, "userErrors": []}

    order_pk = decode_id(order["id"], "Order")
    assert order_pk is not None
    line = (await Order.get(id=order_pk).prefetch_related("lines")).lines[0]  # type: ignore[attr-defined]
    after = (
        await shop.op(
            "RequestAfterSale",
            {"input": {"orderId": order["id"], "type": "RETURN_AND_REFUND", "reason": "尺码不合适",
                       "lines": [{"orderLineSkuId": encode_id("Sku", sku.id), "quantity": 1}]}},
            token,
        )
    )["requestAfterSale"]  # fmt: skip
    assert after["userErrors"] == []
    refund_amount = after["afterSale"]["amount"]["amount"]
    assert refund_amount == line.paid_fen // 2  # one of two units: half the line's allocation
    await shop.drain()

    async def refunded() -> bool:
        return await Refund.filter(order_id=order_pk, status="SUCCESS").exists()

    await _wait_for(refunded)
    state = await shop.sim_state(shop.erp_url)
    assert any(r["received"]["order_no"] == order["orderNo"] for r in state["returns"])
    detail = (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]
    assert detail["afterSales"][0]["status"] == "REFUNDED"
    assert (await Order.get(id=order_pk)).refunded_fen == refund_amount
    ledger_sum = sum(e.delta for e in await PointsLedger.filter(member_id=member.id))
    assert ledger_sum == (await Member.get(id=member.id)).points_balance
    await shop.drain()
    sent = [m for m in (await shop.sim_state(shop.wechat_url))["messages"] if m["touser"] == member.openid]
    assert [m["template_id"] for m in sent] == ["payment", "shipment", "refund"]
    ours = OutboxMessage.filter(id__gt=first_message.id if first_message else 0)
    assert await ours.filter(status="DONE").count() >= 6  # push, messages, return, refund, closes…
    assert not await ours.filter(status="DEAD").exists()


async def _status_is(shop: Shop, token: str, order_id: str, status: str) -> bool:
    data = await shop.op("OrderDetail", {"id": order_id}, token)
    return bool(data["order"]["status"] == status)


async def test_double_submit_places_one_order(shop: Shop) -> None:
    token = await _sign_in(shop)
    sku = await _sku_in_stock(shop, 1)
    address_id = await _cart_and_address(shop, token, sku, 1)
    key = uuid.uuid4().hex
    first, second = await asyncio.gather(
        _place(shop, token, address_id, key), _place(shop, token, address_id, key)
    )
    assert first["id"] == second["id"]
    assert await Order.filter(idempotency_key=key).count() == 1


async def test_erp_down_at_checkout_falls_back_to_the_mirror(shop: Shop) -> None:
    token = await _sign_in(shop)
    sku = await _sku_in_stock(shop, 1)
    address_id = await _cart_and_address(shop, token, sku, 1)
    await shop.sims.post(f"{shop.erp_url}/_sim/config", json={"down": True})
    try:
        order = await _place(shop, token, address_id)
    finally:
        await shop.sims.post(f"{shop.erp_url}/_sim/config", json={"down": False})
    assert order["status"] == "PENDING_PAYMENT"


async def test_erp_reporting_less_stock_refuses_and_changes_nothing(shop: Shop) -> None:
    token = await _sign_in(shop)
    sku = await _sku_in_stock(shop, 3)
    address_id = await _cart_and_address(shop, token, sku, 3)
    await shop.sims.post(
        f"{shop.erp_url}/_sim/inventory", json={"items": [{"sku_code": sku.code, "available": 2}]}
    )
    before = await Sku.get(id=sku.id)
    data = await shop.op("PlaceOrder", {"input": {"source": "CART", "addressId": address_id}}, token)
    assert data["placeOrder"]["order"] is None
    assert data["placeOrder"]["userErrors"][0]["code"] == "OUT_OF_STOCK"
    assert (await Sku.get(id=sku.id)).reserved == before.reserved
    assert len((await shop.op("Cart", {}, token))["cart"]["items"]) == 1


async def test_forged_and_duplicate_payment_notifications(shop: Shop) -> None:
    token = await _sign_in(shop)
    sku = await _sku_in_stock(shop, 1)
    order = await _place(shop, token, await _cart_and_address(shop, token, sku, 1))
    await shop.op("PayOrder", {"orderId": order["id"]}, token)
    held = await shop.sims.post(f"{shop.wechat_url}/_sim/pay/{order['orderNo']}", json={"deliver": False})
    note = held.json()["notification"]
    url = f"{shop.bff_url}/webhooks/wechatpay"

    forged = note["body"].replace('"TRANSACTION.SUCCESS"', '"TRANSACTION.SUCCESS" ')
    assert (await shop.bff.post(url, content=forged, headers=note["headers"])).status_code == 401
    assert (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]["status"] == "PENDING_PAYMENT"

    for _ in range(3):
        answer = await shop.bff.post(url, content=note["body"], headers=note["headers"])
        assert answer.status_code == 204
    order_pk = decode_id(order["id"], "Order")
    assert await Payment.filter(order_id=order_pk).count() == 1
    assert (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]["status"] == "PAID"


async def test_a_tampered_amount_is_refused(shop: Shop) -> None:
    token = await _sign_in(shop)
    sku = await _sku_in_stock(shop, 1)
    order = await _place(shop, token, await _cart_and_address(shop, token, sku, 1))
    await shop.op("PayOrder", {"orderId": order["id"]}, token)
    sent = await shop.sims.post(f"{shop.wechat_url}/_sim/pay/{order['orderNo']}", json={"amount": 1})
    assert sent.json()["deliveries"][0]["status"] == 400
    assert (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]["status"] == "PENDING_PAYMENT"


async def test_unpaid_orders_close_and_a_late_payment_is_refunded(shop: Shop) -> None:
    token = await _sign_in(shop)
    sku = await _sku_in_stock(shop, 1)
    order = await _place(shop, token, await _cart_and_address(shop, token, sku, 1))
    held = (await Sku.get(id=sku.id)).reserved
    await shop.op("PayOrder", {"orderId": order["id"]}, token)
    order_pk = decode_id(order["id"], "Order")
    deadline = (await Order.get(id=order_pk)).pay_deadline
    assert deadline is not None

    for _ in range(20):  # other tests' due messages may come first in the batch
        if not await shop.worker.run_once(now=deadline + timedelta(seconds=1)):
            break
    closed = (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]
    assert closed["status"] == "CLOSED"
    # Other tests' unpaid orders on this SKU may close in the same run: at least ours is released.
    assert (await Sku.get(id=sku.id)).reserved <= held - 1

    paid = await shop.sims.post(f"{shop.wechat_url}/_sim/pay/{order['orderNo']}", json={})
    assert paid.json()["deliveries"][0]["acknowledged"]
    assert (await Payment.get(order_id=order_pk)).status == "REFUNDING"
    await shop.drain()

    async def refunded() -> bool:
        return await Refund.filter(order_id=order_pk, status="SUCCESS").exists()

    await _wait_for(refunded)
    assert (await shop.op("OrderDetail", {"id": order["id"]}, token))["order"]["status"] == "CLOSED"


async def test_someone_elses_order_is_not_found(shop: Shop) -> None:
    owner = await _sign_in(shop)
    other = await _sign_in(shop)
    sku = await _sku_in_stock(shop, 1)
    order = await _place(shop, owner, await _cart_and_address(shop, owner, sku, 1))
    assert (await shop.op("OrderDetail", {"id": order["id"]}, other))["order"] is None
    for name, variables in (
        ("PayOrder", {"orderId": order["id"]}),
        ("CancelOrder", {"id": order["id"]}),
        ("ConfirmReceipt", {"id": order["id"]}),
    ):
        payload = next(iter((await shop.op(name, variables, other)).values()))
        assert payload["userErrors"][0]["code"] == "NOT_FOUND", (name, payload)
    assert (await shop.op("OrderDetail", {"id": order["id"]}, owner))["order"]["status"] == "PENDING_PAYMENT"


async def test_new_members_reach_the_crm_and_its_profile_shows_on_the_member(shop: Shop) -> None:
    token = await _sign_in(shop)
    viewer = (await shop.op("MemberCenter", {}, token))["viewer"]
    member_id = decode_id(viewer["id"], "Member")
    await shop.drain()
    upserts = (await shop.sim_state(shop.crm_url))["upserts"]
    assert any(u["member_ref"] == f"m_{member_id}" for u in upserts)

    query = "{ viewer { crmProfile { tags segment lifetimeValue { amount } } } }"
    response = await shop.bff.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    profile = response.json()["data"]["viewer"]["crmProfile"]
    assert profile is not None and profile["segment"]

    other = await _sign_in(shop)
    await shop.sims.post(f"{shop.crm_url}/_sim/config", json={"down": True})
    try:
        response = await shop.bff.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {other}"}
        )
    finally:
        await shop.sims.post(f"{shop.crm_url}/_sim/config", json={"down": False})
    body = response.json()
    assert "errors" not in body and body["data"]["viewer"]["crmProfile"] is None
