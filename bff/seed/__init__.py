"""The deterministic demo seed: a catalog with search index, members, carts, orders and campaigns.

`seed_demo()` fills an empty database and does nothing when products already exist, so it can run
at every start. The same arguments give the same rows; timestamps are relative to `now`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise import Tortoise
from tortoise.models import Model
from tortoise.transactions import in_transaction

from bff.models.catalog import Brand, Category, Product, Sku
from bff.seed.analytics import seed_analytics
from bff.seed.campaigns import build_coupon_templates, seed_banners, seed_campaigns, seed_search_history
from bff.seed.catalog import DEFAULT_SEED, build_refs, generate_products
from bff.seed.context import IdAllocator, SeedContext
from bff.seed.members import DEMO_MEMBERS, resolve_members, seed_carts, seed_levels, seed_members
from bff.seed.orders import seed_orders_and_coupons
from bff.seed.products import seed_catalog
from bff.seed.writer import BulkWriter

__all__ = ["DEFAULT_SEED", "DEMO_MEMBERS", "SeedSummary", "demo_titles", "seed_demo"]

_ADVISORY_LOCK = 7_305_118  # serialises concurrent seeders (several workers starting at once)


@dataclass(frozen=True)
class SeedSummary:
    """Rows inserted per table (all 0 and skipped=True when the database already had products)."""

    skipped: bool
    rows: dict[str, int]
    seconds: float

    def count(self, model: type[Model]) -> int:
        """Rows inserted into the model's table."""
        return self.rows.get(model._meta.db_table, 0)

    @property
    def products(self) -> int:
        """Products inserted."""
        return self.count(Product)

    @property
    def skus(self) -> int:
        """SKUs inserted."""
        return self.count(Sku)


def demo_titles(count: int, seed: int = DEFAULT_SEED) -> list[str]:
    """Titles of the first `count` demo products, generated in memory (no database)."""
    return [product.title for product in generate_products(build_refs(), count, seed=seed)]


async def seed_demo(
    products: int = 600, *, now: datetime | None = None, seed: int = DEFAULT_SEED
) -> SeedSummary:
    """Fill an empty database with the demo data; do nothing when it already has products."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    async with in_transaction("default") as connection:
        writer = BulkWriter(connection)
        if writer.postgres:
            await connection.execute_query(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
        if await Product.all().using_db(connection).exists():
            return SeedSummary(skipped=True, rows={}, seconds=time.perf_counter() - started)
        ids = IdAllocator()
        # Only tables with a generated integer id; rollups keyed by a day or a member have none.
        models = [m for m in Tortoise.apps["models"].values() if m._meta.pk_attr == "id"]
        await ids.load(writer, models)
        refs = build_refs(ids.peek(Category) - 1, ids.peek(Brand) - 1)
        ids.take(Category, len(refs.categories))
        ids.take(Brand, len(refs.brands))
        ctx = SeedContext(seed=seed, now=now, writer=writer, ids=ids, refs=refs)
        await seed_levels(ctx)
        await resolve_members(ctx)
        await seed_members(ctx)
        await seed_catalog(ctx, products)
        templates = build_coupon_templates(ctx)
        await seed_campaigns(ctx)
        await seed_carts(ctx)
        await seed_orders_and_coupons(ctx, templates)
        await seed_banners(ctx)
        await seed_search_history(ctx)
        await seed_analytics(ctx)
        await writer.reset_sequences()
    return SeedSummary(skipped=False, rows=dict(writer.counts), seconds=time.perf_counter() - started)
