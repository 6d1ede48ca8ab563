"""Rows the tests own: a product with chosen SKU prices and stock, in a category of its own."""

from __future__ import annotations

import uuid

from bff.models.catalog import Category, Product, Sku


async def make_product(skus: list[tuple[int, int]], *, on_shelf: bool = True) -> tuple[Product, list[Sku]]:
    """A product whose SKUs have these (price_fen, stock); aggregates set as the catalog service would."""
    tag = uuid.uuid4().hex[:10]
    category, _ = await Category.get_or_create(code="test-fixtures", defaults={"name": "测试类目"})
    product = await Product.create(
        spu_code=f"T-{tag}",
        title=f"测试商品 {tag}",
        category_id=category.id,
        images=[f"https://img.example.com/{tag}.jpg"],
        on_shelf=on_shelf,
        price_fen=min(p for p, _ in skus),
        market_price_fen=min(p for p, _ in skus) + 1000,
        in_stock=any(s > 0 for _, s in skus),
    )
    rows = [
        await Sku.create(
            code=f"T-{tag}-{i}",
            product_id=product.id,
            spec_values=[{"name": "规格", "value": f"款{i}"}],
            price_fen=price,
            market_price_fen=price + 1000,
            stock=stock,
            sort_order=i,
        )
        for i, (price, stock) in enumerate(skus)
    ]
    return product, rows
