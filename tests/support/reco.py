"""Rows for recommendation tests: products, behaviour, purchases, and keeping the shared tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from tortoise.models import Model

from bff.models.analytics import TrackedEvent
from bff.models.catalog import Category, Product
from bff.models.order import PAID, Order, OrderLine
from bff.models.recommendation import MemberRecommendation, PopularProduct, ProductNeighbor

TABLES: tuple[type[Model], ...] = (ProductNeighbor, MemberRecommendation, PopularProduct)


@asynccontextmanager
async def reco_tables_kept() -> AsyncIterator[None]:
    """A refresh replaces the tables for everyone: put back what was there before."""
    saved = {model: await model.all().values() for model in TABLES}
    yield
    for model, rows in saved.items():
        await model.all().delete()
        await model.bulk_create([model(**row) for row in rows], batch_size=1000)


async def product(leaf: Category, *, in_stock: bool = True, sales: int = 0) -> int:
    """A new product of the category, with an image and a price as the screens show them."""
    tag = uuid.uuid4().hex[:10]
    row = await Product.create(
        spu_code=f"R-{tag}",
        title=f"推荐商品 {tag}",
        category_id=leaf.id,
        images=[f"https://img.example.com/{tag}.jpg"],
        price_fen=1990,
        in_stock=in_stock,
        sales_count=sales,
    )
    return row.id


async def event(
    product_id: int, at: datetime, *, member: int | None = None, device: str = "", kind: str = "page_view"
) -> None:
    """One tracked event of a product (a page view unless `kind` says otherwise)."""
    await TrackedEvent.create(
        client_event_id=uuid.uuid4().hex,
        anonymous_id=device or uuid.uuid4().hex,
        member_id=member,
        type=kind,
        product_id=product_id,
        occurred_at=at,
        received_at=at,
        day=at.date(),
    )


async def crowd(size: int, at: datetime, *products: int) -> None:
    """`size` anonymous visitors who each viewed all of `products`."""
    for _ in range(size):
        device = uuid.uuid4().hex
        for pid in products:
            await event(pid, at, device=device)


async def purchase(member: int, product_id: int, paid_at: datetime) -> None:
    """A paid order of one unit of the product."""
    order = await Order.create(order_no=uuid.uuid4().hex[:24], member_id=member, status=PAID, paid_at=paid_at)
    await OrderLine.create(
        order=order,
        sku_id=0,
        product_id=product_id,
        product_title="x",
        quantity=1,
        unit_price_fen=100,
        line_total_fen=100,
    )
