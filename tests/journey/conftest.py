"""The whole system on loopback: the BFF over real HTTP with the WeChat (+Pay), ERP and CRM simulators."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bff.app import create_app
from bff.context import Services
from bff.documents import operations
from bff.settings import load_settings
from bff.worker import Worker
from integrations.simulators.crm import create_crm_app
from integrations.simulators.erp import create_erp_app
from integrations.simulators.runner import listen
from integrations.simulators.wechat import create_wechat_app
from integrations.simulators.wechatpay import WeChatPaySimConfig
from tests.support.servers import serve_asgi

ERP_TOKEN = "journey-erp-token"
CRM_TOKEN = "journey-crm-token"


@dataclass
class Shop:
    """Everything a journey test talks to."""

    bff: httpx.AsyncClient  # the mini-program's view: real HTTP to the BFF
    sims: httpx.AsyncClient  # admin calls to the simulators
    bff_url: str
    wechat_url: str
    erp_url: str
    crm_url: str
    services: Services
    worker: Worker

    async def op(self, name: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        """Send a contract operation by name; assert no errors; return its data."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": operations()[name], "operationName": name, "variables": variables or {}}
        response = await self.bff.post("/graphql", json=body, headers=headers)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    async def sim_state(self, url: str) -> Any:
        """What a simulator has received."""
        return (await self.sims.get(f"{url}/_sim/state")).json()

    async def drain(self) -> None:
        """Run the outbox until nothing is due (retries included)."""
        for _ in range(20):
            if not await self.worker.run_once():
                return


@pytest.fixture(scope="session")
async def shop(seeded: str) -> AsyncIterator[Shop]:
    async with (
        serve_asgi(create_wechat_app(pay=WeChatPaySimConfig())) as wechat_url,
        serve_asgi(create_erp_app(ERP_TOKEN)) as erp_url,
        serve_asgi(create_crm_app(CRM_TOKEN)) as crm_url,
    ):
        sock = listen("127.0.0.1", 0)
        bff_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = replace(
            load_settings(),
            database_url=seeded,
            redis_url=os.environ.get("REDIS_URL") or None,
            cache_prefix=f"bff-journey-{uuid.uuid4().hex[:8]}:",
            wechat_api_base_url=wechat_url,
            wechat_pay_base_url=wechat_url,
            wechat_pay_notify_url=f"{bff_url}/webhooks/wechatpay",
            erp_base_url=erp_url,
            erp_api_token=ERP_TOKEN,
            crm_base_url=crm_url,
            crm_api_token=CRM_TOKEN,
        )
        app: Starlette = create_app(settings, manage_database=False)
        async with (
            serve_asgi(app, sock=sock) as url,
            httpx.AsyncClient(base_url=url, timeout=10, trust_env=False) as bff,
            httpx.AsyncClient(timeout=10, trust_env=False) as sims,
        ):
            services: Services = app.state.services
            yield Shop(
                bff=bff,
                sims=sims,
                bff_url=url,
                wechat_url=wechat_url,
                erp_url=erp_url,
                crm_url=crm_url,
                services=services,
                worker=Worker(services, worker_id="journey"),
            )
            await services.cache.clear()
