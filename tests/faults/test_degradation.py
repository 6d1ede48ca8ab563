"""Upstreams down, screens up: a dead ERP leaves product, checkout and ordering on the stock mirror; a
CRM outage nulls the CRM fields only; a WeChat outage turns sign-in into a typed userError.

Complements tests/journey/test_order_journey.py (ERP answering 503 at checkout, CRM profile null)
with the harder failures: an ERP whose process is gone (connection refused) and WeChat down.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from bff.app import create_app
from bff.documents import operations
from bff.ids import encode_id
from bff.models.catalog import Sku
from bff.settings import load_settings
from integrations.simulators.crm import create_crm_app
from integrations.simulators.wechat import create_wechat_app
from tests.faults.support import free_port
from tests.support.factories import make_product
from tests.support.servers import serve_asgi

CRM_TOKEN = "faults-crm-token"
BUDGET_SECONDS = 3.0  # a dead upstream costs a screen at most its timeout, never a hang
ADDRESS = {"name": "韩梅梅", "phone": "13700002222", "province": "江苏省", "city": "南京市",
           "district": "玄武区", "detail": "中山路 2 号"}  # fmt: skip
VIEWER = """query Viewer { viewer { id nickname pointsBalance level { name }
  crmProfile { tags segment lifetimeValue { amount } } } }"""


@dataclass
class Rig:
    http: httpx.AsyncClient
    sims: httpx.AsyncClient
    wechat_url: str
    crm_url: str

    async def post(
        self, query: str, variables: dict[str, Any], token: str = "", name: str = ""
    ) -> dict[str, Any]:
        """POST a document; assert 200, no errors and an answer within the budget; return the body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": query, "variables": variables, **({"operationName": name} if name else {})}
        started = time.monotonic()
        response = await self.http.post("/graphql", json=body, headers=headers)
        assert time.monotonic() - started < BUDGET_SECONDS
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        assert "errors" not in answer, answer["errors"]
        return answer

    async def op(self, name: str, variables: dict[str, Any] | None = None, token: str = "") -> Any:
        return (await self.post(operations()[name], variables or {}, token, name))["data"]

    async def login(self) -> str:
        data = await self.op("Login", {"code": f"sim_deg{uuid.uuid4().hex[:10]}"})
        assert data["login"]["userErrors"] == []
        return str(data["login"]["token"])

    async def knobs(self, url: str, **values: Any) -> None:
        (await self.sims.post(f"{url}/_sim/config", json=values)).raise_for_status()


@pytest.fixture(scope="module")
async def rig(seeded: str) -> AsyncIterator[Rig]:
    async with (
        serve_asgi(create_wechat_app()) as wechat_url,
        serve_asgi(create_crm_app(CRM_TOKEN)) as crm_url,
        httpx.AsyncClient(timeout=10, trust_env=False) as sims,
    ):
        settings = replace(
            load_settings(),
            database_url=seeded,
            redis_url=None,
            cache_prefix=f"bff-degrade-{uuid.uuid4().hex[:8]}:",
            wechat_api_base_url=wechat_url,
            erp_base_url=f"http://127.0.0.1:{free_port()}",  # the ERP's process is gone: nothing listens
            crm_base_url=crm_url,
            crm_api_token=CRM_TOKEN,
            http_timeout_seconds=1.0,
        )
        app = create_app(settings, manage_database=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bff.test") as http:
                yield Rig(http, sims, wechat_url, crm_url)


async def test_erp_gone_product_checkout_and_ordering_use_the_mirror(rig: Rig) -> None:
    token = await rig.login()
    product, (sku,) = await make_product([(4_990, 7)])
    address_id = (await rig.op("SaveAddress", {"input": ADDRESS}, token))["saveAddress"]["address"]["id"]

    detail = (await rig.op("ProductDetail", {"id": encode_id("Product", product.id)}, token))["product"]
    assert detail["inStock"] is True and [s["stock"] for s in detail["skus"]] == [7]

    def buy(quantity: int) -> dict[str, Any]:
        lines = [{"skuId": encode_id("Sku", sku.id), "quantity": quantity}]
        return {
            "source": "BUY_NOW",
            "lines": lines,
            "addressId": address_id,
            "idempotencyKey": uuid.uuid4().hex,
        }

    preview = (await rig.op("CheckoutPreview", {"input": buy(2)}, token))["checkoutPreview"]
    assert preview["userErrors"] == [] and preview["summary"]["itemsTotal"]["amount"] == 9_980

    placed = (await rig.op("PlaceOrder", {"input": buy(2)}, token))["placeOrder"]
    assert placed["userErrors"] == [] and placed["order"]["status"] == "PENDING_PAYMENT"
    assert (await Sku.get(id=sku.id)).reserved == 2
    # The mirror still guards: 6 more than the 5 left is refused, not oversold.
    refused = (await rig.op("PlaceOrder", {"input": buy(6)}, token))["placeOrder"]
    assert refused["order"] is None and refused["userErrors"][0]["code"] == "OUT_OF_STOCK"
    assert (await Sku.get(id=sku.id)).reserved == 2


async def test_crm_down_nulls_the_crm_fields_and_keeps_the_rest(rig: Rig) -> None:
    token = await rig.login()
    await rig.knobs(rig.crm_url, down=True)
    try:
        viewer = (await rig.post(VIEWER, {}, token))["data"]["viewer"]
        center = await rig.op("MemberCenter", {}, token)
    finally:
        await rig.knobs(rig.crm_url, down=False)
    assert viewer["crmProfile"] is None
    assert viewer["id"] and viewer["nickname"] is not None and viewer["level"]["name"]
    assert center["viewer"]["id"] == viewer["id"] and center["viewer"]["orderCounts"] is not None


@pytest.mark.parametrize("fault", [{"down": True}, {"error_rate": 1.0}], ids=["down", "busy"])
async def test_wechat_unavailable_is_a_typed_login_error_not_a_500(rig: Rig, fault: dict[str, Any]) -> None:
    await rig.knobs(rig.wechat_url, **fault)
    try:
        login = (await rig.op("Login", {"code": f"sim_deg{uuid.uuid4().hex[:10]}"}))["login"]
    finally:
        await rig.knobs(rig.wechat_url, down=False, error_rate=0.0)
    assert login["token"] is None
    assert [e["code"] for e in login["userErrors"]] == ["WECHAT_UNAVAILABLE"]
    assert await rig.login()  # and it works again once WeChat is back
