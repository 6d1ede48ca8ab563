"""Prefix-token search index: a keyword is a substring of a product's text exactly when it is a
prefix of one of the product's tokens, so one btree range scan per term answers it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import Style, lazy_pinyin
from tortoise.transactions import in_transaction

from bff.models.catalog import Product
from bff.models.search import SearchToken

TOKEN_MAX_LENGTH = 32  # search_token.token is varchar(32)
MAX_TERMS = 8  # bounds the number of subqueries one keyword costs

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# One CJK run or one latin/digit word (any letter or digit that is not CJK, no underscore).
_RUN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")


@dataclass(frozen=True)
class SearchFields:
    """What a product stores for search: recheck/relevance texts and its index tokens."""

    search_title: str
    search_text: str
    tokens: frozenset[str]


def normalise(text: str) -> str:
    """NFKC (full-width to half-width) and lower-case."""
    return unicodedata.normalize("NFKC", text).lower()


@lru_cache(maxsize=65536)
def _char_pinyin(char: str) -> tuple[str, str] | None:
    # Character by character, without phrase context, so a keyword's pinyin always agrees with
    # the indexed text's; None when pypinyin has no reading (the char then breaks the syllable run).
    syllable = lazy_pinyin(char, style=Style.NORMAL)[0]
    if not syllable.isascii() or not syllable.isalpha():
        return None
    initial = lazy_pinyin(char, style=Style.FIRST_LETTER)[0]
    return syllable, initial if initial.isascii() and initial.isalpha() else syllable[0]


def _syllable_runs(cjk_run: str) -> list[list[tuple[str, str]]]:
    runs: list[list[tuple[str, str]]] = [[]]
    for char in cjk_run:
        reading = _char_pinyin(char)
        if reading is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(reading)
    return [run for run in runs if run]


def _runs(text: str) -> Iterable[tuple[str, bool]]:
    for match in _RUN.finditer(text):
        if match.group(1):
            yield match.group(1), True
        else:
            yield match.group(2), False


def _suffixes(parts: Sequence[str]) -> Iterable[str]:
    for start in range(len(parts)):
        yield "".join(parts[start:])[:TOKEN_MAX_LENGTH]


def _field_index(text: str, tokens: set[str]) -> str:
    """Add the tokens of one normalised field; return its recheck text (text, pinyin, initials)."""
    pinyins: list[str] = []
    initials: list[str] = []
    for run, is_cjk in _runs(text):
        tokens.update(_suffixes(run))
        if not is_cjk:
            continue
        for syllables in _syllable_runs(run):
            full = [s for s, _ in syllables]
            first = [i for _, i in syllables]
            tokens.update(_suffixes(full))
            tokens.update(_suffixes(first))
            pinyins.append("".join(full))
            initials.append("".join(first))
    return " ".join(part for part in (text, " ".join(pinyins), " ".join(initials)) if part)


def product_search_fields(
    title: str, subtitle: str, brand_name: str, category_names: Sequence[str]
) -> SearchFields:
    """Compute a product's search_title, search_text and index tokens from its names."""
    tokens: set[str] = set()
    search_title = _field_index(normalise(title), tokens)
    others = [_field_index(normalise(text), tokens) for text in (subtitle, brand_name, *category_names)]
    search_text = " ".join(part for part in (search_title, *others) if part)
    return SearchFields(search_title=search_title, search_text=search_text, tokens=frozenset(tokens))


def keyword_terms(keyword: str) -> list[str]:
    """Split a keyword into normalised, deduplicated terms (CJK and latin runs apart), at most 8.

    Returns [] for a blank keyword.
    """
    terms = dict.fromkeys(run for run, _ in _runs(normalise(keyword)))
    return list(terms)[:MAX_TERMS]


def pinyin_forms(text: str) -> tuple[str, str]:
    """The normalised text with each CJK char spelled as pinyin, and as initials (for suggestions)."""
    full: list[str] = []
    first: list[str] = []
    for char in normalise(text):
        reading = _char_pinyin(char) if re.match(rf"[{_CJK}]", char) else None
        full.append(reading[0] if reading else char)
        first.append(reading[1] if reading else char)
    return "".join(full), "".join(first)


_REINDEX_CHUNK = 500
_TOKEN_BATCH = 2000


async def reindex_products(product_ids: Sequence[int]) -> None:
    """Recompute search_title, search_text and search_token rows of these products from the DB.

    Each chunk of 500 products is rewritten in one transaction, so a product is never half indexed.
    """
    ids = sorted(set(product_ids))
    for start in range(0, len(ids), _REINDEX_CHUNK):
        await _reindex_chunk(ids[start : start + _REINDEX_CHUNK])


async def _reindex_chunk(ids: list[int]) -> None:
    rows = await Product.filter(id__in=ids).values(
        "id", "title", "subtitle", "brand__name", "category__name", "category__parent__name"
    )
    products: list[Product] = []
    tokens: list[SearchToken] = []
    for row in rows:
        categories = [name for name in (row["category__name"], row["category__parent__name"]) if name]
        fields = product_search_fields(
            row["title"], row["subtitle"] or "", row["brand__name"] or "", categories
        )
        products.append(
            Product(id=row["id"], search_title=fields.search_title, search_text=fields.search_text)
        )
        tokens.extend(SearchToken(token=token, product_id=row["id"]) for token in fields.tokens)
    async with in_transaction():
        await SearchToken.filter(product_id__in=ids).delete()
        if products:
            await Product.bulk_update(products, fields=["search_title", "search_text"])
        if tokens:
            await SearchToken.bulk_create(tokens, batch_size=_TOKEN_BATCH)
