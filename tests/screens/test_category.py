"""Category / product-list screen: filters, every sort order, and cursor pagination."""

from __future__ import annotations

from typing import Any

import pytest

from bff.cache import Cache
from bff.models.catalog import Category, Product, Sku
from bff.services.catalog import refresh_product_aggregates
from bff.services.catalog_cache import invalidate_taxonomy
from tests.support.api import Api
from tests.support.factories import make_product
from tests.support.sql_counter import count_sql


async def _walk(api: Api, variables: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    nodes: list[dict[str, Any]] = []
    after = None
    total = -1
    for _ in range(200):
        data = await api.op("ProductList", {**variables, "after": after})
        page = data["products"]
        total = page["totalCount"]
        nodes.extend(e["node"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    return nodes, total


async def _top_category_with_products() -> Category:
    for category in await Category.filter(parent_id__isnull=True).order_by("id"):
        children = await Category.filter(parent_id=category.id).values_list("id", flat=True)
        if await Product.filter(category_id__in=list(children), on_shelf=True).count() >= 25:
            return category
    raise AssertionError("the seed has no top-level category with 25 products")


async def test_walking_every_page_returns_total_count_distinct_products(api: Api) -> None:
    from bff.ids import encode_id

    category = await _top_category_with_products()
    nodes, total = await _walk(api, {"categoryId": encode_id("Category", category.id), "first": 7})
    ids = [n["id"] for n in nodes]
    assert len(ids) == total == len(set(ids))
    children = await Category.filter(parent_id=category.id).values_list("id", flat=True)
    assert total == await Product.filter(category_id__in=[category.id, *children], on_shelf=True).count()


async def test_category_header_lists_its_children(api: Api) -> None:
    from bff.ids import encode_id

    category = await _top_category_with_products()
    data = await api.op("ProductList", {"categoryId": encode_id("Category", category.id), "first": 1})
    children = await Category.filter(parent_id=category.id).order_by("sort_order", "id")
    assert data["category"]["name"] == category.name
    assert [c["name"] for c in data["category"]["children"]] == [c.name for c in children]


@pytest.mark.parametrize(
    ("sort", "key", "descending"),
    [
        ("SALES", lambda n: n["salesCount"], True),
        ("PRICE_ASC", lambda n: n["price"]["amount"], False),
        ("PRICE_DESC", lambda n: n["price"]["amount"], True),
        ("RELEVANCE", lambda n: n["salesCount"], True),
    ],
)
async def test_each_sort_order_really_is_sorted_across_pages(
    api: Api, sort: str, key: Any, descending: bool
) -> None:
    from bff.ids import encode_id

    category = await _top_category_with_products()
    nodes, total = await _walk(
        api, {"categoryId": encode_id("Category", category.id), "sort": sort, "first": 9}
    )
    values = [key(n) for n in nodes]
    assert values == sorted(values, reverse=descending)
    assert len({n["id"] for n in nodes}) == total


async def test_newest_sort_follows_creation_time(api: Api) -> None:
    from bff.ids import decode_id, encode_id

    category = await _top_category_with_products()
    nodes, _ = await _walk(
        api, {"categoryId": encode_id("Category", category.id), "sort": "NEWEST", "first": 8}
    )
    ids = [decode_id(n["id"], "Product") for n in nodes]
    created = {p.id: p.created_at for p in await Product.filter(id__in=ids)}
    times = [created[i] for i in ids]
    assert times == sorted(times, reverse=True)


async def test_filters_by_brand_price_and_stock(api: Api) -> None:
    from bff.ids import encode_id

    product = (
        await Product.filter(on_shelf=True, in_stock=True, brand_id__isnull=False).order_by("id").first()
    )
    assert product is not None and product.brand_id is not None
    low, high = product.price_fen - 1000, product.price_fen + 1000
    nodes, total = await _walk(
        api,
        {
            "brandIds": [encode_id("Brand", product.brand_id)],
            "minPrice": low,
            "maxPrice": high,
            "inStockOnly": True,
            "first": 50,
        },
    )
    assert encode_id("Product", product.id) in {n["id"] for n in nodes}
    assert total == len(nodes)
    for node in nodes:
        assert node["brand"]["id"] == encode_id("Brand", product.brand_id)
        assert low <= node["price"]["amount"] <= high
        assert node["inStock"] is True
    expected = await Product.filter(
        brand_id=product.brand_id, price_fen__gte=low, price_fen__lte=high, in_stock=True, on_shelf=True
    ).count()
    assert total == expected


async def test_in_stock_agrees_with_the_skus(api: Api) -> None:
    nodes, _ = await _walk(api, {"first": 100, "sort": "PRICE_ASC", "maxPrice": 20000})
    from bff.ids import decode_id

    ids = [decode_id(n["id"], "Product") for n in nodes]
    stocked = set(await Sku.filter(product_id__in=ids, stock__gt=0).values_list("product_id", flat=True))
    assert any(not n["inStock"] for n in nodes), "the seed should have out-of-stock products"
    for node, pid in zip(nodes, ids, strict=True):
        assert node["inStock"] is (pid in stocked)


async def test_first_above_100_is_a_clear_error(api: Api) -> None:
    body = await api.raw("ProductList", {"first": 101})
    assert body["data"] is None
    assert "between 0 and 100" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_forged_cursor_is_a_clear_error(api: Api) -> None:
    body = await api.raw("ProductList", {"first": 5, "after": "not-a-cursor"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_unknown_category_lists_nothing(api: Api) -> None:
    data = await api.op("ProductList", {"categoryId": "bm9wZQ", "first": 5})
    assert data["category"] is None
    assert data["products"]["totalCount"] == 0 and data["products"]["edges"] == []


async def test_a_repeated_total_is_served_from_the_cache_until_stock_changes(api: Api, cache: Cache) -> None:
    from bff.ids import encode_id

    product, (sku,) = await make_product([(4_200, 3)])
    await refresh_product_aggregates(cache, [product.id])  # how every catalog writer finishes
    await invalidate_taxonomy(cache)  # the fixtures' category may be newer than the cached tree
    variables = {"categoryId": encode_id("Category", product.category_id), "inStockOnly": True, "first": 1}
    first = (await api.op("ProductList", variables))["products"]["totalCount"]
    with count_sql() as again:
        assert (await api.op("ProductList", variables))["products"]["totalCount"] == first
    assert not any("COUNT(" in s.upper() for s in again.statements)
    assert (
        first == await Product.filter(category_id=product.category_id, on_shelf=True, in_stock=True).count()
    )
    # An order (or an ERP inventory event) takes the last units: the next total is recounted.
    await Sku.filter(id=sku.id).update(stock=0)
    await refresh_product_aggregates(cache, [product.id])
    with count_sql() as fresh:
        assert (await api.op("ProductList", variables))["products"]["totalCount"] == first - 1
    assert any("COUNT(" in s.upper() for s in fresh.statements)
