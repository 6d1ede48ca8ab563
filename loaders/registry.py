"""The per-request set of loaders: one lazily-built DataLoader per key kind."""

from __future__ import annotations

from functools import cached_property, partial
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from bff.cache import Cache
from bff.models.cart import CartItem
from bff.models.churn import CareFlow
from bff.models.marketing import CouponTemplate, FlashSale, FlashSaleItem, GroupBuyTeam, MemberCoupon
from bff.models.member import Address, Member, PointsLedger
from bff.models.order import AfterSale, Order, OrderEvent, OrderLine, Shipment
from integrations.crm import CrmClient
from loaders import cart, catalog, churn, content, marketing, member, order
from loaders.catalog import BrandRow, CategoryRow, ProductRow, ReviewSummaryRow, SkuRow
from loaders.content import BannerRow
from loaders.crm import load_crm_profiles
from loaders.marketing import Campaign, PublicProfile
from loaders.member import LevelRow, OrderCountsRow
from loaders.recommendation import Cursor, RecommendedPage, load_recommended_pages, load_related_products

K = TypeVar("K")
V = TypeVar("V")


class Loaders:
    """DataLoaders that live exactly one request; catalog ones read through the shared cache."""

    def __init__(self, cache: Cache, catalog_ttl: float, crm: CrmClient) -> None:
        self.cache = cache
        self.ttl = catalog_ttl
        self.crm = crm

    # catalog
    @cached_property
    def product_by_id(self) -> DataLoader[int, ProductRow | None]:
        return DataLoader(partial(catalog.load_products_by_id, self.cache, self.ttl))

    @cached_property
    def detail_html_by_product_id(self) -> DataLoader[int, str | None]:
        return DataLoader(partial(catalog.load_detail_html, self.cache, self.ttl))

    @cached_property
    def skus_by_product_id(self) -> DataLoader[int, list[SkuRow]]:
        return DataLoader(partial(catalog.load_skus_by_product_id, self.cache, self.ttl))

    @cached_property
    def sku_by_id(self) -> DataLoader[int, SkuRow | None]:
        return DataLoader(catalog.load_skus_by_id)

    @cached_property
    def brand_by_id(self) -> DataLoader[int, BrandRow | None]:
        return DataLoader(partial(catalog.load_brands_by_id, self.cache, self.ttl))

    @cached_property
    def review_summary_by_product_id(self) -> DataLoader[int, ReviewSummaryRow]:
        return DataLoader(catalog.load_review_summaries)

    @cached_property
    def top_products_by_category(self) -> DataLoader[tuple[int, int], list[ProductRow]]:
        return DataLoader(catalog.load_top_products_by_category)

    @cached_property
    def _category_tree(self) -> DataLoader[int, list[CategoryRow]]:
        # One key (0): concurrent resolvers asking for the tree share one load.
        async def load(keys: list[int]) -> list[list[CategoryRow]]:
            rows = await catalog.load_all_categories(self.cache, self.ttl)
            return [rows for _ in keys]

        return DataLoader(load)

    async def categories(self) -> list[CategoryRow]:
        """The whole category tree, once per request."""
        return await self._category_tree.load(0)

    # content
    @cached_property
    def banners_by_position(self) -> DataLoader[str, list[BannerRow]]:
        return DataLoader(partial(content.load_banners_by_position, self.cache, self.ttl))

    # members
    @cached_property
    def member_by_id(self) -> DataLoader[int, Member | None]:
        return DataLoader(member.load_members_by_id)

    @cached_property
    def _level_table(self) -> DataLoader[int, list[LevelRow]]:
        async def load(keys: list[int]) -> list[list[LevelRow]]:
            rows = await member.load_levels(self.cache, self.ttl)
            return [rows for _ in keys]

        return DataLoader(load)

    async def levels(self) -> list[LevelRow]:
        """All member levels by rank, once per request."""
        return await self._level_table.load(0)

    @cached_property
    def addresses_by_member(self) -> DataLoader[int, list[Address]]:
        return DataLoader(member.load_addresses_by_member)

    @cached_property
    def points_page(self) -> DataLoader[tuple[int, int, int | None], tuple[list[PointsLedger], int]]:
        return DataLoader(member.load_points_pages)

    @cached_property
    def coupons_by_member_status(self) -> DataLoader[tuple[int, str], list[MemberCoupon]]:
        return DataLoader(member.load_coupons_by_member_status)

    @cached_property
    def unused_coupon_count(self) -> DataLoader[int, int]:
        return DataLoader(member.load_unused_coupon_counts)

    @cached_property
    def order_counts(self) -> DataLoader[int, OrderCountsRow]:
        return DataLoader(member.load_order_counts)

    @cached_property
    def public_profile(self) -> DataLoader[int, PublicProfile | None]:
        return DataLoader(marketing.load_public_profiles)

    @cached_property
    def crm_profile(self) -> DataLoader[int, dict[str, Any] | None]:
        return DataLoader(partial(load_crm_profiles, self.cache, self.crm))

    @cached_property
    def care_flows_by_member(self) -> DataLoader[int, list[CareFlow]]:
        return DataLoader(churn.load_care_flows_by_member)

    # cart
    @cached_property
    def cart_items_by_member(self) -> DataLoader[int, list[CartItem]]:
        return DataLoader(cart.load_cart_items_by_member)

    @cached_property
    def cart_quantity(self) -> DataLoader[int, int]:
        return DataLoader(cart.load_cart_quantities)

    # orders
    @cached_property
    def order_page(self) -> DataLoader[tuple[int, str, int, int | None], tuple[list[Order], int]]:
        return DataLoader(order.load_order_pages)

    @cached_property
    def order_by_id(self) -> DataLoader[int, Order | None]:
        return DataLoader(order.load_orders_by_id)

    @cached_property
    def lines_by_order(self) -> DataLoader[int, list[OrderLine]]:
        return DataLoader(order.load_lines_by_order)

    @cached_property
    def events_by_order(self) -> DataLoader[int, list[OrderEvent]]:
        return DataLoader(order.load_events_by_order)

    @cached_property
    def shipments_by_order(self) -> DataLoader[int, list[Shipment]]:
        return DataLoader(order.load_shipments_by_order)

    @cached_property
    def after_sales_by_order(self) -> DataLoader[int, list[AfterSale]]:
        return DataLoader(order.load_after_sales_by_order)

    # marketing
    @cached_property
    def active_flash_sale(self) -> DataLoader[int, FlashSale | None]:
        return DataLoader(marketing.load_active_flash_sale)

    @cached_property
    def flash_sale_by_id(self) -> DataLoader[int, FlashSale | None]:
        return DataLoader(marketing.load_flash_sales_by_id)

    @cached_property
    def flash_items_by_sale(self) -> DataLoader[int, list[FlashSaleItem]]:
        return DataLoader(marketing.load_flash_items_by_sale)

    @cached_property
    def campaigns_by_product(self) -> DataLoader[int, list[Campaign]]:
        return DataLoader(marketing.load_campaigns_by_product)

    @cached_property
    def open_teams_by_campaign(self) -> DataLoader[tuple[int, int], list[GroupBuyTeam]]:
        return DataLoader(marketing.load_open_teams_by_campaign)

    @cached_property
    def claimable_templates(self) -> DataLoader[int, list[CouponTemplate]]:
        return DataLoader(marketing.load_claimable_templates)

    # recommendations
    @cached_property
    def recommended_page(self) -> DataLoader[tuple[int | None, int, Cursor | None], RecommendedPage]:
        return DataLoader(load_recommended_pages)

    @cached_property
    def related_products(self) -> DataLoader[tuple[int, int, int | None], list[ProductRow]]:
        return DataLoader(load_related_products)


# --- benchmark G0 (BFF_NAIVE=1) -------------------------------------------------------------------
class UnbatchedLoaders(Loaders):
    """The same loaders with batching off: each key is its own query, to measure what batching saves."""


def _unbatched(name: str, batched: cached_property[Any]) -> cached_property[Any]:
    def build(self: Loaders) -> Any:
        loader = batched.func(self)
        loader.max_batch_size = 1
        return loader

    unbatched = cached_property(build)
    unbatched.__set_name__(UnbatchedLoaders, name)
    return unbatched


for _name, _attr in list(vars(Loaders).items()):
    if isinstance(_attr, cached_property):
        setattr(UnbatchedLoaders, _name, _unbatched(_name, _attr))


def forget(loader: DataLoader[K, V], *keys: K) -> None:
    """Drop keys from a loader's request cache; a key it never loaded is fine."""
    for key in keys:
        try:
            loader.clear(key)
        except KeyError:
            continue
