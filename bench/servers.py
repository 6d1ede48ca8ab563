"""Processes the benchmark starts and stops: the variants, a private Redis, the simulators."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

SERVER_CPU = "1"  # the server under test gets one core of its own ...
LOAD_CPU = "0"  # ... and the load generator the other


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: Sequence[str], cpu: str) -> list[str]:
    """`command` pinned to `cpu` with taskset when the machine has more than one core."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpu, *command]
    return list(command)


@dataclass
class Process:
    """A started process and where its output goes."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; only this process."""
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def start(name: str, command: Sequence[str], env: dict[str, str], logs: Path) -> Process:
    """Start `command` with its output in logs/<name>.log."""
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
    return Process(name, process, log)


async def wait_http(url: str, process: Process, within: float = 60.0) -> None:
    """Until `url` answers anything over HTTP; fails with the log's tail if the process dies first."""
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while True:
            if process.process.returncode is not None:
                raise RuntimeError(
                    f"{process.name} exited:\n{process.log.read_text(errors='replace')[-3000:]}"
                )
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"{process.name} did not start:\n{process.log.read_text(errors='replace')[-3000:]}"
                )
            await asyncio.sleep(0.2)


@asynccontextmanager
async def redis_server(logs: Path) -> AsyncIterator[str]:
    """A private, memory-only Redis, so command counts include nobody else's traffic."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = await start("redis", command, dict(os.environ), logs)
    try:
        await wait_tcp(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        await process.stop()


async def wait_tcp(port: int, process: Process, within: float = 15.0) -> None:
    """Until something accepts connections on the port."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if process.process.returncode is not None or asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{process.name} did not start: see {process.log}") from None
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Simulators:
    erp: str
    crm: str
    wechat: str


@asynccontextmanager
async def simulators(logs: Path) -> AsyncIterator[Simulators]:
    """The ERP, CRM and WeChat simulators in one process (the BFF's upstreams)."""
    ports = [free_port() for _ in range(3)]
    command = [
        sys.executable,
        "-m",
        "integrations.simulators",
        "--erp-port",
        str(ports[0]),
        "--crm-port",
        str(ports[1]),
        "--wechat-port",
        str(ports[2]),
    ]
    process = await start("simulators", command, dict(os.environ), logs)
    try:
        for port in ports:
            await wait_tcp(port, process)
        yield Simulators(*(f"http://127.0.0.1:{p}" for p in ports))
    finally:
        await process.stop()


@dataclass(frozen=True)
class Variant:
    """One server under test: how to start it and what it is."""

    key: str
    description: str
    command: list[str]
    env: dict[str, str]
    cpu: str | None = SERVER_CPU  # None: unpinned, e.g. several workers sharing the machine


@asynccontextmanager
async def serve(variant: Variant, port: int, logs: Path) -> AsyncIterator[str]:
    """Run the variant pinned to the server core on `port`; yields its /graphql URL."""
    env = {**os.environ, **variant.env}
    command = [part.replace("{port}", str(port)) for part in variant.command]
    process = await start(variant.key, pinned(command, variant.cpu) if variant.cpu else command, env, logs)
    try:
        await wait_http(f"http://127.0.0.1:{port}/graphql", process)
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        await process.stop()
