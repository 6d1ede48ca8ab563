"""SQL statements per screen request of the BFF, counted in-process (Tortoise's statement log).

Run as a subprocess with the variant's environment (BFF_NAIVE, BFF_RESPONSE_CACHE, DATABASE_URL…):
    python -m bench.sqlcount <requests.json>   # [[key, body, headers], …] → {key: [cold, warm]} on stdout
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import httpx
import orjson

from bff.app import create_app
from tests.support.sql_counter import count_sql

WARM_REQUESTS = 3


async def count(requests: list[tuple[str, str, dict[str, str]]]) -> dict[str, list[float]]:
    """For each request: statements of the first (cold caches) and the mean of the next ones (warm)."""
    app = create_app()
    found: dict[str, list[float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for key, body, headers in requests:
                with count_sql() as cold:
                    first = await client.post("/graphql", content=body, headers=headers)
                if first.status_code != 200 or b'"errors"' in first.content:
                    raise RuntimeError(f"{key}: {first.status_code} {first.content[:300]!r}")
                with count_sql() as warm:
                    for _ in range(WARM_REQUESTS):
                        await client.post("/graphql", content=body, headers=headers)
                found[key] = [float(cold.count), warm.count / WARM_REQUESTS]
    return found


def main() -> None:
    """Read the requests file, print the counts as JSON."""
    logging.basicConfig(level=logging.WARNING)
    requests = orjson.loads(Path(sys.argv[1]).read_bytes())
    sys.stdout.write(orjson.dumps(asyncio.run(count(requests))).decode() + "\n")


if __name__ == "__main__":
    main()
