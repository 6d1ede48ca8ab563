"""Catalog writes that keep a product's SKU aggregates (lowest price, in stock) in step."""

from __future__ import annotations

from collections.abc import Iterable

from bff.cache import Cache
from bff.models.catalog import Product, Sku
from bff.services.catalog_cache import invalidate_products


async def refresh_product_aggregates(cache: Cache, product_ids: Iterable[int]) -> None:
    """Recompute price, market price and in_stock from the SKUs, then drop the cached rows."""
    ids = sorted(set(product_ids))
    if not ids:
        return
    skus = await Sku.filter(product_id__in=ids).values(
        "product_id", "price_fen", "market_price_fen", "stock", "reserved"
    )
    by_product: dict[int, list[dict[str, int]]] = {pid: [] for pid in ids}
    for sku in skus:
        by_product[sku["product_id"]].append(sku)
    for pid, rows in by_product.items():
        if not rows:
            await Product.filter(id=pid).update(in_stock=False)
            continue
        cheapest = min(rows, key=lambda r: r["price_fen"])
        await Product.filter(id=pid).update(
            price_fen=cheapest["price_fen"],
            market_price_fen=cheapest["market_price_fen"],
            in_stock=any(r["stock"] - r["reserved"] > 0 for r in rows),
        )
    await invalidate_products(cache, ids)
