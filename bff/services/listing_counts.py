"""Exact product-list totals, counted once per catalog generation and then served from the cache.

A count is stored with the catalog generation it was computed under (the one every catalog write
bumps: ERP webhooks, order stock changes, price and shelf edits, see bff/services/catalog_cache.py);
a read under a newer generation misses and recounts. The TTL is only a backstop for writes that
bypass those invalidations (bulk loads, hand edits in the database).
"""

from __future__ import annotations

from bff.cache import Cache
from bff.services.generation_cache import get_current, set_current
from bff.services.product_listing import ListingFilter, count_products, filter_key

COUNT_TTL = 600.0


def count_key(listing: ListingFilter) -> str:
    """The cache key of the listing's total: equal for filters that list the same products."""
    return "count:products:" + filter_key(listing)


async def cached_count(cache: Cache, listing: ListingFilter) -> int:
    """How many products the filter lists: from the cache when counted since the last catalog write."""
    key = count_key(listing)
    generation, entry = await get_current(cache, key)
    if entry is not None and entry.isdigit():
        return int(entry)
    total = await count_products(listing)
    await set_current(cache, key, generation, b"%d" % total, COUNT_TTL)
    return total
