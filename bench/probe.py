"""Sequential requests to one screen: the response, its size, and Redis calls per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import redis.asyncio as redis

from bench.screens import Screen


@dataclass(frozen=True)
class Probe:
    """What a screen's response is and costs, measured without load."""

    body: bytes
    status: int
    bytes: int
    redis_per_request: float | None
    cache_headers: list[str]

    @property
    def payload(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error(self) -> str | None:
        """Why the response is not a clean screen answer, or None."""
        if self.status != 200:
            return f"HTTP {self.status}: {self.body[:200]!r}"
        payload = self.payload
        if "errors" in payload:
            return f"errors: {str(payload['errors'])[:300]}"
        return None


async def redis_calls(client: redis.Redis) -> int:
    """Commands the Redis server has run so far (every kind summed)."""
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


async def _redis_overhead(client: redis.Redis) -> int:
    # What reading the counters costs in counted commands (INFO itself), measured, not assumed.
    first = await redis_calls(client)
    return await redis_calls(client) - first


async def probe(url: str, screen: Screen, token: str, redis_url: str | None, requests: int = 10) -> Probe:
    """Send the screen `requests` times after one warm-up; the last response is kept."""
    headers = screen.headers(token)
    body = screen.body()
    counters = redis.from_url(redis_url) if redis_url else None
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        await client.post(url, content=body, headers=headers)
        overhead = await _redis_overhead(counters) if counters else 0
        before = await redis_calls(counters) if counters else 0
        cache_headers = []
        response = None
        for _ in range(requests):
            response = await client.post(url, content=body, headers=headers)
            cache_headers.append(response.headers.get("x-cache", "-"))
        after = await redis_calls(counters) - overhead if counters else 0
    if counters is not None:
        await counters.aclose()
    assert response is not None
    return Probe(
        body=response.content,
        status=response.status_code,
        bytes=len(response.content),
        redis_per_request=(after - before) / requests if redis_url else None,
        cache_headers=cache_headers,
    )


def first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    """Where two JSON values first differ (None when equal), for the equality report."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(dict.fromkeys([*a, *b])):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'B1' if key in a else 'G1'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {str(a)[:80]!r} vs {str(b)[:80]!r}"
