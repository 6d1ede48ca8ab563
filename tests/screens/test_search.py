"""Search screen: keyword search (Chinese, pinyin, initials), hot keywords and suggestions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bff.cache import Cache
from bff.ids import decode_id
from bff.models.catalog import Category, Product
from bff.models.search import SearchKeywordDaily
from bff.services.catalog import refresh_product_aggregates
from bff.services.search import normalise_keyword, shop_today
from bff.services.search_index import reindex_products
from tests.support.api import Api
from tests.support.factories import make_product
from tests.support.sql_counter import count_sql


async def _titles(data: dict[str, Any]) -> list[str]:
    return [e["node"]["title"] for e in data["products"]["edges"]]


async def test_keyword_search_finds_products_titled_with_it_first(api: Api) -> None:
    data = await api.op("Search", {"keyword": "手机", "first": 20})
    products = data["products"]
    assert products["totalCount"] > 0
    titles = await _titles(data)
    assert titles and "手机" in titles[0]
    # Title matches come before matches on subtitle/brand/category only.
    hits = ["手机" in t for t in titles]
    assert hits == sorted(hits, reverse=True)
    ids = [decode_id(e["node"]["id"], "Product") for e in products["edges"]]
    names = {c.id: (c.name, c.parent_id) for c in await Category.all()}
    for product in await Product.filter(id__in=ids).prefetch_related("brand"):
        name, parent = names[product.category_id]
        haystack = f"{product.title}{product.subtitle}{name}{names[parent][0] if parent else ''}"
        haystack += product.brand.name if product.brand else ""
        assert "手机" in haystack


async def test_pinyin_and_initials_find_the_same_products(api: Api) -> None:
    by_hanzi = await api.op("Search", {"keyword": "手机", "first": 100})
    by_pinyin = await api.op("Search", {"keyword": "shouji", "first": 100})
    by_initials = await api.op("Search", {"keyword": "sj", "first": 100})
    hanzi_ids = {e["node"]["id"] for e in by_hanzi["products"]["edges"]}
    assert hanzi_ids <= {e["node"]["id"] for e in by_pinyin["products"]["edges"]}
    assert by_pinyin["products"]["totalCount"] >= by_hanzi["products"]["totalCount"]
    assert by_initials["products"]["totalCount"] >= by_hanzi["products"]["totalCount"]


async def test_multi_word_search_needs_every_word(api: Api) -> None:
    product = await Product.filter(on_shelf=True).prefetch_related("brand").order_by("id").first()
    assert product is not None and product.brand is not None
    word = product.title.split()[-1][:2]
    data = await api.op("Search", {"keyword": f"{product.brand.name} {word}", "first": 100})
    titles_and_brands = [
        (p.title + p.subtitle, p.brand.name if p.brand else "")
        for p in await Product.filter(
            id__in=[decode_id(e["node"]["id"], "Product") for e in data["products"]["edges"]]
        ).prefetch_related("brand")
    ]
    assert data["products"]["totalCount"] >= 1
    assert all(product.brand.name in text + brand for text, brand in titles_and_brands)


async def _week_counts() -> dict[str, int]:
    since = shop_today() - timedelta(days=6)
    counts: dict[str, int] = {}
    for row in await SearchKeywordDaily.filter(day__gte=since, last_result_count__gt=0):
        counts[row.keyword] = counts.get(row.keyword, 0) + row.search_count
    return counts


async def test_searches_are_counted_into_hot_keywords(api: Api) -> None:
    keyword = normalise_keyword("  华为Mate ")
    assert keyword == "华为mate"
    before = (await _week_counts()).get(keyword, 0)
    for _ in range(3):
        await api.op("Search", {"keyword": "  华为Mate ", "first": 1})
    await api.op("Search", {"keyword": "华为MATE", "first": 1, "after": None})
    counts = await _week_counts()
    assert counts[keyword] == before + 4
    data = await api.op("Search", {"keyword": keyword, "first": 1})
    hottest = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert set(data["hotKeywords"]) == {k for k, _ in hottest}
    assert data["hotKeywords"][0] == hottest[0][0]


async def test_suggestions_complete_the_prefix(api: Api) -> None:
    data = await api.op("Search", {"keyword": "手", "first": 1})
    assert data["searchSuggestions"] and len(data["searchSuggestions"]) <= 8
    assert data["searchSuggestions"][0].startswith("手")
    pinyin = await api.op("Search", {"keyword": "shou", "first": 1})
    assert "手机" in pinyin["searchSuggestions"]


async def test_a_keyword_that_matches_nothing_is_an_empty_page(api: Api) -> None:
    data = await api.op("Search", {"keyword": "zzqqxx不存在的东西", "first": 5})
    assert data["products"] == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


async def test_a_repeated_search_total_comes_from_the_cache_until_the_catalog_changes(
    api: Api, cache: Cache
) -> None:
    product, _ = await make_product([(2_500, 4)])
    keyword = product.title.split()[-1]  # the product's unique tag
    await reindex_products([product.id])
    await refresh_product_aggregates(cache, [product.id])
    assert (await api.op("Search", {"keyword": keyword, "first": 5}))["products"]["totalCount"] == 1
    with count_sql() as again:
        data = await api.op("Search", {"keyword": keyword.upper(), "first": 5})
    assert data["products"]["totalCount"] == 1
    assert not any("COUNT(" in s.upper() for s in again.statements)
    row = await SearchKeywordDaily.get(day=shop_today(), keyword=normalise_keyword(keyword))
    assert row.search_count == 2 and row.last_result_count == 1
    # Taken off the shelf by an ERP product event: the total is recounted.
    await Product.filter(id=product.id).update(on_shelf=False)
    await refresh_product_aggregates(cache, [product.id])
    assert (await api.op("Search", {"keyword": keyword, "first": 5}))["products"]["totalCount"] == 0
