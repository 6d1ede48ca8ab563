"""Cached product-list totals: exact, counted once per catalog generation, fresh after a catalog write."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from bff.cache import Cache, create_cache
from bff.models.catalog import Brand, Product, Sku
from bff.services.catalog import refresh_product_aggregates
from bff.services.catalog_cache import invalidate_taxonomy
from bff.services.listing_counts import cached_count, count_key
from bff.services.product_listing import ListingFilter
from tests.support.factories import make_product
from tests.support.sql_counter import SqlCounter, count_sql


@pytest.fixture
async def cache(database_url: str) -> AsyncIterator[Cache]:
    # Redis when the run has one (the PostgreSQL + Redis run), else in-process; a prefix of its own.
    store = create_cache(os.environ.get("REDIS_URL") or None, prefix=f"counts-{uuid.uuid4().hex[:8]}:")
    yield store
    await store.clear()
    await store.close()


@pytest.fixture
async def brand(database_url: str) -> AsyncIterator[Brand]:
    """A brand only this test's products carry, so a brand filter lists exactly them."""
    created = await Brand.create(code=f"cnt-{uuid.uuid4().hex[:10]}", name="计数测试")
    yield created
    await Product.filter(brand_id=created.id).update(brand_id=None)
    await created.delete()


async def _branded(brand: Brand, skus: list[tuple[int, int]]) -> tuple[Product, list[Sku]]:
    product, rows = await make_product(skus)
    await Product.filter(id=product.id).update(brand_id=brand.id)
    return product, rows


def _counts(counter: SqlCounter) -> int:
    return sum("COUNT(" in statement.upper() for statement in counter.statements)


async def test_a_repeated_count_is_served_from_the_cache(cache: Cache, brand: Brand) -> None:
    for stock in (5, 0, 2):
        await _branded(brand, [(3_000, stock)])
    listing = ListingFilter(brand_ids=[brand.id])
    with count_sql() as cold:
        assert await cached_count(cache, listing) == 3
    with count_sql() as warm:
        assert await cached_count(cache, listing) == 3
    assert _counts(cold) == 1
    assert warm.count == 0


async def test_a_stock_change_gives_a_fresh_count(cache: Cache, brand: Brand) -> None:
    product, (sku,) = await _branded(brand, [(3_000, 1)])
    await _branded(brand, [(4_000, 7)])
    in_stock = ListingFilter(brand_ids=[brand.id], in_stock_only=True)
    assert await cached_count(cache, in_stock) == 2
    # What an order or an ERP inventory event does: write the SKU, refresh aggregates, invalidate.
    await Sku.filter(id=sku.id).update(stock=0)
    await refresh_product_aggregates(cache, [product.id])
    with count_sql() as fresh:
        assert await cached_count(cache, in_stock) == 1
    assert _counts(fresh) == 1
    assert await cached_count(cache, ListingFilter(brand_ids=[brand.id])) == 2


async def test_a_taxonomy_write_also_recounts(cache: Cache, brand: Brand) -> None:
    product, _ = await _branded(brand, [(3_000, 1)])
    listing = ListingFilter(brand_ids=[brand.id])
    assert await cached_count(cache, listing) == 1
    await Product.filter(id=product.id).update(on_shelf=False)
    await invalidate_taxonomy(cache, [brand.id])
    assert await cached_count(cache, listing) == 0


async def test_without_an_invalidation_the_cached_figure_stands(cache: Cache, brand: Brand) -> None:
    # The contract writers rely on: a write that skips catalog_cache is not seen until the TTL.
    await _branded(brand, [(3_000, 1)])
    listing = ListingFilter(brand_ids=[brand.id])
    assert await cached_count(cache, listing) == 1
    await _branded(brand, [(3_000, 1)])
    assert await cached_count(cache, listing) == 1
    await refresh_product_aggregates(cache, [])  # no products: nothing invalidated
    assert await cached_count(cache, listing) == 1


def test_filters_that_list_the_same_products_share_a_key() -> None:
    assert count_key(ListingFilter(keyword="蓝牙 降噪")) == count_key(ListingFilter(keyword="降噪，蓝牙"))
    assert count_key(ListingFilter(keyword="ＭＡＴＥ")) == count_key(ListingFilter(keyword="mate"))
    assert count_key(ListingFilter(category_ids=[3, 1, 3])) == count_key(ListingFilter(category_ids=[1, 3]))
    assert count_key(ListingFilter(keyword="  ")) == count_key(ListingFilter())


def test_filters_that_differ_get_different_keys() -> None:
    keys = {
        count_key(f)
        for f in (
            ListingFilter(),
            ListingFilter(category_ids=[]),
            ListingFilter(category_ids=[1]),
            ListingFilter(brand_ids=[1]),
            ListingFilter(brand_ids=[]),
            ListingFilter(min_price=100),
            ListingFilter(max_price=100),
            ListingFilter(in_stock_only=True),
            ListingFilter(keyword="蓝牙"),
            ListingFilter(keyword="蓝牙 耳机"),
            ListingFilter(exclude_ids=(1,)),
        )
    }
    assert len(keys) == 11
