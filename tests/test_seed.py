"""The demo seed: minimum contents, consistent aggregates and ledgers, running campaigns, determinism."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.models import Model

from bff.models.cart import CartItem
from bff.models.catalog import Brand, Category, Product, Review, Sku
from bff.models.content import Banner
from bff.models.marketing import (
    BargainCampaign,
    CouponTemplate,
    FlashSale,
    FlashSaleItem,
    GroupBuyCampaign,
    GroupBuyTeam,
    GroupBuyTeamMember,
    MemberCoupon,
    PresaleCampaign,
)
from bff.models.member import Address, Member, MemberLevel, PointsLedger
from bff.models.order import Order, OrderEvent, OrderLine, Payment, Shipment
from bff.models.search import SearchKeywordDaily, SearchToken
from bff.seed import DEMO_MEMBERS, SeedSummary, demo_titles, seed_demo
from bff.seed.catalog import build_refs, generate_products
from bff.services.search_index import product_search_fields

# Other tests share this database and may call seed_demo() first, or change a demo member's cart and
# orders through the API; these tests assert what holds either way.


@pytest.fixture(scope="module")
async def seeded(first_seed: SeedSummary) -> SeedSummary:
    return first_seed


async def _seeded_products() -> list[Product]:
    # The seed's products carry SPU codes of its own format; other tests create theirs with others.
    return await Product.filter(spu_code__startswith="SPU").order_by("id")


async def test_a_first_seed_reports_what_it_wrote(seeded: SeedSummary) -> None:
    assert not seeded.skipped
    assert seeded.products == 600
    assert seeded.skus >= 2000
    assert seeded.count(SearchToken) > 30 * 600
    assert seeded.count(Category) >= 30 and seeded.count(Brand) == 40


async def test_counts_meet_the_minimums(seeded: SeedSummary) -> None:
    assert await Product.filter(spu_code__startswith="SPU").count() >= 600
    assert await Sku.filter(code__startswith="SPU").count() >= 2000
    assert await Brand.all().count() >= 40
    assert await Review.all().count() >= 600
    assert await Banner.filter(position="HOME_TOP", active=True).count() >= 4
    assert await Banner.exclude(position="HOME_TOP").count() >= 1
    assert await CouponTemplate.all().count() >= 8


async def test_categories_form_two_levels() -> None:
    categories = await Category.all()
    by_id = {c.id: c for c in categories}
    tops = [c for c in categories if c.parent_id is None]
    assert len(categories) >= 30 and len(tops) >= 8
    for category in categories:
        if category.parent_id is not None:
            assert by_id[category.parent_id].parent_id is None  # no third level
    seeded_tops = [c for c in tops if await Category.filter(parent_id=c.id).count() >= 4]
    assert len(seeded_tops) >= 8
    assert all(c.icon_url.startswith("https://") for c in seeded_tops)


async def test_product_aggregates_match_their_skus(seeded: SeedSummary) -> None:
    products = await _seeded_products()
    skus_by_product: dict[int, list[Sku]] = defaultdict(list)
    for sku in await Sku.filter(product_id__in=[p.id for p in products]):
        skus_by_product[sku.product_id].append(sku)
    for product in products:
        skus = skus_by_product[product.id]
        assert skus, product.title
        cheapest = min(s.price_fen for s in skus)
        assert product.price_fen == cheapest
        assert product.market_price_fen in {s.market_price_fen for s in skus if s.price_fen == cheapest}
        assert product.in_stock is any(s.stock - s.reserved > 0 for s in skus)
        for sku in skus:
            assert isinstance(sku.price_fen, int) and 0 < sku.price_fen <= sku.market_price_fen
            assert sku.spec_values and all(set(v) == {"name", "value"} for v in sku.spec_values)
        assert 3 <= len(product.images) <= 5 and product.detail_html.startswith("<div")
    assert any(not p.in_stock for p in products), "some products are sold out"
    assert any(not p.on_shelf for p in products), "some products are off shelf"
    assert await Sku.filter(stock=0, product__in_stock=True).exists(), (
        "some SKUs of stocked products are at 0"
    )
    assert len({p.sales_count for p in products}) > 50
    assert len({p.created_at for p in products}) > 500


async def test_search_fields_and_tokens_come_from_the_index_helper(seeded: SeedSummary) -> None:
    products = (await _seeded_products())[:40]
    categories = {c.id: c for c in await Category.all()}
    brands = {b.id: b.name for b in await Brand.all()}
    tokens: dict[int, set[str]] = defaultdict(set)
    for token, product_id in await SearchToken.filter(product_id__in=[p.id for p in products]).values_list(
        "token", "product_id"
    ):
        tokens[product_id].add(token)
    for product in products:
        category = categories[product.category_id]
        parent = categories[category.parent_id] if category.parent_id else None
        names = [category.name, *([parent.name] if parent else [])]
        fields = product_search_fields(
            product.title, product.subtitle, brands.get(product.brand_id or 0, ""), names
        )
        assert (product.search_title, product.search_text) == (fields.search_title, fields.search_text)
        assert tokens[product.id] == fields.tokens


async def test_member_levels() -> None:
    levels = [
        (lv.name, lv.rank, lv.min_growth, lv.discount_percent, lv.free_shipping)
        for lv in await MemberLevel.all().order_by("rank")
    ]
    assert levels == [
        ("普通", 0, 0, 0, False),
        ("白银", 1, 1000, 3, False),
        ("黄金", 2, 5000, 5, True),
        ("钻石", 3, 20000, 10, True),
    ]
    assert all(lv.benefits for lv in await MemberLevel.all())


async def test_demo_members_have_consistent_levels_ledgers_and_addresses(seeded: SeedSummary) -> None:
    levels = {lv.id: lv for lv in await MemberLevel.all()}
    expected = {"alice": "黄金", "bob": "普通", "carol": "钻石", "dave": "白银"}
    for spec in DEMO_MEMBERS:
        member = await Member.get(openid=f"o_{spec.name}")
        level = levels[member.level_id]
        assert spec.name not in expected or level.name == expected[spec.name]
        reached = max(
            (lv for lv in levels.values() if lv.min_growth <= member.growth_value), key=lambda x: x.rank
        )
        assert level.id == reached.id
        assert member.nickname and member.avatar_url.startswith("https://")
        balance = 0
        ledger = await PointsLedger.filter(member_id=member.id).order_by("id")
        assert ledger
        for entry in ledger:
            balance += entry.delta
            assert entry.balance_after == balance >= 0
        assert member.points_balance == balance
        addresses = await Address.filter(member_id=member.id)
        assert 1 <= len(addresses) and sum(a.is_default for a in addresses) == 1


async def test_alice_has_a_cart_coupons_and_orders_to_show(seeded: SeedSummary) -> None:
    alice = await Member.get(openid="o_alice")
    now = datetime.now(UTC)
    lines = await CartItem.filter(member_id=alice.id)
    skus = {s.id: s for s in await Sku.filter(id__in=[line.sku_id for line in lines])}
    products = {p.id: p for p in await Product.filter(id__in=[s.product_id for s in skus.values()])}
    assert len(lines) >= 4
    assert any(skus[line.sku_id].stock == 0 for line in lines), "a sold-out line"
    assert any(not products[skus[line.sku_id].product_id].on_shelf for line in lines), "an off-shelf line"

    coupons = await MemberCoupon.filter(member_id=alice.id)
    assert any(c.status == "UNUSED" and c.expires_at > now for c in coupons)
    assert any(c.status == "UNUSED" and c.expires_at < now for c in coupons), "an expired coupon"
    used = [c for c in coupons if c.status == "USED"]
    assert used and all(c.order_id is not None and c.used_at is not None for c in used)

    statuses = set(await Order.filter(member_id=alice.id).values_list("status", flat=True))
    assert {"PENDING_PAYMENT", "PAID", "SHIPPED", "COMPLETED"} <= statuses


async def test_seeded_orders_add_up(seeded: SeedSummary) -> None:
    members = await Member.filter(openid__in=[f"o_{spec.name}" for spec in DEMO_MEMBERS]).values_list(
        "id", flat=True
    )
    orders = await Order.filter(member_id__in=list(members), order_no__startswith="20")
    assert len(orders) >= 5
    for order in orders:
        lines = await OrderLine.filter(order_id=order.id)
        assert lines
        for line in lines:
            assert line.line_total_fen == line.unit_price_fen * line.quantity
            assert line.member_discount_fen == (line.list_price_fen - line.unit_price_fen) * line.quantity
            assert line.paid_fen == line.line_total_fen - line.coupon_discount_fen
        assert order.items_total_fen == sum(line.list_price_fen * line.quantity for line in lines)
        assert order.member_discount_fen == sum(line.member_discount_fen for line in lines)
        assert order.coupon_discount_fen == sum(line.coupon_discount_fen for line in lines)
        assert order.payable_fen == (
            order.items_total_fen
            - order.member_discount_fen
            - order.campaign_discount_fen
            - order.coupon_discount_fen
            - order.points_discount_fen
            + order.shipping_fee_fen
        )
        assert order.payable_fen == sum(line.paid_fen for line in lines) + order.shipping_fee_fen
        events = await OrderEvent.filter(order_id=order.id).order_by("id")
        assert events[0].status == "PENDING_PAYMENT" and events[-1].status == order.status
        paid = order.status in ("PAID", "SHIPPED", "DELIVERED", "COMPLETED")
        assert (order.paid_at is not None) is paid
        payments = await Payment.filter(order_id=order.id)
        assert [p.amount_fen for p in payments] == ([order.payable_fen] if paid else [])
        shipped = order.status in ("SHIPPED", "DELIVERED", "COMPLETED")
        assert await Shipment.filter(order_id=order.id).exists() is shipped
        assert order.address_snapshot.get("detail")
    pending = [o.id for o in orders if o.status == "PENDING_PAYMENT"]
    held: dict[int, int] = defaultdict(int)
    for line in await OrderLine.filter(order_id__in=pending):
        held[line.sku_id] += line.quantity
    assert held, "unpaid orders hold stock"
    for sku in await Sku.filter(id__in=list(held)):
        assert held[sku.id] <= sku.reserved <= sku.stock


async def test_coupon_templates_cover_every_kind_and_scope() -> None:
    templates = await CouponTemplate.all()
    assert {"FIXED", "THRESHOLD", "PERCENT", "FREE_SHIPPING"} <= {t.kind for t in templates}
    assert {"ALL", "CATEGORY", "PRODUCT"} <= {t.scope for t in templates}
    assert sum(t.claimable for t in templates) > len(templates) / 2
    category_ids = set(await Category.all().values_list("id", flat=True))
    product_ids = set(await Product.all().values_list("id", flat=True))
    for template in templates:
        if template.scope == "CATEGORY":
            assert template.scope_ids and set(template.scope_ids) <= category_ids
        if template.scope == "PRODUCT":
            assert template.scope_ids and set(template.scope_ids) <= product_ids
        if template.kind == "PERCENT":
            assert 0 < template.percent_off < 100 and template.cap_fen > 0
        assert (template.valid_to is not None) or template.valid_days > 0


async def test_campaigns_run_now_on_buyable_products(seeded: SeedSummary) -> None:
    now = datetime.now(UTC)

    async def buyable(product_id: int, sku_id: int) -> bool:
        product, sku = await Product.get(id=product_id), await Sku.get(id=sku_id)
        return product.on_shelf and product.in_stock and sku.stock > 0 and sku.product_id == product_id

    sale = await FlashSale.filter(starts_at__lte=now, ends_at__gt=now).first()
    assert sale is not None
    items = await FlashSaleItem.filter(flash_sale_id=sale.id)
    assert len(items) >= 6
    for item in items:
        sku = await Sku.get(id=item.sku_id)
        assert item.flash_price_fen < sku.price_fen and 0 <= item.sold <= item.stock_total
        assert item.per_member_limit >= 1 and await buyable(item.product_id, item.sku_id)

    group = await GroupBuyCampaign.filter(starts_at__lte=now, ends_at__gt=now).first()
    assert group is not None and group.group_price_fen < (await Sku.get(id=group.sku_id)).price_fen
    assert await buyable(group.product_id, group.sku_id)
    teams = await GroupBuyTeam.filter(campaign_id=group.id, status="OPEN", expires_at__gt=now)
    assert 2 <= len(teams)
    for team in teams:
        joined = [m.member_id for m in await GroupBuyTeamMember.filter(team_id=team.id)]
        assert len(joined) == team.member_count < group.group_size and team.leader_id in joined

    presale = await PresaleCampaign.filter(deposit_starts_at__lte=now, deposit_ends_at__gt=now).first()
    assert presale is not None and presale.balance_starts_at >= presale.deposit_ends_at
    assert presale.deposit_fen <= presale.deposit_deduction_fen <= presale.presale_price_fen
    assert await buyable(presale.product_id, presale.sku_id)

    bargain = await BargainCampaign.filter(starts_at__lte=now, ends_at__gt=now).first()
    assert bargain is not None and 0 < bargain.floor_price_fen < bargain.start_price_fen
    assert await buyable(bargain.product_id, bargain.sku_id)


async def test_a_week_of_search_history_with_real_result_counts(seeded: SeedSummary) -> None:
    since = datetime.now(UTC).date() - timedelta(days=8)
    rows = await SearchKeywordDaily.filter(day__gte=since)
    assert len(rows) >= 200
    assert len({row.day for row in rows}) >= 7
    found = {row.keyword for row in rows if row.last_result_count > 0}
    assert {"手机", "耳机", "连衣裙", "口红"} <= found
    assert any(row.last_result_count == 0 for row in rows)


async def test_seeding_again_changes_nothing(seeded: SeedSummary) -> None:
    models: list[type[Model]] = [Product, Sku, SearchToken, Member, PointsLedger, CartItem, Order, FlashSale]
    before = [await model.all().count() for model in models]
    again = await seed_demo()
    assert again.skipped and again.rows == {}
    assert [await model.all().count() for model in models] == before


async def test_new_rows_get_fresh_ids_after_the_explicit_ids(seeded: SeedSummary) -> None:
    top = await Category.create(code="seed-test-extra", name="临时")
    try:
        assert top.id > max(c.id for c in await Category.exclude(id=top.id))
    finally:
        await top.delete()


async def test_the_seed_is_deterministic(seeded: SeedSummary) -> None:
    titles = demo_titles(30)
    assert titles == demo_titles(30)
    assert [p.title for p in (await _seeded_products())[:30]] == titles
    # A different clock moves timestamps only.
    refs = build_refs()
    earlier = list(generate_products(refs, 50, now=datetime(2024, 1, 1, tzinfo=UTC)))
    later = list(generate_products(refs, 50, now=datetime(2025, 1, 1, tzinfo=UTC)))
    assert [(p.title, p.price_fen, len(p.skus)) for p in earlier] == [
        (p.title, p.price_fen, len(p.skus)) for p in later
    ]
    assert all(
        b.created_at - a.created_at == timedelta(days=366) for a, b in zip(earlier, later, strict=True)
    )
    # Product i does not depend on how many products are generated.
    assert [p.title for p in generate_products(refs, 10)] == titles[:10]
