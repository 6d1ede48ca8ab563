"""serve_simulators: three simulators in one loop, stopped by cancellation."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from integrations.simulators.runner import listen, serve_simulators


def free_ports(count: int) -> list[int]:
    sockets = [listen("127.0.0.1", 0) for _ in range(count)]
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


async def wait_until_up(http: httpx.AsyncClient, url: str) -> None:
    for _ in range(500):
        try:
            if (await http.get(f"{url}/_sim/state")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url} never came up")


async def test_serves_the_three_simulators_until_cancelled() -> None:
    erp_port, crm_port, wechat_port = free_ports(3)
    task = asyncio.create_task(
        serve_simulators("127.0.0.1", erp_port, crm_port, wechat_port, erp_token="e", crm_token="c")
    )
    async with httpx.AsyncClient(trust_env=False) as http:
        for port in (erp_port, crm_port, wechat_port):
            await wait_until_up(http, f"http://127.0.0.1:{port}")
        erp = await http.post(
            f"http://127.0.0.1:{erp_port}/api/v1/inventory/query",
            json={"sku_codes": []},
            headers={"Authorization": "Bearer e"},
        )
        login = await http.get(
            f"http://127.0.0.1:{wechat_port}/sns/jscode2session",
            params={"appid": "a", "secret": "s", "js_code": "sim_x", "grant_type": "authorization_code"},
        )
        assert erp.json() == {"items": []}
        assert login.json()["openid"] == "o_x"

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    listen("127.0.0.1", erp_port).close()  # the port was released


async def test_a_taken_port_fails_fast() -> None:
    taken = listen("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            erp_port, crm_port = free_ports(2)
            await serve_simulators("127.0.0.1", erp_port, crm_port, wechat_port=taken.getsockname()[1])
    finally:
        taken.close()
