"""`make bench`: seed, serve every variant pinned the same way, load each screen, write RESULTS.md.

    python -m bench.run [--seconds 4] [--latency-seconds 3] [--fresh] [--products 100000]

The seeded databases are kept between runs and reused while their fingerprint (seed format, product
count, seed code hash, age; the migration head is applied on top) matches; `--fresh` seeds again.

Variants: B0 precomputed bytes, B1 asyncpg + hand-written SQL, G0 the BFF naive (BFF_NAIVE=1),
G1 the BFF as shipped, G2 the BFF with its response cache (BFF_RESPONSE_CACHE=1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import erp, flash, report
from bench.data import Fixtures, git_commit, migrated, prepare, seed
from bench.loadgen import LoadResult, hey, hey_raw, hey_samples, missing_tools, summarise, wrk
from bench.others import run_others
from bench.probe import Probe, first_difference, probe
from bench.screens import Screen, checkout_preview, screens
from bench.servers import Simulators, Variant, free_port, redis_server, serve, simulators
from bff.ids import encode_id

ROOT = Path(__file__).resolve().parent.parent
LATENCY_FRACTION = 0.5  # latency is measured at this fraction of B1's max throughput, per screen
LATENCY_WORKERS = 4
MAX_CONNECTIONS = 16
FLASH_WORKERS = 2  # the flash sale is served as production would: one worker per core
ERP_ROUNDS = 6  # short alternating rounds: a CPU hiccup from elsewhere lands on both states
ERP_ROUND_SECONDS = 1.0
ORDER_CONNECTIONS = 4  # placeOrder under the ERP target: a few shoppers checking out at once
ORDER = ("B1", "G1", "B0", "G0", "G2")


def _variants(py: str, db: str, redis: str, sims: Simulators, b0_responses: Path) -> dict[str, Variant]:
    uvicorn = [
        py,
        "-m",
        "uvicorn",
        "bff.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    bff_env = {
        "DATABASE_URL": db,
        "REDIS_URL": redis,
        "ERP_BASE_URL": sims.erp,
        "CRM_BASE_URL": sims.crm,
        "WECHAT_API_BASE_URL": sims.wechat,
        "WECHAT_PAY_BASE_URL": sims.wechat,
        "BFF_INPROCESS_WORKER": "0",
        "BFF_NAIVE": "0",
        "BFF_RESPONSE_CACHE": "0",
        # One load generator on one address is not a crowd of shoppers: the per-caller limits would
        # answer most of it with 429.
        "BFF_RATE_LIMITS": "0",
    }

    def bff(key: str, description: str, **extra: str) -> Variant:
        return Variant(
            key,
            description,
            uvicorn,
            {**bff_env, "CACHE_PREFIX": f"bench-{key}-{uuid.uuid4().hex[:6]}:", **extra},
        )

    return {
        "B0": Variant(
            "B0",
            "Starlette returning precomputed bytes",
            [py, "-m", "bench.baseline", "b0", "--port", "{port}", "--responses", str(b0_responses)],
            {},
        ),
        "B1": Variant(
            "B1",
            "Starlette + asyncpg, hand-written SQL, orjson",
            [py, "-m", "bench.baseline", "b1", "--port", "{port}"],
            {"DATABASE_URL": db},
        ),
        "G0": bff("G0", "the BFF, optimisations off (BFF_NAIVE=1)", BFF_NAIVE="1"),
        "G1": bff("G1", "the BFF as shipped"),
        "G2": bff("G2", "the BFF with its response cache (BFF_RESPONSE_CACHE=1)", BFF_RESPONSE_CACHE="1"),
    }


class Bench:
    """One invocation's state and measurements."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.seconds: float = args.seconds
        self.latency_seconds: float = args.latency_seconds
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, Any] = {
            "variants": {},
            "screens": {},
            "load": {},
            "latency": {},
            "probe": {},
            "phases": {},
            "settings": {"seconds": args.seconds, "latency_seconds": args.latency_seconds},
        }
        self._phase: tuple[str, float] | None = None
        self.probes: dict[tuple[str, str], Probe] = {}

    def note(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f}s] {message}", flush=True)

    def phase(self, name: str) -> None:
        """Close the running phase (its seconds go to results.json and RESULTS.md) and start `name`."""
        now = time.monotonic()
        if self._phase is not None:
            self.results["phases"][self._phase[0]] = round(now - self._phase[1], 1)
        self._phase = (name, now) if name else None

    def body_file(self, screen: Screen) -> Path:
        path = self.workdir / f"{screen.key}.json"
        path.write_bytes(screen.body())
        return path

    async def max_throughput(self, url: str, screen: Screen, token: str) -> LoadResult:
        """wrk at full speed; the caller has warmed the screen up (a probe's sequential requests)."""
        args = [str(self.body_file(screen)), token if screen.member else ""]
        return await wrk(url, "post.lua", args, self.seconds, MAX_CONNECTIONS)

    async def latency(self, url: str, screen: Screen, token: str, rate: float) -> LoadResult:
        return await hey(
            url, self.body_file(screen), screen.headers(token), rate, self.latency_seconds, LATENCY_WORKERS
        )

    async def measure(self, variant: Variant, url: str, fixtures: Fixtures, redis: str) -> None:
        """Probe, max throughput and fixed-rate latency of every screen on one variant."""
        for screen in screens(fixtures):
            found = await probe(url, screen, fixtures.token, redis)
            self.probes[(variant.key, screen.key)] = found
            if found.error:
                self.note(f"{variant.key} {screen.key}: {found.error}")
            load = await self.max_throughput(url, screen, fixtures.token)
            rate = LATENCY_FRACTION * self.results["load"].get(f"B1/{screen.key}", {}).get("rps", load.rps)
            lat = await self.latency(url, screen, fixtures.token, rate)
            self.results["load"][f"{variant.key}/{screen.key}"] = load.__dict__
            self.results["latency"][f"{variant.key}/{screen.key}"] = {**lat.__dict__, "target_rate": rate}
            self.results["probe"][f"{variant.key}/{screen.key}"] = {
                "bytes": found.bytes,
                "redis": found.redis_per_request,
                "x_cache": found.cache_headers,
                "error": found.error,
            }
            self.note(f"{variant.key} {screen.key}: {load.rps:.0f} req/s, p99 {lat.p99} ms at {rate:.0f}/s")

    async def run(self) -> None:
        self.started = time.monotonic()
        missing = missing_tools()
        if missing:
            sys.exit("missing load generators: " + "; ".join(missing))
        admin = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        if not admin.startswith("postgres"):
            sys.exit(
                "BENCH_DATABASE_URL must be a PostgreSQL URL"
                " (the bench creates bff_bench, bff_bench_small and bff_bench_aux)"
            )
        self.note(f"databases of {self.args.products} and 1000 products (logs in {self.logs})")
        self.phase("data")
        (big, big_done), (small, small_done) = await asyncio.gather(
            seed(admin, "bff_bench", self.args.products, self.logs / "seed.log", self.args.fresh),
            seed(admin, "bff_bench_small", 1000, self.logs / "seed_small.log", self.args.fresh),
        )
        self.results["data"] = {"bff_bench": big_done, "bff_bench_small": small_done}
        self.note(f"databases: {self.results['data']}")
        fixtures, small_fixtures = await prepare(big), await prepare(small)
        self.fixtures_db = big
        small_fixtures = Fixtures(**{**small_fixtures.__dict__, "keyword": fixtures.keyword})
        self.fixtures, self.small_fixtures = fixtures, small_fixtures
        self.results["fixtures"] = {
            k: v for k, v in fixtures.__dict__.items() if k not in ("token", "product_ids")
        }
        self.results["screens"] = {s.key: s.label for s in screens(fixtures)}
        self.note("data ready")
        b0_responses = self.workdir / "b0_responses.json"
        async with redis_server(self.logs) as redis, simulators(self.logs) as sims:
            variants = _variants(sys.executable, big, redis, sims, b0_responses)
            self.results["variants"] = {k: v.description for k, v in variants.items()}
            for key in ORDER:
                self.phase(f"screens {key}")
                if key == "B0":
                    pairs = [
                        (s.body().decode(), self.probes[("G1", s.key)].body.decode())
                        for s in screens(fixtures)
                    ]
                    b0_responses.write_bytes(orjson.dumps(pairs))
                async with serve(variants[key], free_port(), self.logs) as url:
                    await self.measure(variants[key], url, fixtures, redis)
                    if key == "G2":
                        await self.cache_misses(url, fixtures)
                    if key == "G1":
                        await self.erp_target(url, fixtures, sims)
                    if key == "B1":
                        await self.b1_sql(url, fixtures)
            self.compare()
            self.phase("SQL counts")
            await self.sql_counts(variants, big, small)
            self.phase("growth")
            await self.growth(variants["G1"], big, small)
            self.phase("flash sale")
            await self.flash_sale(variants["G1"], big)
            self.note("other benchmarks")
            aux = await migrated(admin, "bff_bench_aux", self.logs / "aux.log", self.args.fresh)
            self.results["others"] = await run_others(
                ROOT, self.logs, self.note, {"DATABASE_URL": aux, "REDIS_URL": redis}, self.phase
            )
        self.phase("")
        self.results["elapsed"] = time.monotonic() - self.started
        # Stored with the figures, so `python -m bench.report` can redraw RESULTS.md after GAPS.md changes.
        self.results["meta"] = self.meta()
        (ROOT / "bench" / "results.json").write_bytes(orjson.dumps(self.results, option=orjson.OPT_INDENT_2))
        report.write(ROOT / "bench", self.results, self.results["meta"])
        self.note(f"wrote bench/RESULTS.md and bench/results.png in {self.results['elapsed']:.0f}s")

    def compare(self) -> None:
        """B1 (and G0, G2) against G1, screen by screen: bytes-equal, JSON-equal or where they differ."""
        equality: dict[str, dict[str, str]] = {}
        for (variant, key), found in self.probes.items():
            reference = self.probes.get(("G1", key))
            if variant in ("G1", "B0") or reference is None:
                continue
            if found.error or reference.error:
                verdict = f"not comparable: {found.error or reference.error}"
            elif found.body == reference.body:
                verdict = "byte-equal"
            else:
                difference = first_difference(found.payload, reference.payload)
                verdict = "JSON-equal" if difference is None else f"DIFFERENT at {difference}"
            equality.setdefault(variant, {})[key] = verdict
        self.results["equality"] = equality

    async def cache_misses(self, url: str, fixtures: Fixtures) -> None:
        """G2 with a different product on every request: the response cache's misses."""
        detail = next(s for s in screens(fixtures) if s.key == "product")
        bodies = self.workdir / "miss_bodies.txt"
        lines = [
            Screen("product", "", "ProductDetail", {"id": encode_id("Product", pk)}, True).body().decode()
            for pk in fixtures.product_ids
        ]
        bodies.write_text("\n".join(lines) + "\n")
        tokens = self.workdir / "miss_tokens.txt"
        tokens.write_text(fixtures.token + "\n")
        load = await wrk(url, "rotate.lua", [str(bodies), str(tokens)], self.seconds, MAX_CONNECTIONS)
        self.results["load"]["G2miss/product"] = load.__dict__
        self.note(f"G2 product misses: {load.rps:.0f} req/s, X-Cache {load.counters} ({detail.label})")

    async def erp_target(self, url: str, fixtures: Fixtures, sims: Simulators) -> None:
        """Product detail, checkout preview and placeOrder p99 with a healthy ERP, then one answering in 2 s.

        Product detail and the preview run at half G1's max; placeOrder (a fresh
        idempotency key each time, BUY_NOW of one unit by a member of its own) at about half its max.
        """
        self.phase("ERP target")
        product = next(s for s in screens(fixtures) if s.key == "product")
        preview = checkout_preview(fixtures)
        found = await probe(url, preview, fixtures.token, None, 3)
        if found.error:
            self.note(f"checkout preview: {found.error}")
        rates = {
            # Half of G1's own max (not B1's): a rate G1 sustains, so the p99 shows the ERP, not a queue.
            product.key: LATENCY_FRACTION * self.results["load"][f"G1/{product.key}"]["rps"],
            preview.key: LATENCY_FRACTION * (await self.max_throughput(url, preview, fixtures.token)).rps,
        }
        order_body, order_token = await erp.prepare(self.fixtures_db, sims.erp, self.workdir)
        run_key = uuid.uuid4().hex[:8]

        async def place_orders(label: str, pause_ms: float, seconds: float) -> LoadResult:
            args = [str(order_body), order_token, f"{run_key}{label}", f"{pause_ms:.0f}"]
            return await wrk(url, "order.lua", args, seconds, ORDER_CONNECTIONS)

        erp_results: dict[str, Any] = {}
        samples: dict[str, tuple[list[float], int, float]] = {}
        erp_calls: dict[str, int] = {}
        async with httpx.AsyncClient(trust_env=False) as client:

            async def inventory_queries() -> int:
                state = (await client.get(f"{sims.erp}/_sim/state")).json()
                return len(state.get("inventory_queries", []))

            # Interleaved rounds per state, samples pooled: a p99 from one short run moves with
            # whatever else the machine did in those seconds, and the comparison is what matters here.
            for _ in range(ERP_ROUNDS):
                for label, latency in (("healthy", 0.0), ("slow", 2.0)):
                    await client.post(f"{sims.erp}/_sim/config", json={"latency": latency})
                    for screen in (product, preview):
                        before = await inventory_queries()
                        text = await hey_raw(
                            url,
                            self.body_file(screen),
                            screen.headers(fixtures.token),
                            rates[screen.key],
                            ERP_ROUND_SECONDS,
                            LATENCY_WORKERS,
                        )
                        erp_calls[screen.key] = (
                            erp_calls.get(screen.key, 0) + await inventory_queries() - before
                        )
                        times, failures = hey_samples(text)
                        pooled = samples.get(f"{label}/{screen.key}", ([], 0, 0.0))
                        samples[f"{label}/{screen.key}"] = (
                            pooled[0] + times,
                            pooled[1] + failures,
                            pooled[2] + ERP_ROUND_SECONDS,
                        )
            # placeOrder after the screens (its writes refresh product aggregates and would disturb
            # them); one run per state: wrk reports percentiles only, and the gap is 0.8 s, not noise.
            await client.post(f"{sims.erp}/_sim/config", json={"latency": 0.0})
            await place_orders("w", 0, 1)  # warm-up: the order path's first statements and connections
            order_max = await place_orders("m", 0, self.seconds)
            erp_results["place_order_max"] = order_max.__dict__
            # A pause of one service time per request halves each connection's rate.
            pause = 1000 * ORDER_CONNECTIONS / max(order_max.rps, 1)
            rates["place_order"] = order_max.rps / 2
            for label, latency in (("healthy", 0.0), ("slow", 2.0)):
                await client.post(f"{sims.erp}/_sim/config", json={"latency": latency})
                before = await inventory_queries()
                lat = await place_orders(label[0], pause, self.seconds)
                erp_calls["place_order"] = (
                    erp_calls.get("place_order", 0) + await inventory_queries() - before
                )
                erp_results[f"{label}/place_order"] = {**lat.__dict__, "target_rate": rates["place_order"]}
            await client.post(f"{sims.erp}/_sim/config", json={"latency": 0.0})
        for key, (times, failures, seconds) in samples.items():
            erp_results[key] = {
                **summarise(times, failures, seconds).__dict__,
                "target_rate": rates[key.split("/")[1]],
            }
        self.results["erp_calls"] = erp_calls
        self.results["erp"] = erp_results
        self.note(f"ERP target p99: { {k: v['p99'] for k, v in erp_results.items()} }")

    async def sql_counts(self, variants: dict[str, Variant], big: str, small: str) -> None:
        """Statements per request of the G variants, in-process from Tortoise's statement log."""
        counts: dict[str, Any] = dict(self.results.get("sql", {}))
        plan = [
            ("G0", big, self.fixtures),
            ("G1", big, self.fixtures),
            ("G2", big, self.fixtures),
            ("G1small", small, self.small_fixtures),
        ]

        async def count(key: str, db: str, fixtures: Fixtures, redis_db: int) -> None:
            variant = variants[key.removesuffix("small")]
            requests = [(s.key, s.body().decode(), s.headers(fixtures.token)) for s in screens(fixtures)]
            path = self.workdir / f"sql_{key}.json"
            path.write_bytes(orjson.dumps(requests))
            prefix = f"bench-sql-{uuid.uuid4().hex[:6]}:"  # cold means cold: a cache namespace of its own
            # A Redis database of its own too: the processes run at once and must not warm each other.
            redis = variant.env["REDIS_URL"].rsplit("/", 1)[0] + f"/{redis_db}"
            env = {
                **os.environ,
                **variant.env,
                "DATABASE_URL": db,
                "CACHE_PREFIX": prefix,
                "REDIS_URL": redis,
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.sqlcount",
                str(path),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            if process.returncode != 0:
                self.note(f"SQL count of {key} failed: {err.decode()[-1500:]}")
                return
            counts[key] = orjson.loads(out.splitlines()[-1])

        # Statement counts do not depend on speed, so the four counting processes may share the CPUs.
        await asyncio.gather(*(count(*item, index + 1) for index, item in enumerate(plan)))
        order = ["B1", *(key for key, _, _ in plan)]
        self.results["sql"] = {k: counts[k] for k in order if k in counts}
        self.note(
            f"SQL per request (warm): { {k: {s: v[1] for s, v in c.items()} for k, c in counts.items()} }"
        )

    async def b1_sql(self, url: str, fixtures: Fixtures) -> None:
        """B1 counts its own statements: the counter's delta over a few requests per screen."""
        found: dict[str, list[float]] = {}
        stats = url.replace("/graphql", "/_bench/sql")
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            for screen in screens(fixtures):
                before = (await client.get(stats)).json()["statements"]
                for _ in range(3):
                    await client.post(url, content=screen.body(), headers=screen.headers(fixtures.token))
                after = (await client.get(stats)).json()["statements"]
                found[screen.key] = [(after - before) / 3, (after - before) / 3]
        self.results.setdefault("sql", {})["B1"] = found

    async def growth(self, variant: Variant, big: str, small: str) -> None:
        """Category and search p99 on 1,000 and on 100,000 products at one rate both sustain.

        The rate is half of G1's max on 100,000 products, so the p99 shows each query's cost rather
        than a queue; both sizes are measured here, one after the other, with the same settings.
        """
        growth: dict[str, Any] = {}
        for size, db, fixtures in (("small", small, self.small_fixtures), ("big", big, self.fixtures)):
            served = Variant(
                f"G1{size}", variant.description, variant.command, {**variant.env, "DATABASE_URL": db}
            )
            async with serve(served, free_port(), self.logs) as url:
                for screen in screens(fixtures):
                    if screen.key not in ("category_20", "search"):
                        continue
                    await probe(url, screen, fixtures.token, None, 5)  # warm-up
                    rate = LATENCY_FRACTION * self.results["load"][f"G1/{screen.key}"]["rps"]
                    # Twice the usual length: these few hundred requests decide a p99 ratio.
                    found = await hey(
                        url,
                        self.body_file(screen),
                        screen.headers(fixtures.token),
                        rate,
                        2 * self.latency_seconds,
                        LATENCY_WORKERS,
                    )
                    growth.setdefault(screen.key, {"target_rate": rate})[size] = found.__dict__
        self.results["growth"] = growth
        self.note(
            "p99 1k → 100k products: "
            f"{ {k: (v['small']['p99'], v['big']['p99']) for k, v in growth.items()} }"
        )

    async def flash_sale(self, variant: Variant, db: str) -> None:
        """PlaceOrder attempts on a 100-unit flash sale from 300 members, then the oversell check."""
        item_id, bodies, tokens = await flash.prepare(db, self.workdir)
        command = [*variant.command, "--workers", str(FLASH_WORKERS)]
        # Several workers cannot share one pinned core: unpinned, as production would run them.
        served = Variant("G1flash", variant.description, command, variant.env, cpu=None)
        async with serve(served, free_port(), self.logs) as url:
            result = await flash.burst(url, db, item_id, bodies, tokens, self.seconds)
        self.results["flash"] = {**result.__dict__, "oversold": result.oversold, "workers": FLASH_WORKERS}
        self.note(
            f"flash sale: {result.attempts_per_second:.0f} attempts/s, sold {result.sold}/{result.stock},"
            f" {result.orders} orders, {result.rejected} rejected, {result.failures} failed"
        )

    def meta(self) -> dict[str, str]:
        return {
            "finished": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "command": "make bench  (" + shlex.join([sys.executable, "-m", "bench.run", *sys.argv[1:]]) + ")",
            "commit": git_commit(ROOT),
        }


def main() -> None:
    """Parse the options and run the whole benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "4")))
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=float(os.environ.get("BENCH_LATENCY_SECONDS", "3")),
        help="length of each paced latency run (hey)",
    )
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument(
        "--fresh", action="store_true", help="seed the databases again even when their fingerprint matches"
    )
    parser.add_argument("--reuse-data", action="store_true", help=argparse.SUPPRESS)  # now the default
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bff-bench-") as tmp:
        asyncio.run(_until_signalled(Bench(args, Path(tmp))))


async def _until_signalled(bench: Bench) -> None:
    # SIGINT/SIGTERM cancel the run, so every server, Redis and simulator it started is stopped.
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    await bench.run()


if __name__ == "__main__":
    main()
