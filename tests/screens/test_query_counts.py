"""Batching: each screen costs a fixed number of SQL statements, whatever the page size."""

from __future__ import annotations

from typing import Any

from bff.cache import Cache
from bff.documents import operations
from bff.ids import encode_id
from bff.models.catalog import Category, Product
from tests.support.api import Api
from tests.support.sql_counter import count_sql


async def _statements(api: Api, cache: Cache, name: str, variables: dict[str, Any], token: str | None) -> int:
    await cache.clear()  # a cold cache: count what the database really does
    with count_sql() as counter:
        response = await api.post(operations()[name], variables, token=token, operation_name=name)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return counter.count


async def test_home_costs_the_same_for_20_and_100_products(api: Api, cache: Cache, alice: str) -> None:
    for token in (None, alice):
        small = await _statements(api, cache, "Home", {"recommendFirst": 20}, token)
        large = await _statements(api, cache, "Home", {"recommendFirst": 100}, token)
        assert small == large
    assert small <= 16


async def test_a_warm_cache_saves_catalog_queries(api: Api, cache: Cache) -> None:
    cold = await _statements(api, cache, "Home", {"recommendFirst": 20}, None)
    with count_sql() as warm:
        await api.op("Home", {"recommendFirst": 20})
    assert warm.count < cold


async def test_category_page_costs_the_same_for_20_and_100_items(api: Api, cache: Cache) -> None:
    category = await Category.filter(parent_id__isnull=True).order_by("id").first()
    assert category is not None
    variables = {"categoryId": encode_id("Category", category.id)}
    small = await _statements(api, cache, "ProductList", {**variables, "first": 20}, None)
    large = await _statements(api, cache, "ProductList", {**variables, "first": 100}, None)
    assert small == large <= 6


async def test_search_costs_the_same_for_any_page_size(api: Api, cache: Cache) -> None:
    small = await _statements(api, cache, "Search", {"keyword": "耳机", "first": 5}, None)
    large = await _statements(api, cache, "Search", {"keyword": "耳机", "first": 100}, None)
    assert small == large <= 8


async def test_product_detail_is_a_fixed_number_of_queries(api: Api, cache: Cache, alice: str) -> None:
    counts = set()
    for product in await Product.filter(on_shelf=True).order_by("-sales_count").limit(3):
        counts.add(
            await _statements(api, cache, "ProductDetail", {"id": encode_id("Product", product.id)}, alice)
        )
    assert len(counts) == 1 and counts.pop() <= 16


async def test_cart_and_member_centre_do_not_grow_with_lines(api: Api, cache: Cache, alice: str) -> None:
    assert await _statements(api, cache, "Cart", {}, alice) <= 6
    small = await _statements(api, cache, "MemberCenter", {"ledgerFirst": 2}, alice)
    large = await _statements(api, cache, "MemberCenter", {"ledgerFirst": 50}, alice)
    assert small == large <= 10
