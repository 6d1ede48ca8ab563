"""`make soak`: 200 shoppers for 60 s while the ERP is killed and Redis restarted; writes bench/SOAK.md.

    python -m bench.soak [--shoppers 200] [--seconds 60] [--products 300] [--report bench/SOAK.md]

Runs on a fresh PostgreSQL database (created on DATABASE_URL's server, dropped afterwards), a private
Redis it kills and restarts, the ERP, CRM and WeChat simulators as processes (the ERP is SIGKILLed
and started again mid-run), `bff serve --workers 2` and a `bff worker`. Signed ERP inventory
webhooks (each delivered twice) run alongside. The report states every count; the exit status is 0
only when no catalog screen answered 5xx and nothing was lost, duplicated or oversold.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
from starlette.applications import Starlette

from bench.data import git_commit, seed
from bench.servers import Process, free_port, start, wait_http, wait_tcp
from bench.soak_checks import judge
from bench.soak_report import write_report
from bench.soak_shopper import Plan, Shopper, Tally
from bff.db import close_db, init_db
from bff.models.catalog import Category, Product, Sku
from bff.models.marketing import FlashSale, FlashSaleItem
from bff.models.outbox import InboundEvent
from bff.settings import DEFAULT_ERP_WEBHOOK_SECRET
from integrations.simulators.crm import create_crm_app
from integrations.simulators.erp import create_erp_app
from integrations.simulators.erp_webhooks import batch_body, erp_event, signed_headers
from integrations.simulators.wechat import create_wechat_app
from integrations.simulators.wechatpay import WeChatPaySimConfig

ROOT = Path(__file__).resolve().parent.parent
ERP_TOKEN = "soak-erp-token"
CRM_TOKEN = "soak-crm-token"
FLASH_STOCK = 40
POOL_PRODUCTS = 40
WEBHOOK_SKUS = 10
WEBHOOK_INTERVAL = 0.5
POOL_STOCK = 1_000_000  # the shoppers' SKUs never run out: refusals would hide lost orders
# Fault timeline, as fractions of the run: (when, what).
FAULTS = ((0.20, "kill ERP"), (0.35, "start ERP"), (0.55, "kill Redis"), (0.65, "start Redis"))


def erp_app() -> Starlette:
    """The ERP simulator as its own process (`uvicorn --factory`), so it can be killed alone."""
    return create_erp_app(os.environ["ERP_API_TOKEN"])


def crm_app() -> Starlette:
    """The CRM simulator as its own process."""
    return create_crm_app(os.environ["CRM_API_TOKEN"])


def wechat_app() -> Starlette:
    """WeChat and WeChat Pay; the Pay side signs notifications with the same keys the BFF trusts."""
    return create_wechat_app(pay=WeChatPaySimConfig.from_env())


@dataclass
class Restartable:
    """A process the soak kills with SIGKILL and starts again on the same port."""

    name: str
    command: list[str]
    port: int
    env: dict[str, str]
    logs: Path
    process: Process | None = None

    async def start(self) -> None:
        """Start it and wait until the port accepts connections."""
        self.process = await start(self.name, self.command, self.env, self.logs)
        await wait_tcp(self.port, self.process)

    async def kill(self) -> None:
        """SIGKILL: the process vanishes mid-request, as in a crash."""
        if self.process is not None and self.process.process.returncode is None:
            self.process.process.kill()
            await self.process.process.wait()

    async def stop(self) -> None:
        """A graceful stop at the end of the run."""
        if self.process is not None:
            await self.process.stop()


def _uvicorn(factory: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "300"]  # fmt: skip


async def _prepare(
    run: str, deadline_seconds: float
) -> tuple[list[int], list[tuple[int, int]], FlashSaleItem, list[str]]:
    """Categories and SKUs to shop, a running flash sale on a small stock, and the webhooks' SKU codes."""
    categories = [int(r["id"]) for r in await Category.filter(parent_id=None).values("id")]
    products = [
        int(r["id"])
        for r in await Product.filter(on_shelf=True).order_by("id").limit(POOL_PRODUCTS + 1).values("id")
    ]
    pool: list[tuple[int, int]] = []
    codes: list[str] = []
    for product_id in products:
        sku = await Sku.filter(product_id=product_id).order_by("id").first()
        if sku is not None:
            pool.append((product_id, sku.id))
            codes.append(sku.code)
    (flash_product, flash_sku), pool = pool[0], pool[1:]
    await Sku.filter(id__in=[s for _, s in pool] + [flash_sku]).update(stock=POOL_STOCK)
    await Product.filter(id__in=[p for p, _ in pool] + [flash_product]).update(in_stock=True)
    now = datetime.now(UTC)
    sale = await FlashSale.create(
        title=f"压测秒杀 {run}",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(seconds=deadline_seconds + 3600),
    )
    sku = await Sku.get(id=flash_sku)
    item = await FlashSaleItem.create(
        flash_sale_id=sale.id, sku_id=flash_sku, product_id=flash_product,
        flash_price_fen=max(1, sku.price_fen // 2), stock_total=FLASH_STOCK, per_member_limit=1,
    )  # fmt: skip
    return categories, pool, item, codes[1 : 1 + WEBHOOK_SKUS]


@dataclass
class Webhooks:
    """The ERP's side: signed inventory batches, each delivered twice (the second must be a duplicate)."""

    url: str
    codes: list[str]
    accepted: list[str] = field(default_factory=list)  # event ids the BFF stored
    last_versions: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    refused: int = 0  # non-2xx answers (retried)
    transport_errors: int = 0
    redelivered_as_duplicate: int = 0
    redelivered_applied_again: int = 0
    server_errors: int = 0

    async def run(self, http: httpx.AsyncClient, deadline: float) -> None:
        """Send a batch every WEBHOOK_INTERVAL seconds until the deadline."""
        version = 10**9
        while time.monotonic() < deadline:
            version += 1
            events = [
                erp_event("inventory.changed", {"sku_code": code, "available": POOL_STOCK}, version=version)
                for code in self.codes
            ]
            await self._deliver(http, events)
            await asyncio.sleep(WEBHOOK_INTERVAL)

    async def _deliver(self, http: httpx.AsyncClient, events: list[dict[str, object]]) -> None:
        body = batch_body(events)
        headers = signed_headers(body, DEFAULT_ERP_WEBHOOK_SECRET, msg_id=f"msg_{uuid.uuid4().hex}")
        self.batches += 1
        for attempt in range(5):  # the ERP retries a batch that was not acknowledged
            try:
                answer = await http.post(self.url, content=body, headers=headers)
            except httpx.TransportError:
                self.transport_errors += 1
                await asyncio.sleep(1 + attempt)
                continue
            if answer.status_code >= 500:
                self.server_errors += 1
            if answer.status_code != 200:
                self.refused += 1
                await asyncio.sleep(1 + attempt)
                continue
            if answer.json()["accepted"] != len(events) and attempt == 0:
                raise RuntimeError(f"a fresh batch was not accepted whole: {answer.text}")
            self.accepted += [str(e["id"]) for e in events]
            for e in events:
                data = e["data"]
                assert isinstance(data, dict)
                self.last_versions[str(data["sku_code"])] = int(str(e["version"]))
            again = await http.post(self.url, content=body, headers=headers)
            if again.status_code == 200 and again.json()["duplicates"] == len(events):
                self.redelivered_as_duplicate += 1
            else:
                self.redelivered_applied_again += 1
            return


async def _faults(
    erp: Restartable, redis: Restartable, started: float, seconds: float, log: list[str]
) -> None:
    actions = {
        "kill ERP": erp.kill,
        "start ERP": erp.start,
        "kill Redis": redis.kill,
        "start Redis": redis.start,
    }
    for fraction, what in FAULTS:
        await asyncio.sleep(max(0.0, started + fraction * seconds - time.monotonic()))
        await actions[what]()
        log.append(f"{time.monotonic() - started:5.1f}s {what}")


async def _settle(event_ids: list[str], seconds: float = 60.0) -> None:
    """Until every accepted ERP event left PENDING (the BFF applies them after answering, or the sweep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not await InboundEvent.filter(source="erp", event_id__in=event_ids, status="PENDING").exists():
            return
        await asyncio.sleep(0.5)


async def soak(args: argparse.Namespace) -> bool:
    """Run the soak and write the report; True when it passed."""
    workdir = Path(tempfile.mkdtemp(prefix="bff-soak-"))
    run = uuid.uuid4().hex[:6]
    name = f"bff_soak_{run}"
    admin_url = args.database_url
    print(f"soak {run}: seeding {name} ({args.products} products); logs in {workdir}", flush=True)
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    ports = {key: free_port() for key in ("redis", "erp", "crm", "wechat", "bff")}
    bff_url = f"http://127.0.0.1:{ports['bff']}"
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0", CACHE_PREFIX=f"soak-{run}:",
        ERP_BASE_URL=f"http://127.0.0.1:{ports['erp']}", ERP_API_TOKEN=ERP_TOKEN,
        CRM_BASE_URL=f"http://127.0.0.1:{ports['crm']}", CRM_API_TOKEN=CRM_TOKEN,
        WECHAT_API_BASE_URL=f"http://127.0.0.1:{ports['wechat']}",
        WECHAT_PAY_BASE_URL=f"http://127.0.0.1:{ports['wechat']}",
        WECHAT_PAY_NOTIFY_URL=f"{bff_url}/webhooks/wechatpay",
        BFF_RATE_LIMITS="off",  # 200 shoppers share one loopback address; per-IP limits would refuse them
        PYTHONPATH=str(ROOT),
    )  # fmt: skip
    redis_cmd = [
        "redis-server",
        "--port",
        str(ports["redis"]),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    redis = Restartable("redis", redis_cmd, ports["redis"], env, workdir)
    erp = Restartable("erp", _uvicorn("bench.soak:erp_app", ports["erp"]), ports["erp"], env, workdir)
    others: list[Process] = []
    fault_log: list[str] = []
    try:
        url = await seed(admin_url, name, args.products, workdir / "seed.log", reuse=False)
        env["DATABASE_URL"] = url
        await redis.start()
        await erp.start()
        for key, factory in (("crm", "bench.soak:crm_app"), ("wechat", "bench.soak:wechat_app")):
            others.append(await start(key, _uvicorn(factory, ports[key]), env, workdir))
            await wait_tcp(ports[key], others[-1])
        bff_cmd = [
            sys.executable,
            "-m",
            "bff.cli",
            "serve",
            "--port",
            str(ports["bff"]),
            "--workers",
            "2",
            "--no-access-log",
        ]
        bff = await start("bff", bff_cmd, env, workdir)
        worker = await start(
            "worker", [sys.executable, "-m", "bff.cli", "worker", "--poll-interval", "0.2"], env, workdir
        )
        await wait_http(f"{bff_url}/healthz", bff)
        await init_db(url)
        categories, pool, item, codes = await _prepare(run, args.seconds)
        tally = Tally()
        limits = httpx.Limits(
            max_connections=args.shoppers + 20, max_keepalive_connections=args.shoppers + 20
        )
        async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as http:
            started = time.monotonic()
            deadline = started + args.seconds
            plan = Plan(
                bff_url, env["WECHAT_API_BASE_URL"], categories, pool, item.id, item.sku_id, run, deadline
            )
            webhooks = Webhooks(f"{bff_url}/webhooks/erp", codes)
            print(f"soak {run}: {args.shoppers} shoppers for {args.seconds:.0f}s", flush=True)
            await asyncio.gather(
                *(Shopper(i, plan, http, tally).run() for i in range(args.shoppers)),
                webhooks.run(http, deadline),
                _faults(erp, redis, started, args.seconds, fault_log),
            )
            elapsed = time.monotonic() - started
        await _settle(webhooks.accepted)
        verdict = await judge(tally, run, item.id, [s for _, s in pool] + [item.sku_id], webhooks.accepted,
                              webhooks.last_versions)  # fmt: skip
        await bff.stop()
        await worker.stop()
        exits = {"bff serve": bff.process.returncode, "bff worker": worker.process.returncode}
        report = write_report(
            Path(args.report),
            args=args,
            commit=git_commit(ROOT),
            tally=tally,
            verdict=verdict,
            webhooks=webhooks,
            faults=fault_log,
            elapsed=elapsed,
            exits=exits,
        )
        print(report, flush=True)
        return verdict.passed
    finally:
        for process in others:
            await process.stop()
        await erp.stop()
        await redis.stop()
        await close_db()
        if not args.keep_database:
            conn = await asyncpg.connect("postgresql://" + admin_url.split("://", 1)[1])
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


def main() -> None:
    """Entry point of `make soak`."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--shoppers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--report", default=str(ROOT / "bench" / "SOAK.md"))
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server URL; the soak creates (and drops) its own database there",
    )
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(soak(args)) else 1)


if __name__ == "__main__":
    main()
