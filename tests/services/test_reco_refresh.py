"""The recommendations refresh on the session database, with the CRM simulator over real HTTP.

Rows are dated in a window of 2037 nobody else uses, and the refresh runs with `now` in it, so it
sees only this module's rows. The refresh replaces the three tables for everyone: each test puts
back what was there before it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import bff.worker
from bff.context import Services
from bff.models.cart import CartItem
from bff.models.catalog import Category, Sku
from bff.models.outbox import OutboxMessage
from bff.models.recommendation import MemberRecommendation, PopularProduct, ProductNeighbor
from bff.runtime import build_services
from bff.services.reco_refresh import TOPIC, enqueue_refresh, refresh_recommendations
from bff.settings import load_settings
from bff.worker import HANDLER_MODULES, Worker
from integrations.crm import CrmClient
from integrations.simulators import create_crm_app
from tests.support.reco import crowd, event, product, purchase, reco_tables_kept
from tests.support.servers import serve_asgi

CRM_TOKEN = "test-crm-token"
NOW = datetime(2037, 3, 15, 12, tzinfo=UTC)
SEEN = NOW - timedelta(days=2)  # when the module's behaviour happened


@pytest.fixture(autouse=True)
async def keep_reco_tables(seeded: str) -> AsyncIterator[None]:
    async with reco_tables_kept():
        yield


@pytest.fixture(scope="module")
async def crm_url() -> AsyncIterator[str]:
    async with serve_asgi(create_crm_app(CRM_TOKEN)) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def crm(http: httpx.AsyncClient, crm_url: str) -> CrmClient:
    return CrmClient(http, crm_url, CRM_TOKEN, timeout=2.0)


def new_member() -> int:
    # Members exist here only as ids on events and orders; these ids are far above seeded ones.
    return 1_500_000_000 + uuid.uuid4().int % 500_000_000


async def category() -> Category:
    """A fresh top-level category (its code is what the CRM prefers) with one subcategory."""
    tag = uuid.uuid4().hex[:10]
    top = await Category.create(code=f"reco-{tag}", name=f"推荐 {tag}")
    return await Category.create(code=f"reco-{tag}-leaf", name=f"推荐子类 {tag}", parent_id=top.id)


async def picks(member: int) -> list[tuple[int, str]]:
    rows = await MemberRecommendation.filter(member_id=member).order_by("rank")
    return [(r.product_id, r.reason) for r in rows]


async def neighbours(product_id: int) -> list[int]:
    return [r.neighbor_id for r in await ProductNeighbor.filter(product_id=product_id).order_by("rank")]


async def table_rows() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "neighbours": sorted(
            await ProductNeighbor.all().values_list("product_id", "neighbor_id", "rank", "score")
        ),
        "picks": sorted(
            await MemberRecommendation.all().values_list("member_id", "product_id", "rank", "score", "reason")
        ),
        "popular": sorted(await PopularProduct.all().values_list("product_id", "rank", "score")),
    }


async def test_refresh_builds_neighbours_picks_and_popularity_from_events_and_orders() -> None:
    leaf = await category()
    a, b, c, d = [await product(leaf) for _ in range(4)]
    gone = await product(leaf, in_stock=False)
    await crowd(3, SEEN, a, b, gone)
    await crowd(2, SEEN, a, c)
    member = new_member()
    await event(a, SEEN, member=member, kind="product_click")
    await purchase(member, d, NOW - timedelta(days=5))
    await purchase(member, c, NOW - timedelta(days=200))  # outside the 90 days: ignored

    summary = await refresh_recommendations(now=NOW)

    assert not summary.crm_used and summary.popular > 0
    # The out-of-stock one is nobody's neighbour; d is a's through the member, who viewed a and bought d.
    assert await neighbours(a) == [b, c, d]
    assert await neighbours(gone) == [b, a]  # b was only ever seen with it
    mine = await picks(member)
    assert (b, "co_occurrence") in mine[:2]  # a, which they viewed, may lead
    assert d not in [pid for pid, _ in mine] and gone not in [pid for pid, _ in mine]
    popular = await PopularProduct.all().order_by("rank").values_list("product_id", "rank")
    assert [pid for pid, _ in popular[:4]] == [a, d, b, c]  # 6 views, a purchase (×5), 3 views, 2 views
    assert [rank for _, rank in popular] == list(range(1, len(popular) + 1))


async def test_cart_lines_count_as_carts() -> None:
    leaf = await category()
    a, b = await product(leaf), await product(leaf)
    await crowd(3, SEEN, a, b)
    sku = await Sku.create(code=f"R-{uuid.uuid4().hex[:10]}", product_id=b, price_fen=100, stock=5)
    member = new_member()
    line = await CartItem.create(member_id=member, sku_id=sku.id, quantity=1)
    await CartItem.filter(id=line.id).update(updated_at=NOW - timedelta(days=1))

    await refresh_recommendations(now=NOW)

    assert (await picks(member))[0] == (a, "co_occurrence")


async def test_refresh_is_idempotent() -> None:
    leaf = await category()
    a, b, c = [await product(leaf) for _ in range(3)]
    await crowd(2, SEEN, a, b, c)
    member = new_member()
    await event(b, SEEN, member=member)

    await refresh_recommendations(now=NOW)
    first = await table_rows()
    await refresh_recommendations(now=NOW)
    assert await table_rows() == first
    assert first["picks"] and first["neighbours"]


async def test_crm_preferred_categories_are_used_and_a_down_crm_is_skipped(
    crm: CrmClient, http: httpx.AsyncClient, crm_url: str
) -> None:
    liked, other = await category(), await category()
    liked_top = await Category.get(id=liked.parent_id)
    favourite = await product(liked, sales=5)
    browsed = await product(other)
    member = new_member()
    await event(browsed, SEEN, member=member)
    seeded = {"members": [{"member_ref": f"m_{member}", "preferred_category_codes": [liked_top.code]}]}
    (await http.post(f"{crm_url}/_sim/members", json=seeded)).raise_for_status()

    summary = await refresh_recommendations(crm, now=NOW)

    assert summary.crm_used
    assert (favourite, "crm_preference") in await picks(member)
    state = (await http.get(f"{crm_url}/_sim/state")).json()
    assert any(f"m_{member}" in batch for batch in state["batch_gets"])

    down = CrmClient(http, "http://127.0.0.1:9", CRM_TOKEN, timeout=0.5)
    summary = await refresh_recommendations(down, now=NOW)
    assert not summary.crm_used
    assert all(reason != "crm_preference" for _, reason in await picks(member))


@pytest.fixture
async def services(database_url: str, crm_url: str) -> AsyncIterator[Services]:
    settings = replace(
        load_settings(),
        database_url=database_url,
        redis_url=None,
        crm_base_url=crm_url,
        crm_api_token=CRM_TOKEN,
        reco_refresh_minutes=60,
        wechat_api_base_url="http://127.0.0.1:9",  # never called here
    )
    async with AsyncExitStack() as stack:
        yield await build_services(settings, stack)


async def test_the_worker_refreshes_once_per_period(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "bff.services.reco_refresh" in HANDLER_MODULES
    leaf = await category()
    a, b = await product(leaf), await product(leaf)
    await crowd(2, SEEN, a, b)
    member = new_member()
    await event(a, SEEN, member=member)

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    # Only this module's job: the other sweeps would act on other tests' orders at a 2037 clock.
    for name in ("enqueue_overdue_closes", "apply_pending", "enqueue_daily_scoring"):
        monkeypatch.setattr(bff.worker, name, nothing, raising=False)
    worker = Worker(services, topics={TOPIC}, worker_id="reco-test")
    await worker.sweep(NOW)
    await worker.sweep(NOW + timedelta(minutes=1))  # same hour: no second message
    await enqueue_refresh(60, NOW + timedelta(hours=1))
    period = int(NOW.timestamp()) // 3600
    keys = [f"{TOPIC}:{period}", f"{TOPIC}:{period + 1}"]
    assert await OutboxMessage.filter(dedupe_key__in=keys).count() == 2

    while await worker.run_once(now=NOW + timedelta(hours=2)):
        pass

    assert [m.status for m in await OutboxMessage.filter(dedupe_key__in=keys)] == ["DONE", "DONE"]
    assert (await picks(member))[0] == (b, "co_occurrence")
