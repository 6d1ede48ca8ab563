"""Product detail screen."""

from __future__ import annotations

from datetime import UTC, datetime

from bff.ids import encode_id
from bff.models.catalog import Product, Review, Sku
from bff.models.marketing import FlashSaleItem, GroupBuyCampaign
from bff.models.member import Member, MemberLevel
from bff.services.money import member_price
from tests.support.api import Api


async def test_product_detail_matches_the_catalog(api: Api) -> None:
    product = await Product.filter(on_shelf=True, in_stock=True).order_by("-sales_count").first()
    assert product is not None
    data = (await api.op("ProductDetail", {"id": encode_id("Product", product.id)}))["product"]
    skus = await Sku.filter(product_id=product.id).order_by("sort_order", "id")
    assert data["title"] == product.title
    assert data["images"] == product.images and data["detailHtml"] == product.detail_html
    assert data["price"]["amount"] == min(s.price_fen for s in skus)
    assert data["inStock"] is any(s.stock > 0 for s in skus)
    assert [s["code"] for s in data["skus"]] == [s.code for s in skus]
    assert [s["stock"] for s in data["skus"]] == [s.stock for s in skus]
    assert data["memberPrice"] is None
    # Specs list each dimension's values in the order the SKUs use them.
    for spec in data["specs"]:
        values = [v["value"] for s in data["skus"] for v in s["specValues"] if v["name"] == spec["name"]]
        assert spec["values"] == list(dict.fromkeys(values))
    reviews = await Review.filter(product_id=product.id)
    assert data["reviewSummary"]["count"] == len(reviews)
    if reviews:
        expected = round(sum(r.rating for r in reviews) / len(reviews), 2)
        assert abs(data["reviewSummary"]["averageRating"] - expected) < 0.01
    related = data["relatedProducts"]
    assert len(related) <= 6 and encode_id("Product", product.id) not in {r["id"] for r in related}
    assert data["category"]["id"] == encode_id("Category", product.category_id)


async def test_member_price_follows_the_viewer_level(api: Api) -> None:
    product = await Product.filter(on_shelf=True, in_stock=True).order_by("id").first()
    assert product is not None
    for name in ("alice", "bob", "carol", "dave"):
        token = await api.login(name)
        member = await Member.get(openid=f"o_{name}")
        level = await MemberLevel.get(id=member.level_id)
        data = (await api.op("ProductDetail", {"id": encode_id("Product", product.id)}, token=token))[
            "product"
        ]
        assert data["memberPrice"]["amount"] == member_price(product.price_fen, level.discount_percent)
        for sku in data["skus"]:
            assert sku["memberPrice"]["amount"] == member_price(
                sku["price"]["amount"], level.discount_percent
            )


async def test_running_campaigns_show_on_their_product(api: Api) -> None:
    now = datetime.now(UTC)
    item = await FlashSaleItem.filter(flash_sale__starts_at__lte=now, flash_sale__ends_at__gt=now).first()
    assert item is not None
    data = (await api.op("ProductDetail", {"id": encode_id("Product", item.product_id)}))["product"]
    flash = [c for c in data["activeCampaigns"] if c["__typename"] == "FlashSaleItem"]
    assert flash and flash[0]["flashPrice"]["amount"] == item.flash_price_fen

    group = await GroupBuyCampaign.filter(starts_at__lte=now, ends_at__gt=now).first()
    assert group is not None
    data = (await api.op("ProductDetail", {"id": encode_id("Product", group.product_id)}))["product"]
    campaign = next(c for c in data["activeCampaigns"] if c["__typename"] == "GroupBuyCampaign")
    assert campaign["groupSize"] == group.group_size
    assert 1 <= len(campaign["openTeams"]) <= 3
    for team in campaign["openTeams"]:
        assert 0 < team["missingCount"] < group.group_size
        assert team["leader"]["nickname"]


async def test_unknown_or_off_shelf_products_are_null(api: Api) -> None:
    off = await Product.filter(on_shelf=False).first()
    assert off is not None
    assert (await api.op("ProductDetail", {"id": encode_id("Product", off.id)}))["product"] is None
    assert (await api.op("ProductDetail", {"id": encode_id("Product", 10**9)}))["product"] is None
    assert (await api.op("ProductDetail", {"id": "garbage"}))["product"] is None
