"""The prefix-token index: tokens, pinyin, keyword terms, and reindexing from the database."""

from __future__ import annotations

import time
import uuid

from bff.models.catalog import Brand, Category, Product
from bff.models.search import SearchToken
from bff.services.search_index import (
    TOKEN_MAX_LENGTH,
    keyword_terms,
    pinyin_forms,
    product_search_fields,
    reindex_products,
)


def test_cjk_runs_give_every_suffix() -> None:
    tokens = product_search_fields("无线蓝牙耳机", "", "", []).tokens
    assert {"无线蓝牙耳机", "线蓝牙耳机", "蓝牙耳机", "牙耳机", "耳机", "机"} <= tokens


def test_pinyin_and_initials_suffixes_at_syllable_boundaries() -> None:
    tokens = product_search_fields("华为手机", "", "", []).tokens
    assert {"huaweishouji", "weishouji", "shouji", "ji"} <= tokens
    assert {"hwsj", "wsj", "sj", "j"} <= tokens
    # Only syllable boundaries: "houji" is not a prefix of any token.
    assert not any(token.startswith("houji") for token in tokens)


def test_latin_words_are_lower_cased_and_split_from_cjk() -> None:
    tokens = product_search_fields("HUAWEI Mate60 Pro", "5G手机", "", []).tokens
    assert {"huawei", "mate60", "ate60", "60", "pro", "5g", "手机"} <= tokens
    assert not any(char.isupper() for token in tokens for char in token)


def test_full_width_text_is_normalised() -> None:
    fields = product_search_fields("ＡＰＰＬＥ　ｉＰｈｏｎｅ１５", "", "", [])
    assert {"apple", "iphone15", "15"} <= fields.tokens
    assert fields.search_title.startswith("apple iphone15")


def test_tokens_are_truncated_to_the_column_length() -> None:
    tokens = product_search_fields(
        "a" * 50 + " 这是一个非常非常非常非常非常非常长的没有空格的中文商品标题而且还要更长一些", "", "", []
    ).tokens
    assert max(len(token) for token in tokens) == TOKEN_MAX_LENGTH


def test_search_title_and_text_carry_pinyin_and_initials() -> None:
    fields = product_search_fields("华为手机", "超长续航", "华为", ["手机", "数码"])
    assert fields.search_title == "华为手机 huaweishouji hwsj"
    assert fields.search_text.startswith(fields.search_title)
    for part in ("超长续航", "数码", "shuma", "sm"):
        assert part in fields.search_text
    assert "超长续航" not in fields.search_title


def test_subtitle_brand_and_categories_are_indexed() -> None:
    tokens = product_search_fields("保护壳", "适配手机", "Sony索尼", ["配件", "数码"]).tokens
    assert {"手机", "sony", "索尼", "suoni", "sn", "配件", "peijian", "数码", "shuma"} <= tokens


def test_keyword_terms_normalise_split_and_deduplicate() -> None:
    assert keyword_terms("  ＳＨＯＵ  华为Mate，手机 手机! ") == ["shou", "华为", "mate", "手机"]
    assert keyword_terms("iPhone15 Pro-Max") == ["iphone15", "pro", "max"]
    assert keyword_terms("") == []
    assert keyword_terms("  ，。!  ") == []


def test_pinyin_forms() -> None:
    assert pinyin_forms("华为 手机") == ("huawei shouji", "hw sj")
    assert pinyin_forms("Mate手机") == ("mateshouji", "matesj")


def test_product_search_fields_is_fast() -> None:
    started = time.perf_counter()
    for index in range(1000):
        product_search_fields(
            f"华为Mate{index} Pro 5G手机 旗舰新款",
            "无线蓝牙耳机 超长续航 快充",
            "华为/HUAWEI",
            ["手机", "数码"],
        )
    per_product = (time.perf_counter() - started) / 1000
    # The 100k-product seed computes these in Python: keep it well under a millisecond each.
    assert per_product < 0.001


async def test_reindex_products_rewrites_fields_and_tokens(database_url: str) -> None:
    code = uuid.uuid4().hex[:8]
    parent = await Category.create(code=f"idx-p-{code}", name="数码")
    category = await Category.create(code=f"idx-c-{code}", name="手机", parent=parent)
    brand = await Brand.create(code=f"idx-b-{code}", name="华为")
    product = await Product.create(
        spu_code=f"idx-{code}", title="Mate60", subtitle="超长续航", category=category, brand=brand
    )
    try:
        await reindex_products([product.id])
        await product.refresh_from_db()
        expected = product_search_fields("Mate60", "超长续航", "华为", ["手机", "数码"])
        assert (product.search_title, product.search_text) == (expected.search_title, expected.search_text)
        stored = {row["token"] for row in await SearchToken.filter(product_id=product.id).values("token")}
        assert stored == expected.tokens

        brand.name = "荣耀"
        await brand.save()
        await reindex_products([product.id, product.id])
        stored = {row["token"] for row in await SearchToken.filter(product_id=product.id).values("token")}
        assert "rongyao" in stored and "huawei" not in stored
    finally:
        await SearchToken.filter(product_id=product.id).delete()
        await product.delete()
        await brand.delete()
        await category.delete()
        await parent.delete()
