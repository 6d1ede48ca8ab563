"""Deterministic, in-memory generation of the demo catalog: categories, brands, products, SKUs, reviews."""

from __future__ import annotations

import html
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bff.seed.words import BRANDS, IMAGE_HOST, REVIEWS, SELLING_POINTS, TOPS, Leaf

DEFAULT_SEED = 20240618

# Axes that describe looks, taste or fit: they never change the price of a SKU.
_UNPRICED_AXES = frozenset({"颜色", "色号", "表带", "口味", "光色", "尺码", "果径", "段位", "能效"})
_RATING_WEIGHTS = ((1, 3), (2, 4), (3, 10), (4, 28), (5, 55))
_YEAR_SECONDS = 365 * 86400


@dataclass(frozen=True, slots=True)
class CategoryRow:
    id: int
    code: str
    name: str
    parent_id: int | None
    icon_url: str
    sort_order: int


@dataclass(frozen=True, slots=True)
class BrandRow:
    id: int
    code: str
    name: str
    short_name: str
    logo_url: str


@dataclass(frozen=True, slots=True)
class LeafRef:
    """A leaf category with the ids and names a product of it needs."""

    leaf: Leaf
    category_id: int
    category_names: tuple[str, str]  # (leaf, parent), the order the search index uses
    weight: float


@dataclass(frozen=True)
class CatalogRefs:
    categories: list[CategoryRow]
    brands: list[BrandRow]
    leaves: list[LeafRef]
    brand_by_code: dict[str, BrandRow]


@dataclass(slots=True)
class SkuRow:
    id: int
    code: str
    product_id: int
    spec_values: list[dict[str, str]]
    price_fen: int
    market_price_fen: int
    stock: int
    sort_order: int


@dataclass(slots=True)
class ReviewRow:
    id: int
    product_id: int
    member_id: int | None
    rating: int
    content: str
    created_at: datetime


@dataclass(slots=True)
class ProductRow:
    id: int
    spu_code: str
    title: str
    subtitle: str
    category_id: int
    category_names: tuple[str, str]
    brand_id: int | None
    brand_name: str
    images: list[str]
    detail_html: str
    tags: list[str]
    on_shelf: bool
    sales_count: int
    created_at: datetime
    skus: list[SkuRow] = field(default_factory=list)
    reviews: list[ReviewRow] = field(default_factory=list)
    price_fen: int = 0
    market_price_fen: int = 0
    in_stock: bool = False

    def cheapest_in_stock_sku(self) -> SkuRow | None:
        """The lowest-priced SKU that has stock, or None."""
        stocked = [sku for sku in self.skus if sku.stock > 0]
        return min(stocked, key=lambda sku: (sku.price_fen, sku.sort_order)) if stocked else None


def image_url(key: str, size: int = 800) -> str:
    """A deterministic placeholder image for a key."""
    return f"{IMAGE_HOST}/{key}/{size}/{size}"


def build_refs(category_base: int = 0, brand_base: int = 0) -> CatalogRefs:
    """Categories (two levels) and brands with ids counted up from the given bases."""
    categories: list[CategoryRow] = []
    leaves: list[LeafRef] = []
    next_id = category_base
    for top_order, top in enumerate(TOPS):
        next_id += 1
        top_id = next_id
        categories.append(
            CategoryRow(top_id, top.code, top.name, None, image_url(f"cat-{top.code}", 120), top_order)
        )
        # Phones, fashion and beauty get more products, as in a real shop.
        weight = 1.5 if top.code in {"digital", "fashion", "beauty"} else 1.0
        for order, leaf in enumerate(top.leaves):
            next_id += 1
            code = f"{top.code}-{leaf.code}"
            categories.append(
                CategoryRow(next_id, code, leaf.name, top_id, image_url(f"cat-{code}", 120), order)
            )
            leaves.append(LeafRef(leaf, next_id, (leaf.name, top.name), weight))
    brands = [
        BrandRow(brand_base + index + 1, code, name, short, image_url(f"brand-{code}", 200))
        for index, (code, name, short) in enumerate(BRANDS)
    ]
    return CatalogRefs(categories, brands, leaves, {brand.code: brand for brand in brands})


def _nice_fen(yuan: float) -> int:
    # Shop prices end in .90, 9 or 99 yuan depending on their size.
    whole = max(int(yuan), 1)
    if whole < 100:
        return whole * 100 + 90
    if whole < 1000:
        return (whole // 10 * 10 + 9) * 100
    return (whole // 100 * 100 + 99) * 100


def _pick_ordered(rng: random.Random, values: Sequence[str], count: int) -> list[int]:
    return sorted(rng.sample(range(len(values)), min(count, len(values))))


def _spec_combinations(rng: random.Random, leaf: Leaf) -> list[list[tuple[int, int]]]:
    """SKU spec choices as [(axis, value index), …] per SKU, in spec order."""
    if len(leaf.specs) == 1:
        picks = [_pick_ordered(rng, leaf.specs[0][1], rng.choice((1, 2, 3, 3, 4, 4, 5, 6)))]
    else:
        picks = [_pick_ordered(rng, values, rng.choice((1, 2, 2, 3, 3))) for _, values in leaf.specs[:2]]
    combos: list[list[tuple[int, int]]] = [[]]
    for axis, chosen in enumerate(picks):
        combos = [[*combo, (axis, value)] for combo in combos for value in chosen]
    return combos


def _skus(
    rng: random.Random, leaf: Leaf, product_id: int, spu_code: str, first_id: int, sold_out: bool
) -> list[SkuRow]:
    low, high = leaf.price_yuan
    base = low * (high / low) ** rng.random()  # log-uniform: cheap items are more common
    markup = 1.0 if rng.random() < 0.15 else rng.uniform(1.1, 1.6)
    priced_axis = next(
        (axis for axis, (name, _) in enumerate(leaf.specs) if name not in _UNPRICED_AXES), None
    )
    skus: list[SkuRow] = []
    for order, combo in enumerate(_spec_combinations(rng, leaf)):
        step = next((value for axis, value in combo if axis == priced_axis), 0)
        price = _nice_fen(base * (1 + leaf.price_step * step))
        market = max(price, _nice_fen(price / 100 * markup)) if markup > 1 else price
        roll = rng.random()
        stock = 0 if sold_out or roll < 0.1 else rng.randint(1, 5) if roll < 0.2 else rng.randint(10, 999)
        spec_values = [
            {"name": leaf.specs[axis][0], "value": leaf.specs[axis][1][value]} for axis, value in combo
        ]
        skus.append(
            SkuRow(
                first_id + order,
                f"{spu_code}-{order + 1:02d}",
                product_id,
                spec_values,
                price,
                market,
                stock,
                order,
            )
        )
    return skus


def _title(rng: random.Random, leaf: Leaf, brand: BrandRow | None) -> tuple[str, list[str]]:
    model = ""
    if brand is not None and brand.code in leaf.models and rng.random() < 0.85:
        model = rng.choice(leaf.models[brand.code])
    nouns = leaf.brand_nouns.get(brand.code, leaf.nouns) if brand else leaf.nouns
    noun = (rng.choice(leaf.styles) + rng.choice(nouns)).strip()
    features = rng.sample(leaf.features, min(len(leaf.features), rng.choice((1, 2, 2, 3))))
    features = [feature for feature in features if feature not in noun]  # no "降噪耳机 降噪"
    parts = [brand.short_name if brand else "", model, noun, *features]
    return " ".join(part for part in parts if part), features


def _detail_html(subtitle: str, brand: BrandRow | None, leaf: Leaf, images: list[str]) -> str:
    rows = [("品牌", brand.name if brand else "无品牌"), ("品类", leaf.name)]
    rows += [(name, " / ".join(values)) for name, values in leaf.specs]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    pictures = "".join(f'<img src="{url}" alt="">' for url in images)
    return f'<div class="detail"><p>{html.escape(subtitle)}</p><table>{table}</table>{pictures}</div>'


def _reviews(
    rng: random.Random,
    product_id: int,
    created_at: datetime,
    now: datetime,
    first_id: int,
    member_ids: Sequence[int],
) -> list[ReviewRow]:
    if rng.random() < 0.4:
        return []
    count = min(int(rng.expovariate(1 / 5)) + 1, 30)
    ratings = rng.choices([r for r, _ in _RATING_WEIGHTS], [w for _, w in _RATING_WEIGHTS], k=count)
    span = max(int((now - created_at).total_seconds()), 1)
    reviewers: list[int | None] = [*member_ids, None, None, None]
    return [
        ReviewRow(
            first_id + index,
            product_id,
            rng.choice(reviewers),
            rating,
            rng.choice(REVIEWS[rating]),
            created_at + timedelta(seconds=rng.randrange(span)),
        )
        for index, rating in enumerate(ratings)
    ]


def _tags(rng: random.Random, is_new: bool, sales: int, price_fen: int) -> list[str]:
    tags = []
    if is_new:
        tags.append("新品")
    if sales > 2000:
        tags.append("热卖")
    if price_fen >= 9900 or rng.random() < 0.3:
        tags.append("包邮")
    if rng.random() < 0.3:
        tags.append("自营")
    if rng.random() < 0.15:
        tags.append("次日达")
    return tags[:3]


def generate_product(
    refs: CatalogRefs,
    index: int,
    *,
    seed: int,
    now: datetime,
    product_id: int,
    first_sku_id: int,
    first_review_id: int,
    member_ids: Sequence[int] = (),
) -> ProductRow:
    """Product number `index` (0-based): the same seed and index always give the same product."""
    # One generator per product: product i does not depend on how many products come before it.
    rng = random.Random(seed * 1_000_003 + index)  # nosec B311
    if index < len(refs.leaves):
        ref = refs.leaves[index]  # the first products cover every leaf category
    else:
        ref = rng.choices(refs.leaves, [r.weight for r in refs.leaves])[0]
    leaf = ref.leaf
    branded = leaf.brands and rng.random() >= leaf.unbranded
    brand = refs.brand_by_code[rng.choice(leaf.brands)] if branded else None
    title, features = _title(rng, leaf, brand)
    extra = [f for f in leaf.features if f not in features]
    subtitle = " ".join([*rng.sample(extra, min(1, len(extra))), rng.choice(SELLING_POINTS)])
    spu_code = f"SPU{index + 1:08d}"
    images = [image_url(f"{spu_code.lower()}-{n}") for n in range(1, rng.randint(3, 5) + 1)]
    roll = rng.random()
    on_shelf, sold_out = roll >= 0.03, 0.03 <= roll < 0.09
    age = rng.randrange(_YEAR_SECONDS)
    created_at = now - timedelta(seconds=age)
    sales = min(int((rng.paretovariate(0.9) - 1) * 50), 100_000)  # a few best sellers, a long tail
    skus = _skus(rng, leaf, product_id, spu_code, first_sku_id, sold_out)
    cheapest = min(skus, key=lambda sku: (sku.price_fen, sku.sort_order))
    product = ProductRow(
        id=product_id,
        spu_code=spu_code,
        title=title,
        subtitle=subtitle,
        category_id=ref.category_id,
        category_names=ref.category_names,
        brand_id=brand.id if brand else None,
        brand_name=brand.name if brand else "",
        images=images,
        detail_html=_detail_html(subtitle, brand, leaf, images),
        tags=_tags(rng, age < 30 * 86400, sales, cheapest.price_fen),
        on_shelf=on_shelf,
        sales_count=sales,
        created_at=created_at,
        skus=skus,
        price_fen=cheapest.price_fen,
        market_price_fen=cheapest.market_price_fen,
        in_stock=any(sku.stock > 0 for sku in skus),
    )
    product.reviews = _reviews(rng, product_id, created_at, now, first_review_id, member_ids)
    return product


def generate_products(
    refs: CatalogRefs,
    count: int,
    *,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    product_base: int = 0,
    sku_base: int = 0,
    review_base: int = 0,
    member_ids: Sequence[int] = (),
) -> Iterator[ProductRow]:
    """The first `count` demo products in order, ids counted up from the given bases."""
    now = now or datetime.now(UTC)
    next_sku, next_review = sku_base + 1, review_base + 1
    for index in range(count):
        product = generate_product(
            refs,
            index,
            seed=seed,
            now=now,
            product_id=product_base + index + 1,
            first_sku_id=next_sku,
            first_review_id=next_review,
            member_ids=member_ids,
        )
        next_sku += len(product.skus)
        next_review += len(product.reviews)
        yield product
