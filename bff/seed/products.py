"""Writes the generated catalog: categories, brands, then products with SKUs, reviews and search tokens."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from bff.models.catalog import Brand, Category, Product, Review, Sku
from bff.models.search import SearchToken
from bff.seed.catalog import ProductRow, generate_products
from bff.seed.context import SeedContext
from bff.seed.words import HOT_KEYWORDS, ZERO_RESULT_KEYWORDS
from bff.seed.writer import BulkWriter
from bff.services.search_index import product_search_fields

CHUNK = 2_000  # products per write: bounds memory at 100k products
POOL_SIZE = 2_000  # products kept in memory to pick carts, orders and campaigns from

_PRODUCT_COLUMNS = (
    "id", "spu_code", "title", "subtitle", "category_id", "brand_id", "images", "detail_html", "tags",
    "on_shelf", "price_fen", "market_price_fen", "in_stock", "sales_count", "search_title", "search_text",
    "version", "created_at", "updated_at",
)  # fmt: skip
_SKU_COLUMNS = (
    "id", "code", "product_id", "spec_values", "price_fen", "market_price_fen", "stock", "stock_version",
    "price_version", "sort_order",
)  # fmt: skip
_REVIEW_COLUMNS = ("id", "product_id", "member_id", "rating", "content", "created_at")
_TOKEN_COLUMNS = ("id", "token", "product_id")
_KEYWORDS = [keyword for keyword, _ in (*HOT_KEYWORDS, *ZERO_RESULT_KEYWORDS)]


@dataclass
class _Chunk:
    products: list[tuple[Any, ...]] = field(default_factory=list)
    skus: list[tuple[Any, ...]] = field(default_factory=list)
    reviews: list[tuple[Any, ...]] = field(default_factory=list)
    tokens: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class _Progress:
    products: int = 0
    skus: int = 0
    reviews: int = 0


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _build_chunk(ctx: SeedContext, generated: Iterator[ProductRow], progress: _Progress) -> _Chunk | None:
    batch = list(itertools.islice(generated, CHUNK))
    if not batch:
        return None
    chunk = _Chunk()
    pairs: list[tuple[str, int]] = []
    for p in batch:
        if progress.products < POOL_SIZE:
            ctx.pools.add(p)
        progress.products += 1
        progress.skus += len(p.skus)
        progress.reviews += len(p.reviews)
        search = product_search_fields(p.title, p.subtitle, p.brand_name, p.category_names)
        chunk.products.append(
            (p.id, p.spu_code, p.title, p.subtitle, p.category_id, p.brand_id, _json(p.images), p.detail_html,
             _json(p.tags), p.on_shelf, p.price_fen, p.market_price_fen, p.in_stock, p.sales_count,
             search.search_title, search.search_text, 0, p.created_at, p.created_at)
        )  # fmt: skip
        chunk.skus.extend(
            (s.id, s.code, s.product_id, _json(s.spec_values), s.price_fen, s.market_price_fen, s.stock, 0, 0,
             s.sort_order)
            for s in p.skus
        )  # fmt: skip
        chunk.reviews.extend(
            (r.id, r.product_id, r.member_id, r.rating, r.content, r.created_at) for r in p.reviews
        )
        pairs.extend((token, p.id) for token in search.tokens)
        if p.on_shelf:
            for keyword in _KEYWORDS:
                if keyword in search.search_text:
                    ctx.keyword_results[keyword] = ctx.keyword_results.get(keyword, 0) + 1
    # In index order, each chunk walks the (token, product_id) btree once instead of touching random
    # pages, which counts once the index outgrows shared_buffers. It also makes token ids
    # independent of the process's string hash seed.
    pairs.sort()
    first = ctx.ids.take(SearchToken, len(pairs))
    chunk.tokens = [(first + n, token, product_id) for n, (token, product_id) in enumerate(pairs)]
    return chunk


async def _write_chunk(writer: BulkWriter, chunk: _Chunk) -> None:
    await writer.insert(Product, _PRODUCT_COLUMNS, chunk.products)
    await writer.insert(Sku, _SKU_COLUMNS, chunk.skus)
    await writer.insert(Review, _REVIEW_COLUMNS, chunk.reviews)
    await writer.insert(SearchToken, _TOKEN_COLUMNS, chunk.tokens)


async def seed_catalog(ctx: SeedContext, count: int) -> None:
    """Insert the category tree, the brands and `count` products with everything that hangs off them."""
    refs, ids, writer = ctx.refs, ctx.ids, ctx.writer
    await writer.insert_dicts(
        Category,
        [
            {"id": c.id, "code": c.code, "name": c.name, "parent_id": c.parent_id, "icon_url": c.icon_url,
             "sort_order": c.sort_order}
            for c in refs.categories
        ],
    )  # fmt: skip
    await writer.insert_dicts(
        Brand, [{"id": b.id, "code": b.code, "name": b.name, "logo_url": b.logo_url} for b in refs.brands]
    )
    generated = generate_products(
        refs,
        count,
        seed=ctx.seed,
        now=ctx.now,
        product_base=ids.peek(Product) - 1,
        sku_base=ids.peek(Sku) - 1,
        review_base=ids.peek(Review) - 1,
        member_ids=[member.id for member in ctx.members.values()],
    )
    progress = _Progress()
    pending: asyncio.Task[None] | None = None
    try:
        while True:
            # Build the next chunk in a thread while the database digests the previous one: the
            # build is CPU-bound Python, the write mostly waits on the server.
            chunk = await asyncio.to_thread(_build_chunk, ctx, generated, progress)
            if pending is not None:
                await pending
                pending = None
            if chunk is None:
                break
            pending = asyncio.create_task(_write_chunk(writer, chunk))
    finally:
        if pending is not None:
            # The build failed: let the running write finish before the transaction rolls back.
            await asyncio.gather(pending, return_exceptions=True)
    ids.take(Product, progress.products)
    ids.take(Sku, progress.skus)
    ids.take(Review, progress.reviews)
