"""Home screen: one request renders the page; anonymous visitors get no member block."""

from __future__ import annotations

from bff.ids import encode_id
from bff.models.cart import CartItem
from bff.models.marketing import MemberCoupon
from bff.models.member import Member, MemberLevel
from bff.models.recommendation import PopularProduct
from bff.services.money import member_price
from tests.support.api import Api


async def test_anonymous_home_has_everything_but_the_viewer(api: Api) -> None:
    data = await api.op("Home")
    assert data["viewer"] is None
    assert len(data["banners"]) >= 1 and all(b["imageUrl"] for b in data["banners"])
    assert len(data["categories"]) >= 5 and all(c["name"] for c in data["categories"])

    sale = data["activeFlashSale"]
    assert sale is not None and sale["startsAt"] < sale["endsAt"]
    items = [e["node"] for e in sale["items"]["edges"]]
    assert 1 <= len(items) <= 6
    for item in items:
        assert 0 <= item["soldPercent"] <= 100
        assert item["flashPrice"]["amount"] < item["sku"]["price"]["amount"]
        assert item["flashPrice"]["formatted"].startswith("¥")

    products = [e["node"] for e in data["recommendedProducts"]["edges"]]
    assert len(products) == 20
    assert all(p["inStock"] for p in products)
    assert all(p["memberPrice"] is None for p in products)  # no member, no member price
    # Anonymous visitors get the popularity list once the worker has computed it, best sellers before.
    popular = [encode_id("Product", p.product_id) for p in await PopularProduct.all().order_by("rank")]
    if popular:
        ranks = [popular.index(p["id"]) for p in products]
        assert ranks == sorted(ranks)
    else:
        sales = [p["salesCount"] for p in products]
        assert sales == sorted(sales, reverse=True)
    assert data["recommendedProducts"]["pageInfo"]["hasNextPage"] is True


async def test_member_home_shows_the_member_block_and_level_prices(api: Api, alice: str) -> None:
    data = await api.op("Home", {"recommendFirst": 5}, token=alice)
    viewer = data["viewer"]
    member = await Member.get(openid="o_alice")
    level = await MemberLevel.get(id=member.level_id)
    assert viewer["nickname"] == member.nickname
    assert viewer["level"] == {
        "name": level.name,
        "discountPercent": level.discount_percent,
        "freeShipping": level.free_shipping,
    }
    assert viewer["pointsBalance"] == member.points_balance
    lines = await CartItem.filter(member_id=member.id)
    assert viewer["cartItemCount"] == sum(line.quantity for line in lines)
    unused = [c for c in await MemberCoupon.filter(member_id=member.id, status="UNUSED")]
    from datetime import UTC, datetime

    assert viewer["unusedCouponCount"] == sum(1 for c in unused if c.expires_at > datetime.now(UTC))
    assert level.discount_percent > 0
    for edge in data["recommendedProducts"]["edges"]:
        node = edge["node"]
        assert node["memberPrice"]["amount"] == member_price(node["price"]["amount"], level.discount_percent)
        assert node["memberPrice"]["amount"] < node["price"]["amount"]
