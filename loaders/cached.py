"""Read-through caching for batch functions: cache hits first, one query for the misses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from bff.cache import Cache

Values = dict[str, Any]


async def read_through(
    cache: Cache,
    namespace: str,
    keys: Sequence[int],
    ttl: float,
    fetch: Callable[[list[int]], Awaitable[dict[int, Any]]],
) -> list[Any | None]:
    """Values for `keys` from the cache, fetching and caching the misses in one call."""
    cache_keys = [f"{namespace}:{key}" for key in keys]
    cached = await cache.get_many(cache_keys)
    found: dict[int, Any] = {}
    missing: list[int] = []
    for key, raw in zip(keys, cached, strict=True):
        if raw is None:
            missing.append(key)
        else:
            found[key] = orjson.loads(raw)
    if missing:
        fetched = await fetch(missing)
        if fetched:
            await cache.set_many(
                {f"{namespace}:{key}": orjson.dumps(value) for key, value in fetched.items()}, ttl
            )
            # Round-trip through JSON so a hit and a miss hand callers the same shapes.
            found.update({key: orjson.loads(orjson.dumps(value)) for key, value in fetched.items()})
    return [found.get(key) for key in keys]


def as_datetime(value: datetime | str | None) -> datetime | None:
    """A datetime from a row value that may have been through the JSON cache."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
