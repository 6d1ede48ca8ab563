"""Circuit breakers and jittered retries, against the ERP simulator over real HTTP."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from integrations.erp import ErpClient
from integrations.errors import UpstreamError, UpstreamUnavailable
from integrations.resilience import CLOSED, OPEN, CircuitBreaker, CircuitOpen, with_retries
from integrations.simulators import create_erp_app
from tests.support.servers import serve_asgi

TOKEN = "resilience-erp-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
async def erp_url() -> AsyncIterator[str]:
    async with serve_asgi(create_erp_app(TOKEN)) as url:
        yield url


@pytest.fixture
async def http(erp_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        (await client.post(f"{erp_url}/_sim/reset")).raise_for_status()
        yield client


async def configure(http: httpx.AsyncClient, url: str, **knobs: object) -> None:
    (await http.post(f"{url}/_sim/config", json=knobs)).raise_for_status()


async def test_a_dead_erp_opens_the_circuit_and_later_calls_fail_fast(
    http: httpx.AsyncClient, erp_url: str
) -> None:
    clock = Clock()
    erp = ErpClient(http, erp_url, TOKEN, timeout=2.0)
    erp.breaker = CircuitBreaker("erp", failure_threshold=3, reset_after=10.0, clock=clock)
    await configure(http, erp_url, down=True)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await erp.cancel_order("O-1", "probe")
    assert erp.breaker.state == OPEN
    await configure(http, erp_url, down=False)
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(record)
    with pytest.raises(CircuitOpen):
        await erp.query_inventory(["SKU-1"])
    assert sent == []  # open means no call at all, so no timeout to wait for
    clock.now += 10.0  # reset_after elapsed: the next call is the probe, and it succeeds
    assert await erp.query_inventory(["SKU-1"]) == {}
    assert erp.breaker.state == CLOSED


async def test_a_failed_probe_opens_the_circuit_again(http: httpx.AsyncClient, erp_url: str) -> None:
    clock = Clock()
    erp = ErpClient(http, erp_url, TOKEN, timeout=2.0)
    erp.breaker = CircuitBreaker("erp", failure_threshold=1, reset_after=5.0, clock=clock)
    await configure(http, erp_url, down=True)
    with pytest.raises(UpstreamUnavailable):
        await erp.cancel_order("O-1", "x")
    clock.now += 5.0
    with pytest.raises(UpstreamUnavailable) as probe:
        await erp.cancel_order("O-1", "x")
    assert not isinstance(probe.value, CircuitOpen) and erp.breaker.state == OPEN
    with pytest.raises(CircuitOpen):
        await erp.cancel_order("O-1", "x")


async def test_a_refusal_proves_the_upstream_is_up(http: httpx.AsyncClient, erp_url: str) -> None:
    erp = ErpClient(http, erp_url, "wrong-token", timeout=2.0)
    erp.breaker = CircuitBreaker("erp", failure_threshold=1)
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await erp.query_inventory(["SKU-1"])
    assert erp.breaker.state == CLOSED


async def test_idempotent_reads_are_retried_with_jitter_until_they_succeed() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise UpstreamUnavailable("erp", "HTTP 503", status=503)
        return "ok"

    assert await with_retries(flaky, base_delay=0.001, rng=random.Random(1)) == "ok"
    assert calls == 3


async def test_timeouts_and_open_circuits_are_not_retried() -> None:
    calls = 0

    async def timing_out() -> None:
        nonlocal calls
        calls += 1
        raise UpstreamUnavailable("erp", "ReadTimeout") from httpx.ReadTimeout("slow")

    with pytest.raises(UpstreamUnavailable):
        await with_retries(timing_out, base_delay=0.001)
    assert calls == 1

    async def open_circuit() -> None:
        nonlocal calls
        calls += 1
        raise CircuitOpen("erp", "open")

    with pytest.raises(CircuitOpen):
        await with_retries(open_circuit, base_delay=0.001)
    assert calls == 2


async def test_a_slow_erp_at_checkout_opens_the_circuit_so_later_checks_use_the_mirror_at_once(
    http: httpx.AsyncClient, erp_url: str
) -> None:
    from bff.services.stock import check_with_erp

    erp = ErpClient(http, erp_url, TOKEN, timeout=3.0)
    erp.breaker = CircuitBreaker("erp", failure_threshold=2, reset_after=60.0)
    await configure(http, erp_url, latency=2.0)
    for _ in range(2):  # each waits its 0.2 s budget as an HTTP timeout: a failure the breaker counts
        await check_with_erp(erp, {"SKU-1": 1}, 0.2)
    assert erp.breaker.state == OPEN
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(record)
    await check_with_erp(erp, {"SKU-1": 1}, 0.2)  # the mirror, without calling the ERP
    assert sent == []
