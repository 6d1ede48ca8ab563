"""Product search over the prefix-token index, search statistics, hot keywords and suggestions."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import orjson
from pypika_tortoise.context import SqlContext
from pypika_tortoise.terms import Case as PypikaCase
from pypika_tortoise.terms import Term, ValueWrapper
from tortoise import connections
from tortoise.expressions import Expression, Q, ResolveContext, ResolveResult
from tortoise.functions import Sum

from bff.cache import Cache
from bff.models.catalog import Brand, Category, Product
from bff.models.search import SearchKeywordDaily, SearchToken
from bff.services.generation_cache import get_current, set_current
from bff.services.search_index import TOKEN_MAX_LENGTH, keyword_terms, normalise, pinyin_forms
from bff.services.shop_time import shop_today

KEYWORD_MAX_LENGTH = 64  # search_keyword_daily.keyword is varchar(64)
# Above every character a token can hold, so [term, term + _TOP) is exactly "starts with term" in a
# byte-wise or ICU collation (see the collation test in tests/services/test_search.py).
_TOP = "\U0010ffff"
# Suggestions match pinyin in Python over this many of the week's most searched keywords: one
# aggregate over a week of search_keyword_daily rows, small next to the catalog.
_SUGGESTION_KEYWORD_POOL = 500
_SUGGESTION_DAYS = 7
# Best-selling titles matching a prefix are kept per catalog generation: finding them reads every
# match (thousands for a short prefix on a large catalog), and they change only with the catalog.
_SUGGESTION_TITLES_TTL = 600.0
# Shoppers' days are China days (UTC+8, no daylight saving), whatever the server's zone.


def _prefix_range(prefix: str) -> Q:
    if len(prefix) >= TOKEN_MAX_LENGTH:
        # A token is at most this long, so one starting with a full-length prefix equals it (and
        # the range's upper bound would not fit the column).
        return Q(token=prefix)
    return Q(token__gte=prefix, token__lt=prefix + _TOP)


class _ProductsWithAllTerms(Term):
    """SELECT product_id … WHERE <range 1> INTERSECT SELECT product_id … WHERE <range 2> …"""

    def __init__(self, prefixes: list[str]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def get_sql(self, ctx: SqlContext) -> str:
        # Rendered by hand: pypika parenthesises each side of a set operation, which SQLite rejects.
        member_ctx = ctx.copy(subquery=False, with_alias=False)
        members = []
        for prefix in self.prefixes:
            tokens = SearchToken.filter(_prefix_range(prefix)).values("product_id")
            tokens._choose_db_if_not_chosen()
            tokens._make_query()
            members.append(tokens.query.get_sql(member_ctx))
        return "(" + " INTERSECT ".join(members) + ")"


def keyword_filter(keyword: str) -> Q:
    """Products whose title, subtitle, brand or category names (or pinyin) contain every term.

    A blank keyword gives Q(), which matches every product.
    """
    terms = keyword_terms(keyword)
    if not terms:
        return Q()
    # Tokens are truncated, so a long term is looked up by its head and rechecked on the text.
    prefixes = list(dict.fromkeys(term[:TOKEN_MAX_LENGTH] for term in terms))
    condition = Q(id__in=_ProductsWithAllTerms(prefixes))
    for term in terms:
        if len(term) > TOKEN_MAX_LENGTH:
            condition &= Q(search_text__contains=term)
    return condition


class _TitleHits(Expression):
    """Sum of CASE WHEN search_title LIKE '%term%' THEN 1 ELSE 0 END over the terms."""

    def __init__(self, terms: list[str]) -> None:
        self.terms = terms

    def resolve(self, resolve_context: ResolveContext) -> ResolveResult:
        # Inline integer literals: bound parameters in THEN/ELSE have no type on PostgreSQL, which
        # then reads them as text and refuses "text + text".
        one, zero = ValueWrapper(1, allow_parametrize=False), ValueWrapper(0, allow_parametrize=False)
        hits: list[Term] = []
        for term in self.terms:
            contains = Q(search_title__contains=term).resolve(resolve_context).where_criterion
            hits.append(PypikaCase().when(contains, one).else_(zero))
        total = hits[0] if hits else zero
        for hit in hits[1:]:
            total = total + hit
        return ResolveResult(term=total)


def title_relevance(keyword: str) -> Expression:
    """How many of the keyword's terms the title contains (an integer annotation, higher first)."""
    return _TitleHits(keyword_terms(keyword))


def normalise_keyword(keyword: str) -> str:
    """The form a keyword is counted under: NFKC, lower-cased, trimmed, at most 64 chars."""
    return normalise(keyword).strip()[:KEYWORD_MAX_LENGTH].strip()


_UPSERT = (
    "INSERT INTO search_keyword_daily (day, keyword, search_count, last_result_count) "
    "VALUES ({0}, {1}, 1, {2}) "
    "ON CONFLICT (day, keyword) DO UPDATE SET "
    "search_count = search_keyword_daily.search_count + 1, "
    "last_result_count = excluded.last_result_count"
)


async def record_search(keyword: str, result_count: int, day: date | None = None) -> None:
    """Count one search of the keyword on the day (today by default) and remember its result count."""
    normalised = normalise_keyword(keyword)
    if not normalised:
        return
    day = day or shop_today()
    connection = connections.get("default")
    # One statement, so concurrent searches of the same keyword never lose a count.
    if connection.capabilities.dialect == "postgres":
        await connection.execute_query(_UPSERT.format("$1", "$2", "$3"), [day, normalised, result_count])
    else:
        await connection.execute_query(
            _UPSERT.format("?", "?", "?"), [day.isoformat(), normalised, result_count]
        )


async def _keyword_totals(first: int, days: int, today: date | None, found: bool) -> list[str]:
    today = today or shop_today()
    query = SearchKeywordDaily.filter(day__gt=today - timedelta(days=days), day__lte=today)
    query = query.filter(last_result_count__gt=0) if found else query.filter(last_result_count=0)
    rows = (
        await query.annotate(total=Sum("search_count"))
        .group_by("keyword")
        .order_by("-total", "keyword")
        .limit(first)
        .values_list("keyword", flat=True)
    )
    return [str(row) for row in rows]


async def hot_keywords(first: int, days: int = 7, today: date | None = None) -> list[str]:
    """The most searched keywords of the last `days` days (today included) that found something."""
    if first <= 0:
        return []
    return await _keyword_totals(first, days, today, found=True)


async def zero_result_keywords(first: int, days: int = 7, today: date | None = None) -> list[str]:
    """The most searched keywords of the last `days` days that found nothing (catalog gaps)."""
    if first <= 0:
        return []
    return await _keyword_totals(first, days, today, found=False)


def _matches_prefix(name: str, prefix: str) -> bool:
    if normalise(name).startswith(prefix):
        return True
    compact = prefix.replace(" ", "")
    full, initials = (form.replace(" ", "") for form in pinyin_forms(name))
    return full.startswith(compact) or initials.startswith(compact)


async def _best_selling_titles(prefix: str, first: int, cache: Cache | None) -> list[str]:
    query = (
        Product.filter(keyword_filter(prefix), on_shelf=True)
        .order_by("-sales_count", "id")
        .limit(first)
        .values_list("title", flat=True)
    )
    if cache is None:
        return [str(title) for title in await query]
    key = f"suggest:titles:{first}:{hashlib.sha256(prefix.encode()).hexdigest()[:32]}"
    generation, entry = await get_current(cache, key)
    if entry is not None:
        cached: list[str] = orjson.loads(entry)
        return cached
    titles = [str(title) for title in await query]
    await set_current(cache, key, generation, orjson.dumps(titles), _SUGGESTION_TITLES_TTL)
    return titles


async def search_suggestions(prefix: str, first: int, cache: Cache | None = None) -> list[str]:
    """Completions for a partly typed keyword: popular searches, then categories, brands, product titles."""
    prefix = normalise_keyword(prefix)
    if not prefix or first <= 0:
        return []
    found: dict[str, None] = {}

    def add(names: list[str]) -> bool:
        for name in names:
            if len(found) >= first:
                return True
            found.setdefault(name.strip(), None)
        return len(found) >= first

    popular = await _keyword_totals(_SUGGESTION_KEYWORD_POOL, _SUGGESTION_DAYS, None, found=True)
    if add([keyword for keyword in popular if _matches_prefix(keyword, prefix)]):
        return list(found)
    # Categories and brands are small tables: match their names and pinyin in Python.
    categories = await Category.all().values_list("name", flat=True)
    brands = await Brand.all().values_list("name", flat=True)
    names = [str(name) for name in (*categories, *brands)]
    if add([name for name in names if _matches_prefix(name, prefix)]):
        return list(found)
    if len(prefix) < 2 and prefix.isascii():
        # One latin letter matches most of the catalog through pinyin initials: not a completion.
        return list(found)
    add(await _best_selling_titles(prefix, first, cache))
    return list(found)
