"""Cache entries tagged with the catalog generation they were computed under (see catalog_cache.py)."""

from __future__ import annotations

from bff.cache import Cache
from bff.response_cache import GENERATION

_GENERATION_KEY = f"gen:{GENERATION}"  # bff.cache.generation's key, read with the entry in one round trip


async def get_current(cache: Cache, key: str) -> tuple[int, bytes | None]:
    """The catalog generation now, and the entry at key if it was computed under that generation."""
    raw_generation, entry = await cache.get_many([_GENERATION_KEY, key])
    generation = int(raw_generation) if raw_generation is not None else 0
    if entry is None:
        return generation, None
    tag, _, value = entry.partition(b":")
    # Computed under an older generation: a catalog write happened since, so it may be wrong.
    return generation, value if tag == b"%d" % generation else None


async def set_current(cache: Cache, key: str, generation: int, value: bytes, ttl: float) -> None:
    """Store value at key tagged with `generation`, the one get_current returned before computing it."""
    # A write committed while computing bumps the generation past this tag, so the next read
    # recomputes instead of trusting a value that may predate the write.
    await cache.set(key, b"%d:" % generation + value, ttl)
