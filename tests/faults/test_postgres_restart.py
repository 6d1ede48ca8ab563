"""PostgreSQL restarted under a running `bff serve`: requests fail fast while it is down and succeed
again once it is back, served by the same process (no restart of the BFF)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bff.documents import operations
from integrations.simulators.wechat import create_wechat_app
from tests.faults.support import Bff, PrivatePostgres, child_env, free_port, run_bff, wait_http
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.skipif(
    not PrivatePostgres.available(), reason="needs the PostgreSQL server binaries for a private cluster"
)

FAIL_FAST_SECONDS = 5.0  # an outage must answer within this; a hang would hit the client's 30 s
RECOVERY_SECONDS = 20.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@dataclass
class Server:
    url: str
    bff: Bff
    http: httpx.AsyncClient

    async def call(self, name: str, token: str = "", **variables: Any) -> tuple[int, Any, float]:
        """(HTTP status, JSON body, seconds) of a contract operation."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": operations()[name], "operationName": name, "variables": variables}
        started = time.monotonic()
        response = await self.http.post("/graphql", json=body, headers=headers)
        return response.status_code, response.json(), time.monotonic() - started


@pytest.fixture(scope="module")
async def server(
    postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    async with serve_asgi(create_wechat_app()) as wechat_url:
        env = child_env(DATABASE_URL=postgres.url, WECHAT_API_BASE_URL=wechat_url, BFF_RATE_LIMITS="off")
        await asyncio.to_thread(run_bff, env, "migrate")
        await asyncio.to_thread(run_bff, env, "seed", "--demo", "--products", "30")
        port = free_port()
        log: Path = tmp_path_factory.mktemp("pg-restart") / "bff.log"
        bff = Bff(["serve", "--port", str(port), "--no-access-log"], env, log)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_http(f"{url}/healthz", bff)
            async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as http:
                yield Server(url, bff, http)
        finally:
            bff.signal(signal.SIGTERM)
            try:
                bff.wait(15)
            finally:
                bff.close()


async def test_requests_fail_fast_during_the_outage_and_succeed_after_it(
    postgres: PrivatePostgres, server: Server
) -> None:
    status, body, _ = await server.call("Login", code=f"sim_pg{uuid.uuid4().hex[:10]}")
    assert status == 200 and body["data"]["login"]["userErrors"] == [], body
    token = body["data"]["login"]["token"]
    status, body, _ = await server.call("MemberCenter", token)
    assert status == 200 and "errors" not in body, body
    pid = server.bff.process.pid

    await asyncio.to_thread(postgres.stop)
    try:
        ready = await server.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"] == "unreachable", ready.text
        for _ in range(3):  # every attempt fails fast with an error, none hangs
            status, body, elapsed = await server.call("MemberCenter", token)
            assert elapsed < FAIL_FAST_SECONDS, elapsed
            assert status >= 500 or body.get("errors"), body
            assert body.get("data") is None or body["data"].get("viewer") is None, body
        assert server.bff.process.poll() is None, server.bff.output()[-3000:]
    finally:
        await asyncio.to_thread(postgres.start)

    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        status, body, _ = await server.call("MemberCenter", token)
        if status == 200 and "errors" not in body:
            break
        assert time.monotonic() < deadline, f"not recovered: {body}\n{server.bff.output()[-3000:]}"
        await asyncio.sleep(0.2)
    assert body["data"]["viewer"]["id"]
    assert (await server.http.get("/readyz")).status_code == 200
    # Recovery needs no new pool on the first request: several in a row all succeed.
    results = await asyncio.gather(*(server.call("MemberCenter", token) for _ in range(10)))
    assert all(s == 200 and "errors" not in b for s, b, _ in results), results
    assert server.bff.process.pid == pid and server.bff.process.poll() is None
