"""Serve an ASGI app over real HTTP on loopback inside the test's own event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from integrations.simulators.runner import EmbeddedServer, listen


@asynccontextmanager
async def serve_asgi(
    app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "auto", sock: socket.socket | None = None
) -> AsyncIterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 (a free port, or `sock`) as a task; yield its URL, then stop."""
    sock = sock or listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan=lifespan, access_log=False, log_config=None, log_level="warning")
    server = EmbeddedServer(config)
    task = asyncio.create_task(_serve(server, sock))
    try:
        while not server.started:
            if task.done():
                task.result()  # surfaces a startup failure
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        # uvicorn exits the process when the app's lifespan startup fails; a test should just fail.
        raise RuntimeError(f"uvicorn exited with {exc.code}") from None
