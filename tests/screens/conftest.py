"""Screen fixtures: the seeded database, the app over ASGI, the WeChat simulator over real HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from bff.app import create_app
from bff.cache import Cache
from bff.context import Services
from bff.settings import load_settings
from integrations.simulators.wechat import create_wechat_app
from tests.support.api import Api
from tests.support.servers import serve_asgi


@pytest.fixture(scope="session")
async def wechat_url() -> AsyncIterator[str]:
    async with serve_asgi(create_wechat_app()) as url:
        yield url


@pytest.fixture(scope="session")
async def app(seeded: str, wechat_url: str) -> AsyncIterator[Starlette]:
    settings = replace(
        load_settings(),
        database_url=seeded,
        redis_url=os.environ.get("REDIS_URL") or None,
        cache_prefix=f"bff-test-{uuid.uuid4().hex[:8]}:",
        wechat_api_base_url=wechat_url,
    )
    application = create_app(settings, manage_database=False)
    async with application.router.lifespan_context(application):
        yield application
        await application.state.services.cache.clear()


@pytest.fixture(scope="session")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bff.test") as http:
        yield http


@pytest.fixture(scope="session")
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture
def services(app: Starlette) -> Services:
    return app.state.services  # type: ignore[no-any-return]


@pytest.fixture
def cache(services: Services) -> Cache:
    return services.cache


@pytest.fixture(scope="session")
async def alice(api: Api) -> str:
    """Token of the seeded 黄金 member with a cart, points, coupons and orders."""
    return await api.login("alice")


@pytest.fixture
async def shopper(api: Api) -> str:
    """Token of a brand-new member (a fresh one per test)."""
    return await api.login(f"t{uuid.uuid4().hex[:12]}")
