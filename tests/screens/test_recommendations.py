"""Personal recommendations over HTTP: home's recommendedProducts and the product page's relatedProducts.

Each test builds its own category of products and behaviour (anonymous crowds viewing products
together), runs the refresh as the worker would, and reads the screens. The refresh replaces the
shared tables, so each test puts back what was there before it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bff.cache import Cache
from bff.documents import operations
from bff.ids import encode_id
from bff.models.catalog import Category, Product
from bff.models.member import Member
from bff.models.recommendation import MemberRecommendation, PopularProduct
from bff.services.reco_refresh import refresh_recommendations
from tests.support.api import Api
from tests.support.reco import TABLES, crowd, event, product, purchase, reco_tables_kept
from tests.support.sql_counter import count_sql

PAGE = """
query Page($first: Int, $after: String) {
  recommendedProducts(first: $first, after: $after) {
    edges { cursor node { id inStock } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""

PAGE_ONLY = """
query PageOnly($first: Int, $after: String) {
  recommendedProducts(first: $first, after: $after) { edges { cursor node { id } } }
}
"""

LIST_WITH_RELATED = """
query ListWithRelated($first: Int) {
  products(first: $first, sort: SALES) { edges { node { id relatedProducts(first: 3) { id } } } }
}
"""


@pytest.fixture(autouse=True)
async def keep_reco_tables(seeded: str) -> AsyncIterator[None]:
    async with reco_tables_kept():
        yield


@dataclass
class Shop:
    """A category where `x` is often viewed with n1 (6 visitors), n2 and j (4 each) and `gone` (sold out)."""

    x: int
    n1: int
    n2: int
    j: int
    gone: int
    extras: list[int]  # best sellers of the category nobody viewed, by sales


def gid(pk: int) -> str:
    return encode_id("Product", pk)


def recently() -> datetime:
    return datetime.now(UTC) - timedelta(hours=3)


async def build_shop() -> Shop:
    tag = uuid.uuid4().hex[:10]
    top = await Category.create(code=f"reco-{tag}", name=f"推荐 {tag}")
    leaf = await Category.create(code=f"reco-{tag}-leaf", name=f"推荐子类 {tag}", parent_id=top.id)
    x, n1, n2, j = [await product(leaf) for _ in range(4)]
    gone = await product(leaf, in_stock=False)
    extras = [await product(leaf, sales=s) for s in (30, 20, 10)]
    await crowd(4, recently(), x, n1, n2, j, gone)
    await crowd(2, recently(), x, n1)
    return Shop(x, n1, n2, j, gone, extras)


async def member_of(api: Api) -> tuple[str, int]:
    name = f"r{uuid.uuid4().hex[:12]}"
    token = await api.login(name)
    member = await Member.get(openid=f"o_{name}")
    return token, member.id


def home_ids(data: dict[str, Any]) -> list[str]:
    return [e["node"]["id"] for e in data["recommendedProducts"]["edges"]]


async def test_a_member_sees_the_neighbours_of_what_they_viewed_minus_sold_out_and_just_bought(
    api: Api,
) -> None:
    shop = await build_shop()
    token, member = await member_of(api)
    await event(shop.x, recently(), member=member)
    await purchase(member, shop.j, datetime.now(UTC) - timedelta(days=2))
    await refresh_recommendations()

    ids = home_ids(await api.op("Home", {"recommendFirst": 20}, token=token))
    # x itself may lead: it is a neighbour of j, which they bought.
    assert {gid(shop.n1), gid(shop.n2)} <= set(ids[:3])
    assert gid(shop.gone) not in ids and gid(shop.j) not in ids

    # Served live: sold out or bought since the refresh, gone at once.
    await Product.filter(id=shop.n1).update(in_stock=False)
    await purchase(member, shop.n2, datetime.now(UTC))
    ids = home_ids(await api.op("Home", {"recommendFirst": 100}, token=token))
    assert gid(shop.n1) not in ids and gid(shop.n2) not in ids
    assert len(ids) == len(set(ids)) == 100


async def test_anonymous_visitors_get_the_popular_list(api: Api) -> None:
    await build_shop()
    await refresh_recommendations()
    popular = [row.product_id for row in await PopularProduct.all().order_by("rank").limit(150)]
    live = {p.id for p in await Product.filter(id__in=popular, on_shelf=True, in_stock=True)}
    expected = [gid(pid) for pid in popular if pid in live][:20]
    data = await api.op("Home")
    assert home_ids(data) == expected
    assert data["recommendedProducts"]["pageInfo"]["hasNextPage"] is True


async def test_before_any_refresh_best_sellers_stand_in(api: Api, alice: str) -> None:
    for model in TABLES:
        await model.all().delete()
    best = await Product.filter(on_shelf=True, in_stock=True).order_by("-sales_count", "-id").limit(20)
    data = await api.op("Home", {"recommendFirst": 20})
    assert home_ids(data) == [gid(p.id) for p in best]
    assert len(home_ids(await api.op("Home", {"recommendFirst": 20}, token=alice))) == 20


@pytest.fixture
async def top_sellers() -> AsyncIterator[list[int]]:
    """Seven products above every other's sales, five of them tied; taken off the shelf afterwards."""
    tag = uuid.uuid4().hex[:10]
    leaf = await Category.create(code=f"reco-top-{tag}", name=f"热销 {tag}")
    top = 10**9
    ids = [await product(leaf, sales=top + 1), await product(leaf, sales=top + 1)]
    ids += [await product(leaf, sales=top) for _ in range(5)]
    yield ids
    await Product.filter(id__in=ids).update(on_shelf=False)


async def test_best_sellers_page_by_sales_then_id_across_ties(
    api: Api, cache: Cache, top_sellers: list[int]
) -> None:
    for model in TABLES:
        await model.all().delete()
    token, member = await member_of(api)
    bought = top_sellers[4]
    await purchase(member, bought, datetime.now(UTC))
    # By sales, then the higher id first: the (on_shelf, sales_count, id) index read backwards.
    expected = sorted(top_sellers[:2], reverse=True) + sorted(top_sellers[2:], reverse=True)

    for viewer, want in ((None, expected), (token, [p for p in expected if p != bought])):
        seen: list[str] = []
        after: str | None = None
        while len(seen) < len(want):
            response = await api.post(PAGE, {"first": 3, "after": after}, token=viewer)
            page = response.json()["data"]["recommendedProducts"]
            seen += [e["node"]["id"] for e in page["edges"]]
            assert page["pageInfo"]["hasNextPage"] is True
            after = page["pageInfo"]["endCursor"]
        assert seen[: len(want)] == [gid(p) for p in want]

    # A later page of best sellers is one statement whatever its size.
    first_page = (await api.post(PAGE, {"first": 1}, token=token)).json()["data"]["recommendedProducts"]
    after = first_page["pageInfo"]["endCursor"]
    small = await _statements(api, cache, PAGE_ONLY, {"first": 3, "after": after}, token)
    large = await _statements(api, cache, PAGE_ONLY, {"first": 60, "after": after}, token)
    assert small == large


async def test_best_sellers_count_every_available_product(api: Api) -> None:
    for model in TABLES:
        await model.all().delete()
    response = await api.post(PAGE, {"first": 5})
    available = await Product.filter(on_shelf=True, in_stock=True).count()
    assert response.json()["data"]["recommendedProducts"]["totalCount"] == available


async def test_paging_walks_the_whole_list_once(api: Api) -> None:
    shop = await build_shop()
    token, member = await member_of(api)
    await event(shop.x, recently(), member=member)
    await refresh_recommendations()

    seen: list[str] = []
    after: str | None = None
    total = None
    for _ in range(100):
        response = await api.post(PAGE, {"first": 40, "after": after}, token=token)
        page = response.json()["data"]["recommendedProducts"]
        seen += [e["node"]["id"] for e in page["edges"]]
        assert all(e["node"]["inStock"] for e in page["edges"])
        total = page["totalCount"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == total
    # Their picks first, then the popular list without them.
    picks = [row.product_id for row in await MemberRecommendation.filter(member_id=member).order_by("rank")]
    assert seen[0] == gid(shop.n1)
    assert seen[: len(picks)] == [gid(p) for p in picks]

    bad = await api.post(PAGE, {"first": 5, "after": encode_id("Product", 1)}, token=token)
    assert bad.json()["errors"]


async def test_related_products_are_neighbours_then_best_sellers_of_the_category(api: Api) -> None:
    shop = await build_shop()
    token, member = await member_of(api)
    await purchase(member, shop.j, datetime.now(UTC) - timedelta(days=1))
    await refresh_recommendations()

    related = (await api.op("ProductDetail", {"id": gid(shop.x)}))["product"]["relatedProducts"]
    assert [r["id"] for r in related] == [gid(p) for p in (shop.n1, shop.n2, shop.j, *shop.extras)]
    mine = (await api.op("ProductDetail", {"id": gid(shop.x)}, token=token))["product"]["relatedProducts"]
    assert [r["id"] for r in mine] == [gid(p) for p in (shop.n1, shop.n2, *shop.extras)]
    # No neighbours at all: the category's best sellers.
    lonely = (await api.op("ProductDetail", {"id": gid(shop.extras[2])}))["product"]["relatedProducts"]
    assert [r["id"] for r in lonely][:2] == [gid(shop.extras[0]), gid(shop.extras[1])]


async def _statements(
    api: Api, cache: Cache, query: str, variables: dict[str, Any], token: str | None
) -> int:
    await cache.clear()
    with count_sql() as counter:
        response = await api.post(query, variables, token=token)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return counter.count


async def test_screens_cost_the_same_whatever_the_page_size(api: Api, cache: Cache) -> None:
    shop = await build_shop()
    token, member = await member_of(api)
    await event(shop.x, recently(), member=member)
    await refresh_recommendations()
    home = operations()["Home"]
    for viewer in (None, token):
        small = await _statements(api, cache, home, {"recommendFirst": 20}, viewer)
        large = await _statements(api, cache, home, {"recommendFirst": 100}, viewer)
        assert small == large

    detail = operations()["ProductDetail"]
    counts = {
        await _statements(api, cache, detail, {"id": gid(pid)}, token) for pid in (shop.x, shop.extras[2])
    }
    assert len(counts) == 1  # with neighbours or without

    few = await _statements(api, cache, LIST_WITH_RELATED, {"first": 2}, token)
    many = await _statements(api, cache, LIST_WITH_RELATED, {"first": 30}, token)
    assert few == many
