"""2,000 concurrent flash-sale purchases of 100 units across three BFF server processes sell exactly 100.

The servers are real `uvicorn` processes sharing this session's database (a SQLite file or a PostgreSQL
database) and, when REDIS_URL is set, one Redis. Without Redis each process gates with its own
in-process counters and the database's conditional update alone stops the overselling.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from starlette.applications import Starlette

from bff.app import create_app
from bff.counters import RedisCounterStore, create_counters
from bff.documents import operations
from bff.ids import decode_id, encode_id
from bff.models.marketing import FlashSale, FlashSaleItem, FlashSalePurchase
from bff.models.member import Address
from bff.models.order import Order
from bff.services import flash_sale
from bff.settings import load_settings
from integrations.simulators.erp import create_erp_app
from integrations.simulators.runner import listen
from integrations.simulators.wechat import create_wechat_app
from tests.support.factories import make_product
from tests.support.servers import serve_asgi

PROCESSES = 3
MEMBERS = 400
ATTEMPTS = 2_000
STOCK = 100
LIMIT = 2
CONCURRENCY = 48  # requests in flight at once, spread over the processes
BUDGET_SECONDS = 120.0  # the whole burst; it takes a fraction of this on two cores
ERP_TOKEN = "load-erp-token"
REDIS_URL = os.environ.get("REDIS_URL")


def bff_app() -> Starlette:
    """The BFF as `uvicorn --factory` runs it, with the flash-sale handler imported and its counters set."""
    settings = load_settings()
    flash_sale.configure(create_counters(settings.redis_url, settings.cache_prefix))
    return create_app(settings)


@dataclass(frozen=True)
class Attempt:
    member_id: int
    quantity: int
    outcome: str  # ORDER, a userError code, or what went wrong


def _free_port() -> int:
    sock = listen("127.0.0.1", 0)
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@contextmanager
def _servers(env: dict[str, str], logs: Path) -> Iterator[list[str]]:
    """Start the BFF processes and yield their URLs; stop them (and only them) afterwards."""
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    urls: list[str] = []
    try:
        for i in range(PROCESSES):
            port = _free_port()
            log = (logs / f"bff-{i}.log").open("wb")
            command = [sys.executable, "-m", "uvicorn", "tests.load.test_flash_oversell:bff_app", "--factory"]
            # A keep-alive longer than any pause of the burst: otherwise a connection the server closes
            # just as the client reuses it fails with a transport error that says nothing of the BFF.
            options = ["--host", "127.0.0.1", "--port", str(port), "--timeout-keep-alive", "300"]
            options += ["--no-access-log", "--log-level", "warning"]
            process = subprocess.Popen([*command, *options], env=env, stdout=log, stderr=subprocess.STDOUT)
            started.append((process, log))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for process, _ in started:
            process.terminate()
        for process, log in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _logs(logs: Path) -> str:
    return "\n".join((logs / f"bff-{i}.log").read_text(errors="replace")[-3000:] for i in range(PROCESSES))


async def _ready(client: httpx.AsyncClient, urls: list[str], logs: Path) -> None:
    deadline = time.monotonic() + 30
    for url in urls:
        while True:
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} did not start:\n{_logs(logs)}"
            await asyncio.sleep(0.1)


async def _op(
    client: httpx.AsyncClient, url: str, name: str, variables: dict[str, Any], token: str = ""
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"query": operations()[name], "operationName": name, "variables": variables}
    try:
        response = await client.post(f"{url}/graphql", json=body, headers=headers)
    except httpx.TransportError as exc:
        return {"failure": f"transport: {type(exc).__name__}: {exc.__context__ or exc!r}"}
    if response.status_code != 200:
        return {"failure": f"HTTP {response.status_code}: {response.text[:200]}"}
    payload = response.json()
    if "errors" in payload:
        return {"failure": f"GraphQL errors: {payload['errors']}"[:300]}
    return payload["data"]


async def _bounded(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(job) for job in jobs))


async def _sign_in(client: httpx.AsyncClient, urls: list[str], run: str) -> dict[int, tuple[str, int]]:
    """Sign MEMBERS members in through the servers, each with an address: id -> (token, address id)."""

    async def login(i: int) -> tuple[int, str]:
        data = await _op(client, urls[i % len(urls)], "Login", {"code": f"sim_load{run}m{i}"})
        assert "failure" not in data and data["login"]["userErrors"] == [], data
        member_id = decode_id(data["login"]["member"]["id"], "Member")
        assert member_id is not None
        return member_id, str(data["login"]["token"])

    tokens = dict(await _bounded(32, [login(i) for i in range(MEMBERS)]))
    await Address.bulk_create(
        [
            Address(member_id=m, name="张三", phone="13700000000", province="浙江省", city="杭州市",
                    district="西湖区", detail=f"文三路 {m} 号")
            for m in tokens
        ]
    )  # fmt: skip
    rows = await Address.filter(member_id__in=list(tokens)).values("id", "member_id")
    return {int(r["member_id"]): (tokens[int(r["member_id"])], int(r["id"])) for r in rows}


async def _burst(
    client: httpx.AsyncClient, urls: list[str], shoppers: dict[int, tuple[str, int]], item: FlashSaleItem
) -> list[Attempt]:
    """ATTEMPTS placeOrder calls of 1 or 2 units, members in random order, round-robin over the servers."""
    rng = random.Random(20240618)
    members = list(shoppers)
    plan = [(members[i % MEMBERS], rng.choice((1, 2))) for i in range(ATTEMPTS)]
    rng.shuffle(plan)

    async def attempt(i: int, member_id: int, quantity: int) -> Attempt:
        token, address_id = shoppers[member_id]
        order_input = {
            "source": "BUY_NOW",
            "lines": [{"skuId": encode_id("Sku", item.sku_id), "quantity": quantity}],
            "addressId": encode_id("Address", address_id),
            "campaign": {"flashSaleItemId": encode_id("FlashSaleItem", item.id)},
        }
        data = await _op(client, urls[i % len(urls)], "PlaceOrder", {"input": order_input}, token)
        if "failure" in data:
            return Attempt(member_id, quantity, data["failure"])
        placed = data["placeOrder"]
        if placed["order"] is not None:
            return Attempt(member_id, quantity, "ORDER")
        return Attempt(member_id, quantity, placed["userErrors"][0]["code"])

    return await _bounded(CONCURRENCY, [attempt(i, m, q) for i, (m, q) in enumerate(plan)])


@asynccontextmanager
async def _watch_stock(item_id: int, prefix: str) -> AsyncIterator[list[int]]:
    """Sample what is left, in the database and in Redis, while the burst runs: yields the minimums."""
    lowest = [STOCK, STOCK]  # database, Redis
    redis = RedisCounterStore(REDIS_URL, prefix) if REDIS_URL else None
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            item = await FlashSaleItem.get(id=item_id)
            lowest[0] = min(lowest[0], item.stock_total - item.sold)
            if redis is not None:
                available, _ = await redis.counts(flash_sale.pool_key(item_id), "-")
                lowest[1] = min(lowest[1], STOCK if available is None else available)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(sample())
    try:
        yield lowest
    finally:
        stop.set()
        await task
        if redis is not None:
            await redis.close()


async def test_two_thousand_attempts_sell_exactly_one_hundred(database_url: str, tmp_path: Path) -> None:
    product, (sku,) = await make_product([(19_900, 1_000_000)])  # the SKU's own stock never limits
    now = datetime.now(UTC)
    sale = await FlashSale.create(
        title="压测秒杀", starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1)
    )
    item = await FlashSaleItem.create(
        flash_sale_id=sale.id, sku_id=sku.id, product_id=product.id, flash_price_fen=990,
        stock_total=STOCK, per_member_limit=LIMIT,
    )  # fmt: skip
    run = uuid.uuid4().hex[:8]
    prefix = f"bff-load-{run}:"

    async with (
        serve_asgi(create_wechat_app()) as wechat_url,
        serve_asgi(create_erp_app(ERP_TOKEN)) as erp_url,
        httpx.AsyncClient(
            timeout=30, trust_env=False, limits=httpx.Limits(max_connections=CONCURRENCY + 8)
        ) as client,
    ):
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env.update(
            DATABASE_URL=database_url,
            CACHE_PREFIX=prefix,
            WECHAT_API_BASE_URL=wechat_url,
            WECHAT_PAY_BASE_URL=wechat_url,
            ERP_BASE_URL=erp_url,
            ERP_API_TOKEN=ERP_TOKEN,
            BFF_INPROCESS_WORKER="0",
            **({"REDIS_URL": REDIS_URL} if REDIS_URL else {}),
        )
        with _servers(env, tmp_path) as urls:
            await _ready(client, urls, tmp_path)
            shoppers = await _sign_in(client, urls, run)
            assert len(shoppers) == MEMBERS
            started = time.monotonic()
            async with _watch_stock(item.id, prefix) as lowest, asyncio.timeout(BUDGET_SECONDS):
                results = await _burst(client, urls, shoppers, item)
            elapsed = time.monotonic() - started
            redis_left: int | None = None
            if REDIS_URL:
                store = RedisCounterStore(REDIS_URL, prefix)
                redis_left = (await store.counts(flash_sale.pool_key(item.id), "-"))[0]
                await store.clear()
                await store.close()

    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    summary = f"{outcomes} in {elapsed:.1f}s; server logs:\n{_logs(tmp_path)}"
    # Every attempt either bought or was told clearly why not.
    assert set(outcomes) <= {"ORDER", "SOLD_OUT", "LIMIT_REACHED"}, summary
    assert outcomes.get("SOLD_OUT", 0) > 0, summary

    bought: dict[int, int] = {}
    for r in results:
        if r.outcome == "ORDER":
            bought[r.member_id] = bought.get(r.member_id, 0) + r.quantity
    assert sum(bought.values()) == STOCK, summary
    assert max(bought.values()) <= LIMIT, summary

    # The database, the record, says the same: exactly 100 held, no member over the limit.
    row = await FlashSaleItem.get(id=item.id)
    assert row.sold == STOCK
    purchases = await FlashSalePurchase.filter(item_id=item.id).values("member_id", "quantity", "status")
    assert {p["status"] for p in purchases} == {"RESERVED"}
    assert sum(int(p["quantity"]) for p in purchases) == STOCK
    held: dict[int, int] = {}
    for p in purchases:
        held[int(p["member_id"])] = held.get(int(p["member_id"]), 0) + int(p["quantity"])
    assert held == bought
    orders = await Order.filter(campaign_kind="FLASH_SALE", campaign_ref=item.id).count()
    assert orders == outcomes["ORDER"] == len(purchases)

    # Stock never went negative anywhere, and Redis ends where the database does.
    assert lowest[0] >= 0 and lowest[1] >= 0, lowest
    if REDIS_URL:
        assert redis_left == 0
