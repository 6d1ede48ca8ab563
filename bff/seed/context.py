"""What the seed's steps share: the clock, id allocation, the catalog picks and the demo members."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from tortoise.models import Model

from bff.seed.catalog import CatalogRefs, ProductRow, SkuRow
from bff.seed.writer import BulkWriter


class IdAllocator:
    """Hands out ids per table, counting up from the table's largest existing id."""

    def __init__(self) -> None:
        self._next: dict[type[Model], int] = {}

    async def load(self, writer: BulkWriter, models: list[type[Model]]) -> None:
        """Read the current largest id of each model's table."""
        for model in models:
            self._next[model] = await writer.max_id(model) + 1

    def peek(self, model: type[Model]) -> int:
        """The id the next take() will return."""
        return self._next[model]

    def take(self, model: type[Model], count: int = 1) -> int:
        """Reserve `count` consecutive ids and return the first."""
        first = self._next[model]
        self._next[model] = first + count
        return first


@dataclass
class MemberRef:
    """A demo member: new, or an existing row with the same openid that the seed fills in."""

    id: int
    name: str
    openid: str
    level_id: int
    level_rank: int
    existing: bool
    opening_balance: int = 0
    has_default_address: bool = False
    default_address: dict[str, str] = field(default_factory=dict)


@dataclass
class LevelRef:
    id: int
    rank: int
    name: str
    discount_percent: int
    free_shipping: bool


@dataclass
class Pools:
    """Products kept in memory from the head of the catalog, by what the demo needs them for."""

    buyable: list[ProductRow] = field(default_factory=list)  # on shelf with stock
    sold_out_skus: list[tuple[ProductRow, SkuRow]] = field(default_factory=list)  # on shelf, SKU at 0
    off_shelf: list[ProductRow] = field(default_factory=list)

    def add(self, product: ProductRow) -> None:
        """Sort one product into the pools."""
        if not product.on_shelf:
            if any(sku.stock > 0 for sku in product.skus):
                self.off_shelf.append(product)
            return
        if product.in_stock:
            self.buyable.append(product)
        self.sold_out_skus.extend((product, sku) for sku in product.skus if sku.stock == 0)


@dataclass
class SeedContext:
    seed: int
    now: datetime
    writer: BulkWriter
    ids: IdAllocator
    refs: CatalogRefs
    pools: Pools = field(default_factory=Pools)
    levels: dict[int, LevelRef] = field(default_factory=dict)  # by rank
    members: dict[str, MemberRef] = field(default_factory=dict)  # by name ("alice")
    keyword_results: dict[str, int] = field(default_factory=dict)

    def rng(self, section: str) -> random.Random:
        """An independent generator per section, so editing one section leaves the others as they were."""
        return random.Random(f"{self.seed}:{section}")  # nosec B311
