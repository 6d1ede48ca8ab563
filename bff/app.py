"""create_app: the Starlette application, its routes and what lives as long as the process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from tortoise import connections

from bff import log_privacy
from bff.context import Services
from bff.dashboard import routes as dashboard_routes
from bff.db import close_db, init_db
from bff.graphql_http import GraphQLEndpoint
from bff.graphql_ws import GraphQLWebSocket, close_progress_hubs
from bff.request_guard import Limits
from bff.runtime import build_services
from bff.settings import Settings, load_settings
from bff.worker import Worker
from integrations.erp_webhook import erp_webhook
from integrations.wechatpay_webhook import wechatpay_webhook
from schema.build import build_schema

log = logging.getLogger("bff")


async def healthz(_: Request) -> JSONResponse:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers; the cache's state is reported but does not gate readiness."""
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        await connections.get("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", whatever the driver raised
        log.warning("readyz: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    checks["cache"] = "ok" if await services.cache.ping() else "unreachable"
    # Without Redis the BFF still serves from the database (misses, refused flash sales): taking every
    # replica out of rotation over a cache outage would turn a degradation into a full outage.
    ready = checks["database"] == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503
    )


def _run_worker(services: Services) -> Callable[[], Awaitable[None]]:
    """Start the outbox worker in this process; the returned callback stops it after its batch."""
    worker = Worker(services)
    task = asyncio.create_task(worker.run())

    async def stop() -> None:
        worker.stop()
        await task

    return stop


def create_app(settings: Settings | None = None, *, manage_database: bool = True) -> Starlette:
    """The ASGI app. With manage_database=False the caller owns Tortoise (tests share one database)."""
    settings = settings or load_settings()
    settings.check()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log_privacy.install()  # here, not at import: each uvicorn worker process starts its own
        async with AsyncExitStack() as stack:
            if manage_database:
                await init_db(settings.database_url)
                stack.push_async_callback(close_db)
            services = await build_services(settings, stack)
            stack.push_async_callback(close_progress_hubs, settings)
            app.state.services = services
            endpoint.attach(services)
            if settings.inprocess_worker:
                stack.push_async_callback(_run_worker(services))
            yield

    schema = build_schema(
        max_depth=settings.max_query_depth,
        naive=settings.naive,
        max_cost=settings.max_query_cost,
        limits=Limits() if settings.rate_limits else None,
        introspection=settings.introspection,
    )
    endpoint = GraphQLEndpoint(schema)
    return Starlette(
        debug=settings.debug,
        routes=[
            Route("/graphql", endpoint.handle, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", GraphQLWebSocket(schema)),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/webhooks/wechatpay", wechatpay_webhook, methods=["POST"]),
            Route("/webhooks/erp", erp_webhook, methods=["POST"]),
            *dashboard_routes,
            Mount("/static", app=StaticFiles(packages=[("bff", "static")]), name="static"),
        ],
        lifespan=lifespan,
    )
