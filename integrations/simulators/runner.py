"""Serve the ERP, CRM and WeChat (with WeChat Pay) simulators with uvicorn in one event loop until cancelled.

Used by `bff simulators`, `python -m integrations.simulators` and docker-compose.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator, Sequence

import uvicorn
from starlette.types import ASGIApp

from integrations.simulators.crm import create_crm_app
from integrations.simulators.erp import create_erp_app
from integrations.simulators.wechat import create_wechat_app
from integrations.simulators.wechatpay import WeChatPaySimConfig

logger = logging.getLogger("uvicorn.error")


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (our CLI, pytest)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing: several servers share one loop, and the host decides when they stop."""
        yield


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0 picks a free port); fails fast if the port is taken."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    # proto must say IPPROTO_TCP (socket.create_server leaves 0): asyncio only sets TCP_NODELAY on
    # such sockets, and without it every answer waits ~40 ms for Nagle and delayed ACKs.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


async def serve_apps(apps: Sequence[tuple[ASGIApp, socket.socket]], *, access_log: bool = False) -> None:
    """Serve each app on its socket until cancelled; then shut every server down gracefully."""
    servers = [
        EmbeddedServer(uvicorn.Config(app, lifespan="off", access_log=access_log, log_config=None))
        for app, _ in apps
    ]
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, (_, sock) in zip(servers, apps, strict=True)
    ]
    try:
        # Returns early only if a server stops by itself (a crash); cancellation lands here too.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.wait(tasks)
    for task in tasks:
        task.result()


async def serve_simulators(
    host: str = "127.0.0.1",
    erp_port: int = 8101,
    crm_port: int = 8102,
    wechat_port: int = 8103,
    erp_token: str = "dev-erp-token",
    crm_token: str = "dev-crm-token",
    *,
    wechat_pay: WeChatPaySimConfig | None = None,
    access_log: bool = False,
) -> None:
    """Run the three simulators until cancelled; raises OSError at once if a port is taken."""
    plan = [
        ("erp", create_erp_app(erp_token), erp_port),
        ("crm", create_crm_app(crm_token), crm_port),
        ("wechat", create_wechat_app(pay=wechat_pay), wechat_port),
    ]
    bound: list[tuple[ASGIApp, socket.socket]] = []
    try:
        for _, app, port in plan:
            bound.append((app, listen(host, port)))
    except OSError:
        for _, sock in bound:
            sock.close()
        raise
    for (name, _, _), (_, sock) in zip(plan, bound, strict=True):
        address, port = sock.getsockname()[:2]
        logger.info("%s simulator on http://%s:%d", name, address, port)
    await serve_apps(bound, access_log=access_log)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; tokens default to ERP_API_TOKEN / CRM_API_TOKEN like the BFF's settings."""
    parser = argparse.ArgumentParser(prog="python -m integrations.simulators", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--erp-port", type=int, default=8101)
    parser.add_argument("--crm-port", type=int, default=8102)
    parser.add_argument("--wechat-port", type=int, default=8103)
    parser.add_argument("--erp-token", default=os.environ.get("ERP_API_TOKEN") or "dev-erp-token")
    parser.add_argument("--crm-token", default=os.environ.get("CRM_API_TOKEN") or "dev-crm-token")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser.parse_args(argv)


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    if task is not None:
        # Ctrl+C and docker stop both end in a graceful shutdown (SIGINT too, in case it arrives
        # ignored, as it does for background jobs of a non-interactive shell).
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    await serve_simulators(
        args.host,
        args.erp_port,
        args.crm_port,
        args.wechat_port,
        args.erp_token,
        args.crm_token,
        # The same WECHAT_PAY_* variables as the BFF reads, so merchant id and APIv3 key agree.
        wechat_pay=WeChatPaySimConfig.from_env(),
        access_log=args.access_log,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m integrations.simulators`."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(_serve_until_signalled(args))


if __name__ == "__main__":
    main()
