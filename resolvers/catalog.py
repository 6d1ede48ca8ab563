"""Catalog entry points: categories, product detail, product lists, search helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

from bff.cache import Cache
from bff.context import Info
from bff.ids import decode_id, decode_ids
from bff.pagination import page_size
from bff.services import search
from bff.services.listing_counts import cached_count
from bff.services.product_listing import ListingFilter, ListingPage, Sort, list_products
from loaders.recommendation import count_recommended, decode_recommended_cursor, encode_recommended_cursor
from schema.catalog import Category, Product, ProductFilter, ProductSort
from schema.common import Connection, connection


def _counter(cache: Cache, listing: ListingFilter, page: ListingPage) -> Callable[[], Awaitable[int]]:
    """The listing's total, looked up (or counted) only when asked, at most once per request."""
    # A page read from a complete ranking already knows the total.
    counted: list[int] = [] if page.total is None else [page.total]

    async def count() -> int:
        if not counted:
            counted.append(await cached_count(cache, listing))
        return counted[0]

    return count


def _product_connection(
    page: ListingPage, count: Callable[[], Awaitable[int]], after: str | None
) -> Connection[Product]:
    return connection(
        [Product.from_row(r) for r in page.rows],
        page.cursors,
        has_next=page.has_next,
        count=count,
        has_previous=after is not None,
    )


async def _category_ids(info: Info, opaque: strawberry.ID | None) -> list[int] | None:
    """The category and its children (a top-level category lists its subcategories' products)."""
    if opaque is None:
        return None
    pk = decode_id(str(opaque), "Category")
    if pk is None:
        return []
    rows = await info.context.loaders.categories()
    if not any(r.id == pk for r in rows):
        return []
    return [pk, *(r.id for r in rows if r.parent_id == pk)]


@strawberry.type
class CatalogQuery:
    @strawberry.field(description="Categories under `parentId`; top-level ones when it is null.")
    async def categories(self, info: Info, parent_id: strawberry.ID | None = None) -> list[Category]:
        rows = await info.context.loaders.categories()
        if parent_id is None:
            return [Category.from_row(r) for r in rows if r.parent_id is None]
        pk = decode_id(str(parent_id), "Category")
        return [Category.from_row(r) for r in rows if pk is not None and r.parent_id == pk]

    @strawberry.field
    async def category(self, info: Info, id: strawberry.ID | None = None) -> Category | None:
        if id is None:
            return None
        pk = decode_id(str(id), "Category")
        rows = await info.context.loaders.categories()
        return next((Category.from_row(r) for r in rows if r.id == pk), None)

    @strawberry.field(description="An on-shelf product; null when unknown or off shelf.")
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        pk = decode_id(str(id), "Product")
        if pk is None:
            return None
        row = await info.context.loaders.product_by_id.load(pk)
        return Product.from_row(row) if row is not None and row.on_shelf else None

    @strawberry.field(description="On-shelf products, filtered and sorted, a page at a time.")
    async def products(
        self,
        info: Info,
        filter: ProductFilter | None = None,
        sort: ProductSort = ProductSort.RELEVANCE,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Product]:
        n = page_size(first)
        f = filter or ProductFilter()
        brand_ids = decode_ids([str(b) for b in f.brand_ids], "Brand") if f.brand_ids is not None else None
        listing = ListingFilter(
            category_ids=await _category_ids(info, f.category_id),
            brand_ids=brand_ids if brand_ids is not None or f.brand_ids is None else [],
            min_price=f.min_price,
            max_price=f.max_price,
            in_stock_only=bool(f.in_stock_only),
            keyword=f.keyword.strip() if f.keyword and f.keyword.strip() else None,
        )
        cache = info.context.services.cache
        page = await list_products(listing, Sort(sort.value), n, after, cache)
        count = _counter(cache, listing, page)
        if listing.keyword is not None and after is None:
            # Only the first page counts as a search; later pages are the same search scrolled.
            await search.record_search(listing.keyword, await count() if page.rows else 0)
        return _product_connection(page, count, after)

    @strawberry.field(
        description="Products picked for the viewer (their own picks, then what is popular), in stock, "
        "leaving out what they bought in the last 30 days."
    )
    async def recommended_products(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[Product]:
        member_id = info.context.member_id
        key = (member_id, page_size(first), decode_recommended_cursor(after))
        page = await info.context.loaders.recommended_page.load(key)
        counted: list[int] = []

        async def count() -> int:
            if not counted:
                counted.append(await count_recommended(member_id))
            return counted[0]

        return connection(
            [Product.from_row(r) for r in page.rows],
            [encode_recommended_cursor(c) for c in page.cursors],
            has_next=page.has_next,
            count=count,
            has_previous=after is not None,
        )

    @strawberry.field(description="What shoppers searched most in the last 7 days.")
    async def hot_keywords(self, first: int = 10) -> list[str]:
        return await search.hot_keywords(page_size(first))

    @strawberry.field(description="Completions for what the shopper is typing.")
    async def search_suggestions(self, info: Info, prefix: str, first: int = 8) -> list[str]:
        return await search.search_suggestions(prefix, page_size(first), info.context.services.cache)
