"""Keyword search, relevance, search statistics and suggestions, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from tortoise import connections
from tortoise.expressions import Q

from bff.cache import Cache, MemoryCache
from bff.errors import PublicError
from bff.models.catalog import Brand, Category, Product
from bff.models.search import SearchKeywordDaily, SearchToken
from bff.pagination import encode_cursor
from bff.services import product_listing
from bff.services.catalog_cache import invalidate_products
from bff.services.product_listing import ListingFilter, Sort, list_products
from bff.services.search import (
    hot_keywords,
    keyword_filter,
    record_search,
    search_suggestions,
    shop_today,
    title_relevance,
    zero_result_keywords,
)
from bff.services.search_index import reindex_products
from tests.support.sql_counter import count_sql

LONG_WORD = "abcdefghijklmnopqrstuvwxyz0123456789xy"  # longer than a token


@dataclass
class Catalog:
    phone: int
    earbuds: int
    case: int
    speaker_off_shelf: int
    long_name: int
    brand_name: str

    @property
    def ids(self) -> list[int]:
        return [self.phone, self.earbuds, self.case, self.speaker_off_shelf, self.long_name]


@pytest.fixture(scope="module")
async def catalog(database_url: str) -> AsyncIterator[Catalog]:
    code = uuid.uuid4().hex[:8]
    digital = await Category.create(code=f"s-digital-{code}", name="数码")
    phones = await Category.create(code=f"s-phones-{code}", name="手机", parent=digital)
    audio = await Category.create(code=f"s-audio-{code}", name="耳机", parent=digital)
    # A brand name no other test uses, so suggestions can be asserted exactly.
    brand_name = "鸵鸟牌"
    huawei = await Brand.create(code=f"s-huawei-{code}", name="华为")
    sony = await Brand.create(code=f"s-sony-{code}", name="Sony索尼")
    ostrich = await Brand.create(code=f"s-ostrich-{code}", name=brand_name)

    async def product(
        title: str, subtitle: str, category: Category, brand: Brand | None, **extra: Any
    ) -> int:
        created = await Product.create(
            spu_code=f"s-{uuid.uuid4().hex[:12]}",
            title=title,
            subtitle=subtitle,
            category=category,
            brand=brand,
            **extra,
        )
        return created.id

    built = Catalog(
        phone=await product("华为Mate60 Pro 5G手机", "超长续航", phones, huawei, sales_count=10),
        earbuds=await product("无线蓝牙耳机 降噪", "适配手机", audio, sony, sales_count=50),
        case=await product("透明保护壳", "华为手机专用", phones, ostrich, sales_count=30),
        speaker_off_shelf=await product("蓝牙音箱", "", audio, None, on_shelf=False),
        long_name=await product(f"型号 {LONG_WORD}", "", digital, None),
        brand_name=brand_name,
    )
    await reindex_products(built.ids)
    yield built
    await SearchToken.filter(product_id__in=built.ids).delete()
    await Product.filter(id__in=built.ids).delete()
    await Brand.filter(id__in=[huawei.id, sony.id, ostrich.id]).delete()
    await Category.filter(id__in=[phones.id, audio.id]).delete()
    await digital.delete()


async def found(catalog: Catalog, keyword: str) -> set[int]:
    rows = await Product.filter(keyword_filter(keyword), id__in=catalog.ids).values("id")
    return {row["id"] for row in rows}


async def test_substring_of_a_cjk_run(catalog: Catalog) -> None:
    assert await found(catalog, "蓝牙") == {catalog.earbuds, catalog.speaker_off_shelf}
    assert await found(catalog, "牙耳") == {catalog.earbuds}
    assert await found(catalog, "蓝牙耳机") == {catalog.earbuds}


async def test_every_word_must_match(catalog: Catalog) -> None:
    assert await found(catalog, "蓝牙 降噪") == {catalog.earbuds}
    assert await found(catalog, "降噪，蓝牙") == {catalog.earbuds}
    assert await found(catalog, "蓝牙 华为") == set()
    # Mixed scripts split into terms: "华为" and "mate".
    assert await found(catalog, "华为mate") == {catalog.phone}


async def test_brand_and_category_names_match(catalog: Catalog) -> None:
    assert await found(catalog, "索尼") == {catalog.earbuds}
    assert await found(catalog, "SONY") == {catalog.earbuds}
    assert await found(catalog, "鸵鸟") == {catalog.case}
    assert await found(catalog, "耳机") == {catalog.earbuds, catalog.speaker_off_shelf}
    # The parent category matches every product below it.
    assert await found(catalog, "数码") == set(catalog.ids)


async def test_pinyin_and_initials_find_chinese(catalog: Catalog) -> None:
    phone_related = {catalog.phone, catalog.earbuds, catalog.case}
    assert await found(catalog, "shouji") == phone_related
    assert await found(catalog, "sj") == phone_related
    assert await found(catalog, "shou") == phone_related
    assert await found(catalog, "huawei shouji") == {catalog.phone, catalog.case}
    assert await found(catalog, "lanya jiangzao") == {catalog.earbuds}
    assert await found(catalog, "lyej") == {catalog.earbuds}
    # Suffixes stop at syllable boundaries only.
    assert await found(catalog, "houji") == set()


async def test_full_width_and_upper_case_keywords(catalog: Catalog) -> None:
    assert await found(catalog, "ＭＡＴＥ６０") == {catalog.phone}
    assert await found(catalog, "MATE60 PRO") == {catalog.phone}
    assert await found(catalog, "ate6") == {catalog.phone}


async def test_terms_longer_than_a_token_are_rechecked(catalog: Catalog) -> None:
    assert await found(catalog, LONG_WORD) == {catalog.long_name}
    assert await found(catalog, LONG_WORD[:-2] + "zz") == set()


async def test_blank_keyword_filters_nothing(catalog: Catalog) -> None:
    assert await found(catalog, "  ") == set(catalog.ids)


async def test_title_matches_rank_first_then_sales(catalog: Catalog) -> None:
    keyword = "手机"
    products = (
        await Product.filter(keyword_filter(keyword), id__in=catalog.ids, on_shelf=True)
        .annotate(relevance=title_relevance(keyword))
        .order_by("-relevance", "-sales_count", "id")
    )
    # The phone has 手机 in its title; the earbuds (subtitle) outsell the case (subtitle, category).
    assert [p.id for p in products] == [catalog.phone, catalog.earbuds, catalog.case]
    assert [p.relevance for p in products] == [1, 0, 0]  # type: ignore[attr-defined]


async def test_relevance_counts_terms_in_the_title_and_can_be_filtered(catalog: Catalog) -> None:
    keyword = "huawei sj"
    query = (
        Product.filter(keyword_filter(keyword), id__in=catalog.ids)
        .annotate(relevance=title_relevance(keyword))
        .order_by("-relevance", "-sales_count", "id")
    )
    assert [(p.id, p.relevance) for p in await query] == [(catalog.phone, 2), (catalog.case, 0)]  # type: ignore[attr-defined]
    # Keyset pagination filters on the annotation: rows after (relevance=2, sales=10, id=phone).
    after = query.filter(
        Q(relevance__lt=2)
        | Q(relevance=2, sales_count__lt=10)
        | Q(relevance=2, sales_count=10, id__gt=catalog.phone)
    )
    assert [p.id for p in await after] == [catalog.case]
    assert await query.filter(relevance__lt=2).count() == 1


async def test_blank_keyword_relevance_is_zero(catalog: Catalog) -> None:
    products = await Product.filter(id__in=catalog.ids).annotate(relevance=title_relevance(" "))
    assert {p.relevance for p in products} == {0}  # type: ignore[attr-defined]


async def test_token_range_is_a_prefix_match_in_this_database_collation(database_url: str) -> None:
    # [term, term + U+10FFFF) must hold every token starting with term, including supplementary
    # CJK (U+20000…), digits and the last latin letter, whatever collation the column uses.
    product_id = -uuid.uuid4().int % 1_000_000_000 - 1
    tokens = ["shouji", "shou9", "shouz", "shou𠀀", "shou", "shov", "sho"]
    await SearchToken.bulk_create([SearchToken(token=token, product_id=product_id) for token in tokens])
    try:
        rows = await SearchToken.filter(
            token__gte="shou", token__lt="shou\U0010ffff", product_id=product_id
        ).values("token")
        assert sorted(row["token"] for row in rows) == sorted(["shouji", "shou9", "shouz", "shou𠀀", "shou"])
    finally:
        await SearchToken.filter(product_id=product_id).delete()


async def test_postgres_looks_tokens_up_by_index(database_url: str) -> None:
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        pytest.skip("EXPLAIN check is for PostgreSQL")
    # Enough tokens that a sequential scan would cost the planner far more than the index.
    await connection.execute_script(
        "INSERT INTO search_token (token, product_id) "
        "SELECT md5(i::text), -i FROM generate_series(1, 200000) AS i; ANALYZE search_token"
    )
    try:
        query = (
            Product.filter(keyword_filter("蓝牙 耳机 shou"), on_shelf=True)
            .order_by("-sales_count", "id")
            .limit(20)
        )
        query._choose_db_if_not_chosen()
        query._make_query()
        sql, params = query.query.get_parameterized_sql()
        _, rows = await connection.execute_query("EXPLAIN " + sql, params)
        plan = "\n".join(row["QUERY PLAN"] for row in rows)
        # Finding (PostgreSQL 15, 20k and 100k generated products): each term is an Index Only
        # Scan on the unique (token, product_id) index with Index Cond token >= … AND token < …,
        # and the terms meet in one HashSetOp Intersect.
        # Without a VACUUM the planner may prefer a plain Index Scan to an Index Only Scan: both
        # are range lookups; what must never appear is a sequential scan of the token table.
        assert "Seq Scan on search_token" not in plan
        index_scans = re.findall(
            r"Index (?:Only )?Scan using \S+ on search_token|Bitmap Index Scan on \S*search_tok", plan
        )
        assert len(index_scans) >= 3, plan
        assert "token >=" in plan
    finally:
        await connection.execute_script("DELETE FROM search_token WHERE product_id < 0")


async def test_record_search_upserts_normalised_keywords(database_url: str) -> None:
    day = date(2001, 2, 3)
    await record_search("  ＳＨＯＵＪＩ ", 5, day)
    await record_search("shouji", 0, day)
    await record_search("   ", 3, day)
    await record_search("x" * 100, 1, day)
    try:
        rows = {
            row.keyword: (row.search_count, row.last_result_count)
            for row in await SearchKeywordDaily.filter(day=day)
        }
        assert rows == {"shouji": (2, 0), "x" * 64: (1, 1)}
    finally:
        await SearchKeywordDaily.filter(day=day).delete()


async def test_hot_and_zero_result_keywords(database_url: str) -> None:
    today = date(2002, 3, 10)
    searches = [
        ("手机", 12, today),
        ("手机", 12, today - timedelta(days=6)),
        ("手机", 11, today),
        ("耳机", 4, today - timedelta(days=1)),
        ("耳机", 4, today - timedelta(days=1)),
        ("蓝牙", 2, today),
        ("保护壳", 9, today - timedelta(days=7)),  # outside a 7-day window
        ("保护壳", 9, today - timedelta(days=7)),
        ("保护壳", 9, today - timedelta(days=7)),
        ("保护壳", 9, today - timedelta(days=7)),
        ("火星车", 0, today),
        ("火星车", 0, today),
        ("火星车", 0, today),
        ("独角兽", 0, today),
    ]
    for keyword, result_count, day in searches:
        await record_search(keyword, result_count, day)
    try:
        assert await hot_keywords(10, today=today) == ["手机", "耳机", "蓝牙"]
        assert await hot_keywords(2, today=today) == ["手机", "耳机"]
        assert await hot_keywords(10, days=8, today=today) == ["保护壳", "手机", "耳机", "蓝牙"]
        assert await zero_result_keywords(10, today=today) == ["火星车", "独角兽"]
        assert await hot_keywords(0, today=today) == []
    finally:
        await SearchKeywordDaily.filter(day__gte=today - timedelta(days=30), day__lte=today).delete()


async def test_suggestions_popular_searches_then_names_then_titles(catalog: Catalog) -> None:
    today = shop_today()
    for keyword, times in (("鸵鸟牌保护壳", 3), ("鸵鸟牌手机壳", 1), ("鸵鸟牌没有的东西", 5)):
        for _ in range(times):
            await record_search(keyword, 0 if "没有" in keyword else 2, today)
    try:
        # Popular searches (zero-result ones left out), then the brand, then matching titles.
        assert await search_suggestions("鸵鸟", 10) == [
            "鸵鸟牌保护壳",
            "鸵鸟牌手机壳",
            catalog.brand_name,
            "透明保护壳",
        ]
        assert await search_suggestions("tuoniao", 10) == [
            "鸵鸟牌保护壳",
            "鸵鸟牌手机壳",
            catalog.brand_name,
            "透明保护壳",
        ]
        assert await search_suggestions("TN", 2) == ["鸵鸟牌保护壳", "鸵鸟牌手机壳"]
        assert await search_suggestions(" ", 10) == []
    finally:
        await SearchKeywordDaily.filter(day=today, keyword__startswith="鸵鸟").delete()


async def test_suggestions_leave_out_off_shelf_titles(catalog: Catalog) -> None:
    suggestions = await search_suggestions("蓝牙", 10)
    assert "无线蓝牙耳机 降噪" in suggestions
    assert "蓝牙音箱" not in suggestions


async def test_suggested_titles_are_cached_until_the_catalog_changes(catalog: Catalog) -> None:
    cache = MemoryCache()
    assert "无线蓝牙耳机 降噪" in await search_suggestions("蓝牙", 10, cache)
    with count_sql() as warm:
        assert await search_suggestions("蓝牙", 10, cache) == await search_suggestions("蓝牙", 10)
    titles_read = [s for s in warm.statements if '"title"' in s and "search_token" in s]
    assert len(titles_read) == 1  # only the uncached call above read the titles
    await Product.filter(id=catalog.earbuds).update(on_shelf=False)
    try:
        await invalidate_products(cache, [catalog.earbuds])
        assert "无线蓝牙耳机 降噪" not in await search_suggestions("蓝牙", 10, cache)
    finally:
        await Product.filter(id=catalog.earbuds).update(on_shelf=True)


async def _walk(
    listing: ListingFilter, sort: Sort, cache: Cache | None
) -> list[tuple[list[int], list[str], bool]]:
    pages, after = [], None
    for _ in range(10):
        page = await list_products(listing, sort, 1, after, cache)
        pages.append(([row.id for row in page.rows], page.cursors, page.has_next))
        if not page.has_next:
            break
        after = page.cursors[-1]
    return pages


async def _own(catalog: Catalog, keyword: str) -> ListingFilter:
    """The keyword limited to the fixture's brands: the session database may hold seeded products."""
    brands = await Product.filter(id__in=catalog.ids, brand_id__isnull=False).values_list(
        "brand_id", flat=True
    )
    return ListingFilter(brand_ids=[int(b) for b in brands], keyword=keyword)


@pytest.mark.parametrize("sort", list(Sort))
async def test_a_cached_ranking_pages_exactly_like_the_live_query(catalog: Catalog, sort: Sort) -> None:
    listing = await _own(catalog, "sj")
    cache = MemoryCache()
    live = await _walk(listing, sort, None)
    assert sorted(i for ids, _, _ in live for i in ids) == sorted(
        [catalog.phone, catalog.earbuds, catalog.case]
    )
    assert await _walk(listing, sort, cache) == live
    with count_sql() as warm:
        assert await _walk(listing, sort, cache) == live
    # Warm: one lookup by id per page, never the ranking or the live query again.
    assert warm.count == len(live) and all("IN (" in s.upper() for s in warm.statements)
    first = await list_products(listing, sort, 2, None, cache)
    assert first.total == (3 if sort is not Sort.NEWEST else None)


async def test_a_live_cursor_continues_a_ranked_walk(catalog: Catalog) -> None:
    listing = await _own(catalog, "shouji")
    live = await list_products(listing, Sort.RELEVANCE, 1, None)
    ranked = await list_products(listing, Sort.RELEVANCE, 50, live.cursors[-1], MemoryCache())
    rest = await list_products(listing, Sort.RELEVANCE, 50, live.cursors[-1])
    assert [r.id for r in ranked.rows] == [r.id for r in rest.rows] and ranked.cursors == rest.cursors


@pytest.mark.parametrize("depth", [1, 2])
async def test_pages_past_the_cached_depth_use_the_live_query(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, depth: int
) -> None:
    monkeypatch.setattr(product_listing, "RANKING_DEPTH", depth)
    listing = await _own(catalog, "shouji")
    cache = MemoryCache()
    live = await _walk(listing, Sort.SALES, None)
    assert len(live) == 3
    assert await _walk(listing, Sort.SALES, cache) == live
    first = await list_products(listing, Sort.SALES, 1, None, cache)
    assert first.total is None  # the ranking is not complete: the count is asked of the database
    with count_sql() as again:
        await list_products(listing, Sort.SALES, 1, None, cache)
    assert again.count == 1  # one page query, never the ranking again


async def test_a_forged_cursor_on_a_ranking_is_a_clear_error(catalog: Catalog) -> None:
    forged = encode_cursor(["x", 1, 2])
    with pytest.raises(PublicError):
        await list_products(ListingFilter(keyword="shouji"), Sort.RELEVANCE, 5, forged, MemoryCache())
