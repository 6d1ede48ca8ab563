"""Hand-written loaders return what the ORM queries they replaced returned, on either backend."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.models import Model
from tortoise.transactions import in_transaction

from bff.models.cart import CartItem
from bff.models.catalog import Review, Sku
from bff.models.marketing import (
    BargainCampaign,
    CouponTemplate,
    FlashSale,
    FlashSaleItem,
    GroupBuyCampaign,
    GroupBuyTeam,
    PresaleCampaign,
)
from loaders.cart import load_cart_items_by_member
from loaders.catalog import load_review_summaries, load_skus_by_id
from loaders.marketing import load_campaigns_by_product, load_claimable_templates, load_open_teams_by_campaign
from tests.support.sql_counter import count_sql


@pytest.fixture(autouse=True)
def _db(seeded: str) -> None:
    """Every test here reads the session database."""


class _Rollback(Exception):
    """Raised to undo a test's rows."""


@asynccontextmanager
async def _rolled_back() -> AsyncIterator[None]:
    # The session database is shared: a running flash sale or a claimable coupon left behind
    # would show on other tests' screens. Loaders read through the transaction's connection.
    with contextlib.suppress(_Rollback):
        async with in_transaction():
            yield
            raise _Rollback


def _fresh_id() -> int:
    # Campaign rows name products by id only (no foreign key): ids far above the seed's are unused.
    return random.randint(500_000_000, 900_000_000)


def _fields(model: Model) -> tuple[Any, ...]:
    return (type(model), *(getattr(model, f) for f in sorted(model._meta.db_fields)))


async def test_one_statement_finds_every_running_kind_in_order() -> None:
    async with _rolled_back():
        now = datetime.now(UTC)
        product, other, idle = _fresh_id(), _fresh_id(), _fresh_id()
        running = {"starts_at": now - timedelta(hours=1), "ends_at": now + timedelta(hours=1)}
        sale = await FlashSale.create(title="h6 sale", **running)
        ended = await FlashSale.create(
            title="h6 ended", starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1)
        )
        flash = await FlashSaleItem.create(
            flash_sale=sale, sku_id=1, product_id=product, flash_price_fen=990, stock_total=5, sold=2
        )
        await FlashSaleItem.create(
            flash_sale=ended, sku_id=1, product_id=product, flash_price_fen=1, stock_total=1
        )
        group = await GroupBuyCampaign.create(
            title="h6 group", product_id=product, sku_id=1, group_price_fen=1990, group_size=3, **running
        )
        await GroupBuyCampaign.create(
            title="h6 later",
            product_id=product,
            sku_id=1,
            group_price_fen=1,
            group_size=2,
            starts_at=now + timedelta(days=1),
            ends_at=now + timedelta(days=2),
        )
        presale = await PresaleCampaign.create(
            title="h6 presale",
            product_id=product,
            sku_id=1,
            presale_price_fen=5000,
            deposit_fen=500,
            deposit_deduction_fen=1000,
            deposit_starts_at=now - timedelta(days=1),
            deposit_ends_at=now - timedelta(hours=1),
            balance_starts_at=now - timedelta(minutes=30),
            balance_ends_at=now + timedelta(days=1),
        )
        bargain = await BargainCampaign.create(
            title="h6 bargain",
            product_id=other,
            sku_id=2,
            start_price_fen=3000,
            floor_price_fen=100,
            helpers_needed=5,
            **running,
        )

        with count_sql() as statements:
            found = await load_campaigns_by_product([product, idle, other])
        assert statements.count == 1

        expected = [
            [
                await FlashSaleItem.get(id=flash.id),
                await GroupBuyCampaign.get(id=group.id),
                await PresaleCampaign.get(id=presale.id),
            ],
            [],
            [await BargainCampaign.get(id=bargain.id)],
        ]
        assert [[_fields(c) for c in cs] for cs in found] == [[_fields(c) for c in cs] for cs in expected]
        # Datetimes come back timezone-aware on both backends, as the ORM builds them.
        assert found[2][0].ends_at.tzinfo is not None and found[0][1].starts_at.tzinfo is not None


async def test_open_teams_are_the_closest_to_complete_first() -> None:
    async with _rolled_back():
        now = datetime.now(UTC)
        campaign = await GroupBuyCampaign.create(
            title="h6 teams",
            product_id=_fresh_id(),
            sku_id=1,
            group_price_fen=100,
            group_size=5,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=1),
        )
        soon = now + timedelta(minutes=10)
        late = now + timedelta(minutes=50)
        two_late = await GroupBuyTeam.create(campaign=campaign, leader_id=1, member_count=2, expires_at=late)
        two_soon = await GroupBuyTeam.create(campaign=campaign, leader_id=1, member_count=2, expires_at=soon)
        four = await GroupBuyTeam.create(campaign=campaign, leader_id=1, member_count=4, expires_at=late)
        await GroupBuyTeam.create(
            campaign=campaign, leader_id=1, member_count=4, expires_at=now - timedelta(minutes=1)
        )
        await GroupBuyTeam.create(
            campaign=campaign, leader_id=1, member_count=4, expires_at=late, status="COMPLETED"
        )

        (top, everything) = await load_open_teams_by_campaign([(campaign.id, 2), (campaign.id, 10)])

        assert [t.id for t in top] == [four.id, two_soon.id]
        assert [t.id for t in everything] == [four.id, two_soon.id, two_late.id]
        assert everything[0].expires_at == late and everything[0].campaign_id == campaign.id


async def test_claimable_templates_match_the_orm_filter() -> None:
    async with _rolled_back():
        now = datetime.now(UTC)
        name = f"h6-{_fresh_id()}"
        kept = [
            await CouponTemplate.create(name=name, kind="FIXED", amount_fen=100),
            await CouponTemplate.create(
                name=name,
                kind="FIXED",
                amount_fen=100,
                total_quantity=3,
                claimed_count=2,
                claim_starts_at=now - timedelta(days=1),
                claim_ends_at=now + timedelta(days=1),
            ),
        ]
        for dropped in (
            {"claimable": False},
            {"total_quantity": 2, "claimed_count": 2},
            {"claim_starts_at": now + timedelta(days=1)},
            {"claim_ends_at": now - timedelta(seconds=1)},
        ):
            await CouponTemplate.create(name=name, kind="FIXED", amount_fen=100, **dropped)

        (templates,) = await load_claimable_templates([0])

        mine = [t for t in templates if t.name == name]
        assert [_fields(t) for t in mine] == [_fields(await CouponTemplate.get(id=t.id)) for t in kept]


async def test_review_summaries_count_and_average() -> None:
    async with _rolled_back():
        sku = await Sku.filter().order_by("id").first()
        assert sku is not None
        reviews = await Review.filter(product_id=sku.product_id)
        summary, none = await load_review_summaries([sku.product_id, _fresh_id()])
        assert summary.count == len(reviews)
        if reviews:
            assert summary.average_rating == round(sum(r.rating for r in reviews) / len(reviews), 2)
        assert none.count == 0 and none.average_rating is None


async def test_cart_lines_and_skus_read_back_as_stored() -> None:
    async with _rolled_back():
        member_id = _fresh_id()
        skus = await Sku.filter().order_by("id").limit(2)
        first = await CartItem.create(member_id=member_id, sku_id=skus[0].id, quantity=2, selected=False)
        second = await CartItem.create(member_id=member_id, sku_id=skus[1].id, quantity=1)

        (lines, empty) = await load_cart_items_by_member([member_id, _fresh_id()])
        rows = await load_skus_by_id([skus[0].id, -1])

        assert [_fields(line) for line in lines] == [
            _fields(await CartItem.get(id=second.id)),
            _fields(await CartItem.get(id=first.id)),
        ]
        assert lines[1].selected is False and empty == []
        assert rows[0] is not None and rows[1] is None
        assert rows[0].spec_values == skus[0].spec_values
        assert rows[0].stock == max(0, skus[0].stock - skus[0].reserved)
