"""Activity pages, lottery and the operators' campaign console over HTTP, with SQL counts.

Until schema/build.py merges these types, the app here is built with them merged in (see
`our_types_in_schema`); once merged, the app is exactly the shipped one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from graphql import parse, validate
from starlette.applications import Starlette
from strawberry.tools import merge_types

from bff.app import create_app
from bff.auth import Principal, Role, issue_token
from bff.ids import encode_id
from bff.models.catalog import Product
from bff.models.marketing import ActivityPage, CouponTemplate
from bff.settings import load_settings
from resolvers.activity import ActivityQuery
from resolvers.admin import AdminMutation, AdminQuery
from resolvers.lottery import LotteryMutation, LotteryQuery
from resolvers.presale import PresaleMutation, PresaleQuery
from schema import build
from tests.support.api import Api
from tests.support.factories import make_product
from tests.support.sql_counter import count_sql

DOCUMENT = (
    Path(__file__).resolve().parents[2]
    / "bff"
    / "documents"
    / "screens_extra"
    / "presale_lottery_activity.graphql"
).read_text(encoding="utf-8")
NOW = datetime.now(UTC)


@contextmanager
def our_types_in_schema() -> Iterator[None]:
    """Build apps whose schema includes presale, lottery, activity and admin (a no-op once merged)."""
    if any(f.name == "activity_page" for f in build.Query.__strawberry_definition__.fields):
        yield
        return
    query = merge_types("Query", (build.Query, PresaleQuery, LotteryQuery, ActivityQuery, AdminQuery))
    mutation = merge_types("Mutation", (build.Mutation, PresaleMutation, LotteryMutation, AdminMutation))
    with patch.object(build, "Query", query), patch.object(build, "Mutation", mutation):
        yield


class Extra(Api):
    """Sends this module's operations by name, from the screens_extra document."""

    async def run(self, name: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        response = await self.post(DOCUMENT, variables, token=token, operation_name=name)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def body(self, name: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        return (await self.post(DOCUMENT, variables, token=token, operation_name=name)).json()


@pytest.fixture(scope="module")
async def extra_app(seeded: str, wechat_url: str) -> AsyncIterator[Starlette]:
    settings = replace(
        load_settings(),
        database_url=seeded,
        redis_url=os.environ.get("REDIS_URL") or None,
        cache_prefix=f"bff-test-activity-{uuid.uuid4().hex[:8]}:",
        wechat_api_base_url=wechat_url,
    )
    with our_types_in_schema():
        application = create_app(settings, manage_database=False)
    async with application.router.lifespan_context(application):
        yield application
        await application.state.services.cache.clear()


@pytest.fixture(scope="module")
async def extra(extra_app: Starlette) -> AsyncIterator[Extra]:
    transport = httpx.ASGITransport(app=extra_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bff.test") as http:
        yield Extra(http)


@pytest.fixture(scope="module")
def operator(extra_app: Starlette) -> str:
    settings = extra_app.state.services.settings
    return issue_token(Principal(role=Role.OPERATOR, name="ops-activity"), settings.jwt_secret, 3600).token


@pytest.fixture
async def member(extra: Extra) -> str:
    return await extra.login(f"a{uuid.uuid4().hex[:12]}")


def slug() -> str:
    return f"page-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def templates(seeded: str) -> tuple[CouponTemplate, CouponTemplate]:
    """A claimable coupon template and one that is not, shared by this module's pages."""
    claimable = await CouponTemplate.create(
        name=f"活动券 {uuid.uuid4().hex[:4]}", kind="FIXED", amount_fen=300, valid_days=7
    )
    hidden = await CouponTemplate.create(
        name="隐藏券", kind="FIXED", amount_fen=300, claimable=False, valid_days=7
    )
    return claimable, hidden


async def _page_inputs(
    products: int, grids: int, templates: tuple[CouponTemplate, CouponTemplate]
) -> tuple[list[dict[str, Any]], list[int], int]:
    """Blocks of every type: `grids` product grids of `products` products each, two coupon blocks."""
    made = [await make_product([(9_900 + i, 10)]) for i in range(products)]
    ids = [encode_id("Product", p.id) for p, _ in made]
    claimable, hidden = templates
    coupons = [encode_id("CouponTemplate", t.id) for t in (claimable, hidden)]
    blocks: list[dict[str, Any]] = [
        {"type": "BANNER", "imageUrl": "https://img.example.com/1111.jpg", "link": "/pages/home/index"},
        {"type": "COUNTDOWN", "title": "距结束", "endsAt": (NOW + timedelta(days=1)).isoformat()},
        *({"type": "PRODUCT_GRID", "title": f"爆款 {g}", "productIds": ids} for g in range(grids)),
        {"type": "COUPONS", "title": "先领券", "couponTemplateIds": coupons},
        {"type": "COUPONS", "couponTemplateIds": coupons[:1]},
        {"type": "RICH_TEXT", "html": '<p class="rule">活动规则：<b>每人限购 1 件</b></p>'},
    ]
    return blocks, [p.id for p, _ in made], claimable.id


async def _saved_page(extra: Extra, operator: str, blocks: list[dict[str, Any]], **extra_fields: Any) -> str:
    page_slug = slug()
    saved = (
        await extra.run(
            "SaveActivityPage",
            {"input": {"slug": page_slug, "title": "双11主会场", "blocks": blocks, **extra_fields}},
            operator,
        )
    )["saveActivityPage"]
    assert saved["userErrors"] == [], saved
    published = await extra.run(
        "PublishActivityPage", {"id": saved["page"]["id"], "published": True}, operator
    )
    assert published["publishActivityPage"]["page"]["published"] is True
    return page_slug


async def test_an_operator_assembles_a_page_that_shoppers_see_once_published(
    extra: Extra, operator: str, member: str, templates: tuple[CouponTemplate, CouponTemplate]
) -> None:
    blocks, product_ids, claimable_id = await _page_inputs(3, 1, templates)
    await Product.filter(id=product_ids[2]).update(on_shelf=False)
    page_slug = slug()
    saved = (
        await extra.run(
            "SaveActivityPage",
            {"input": {"slug": page_slug, "title": "双11主会场", "blocks": blocks}},
            operator,
        )
    )["saveActivityPage"]
    assert saved["userErrors"] == [] and saved["page"]["published"] is False
    assert [b["__typename"] for b in saved["page"]["blocks"]] == [
        "BannerBlock",
        "CountdownBlock",
        "ProductGridBlock",
        "CouponBlock",
        "CouponBlock",
        "RichTextBlock",
    ]
    assert (await extra.run("ActivityPage", {"slug": page_slug}))["activityPage"] is None
    preview = (await extra.run("ActivityPage", {"slug": page_slug}, operator))["activityPage"]
    assert preview["title"] == "双11主会场"

    await extra.run("PublishActivityPage", {"id": saved["page"]["id"], "published": True}, operator)
    page = (await extra.run("ActivityPage", {"slug": page_slug}, member))["activityPage"]
    banner, countdown, grid, coupons, more_coupons, text = page["blocks"]
    assert banner == {
        "__typename": "BannerBlock",
        "imageUrl": blocks[0]["imageUrl"],
        "link": "/pages/home/index",
    }
    assert datetime.fromisoformat(countdown["endsAt"]) == datetime.fromisoformat(blocks[1]["endsAt"])
    assert [p["id"] for p in grid["products"]] == [encode_id("Product", i) for i in product_ids[:2]]
    assert grid["products"][0]["memberPrice"] is not None  # a signed-in shopper sees member prices
    assert [c["id"] for c in coupons["coupons"]] == [encode_id("CouponTemplate", claimable_id)]
    assert more_coupons["title"] == "" and len(more_coupons["coupons"]) == 1
    assert text["html"].startswith('<p class="rule">')

    await extra.run("PublishActivityPage", {"id": saved["page"]["id"], "published": False}, operator)
    assert (await extra.run("ActivityPage", {"slug": page_slug}))["activityPage"] is None


async def test_a_page_shows_only_inside_its_window(extra: Extra, operator: str) -> None:
    banner = [{"type": "BANNER", "imageUrl": "https://img.example.com/a.jpg"}]
    later = await _saved_page(extra, operator, banner, startsAt=(NOW + timedelta(days=1)).isoformat())
    over = await _saved_page(extra, operator, banner, endsAt=(NOW - timedelta(minutes=1)).isoformat())
    live = await _saved_page(extra, operator, banner, endsAt=(NOW + timedelta(days=1)).isoformat())
    assert (await extra.run("ActivityPage", {"slug": later}))["activityPage"] is None
    assert (await extra.run("ActivityPage", {"slug": over}))["activityPage"] is None
    assert (await extra.run("ActivityPage", {"slug": live}))["activityPage"]["slug"] == live


@pytest.mark.parametrize(
    ("block", "field", "words"),
    [
        ({"type": "BANNER", "imageUrl": "http://img.example.com/a.jpg"}, "blocks[1].imageUrl", "https"),
        ({"type": "PRODUCT_GRID", "productIds": []}, "blocks[1].productIds", "1 到 50"),
        ({"type": "PRODUCT_GRID", "productIds": [encode_id("Product", 0)]}, "blocks[1].productIds", "不存在"),
        (
            {"type": "COUPONS", "couponTemplateIds": [encode_id("Sku", 1)]},
            "blocks[1].couponTemplateIds",
            "不存在",
        ),
        ({"type": "COUNTDOWN"}, "blocks[1].endsAt", "结束时间"),
        ({"type": "RICH_TEXT", "html": "<p>hi</p><script>alert(1)</script>"}, "blocks[1].html", "script"),
        ({"type": "RICH_TEXT", "html": '<a href="javascript:alert(1)">x</a>'}, "blocks[1].html", "https"),
        (
            {"type": "RICH_TEXT", "html": '<img src="https://a.example/x.png" onerror="x()">'},
            "blocks[1].html",
            "onerror",
        ),
    ],
)
async def test_each_block_is_validated_and_the_error_names_it(
    extra: Extra, operator: str, block: dict[str, Any], field: str, words: str
) -> None:
    blocks = [{"type": "RICH_TEXT", "html": "<p>ok</p>"}, block]
    result = (
        await extra.run(
            "SaveActivityPage", {"input": {"slug": slug(), "title": "页", "blocks": blocks}}, operator
        )
    )["saveActivityPage"]
    assert result["page"] is None
    (error,) = result["userErrors"]
    assert error["field"] == field and words in error["message"], error
    assert error["code"] in ("INVALID_INPUT", "NOT_FOUND")


async def test_slugs_are_checked_and_unique(extra: Extra, operator: str) -> None:
    taken = await _saved_page(extra, operator, [{"type": "RICH_TEXT", "html": "<p>1</p>"}])
    for bad in (taken, "Not A Slug!", "ab"):
        result = (
            await extra.run(
                "SaveActivityPage", {"input": {"slug": bad, "title": "页", "blocks": []}}, operator
            )
        )["saveActivityPage"]
        assert result["userErrors"][0]["field"] == "slug", bad
    assert await ActivityPage.filter(slug=taken).count() == 1


async def test_only_operators_edit_campaigns_and_pages(extra: Extra, member: str) -> None:
    variables = {"input": {"slug": slug(), "title": "页", "blocks": []}}
    anonymous = await extra.body("SaveActivityPage", variables)
    assert anonymous["data"] is None and anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    shopper = await extra.body("SaveActivityPage", variables, member)
    assert shopper["data"] is None and shopper["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    audit = await extra.body("LotteryDraws", {"poolId": encode_id("LotteryPool", 1)}, member)
    assert audit["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_page_costs_the_same_queries_for_one_block_or_many(
    extra: Extra,
    extra_app: Starlette,
    operator: str,
    member: str,
    templates: tuple[CouponTemplate, CouponTemplate],
) -> None:
    small_blocks, _, _ = await _page_inputs(2, 1, templates)
    large_blocks, _, _ = await _page_inputs(30, 8, templates)
    small = await _saved_page(extra, operator, small_blocks)
    large = await _saved_page(extra, operator, large_blocks)
    counts = []
    for page_slug in (small, large):
        await extra_app.state.services.cache.clear()  # a cold cache: count what the database does
        with count_sql() as counter:
            page = (await extra.run("ActivityPage", {"slug": page_slug}, member))["activityPage"]
        assert page is not None
        counts.append(counter.count)
    assert sum(len(b.get("products", [])) for b in page["blocks"]) == 240
    # The page, the viewer and the level table, all products at once, the claimable coupons, and the
    # member's session version when the cache is cold.
    assert counts[0] == counts[1] <= 6, counts


async def test_operators_run_a_lottery_that_members_draw_from(
    extra: Extra, operator: str, member: str
) -> None:
    pool = (
        await extra.run(
            "SaveLotteryPool",
            {
                "input": {
                    "name": "幸运转盘",
                    "pointsCost": 0,
                    "dailyDraws": 2,
                    "startsAt": (NOW - timedelta(minutes=1)).isoformat(),
                    "endsAt": (NOW + timedelta(days=1)).isoformat(),
                }
            },
            operator,
        )
    )["saveLotteryPool"]
    assert pool["userErrors"] == []
    pool_id = pool["pool"]["id"]
    prize = {
        "poolId": pool_id,
        "kind": "PHYSICAL",
        "name": "蓝牙耳机",
        "probabilityPpm": 1_000_000,
        "stock": 1,
    }
    first = (await extra.run("SaveLotteryPrize", {"input": prize}, operator))["saveLotteryPrize"]
    assert first["userErrors"] == [] and first["prize"]["stockLeft"] == 1
    over = (await extra.run("SaveLotteryPrize", {"input": {**prize, "probabilityPpm": 1}}, operator))[
        "saveLotteryPrize"
    ]
    assert over["userErrors"][0]["field"] == "weight"

    won = (await extra.run("DrawLottery", {"poolId": pool_id}, member))["drawLottery"]
    assert (
        won["userErrors"] == [] and won["draw"]["won"] is True and won["draw"]["prize"]["name"] == "蓝牙耳机"
    )
    empty = (await extra.run("DrawLottery", {"poolId": pool_id}, member))["drawLottery"]
    assert empty["draw"]["won"] is False and empty["draw"]["prize"] is None  # the only one is gone
    limited = (await extra.run("DrawLottery", {"poolId": pool_id}, member))["drawLottery"]
    assert limited["draw"] is None and limited["userErrors"][0]["code"] == "LIMIT_REACHED"

    view = (await extra.run("LotteryPool", {"id": pool_id}, member))["lotteryPool"]
    assert view["drawsLeftToday"] == 0 and view["prizes"][0]["stockLeft"] == 0
    assert [d["won"] for d in view["myDraws"]] == [False, True]
    assert (await extra.run("LotteryPool", {"id": pool_id}))["lotteryPool"]["drawsLeftToday"] is None
    anonymous = (await extra.run("DrawLottery", {"poolId": pool_id}))["drawLottery"]
    assert anonymous["userErrors"][0]["code"] == "UNAUTHENTICATED"

    audit = (await extra.run("LotteryDraws", {"poolId": pool_id}, operator))["lotteryDraws"]
    assert audit["totalCount"] == 2
    assert [e["node"]["roll"] for e in audit["edges"]] == [d["roll"] for d in view["myDraws"]]


async def test_operators_edit_campaigns_with_validation(extra: Extra, operator: str) -> None:
    _, (sku,) = await make_product([(19_900, 100)])
    sku_id = encode_id("Sku", sku.id)
    window = {
        "startsAt": (NOW + timedelta(hours=1)).isoformat(),
        "endsAt": (NOW + timedelta(hours=3)).isoformat(),
    }
    sales = []
    for title in ("上午场", "重叠场"):
        made = (await extra.run("SaveFlashSale", {"input": {"title": title, **window}}, operator))[
            "saveFlashSale"
        ]
        assert made["userErrors"] == []
        sales.append(made["flashSale"]["id"])
    item = {"skuId": sku_id, "flashPrice": 9_900, "stockTotal": 50, "perMemberLimit": 2}
    added = (await extra.run("SaveFlashSaleItem", {"input": {"flashSaleId": sales[0], **item}}, operator))[
        "saveFlashSaleItem"
    ]
    assert added["userErrors"] == [] and added["item"]["stockLeft"] == 50
    clash = (await extra.run("SaveFlashSaleItem", {"input": {"flashSaleId": sales[1], **item}}, operator))[
        "saveFlashSaleItem"
    ]
    assert clash["item"] is None and clash["userErrors"][0]["field"] == "skuId"
    dear = (
        await extra.run(
            "SaveFlashSaleItem", {"input": {"flashSaleId": sales[1], **item, "flashPrice": 19_901}}, operator
        )
    )["saveFlashSaleItem"]
    assert dear["userErrors"][0]["field"] == "flashPrice"
    removed = (await extra.run("DeleteFlashSaleItem", {"id": added["item"]["id"]}, operator))[
        "deleteFlashSaleItem"
    ]
    assert removed == {"deletedId": added["item"]["id"], "userErrors": []}

    group = {"title": "拼团", "skuId": sku_id, "groupPrice": 12_900, "groupSize": 1, **window}
    alone = (await extra.run("SaveGroupBuyCampaign", {"input": group}, operator))["saveGroupBuyCampaign"]
    assert alone["userErrors"][0]["field"] == "groupSize"
    team = (await extra.run("SaveGroupBuyCampaign", {"input": {**group, "groupSize": 3}}, operator))[
        "saveGroupBuyCampaign"
    ]
    assert team["campaign"]["groupSize"] == 3

    bargain = {
        "title": "砍价",
        "skuId": sku_id,
        "startPrice": 19_900,
        "floorPrice": 100,
        "helpersNeeded": 5,
        **window,
    }
    cut = (await extra.run("SaveBargainCampaign", {"input": bargain}, operator))["saveBargainCampaign"]
    assert cut["userErrors"] == [] and cut["campaign"]["floorPrice"]["amount"] == 100

    presale = {
        "title": "预售",
        "skuId": sku_id,
        "presalePrice": 15_900,
        "deposit": 5_000,
        "depositDeduction": 10_000,
        "depositStartsAt": NOW.isoformat(),
        "depositEndsAt": (NOW + timedelta(hours=1)).isoformat(),
        "balanceStartsAt": (NOW + timedelta(minutes=30)).isoformat(),
        "balanceEndsAt": (NOW + timedelta(hours=2)).isoformat(),
    }
    early = (await extra.run("SavePresaleCampaign", {"input": presale}, operator))["savePresaleCampaign"]
    assert early["userErrors"][0]["field"] == "balanceStartsAt"
    presale["balanceStartsAt"] = presale["depositEndsAt"]
    made = (await extra.run("SavePresaleCampaign", {"input": presale}, operator))["savePresaleCampaign"]
    assert made["userErrors"] == [] and made["campaign"]["depositDeduction"]["amount"] == 10_000
    cancelled = (await extra.run("CancelPresaleCampaign", {"id": made["campaign"]["id"]}, operator))[
        "cancelPresaleCampaign"
    ]
    assert cancelled["userErrors"] == []
    assert cancelled["campaign"]["balanceStartsAt"] == cancelled["campaign"]["balanceEndsAt"]


def test_every_operation_of_the_document_validates_against_the_schema() -> None:
    with our_types_in_schema():
        schema = build.build_schema()._schema
    assert validate(schema, parse(DOCUMENT)) == []
