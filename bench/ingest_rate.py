"""Tracking ingestion rate: concurrent clients post batches of 100 valid events to trackEvents.

Without --url it migrates (and demo-seeds, once) the database of DATABASE_URL, starts the BFF with
uvicorn on a free port and stops it afterwards.
Prints {"events_per_second": …, "batches": …, "errors": …} as JSON.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench python bench/ingest_rate.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bff.documents import operations

ROOT = Path(__file__).resolve().parents[1]
BATCH = 100
MUTATION = operations()["TrackEvents"]  # the document the mini-program ships
PRODUCTS = "query BenchProducts { products(first: 50) { edges { node { id } } } }"


@dataclass
class Tally:
    batches: int = 0
    events: int = 0
    errors: int = 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(workers: int) -> Iterator[str]:
    """Migrate and seed, then run the BFF in a child process; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for step in (["migrate"], ["seed", "--demo"]):  # the seed is skipped when already there
        subprocess.run([sys.executable, "-m", "bff.cli", *step], check=True, env=env, cwd=ROOT)
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "bff.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


READY_TIMEOUT = 30.0


async def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the BFF at {url} did not become ready in {READY_TIMEOUT:.0f}s")
            await asyncio.sleep(0.2)


async def _product_ids(http: httpx.AsyncClient, url: str) -> list[str]:
    """Some product ids for product events; none (and no product events) on an unseeded database."""
    response = await http.post(f"{url}/graphql", json={"query": PRODUCTS})
    edges = ((response.json().get("data") or {}).get("products") or {}).get("edges") or []
    return [str(edge["node"]["id"]) for edge in edges]


def _batch(device: str, seq: int, products: list[str]) -> bytes:
    """100 valid events of one device's session: views, exposures, clicks, searches, carts, shares."""
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for i in range(BATCH):
        event: dict[str, Any] = {
            "clientEventId": f"{seq}-{i}",
            "anonymousId": device,
            "sessionId": f"{device}-s{seq}",
            "type": "page_view",
            "page": "/pages/home/index",
            "clientTime": (now - timedelta(milliseconds=BATCH - i)).isoformat(),
            "properties": {"position": i % 20, "tab": "推荐"},
        }
        kind = i % 10
        if products and kind in (1, 2, 3, 4):
            event["type"] = "product_exposure"
            event["productId"] = products[(seq + i) % len(products)]
        elif products and kind == 5:
            event["type"] = "product_click"
            event["productId"] = products[(seq + i) % len(products)]
        elif products and kind == 6:
            event["type"] = "add_to_cart"
            event["productId"] = products[(seq + i) % len(products)]
        elif kind == 7:
            event.update(type="search", keyword=f"茶 {i % 7}", resultCount=i % 5)
        elif kind == 8:
            event["type"] = "share"
        events.append(event)
    body = {"query": MUTATION, "variables": {"events": events}, "operationName": "TrackEvents"}
    return orjson.dumps(body)


async def _client(url: str, products: list[str], deadline: float, tally: Tally) -> None:
    device = f"bench-{uuid.uuid4().hex[:16]}"
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30.0) as http:
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            try:
                response = await http.post(
                    f"{url}/graphql", content=_batch(device, seq, products), headers=headers
                )
                data = response.json().get("data") or {}
                accepted = (data.get("trackEvents") or {}).get("accepted", 0)
            except (httpx.HTTPError, ValueError):
                accepted = 0
            tally.batches += 1
            tally.events += accepted
            if accepted != BATCH:
                tally.errors += 1


async def measure(url: str, seconds: float, concurrency: int) -> dict[str, float | int]:
    """Post batches from `concurrency` clients for `seconds`; the stored events per second."""
    await _wait_ready(url)
    async with httpx.AsyncClient(timeout=10.0) as http:
        products = await _product_ids(http, url)
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(_client(url, products, deadline, tally) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return {
        "events_per_second": round(tally.events / elapsed, 1),
        "batches": tally.batches,
        "errors": tally.errors,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run the benchmark, print its JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to post (default 10)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--url", help="an already running BFF (default: start one on DATABASE_URL)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn workers of the started BFF (default: CPUs)",
    )
    args = parser.parse_args(argv)
    if args.url:
        result = asyncio.run(measure(args.url.rstrip("/"), args.seconds, args.concurrency))
    else:
        with _server(args.workers) as url:
            result = asyncio.run(measure(url, args.seconds, args.concurrency))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
