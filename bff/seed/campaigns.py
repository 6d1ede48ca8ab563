"""Marketing content: coupon templates, the running campaigns, banners and search history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from bff.ids import encode_id
from bff.models.content import Banner
from bff.models.marketing import (
    BargainCampaign,
    CouponTemplate,
    FlashSale,
    FlashSaleItem,
    GroupBuyCampaign,
    GroupBuyTeam,
    GroupBuyTeamMember,
    PresaleCampaign,
)
from bff.models.search import SearchKeywordDaily
from bff.seed.catalog import ProductRow, SkuRow
from bff.seed.context import SeedContext
from bff.seed.words import HOT_KEYWORDS, IMAGE_HOST, ZERO_RESULT_KEYWORDS

FLASH_SALE_ITEMS = 8
# Search statistics are kept per day of the shop (China), as bff.services.search.shop_today counts them.
_SHOP_TIMEZONE = timezone(timedelta(hours=8))


def _category_scope(ctx: SeedContext, top_code: str) -> list[int]:
    # The top-level category and all its children, so a product matches by its own category id.
    top = next(c for c in ctx.refs.categories if c.code == top_code)
    return [top.id, *(c.id for c in ctx.refs.categories if c.parent_id == top.id)]


def build_coupon_templates(ctx: SeedContext) -> dict[str, dict[str, Any]]:
    """Coupon templates of every kind and scope, keyed by a short name; claimed_count is filled in later."""
    now = ctx.now
    hot = sorted(ctx.pools.buyable, key=lambda p: (-p.sales_count, p.id))
    featured = [p.id for p in hot if p.price_fen >= 29900][:6] or [p.id for p in hot[:6]]

    def day(offset: int) -> datetime:
        return now + timedelta(days=offset)

    specs: list[tuple[str, dict[str, Any]]] = [
        ("welcome", {"name": "新人立减10元", "description": "无门槛使用", "kind": "FIXED",
                     "amount_fen": 1000, "total_quantity": 100_000, "valid_days": 7}),
        ("over99", {"name": "满99减10", "description": "全场满99元可用", "kind": "THRESHOLD",
                    "amount_fen": 1000, "min_spend_fen": 9900, "total_quantity": 50_000,
                    "per_member_limit": 2, "valid_days": 15}),
        ("over199", {"name": "满199减30", "description": "全场满199元可用", "kind": "THRESHOLD",
                     "amount_fen": 3000, "min_spend_fen": 19900, "total_quantity": 20_000,
                     "claim_starts_at": day(-3), "claim_ends_at": day(27),
                     "valid_from": day(-3), "valid_to": day(30)}),
        ("vip500", {"name": "会员专享满500减60", "description": "黄金及以上会员专享", "kind": "THRESHOLD",
                    "amount_fen": 6000, "min_spend_fen": 50000, "claimable": False, "valid_days": 30}),
        ("all95", {"name": "全场95折券", "description": "无门槛，最高减20元", "kind": "PERCENT",
                   "percent_off": 5, "cap_fen": 2000, "total_quantity": 10_000, "valid_days": 10}),
        ("beauty90", {"name": "美妆个护9折券", "description": "美妆个护满100元可用，最高减50元",
                      "kind": "PERCENT", "percent_off": 10, "cap_fen": 5000, "min_spend_fen": 10000,
                      "scope": "CATEGORY", "scope_ids": _category_scope(ctx, "beauty"),
                      "total_quantity": 5_000, "valid_from": day(-1), "valid_to": day(14)}),
        ("digital100", {"name": "数码满1000减100", "description": "手机数码满1000元可用", "kind": "THRESHOLD",
                        "amount_fen": 10000, "min_spend_fen": 100000, "scope": "CATEGORY",
                        "scope_ids": _category_scope(ctx, "digital"), "total_quantity": 5_000,
                        "valid_days": 30}),
        ("food5", {"name": "生鲜满59减5", "description": "食品生鲜满59元可用", "kind": "THRESHOLD",
                   "amount_fen": 500, "min_spend_fen": 5900, "scope": "CATEGORY",
                   "scope_ids": _category_scope(ctx, "food"), "per_member_limit": 3, "valid_days": 7}),
        ("featured50", {"name": "爆款直降50元", "description": "指定商品满299元可用", "kind": "FIXED",
                        "amount_fen": 5000, "min_spend_fen": 29900, "scope": "PRODUCT",
                        "scope_ids": featured, "total_quantity": 2_000, "valid_days": 14}),
        ("shipping", {"name": "包邮券", "description": "抵扣运费", "kind": "FREE_SHIPPING",
                      "per_member_limit": 3, "valid_days": 30}),
        ("expired", {"name": "限时满50减5", "description": "春季活动券", "kind": "THRESHOLD",
                     "amount_fen": 500, "min_spend_fen": 5000, "claimable": False,
                     "claim_starts_at": day(-40), "claim_ends_at": day(-10),
                     "valid_from": day(-40), "valid_to": day(-2)}),
        # Granted by the churn care flow (bff.services.churn), never claimed.
        ("care", {"name": "回归礼 满99减20", "description": "老朋友回归专享，满99元可用", "kind": "THRESHOLD",
                  "amount_fen": 2000, "min_spend_fen": 9900, "claimable": False, "purpose": "CARE",
                  "valid_days": 14}),
    ]  # fmt: skip
    templates: dict[str, dict[str, Any]] = {}
    for key, spec in specs:
        templates[key] = {
            "id": ctx.ids.take(CouponTemplate),
            "description": "",
            "amount_fen": 0,
            "percent_off": 0,
            "cap_fen": 0,
            "min_spend_fen": 0,
            "scope": "ALL",
            "scope_ids": [],
            "total_quantity": 0,
            "claimed_count": 0,
            "per_member_limit": 1,
            "claimable": True,
            "purpose": "",
            "claim_starts_at": None,
            "claim_ends_at": None,
            "valid_from": None,
            "valid_to": None,
            "valid_days": 0,
            **spec,
        }
    return templates


def _campaign_products(ctx: SeedContext) -> list[tuple[ProductRow, SkuRow]]:
    picks: list[tuple[ProductRow, SkuRow]] = []
    for product in ctx.pools.buyable:
        sku = product.cheapest_in_stock_sku()
        if sku is not None and sku.stock >= 50:
            picks.append((product, sku))
    rng = ctx.rng("campaign-products")
    return rng.sample(picks, min(len(picks), FLASH_SALE_ITEMS + 3))


async def seed_campaigns(ctx: SeedContext) -> None:
    """One running flash sale, group-buy (with open teams), presale and bargain, on buyable products."""
    rng, now, writer, ids = ctx.rng("campaigns"), ctx.now, ctx.writer, ctx.ids
    picks = _campaign_products(ctx)
    flash, rest = picks[:FLASH_SALE_ITEMS], picks[FLASH_SALE_ITEMS:]
    sale_id = ids.take(FlashSale)
    await writer.insert_dicts(
        FlashSale,
        [
            {
                "id": sale_id,
                "title": "限时秒杀",
                "starts_at": now - timedelta(hours=1),
                "ends_at": now + timedelta(days=7),
            }
        ],
    )
    items = []
    for order, (product, sku) in enumerate(flash):
        total = min(rng.choice((20, 30, 50, 100)), sku.stock)
        price = sku.price_fen * rng.randrange(50, 86) // 100 // 10 * 10
        items.append(
            {
                "id": ids.take(FlashSaleItem),
                "flash_sale_id": sale_id,
                "sku_id": sku.id,
                "product_id": product.id,
                "flash_price_fen": min(max(price, 1), sku.price_fen - 1),
                "stock_total": total,
                "sold": total * rng.randrange(10, 91) // 100,
                "per_member_limit": rng.choice((1, 1, 2, 3)),
                "sort_order": order,
            }
        )
    await writer.insert_dicts(FlashSaleItem, items)
    if len(rest) < 3:
        return
    (group_product, group_sku), (pre_product, pre_sku), (bar_product, bar_sku) = rest[:3]
    await _group_buy(ctx, group_product, group_sku)
    presale_price = min(pre_sku.price_fen * 85 // 100 // 100 * 100, pre_sku.price_fen - 100)
    deposit = max(100, presale_price // 10 // 100 * 100)
    await writer.insert_dicts(
        PresaleCampaign,
        [
            {
                "id": ids.take(PresaleCampaign),
                "title": "新品预售 定金翻倍",
                "product_id": pre_product.id,
                "sku_id": pre_sku.id,
                "presale_price_fen": presale_price,
                "deposit_fen": deposit,
                "deposit_deduction_fen": min(deposit * 2, presale_price),
                "deposit_starts_at": now - timedelta(days=1),
                "deposit_ends_at": now + timedelta(days=5),
                "balance_starts_at": now + timedelta(days=5),
                "balance_ends_at": now + timedelta(days=8),
            }
        ],
    )
    await writer.insert_dicts(
        BargainCampaign,
        [
            {
                "id": ids.take(BargainCampaign),
                "title": "好友助力 砍价免费拿",
                "product_id": bar_product.id,
                "sku_id": bar_sku.id,
                "start_price_fen": bar_sku.price_fen,
                "floor_price_fen": max(100, bar_sku.price_fen * 3 // 10 // 100 * 100),
                "helpers_needed": 5,
                "session_ttl_minutes": 24 * 60,
                "starts_at": now - timedelta(days=1),
                "ends_at": now + timedelta(days=14),
            }
        ],
    )


async def _group_buy(ctx: SeedContext, product: ProductRow, sku: SkuRow) -> None:
    now, ids, members = ctx.now, ctx.ids, ctx.members
    campaign_id = ids.take(GroupBuyCampaign)
    ttl = 24 * 60
    await ctx.writer.insert_dicts(
        GroupBuyCampaign,
        [
            {
                "id": campaign_id,
                "title": "三人拼团 超值价",
                "product_id": product.id,
                "sku_id": sku.id,
                "group_price_fen": max(1, sku.price_fen * 8 // 10 // 10 * 10),
                "group_size": 3,
                "team_ttl_minutes": ttl,
                "starts_at": now - timedelta(days=2),
                "ends_at": now + timedelta(days=10),
            }
        ],
    )
    # Alice leads and joins no team, so the demo (and the tests) can start or join one as her.
    plans = [("OPEN", ["bob"], 2), ("OPEN", ["carol", "dave"], 5), ("OPEN", ["frank"], 9)]
    plans.append(("COMPLETED", ["erin", "grace", "heidi"], 20))
    teams, team_members = [], []
    for status, names, hours_ago in plans:
        team_id = ids.take(GroupBuyTeam)
        created = now - timedelta(hours=hours_ago)
        teams.append(
            {
                "id": team_id,
                "campaign_id": campaign_id,
                "leader_id": members[names[0]].id,
                "status": status,
                "member_count": len(names),
                "expires_at": created + timedelta(minutes=ttl),
                "created_at": created,
            }
        )
        for offset, name in enumerate(names):
            team_members.append(
                {
                    "id": ids.take(GroupBuyTeamMember),
                    "team_id": team_id,
                    "member_id": members[name].id,
                    "joined_at": created + timedelta(minutes=offset * 17),
                }
            )
    await ctx.writer.insert_dicts(GroupBuyTeam, teams)
    await ctx.writer.insert_dicts(GroupBuyTeamMember, team_members)


def _banner_url(key: str) -> str:
    return f"{IMAGE_HOST}/banner-{key}/750/320"


async def seed_banners(ctx: SeedContext) -> None:
    """Four home carousel banners and one each on the category and member screens."""
    now = ctx.now
    buyable = sorted(ctx.pools.buyable, key=lambda p: (-p.sales_count, p.id))
    product_link = f"/pages/product/detail?id={encode_id('Product', buyable[0].id)}" if buyable else ""
    digital = next(c for c in ctx.refs.categories if c.code == "digital")
    specs = [
        ("HOME_TOP", "summer-sale", "/pages/activity/index?id=summer"),
        ("HOME_TOP", "flash-sale", "/pages/flash-sale/index"),
        ("HOME_TOP", "best-seller", product_link),
        ("HOME_TOP", "coupon-center", "/pages/coupon/center"),
        ("CATEGORY_TOP", "digital-week", f"/pages/category/index?id={encode_id('Category', digital.id)}"),
        ("MEMBER_TOP", "member-day", "/pages/member/levels"),
    ]
    rows = [
        {
            "id": ctx.ids.take(Banner),
            "position": position,
            "image_url": _banner_url(key),
            "link": link,
            "sort_order": order,
            "starts_at": now - timedelta(days=7),
            "ends_at": now + timedelta(days=30),
            "active": True,
        }
        for order, (position, key, link) in enumerate(specs)
    ]
    await ctx.writer.insert_dicts(Banner, rows)


async def seed_search_history(ctx: SeedContext) -> None:
    """A week of daily keyword counts; result counts are what the seeded catalog finds."""
    rng = ctx.rng("search-history")
    today = ctx.now.astimezone(_SHOP_TIMEZONE).date()
    days = [today - timedelta(days=offset) for offset in range(7)]
    taken = set(
        await SearchKeywordDaily.filter(day__in=days)
        .using_db(ctx.writer.connection)
        .values_list("day", "keyword")
    )
    rows = []
    for day in days:
        for keyword, weight in (*HOT_KEYWORDS, *ZERO_RESULT_KEYWORDS):
            if (day, keyword) in taken or rng.random() < 0.08:
                continue  # not every keyword is searched every day
            rows.append(
                {
                    "id": ctx.ids.take(SearchKeywordDaily),
                    "day": day,
                    "keyword": keyword,
                    "search_count": max(1, round(weight * rng.uniform(0.6, 1.4) * 3)),
                    "last_result_count": ctx.keyword_results.get(keyword, 0),
                }
            )
    await ctx.writer.insert_dicts(SearchKeywordDaily, rows)
