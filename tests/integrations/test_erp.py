"""ErpClient against the ERP simulator over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.erp import ErpClient, ErpOrder, ErpReturn, InventoryItem, OrderLine, ReturnLine
from integrations.errors import (
    OrderAlreadyShipped,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from integrations.simulators import create_erp_app
from integrations.simulators.runner import listen
from tests.support.servers import serve_asgi

TOKEN = "test-erp-token"


@pytest.fixture(scope="module")
async def erp_url() -> AsyncIterator[str]:
    async with serve_asgi(create_erp_app(TOKEN)) as url:
        yield url


@pytest.fixture
async def http(erp_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        (await client.post(f"{erp_url}/_sim/reset")).raise_for_status()
        yield client


@pytest.fixture
def erp(http: httpx.AsyncClient, erp_url: str) -> ErpClient:
    return ErpClient(http, erp_url, TOKEN, timeout=2.0)


async def sim(http: httpx.AsyncClient, url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call an admin endpoint of the simulator: POST with a body, else GET."""
    response = await (http.post(url + path, json=body) if body is not None else http.get(url + path))
    response.raise_for_status()
    return response.json()


def order(order_no: str = "O-1") -> ErpOrder:
    return ErpOrder(
        order_no=order_no,
        member_ref="m_1",
        lines=[OrderLine("SKU-1", 2, 1990), OrderLine("SKU-2", 1, 500)],
        address={"name": "张三", "phone": "138****0000", "city": "上海", "detail": "某路 1 号"},
        payable_fen=4480,
        paid_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )


async def test_query_inventory_answers_known_skus_only(
    erp: ErpClient, http: httpx.AsyncClient, erp_url: str
) -> None:
    items = [{"sku_code": "SKU-1", "available": 7, "version": 3}, {"sku_code": "SKU-2", "available": 0}]
    await sim(http, erp_url, "/_sim/inventory", {"items": items})

    stock = await erp.query_inventory(["SKU-1", "SKU-2", "NOPE"])

    assert stock == {
        "SKU-1": InventoryItem("SKU-1", 7, 3),
        "SKU-2": InventoryItem("SKU-2", 0, 1),
    }


async def test_query_inventory_chunks_by_200_and_dedupes(
    erp: ErpClient, http: httpx.AsyncClient, erp_url: str
) -> None:
    codes = [f"SKU-{i}" for i in range(450)]
    items = [{"sku_code": code, "available": 1, "version": 1} for code in codes]
    await sim(http, erp_url, "/_sim/inventory", {"items": items})

    stock = await erp.query_inventory(codes + codes[:10])

    assert set(stock) == set(codes)
    queries = (await sim(http, erp_url, "/_sim/state"))["inventory_queries"]
    assert [len(q) for q in queries] == [200, 200, 50]


async def test_query_inventory_of_nothing_makes_no_call(
    erp: ErpClient, http: httpx.AsyncClient, erp_url: str
) -> None:
    assert await erp.query_inventory([]) == {}
    assert (await sim(http, erp_url, "/_sim/state"))["inventory_queries"] == []


async def test_simulator_refuses_more_than_200_codes_and_bad_tokens(
    http: httpx.AsyncClient, erp_url: str
) -> None:
    url = f"{erp_url}/api/v1/inventory/query"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    too_many = await http.post(url, json={"sku_codes": [str(i) for i in range(201)]}, headers=headers)
    assert too_many.status_code == 400
    wrong = await http.post(url, json={"sku_codes": []}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_push_order_is_idempotent_on_order_no(
    erp: ErpClient, http: httpx.AsyncClient, erp_url: str
) -> None:
    first = await erp.push_order(order())
    again = await erp.push_order(order())

    assert first.created and not again.created
    assert again.erp_order_id == first.erp_order_id
    [stored] = (await sim(http, erp_url, "/_sim/state"))["orders"]
    assert stored["received"]["paid_at"] == "2024-05-01T12:00:00+00:00"
    assert stored["received"]["lines"][0] == {"sku_code": "SKU-1", "quantity": 2, "unit_price_fen": 1990}


async def test_cancel_order(erp: ErpClient, http: httpx.AsyncClient, erp_url: str) -> None:
    await erp.push_order(order("O-1"))

    await erp.cancel_order("O-1", "member asked")

    state = await sim(http, erp_url, "/_sim/state")
    assert state["cancellations"] == [{"order_no": "O-1", "reason": "member asked"}]
    assert state["orders"][0]["status"] == "cancelled"


async def test_cancel_shipped_order_raises_already_shipped(
    erp: ErpClient, http: httpx.AsyncClient, erp_url: str
) -> None:
    await erp.push_order(order("O-2"))
    await sim(http, erp_url, "/_sim/orders/O-2/ship", {})

    with pytest.raises(OrderAlreadyShipped) as caught:
        await erp.cancel_order("O-2", "too late")

    assert isinstance(caught.value, UpstreamConflict)
    assert caught.value.status == 409 and not caught.value.retryable


async def test_cancel_unknown_order_raises_not_found(erp: ErpClient) -> None:
    with pytest.raises(UpstreamNotFound):
        await erp.cancel_order("O-404", "never pushed")


async def test_create_return(erp: ErpClient, http: httpx.AsyncClient, erp_url: str) -> None:
    await erp.push_order(order("O-3"))
    request = ErpReturn("O-3", "AS-1", "RETURN_AND_REFUND", [ReturnLine("SKU-1", 1)])

    erp_return_id = await erp.create_return(request)

    assert erp_return_id
    [stored] = (await sim(http, erp_url, "/_sim/state"))["returns"]
    assert stored["received"] == request.to_wire()
    with pytest.raises(UpstreamNotFound):
        await erp.create_return(ErpReturn("O-404", "AS-2", "REFUND_ONLY"))


async def test_wrong_token_is_a_non_retryable_error(http: httpx.AsyncClient, erp_url: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        await ErpClient(http, erp_url, "wrong").query_inventory(["SKU-1"])
    assert caught.value.status == 401 and not caught.value.retryable


async def test_down_is_unavailable(erp: ErpClient, http: httpx.AsyncClient, erp_url: str) -> None:
    await sim(http, erp_url, "/_sim/config", {"down": True})

    with pytest.raises(UpstreamUnavailable) as caught:
        await erp.push_order(order())

    assert caught.value.status == 503 and caught.value.retryable


async def test_error_rate_answers_500_as_unavailable(
    erp: ErpClient, http: httpx.AsyncClient, erp_url: str
) -> None:
    await sim(http, erp_url, "/_sim/config", {"error_rate": 1.0})

    with pytest.raises(UpstreamUnavailable) as caught:
        await erp.query_inventory(["SKU-1"])

    assert caught.value.status == 500


async def test_seeded_error_rate_replays_the_same_failures(
    erp: ErpClient, http: httpx.AsyncClient, erp_url: str
) -> None:
    async def pattern() -> list[bool]:
        await sim(http, erp_url, "/_sim/config", {"error_rate": 0.5, "seed": 42})
        outcomes = []
        for _ in range(20):
            try:
                await erp.query_inventory(["SKU-1"])
                outcomes.append(True)
            except UpstreamUnavailable:
                outcomes.append(False)
        return outcomes

    first = await pattern()
    assert first == await pattern()
    assert True in first and False in first


async def test_latency_beyond_timeout_is_unavailable_quickly(http: httpx.AsyncClient, erp_url: str) -> None:
    await sim(http, erp_url, "/_sim/config", {"latency": 30})
    impatient = ErpClient(http, erp_url, TOKEN, timeout=0.2)

    # The whole test would take 30 s if the client waited for the simulator.
    with pytest.raises(UpstreamUnavailable, match="Timeout"):
        await impatient.query_inventory(["SKU-1"])


async def test_refused_connection_is_unavailable(http: httpx.AsyncClient) -> None:
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()

    with pytest.raises(UpstreamUnavailable):
        await ErpClient(http, f"http://127.0.0.1:{port}", TOKEN).query_inventory(["SKU-1"])


async def test_malformed_answer_is_an_upstream_error(http: httpx.AsyncClient) -> None:
    async def wrong(request: Request) -> JSONResponse:
        return JSONResponse({"stock": []})

    app = Starlette(routes=[Route("/api/v1/inventory/query", wrong, methods=["POST"])])
    async with serve_asgi(app) as url:
        with pytest.raises(UpstreamError, match="malformed"):
            await ErpClient(http, url, TOKEN).query_inventory(["SKU-1"])


async def test_config_refuses_unknown_knobs(http: httpx.AsyncClient, erp_url: str) -> None:
    response = await http.post(f"{erp_url}/_sim/config", json={"latencyy": 1})
    assert response.status_code == 400
