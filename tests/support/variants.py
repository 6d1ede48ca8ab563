"""Another instance of the app over the session database, with some settings changed (modes, switches)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx

from bff.app import create_app
from bff.context import Services
from bff.settings import Settings
from tests.support.api import Api


@dataclass
class Variant:
    """The variant's HTTP client, the screen-level Api over it and its services (cache, settings)."""

    client: httpx.AsyncClient
    api: Api
    services: Services


@asynccontextmanager
async def variant(base: Settings, **changes: Any) -> AsyncIterator[Variant]:
    """Run the app with base settings plus changes, under its own cache prefix."""
    settings = replace(base, cache_prefix=f"bff-test-{uuid.uuid4().hex[:8]}:", **changes)
    application = create_app(settings, manage_database=False)
    async with application.router.lifespan_context(application):
        services: Services = application.state.services
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://bff.test") as client:
            yield Variant(client, Api(client), services)
        await services.cache.clear()
