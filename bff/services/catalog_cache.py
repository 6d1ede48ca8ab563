"""Invalidation of cached catalog reads: every writer of catalog rows calls these after committing."""

from __future__ import annotations

from collections.abc import Iterable

from bff.cache import Cache
from bff.response_cache import invalidate_responses
from loaders.content import BANNER_POSITIONS


async def invalidate_products(cache: Cache, product_ids: Iterable[int]) -> None:
    """Forget the cached rows, SKUs and details of these products."""
    keys = [f"catalog:{kind}:{pid}" for pid in set(product_ids) for kind in ("product", "skus", "detail")]
    if keys:
        await cache.delete(*keys)
        await invalidate_responses(cache)  # cached screens show these products' prices and stock


async def invalidate_taxonomy(cache: Cache, brand_ids: Iterable[int] = ()) -> None:
    """Forget the cached category tree, member levels and the given brands."""
    await cache.delete(
        "catalog:categories:0", "member:levels:0", *(f"catalog:brand:{b}" for b in set(brand_ids))
    )
    await invalidate_responses(cache)


async def invalidate_banners(cache: Cache) -> None:
    """Forget every cached banner list."""
    await cache.delete(*(f"content:banners:{i}" for i in range(len(BANNER_POSITIONS))))
    await invalidate_responses(cache)
