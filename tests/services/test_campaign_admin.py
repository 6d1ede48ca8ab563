"""Operator campaign editing: windows, prices within list price, flash-sale overlaps, locks after start."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bff.models.catalog import Sku
from bff.models.marketing import CouponTemplate, FlashSale, GroupBuyCampaign, LotteryPool, PresaleCampaign
from bff.services import campaign_admin as admin
from bff.services import presale
from bff.services.errors import BusinessError
from tests.support.factories import make_product

LIST_PRICE = 19_900
NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _db(seeded: str) -> None:
    """Every test here needs the seeded database."""


async def new_sku() -> Sku:
    _, (sku,) = await make_product([(LIST_PRICE, 100)])
    return sku


def refused(exc: pytest.ExceptionInfo[BusinessError], code: str, field: str | None) -> bool:
    return (exc.value.code, exc.value.field) == (code, field)


async def sale(starts_in: timedelta = HOUR, hours: int = 2) -> FlashSale:
    return await admin.save_flash_sale(
        None, f"秒杀 {uuid.uuid4().hex[:6]}", NOW + starts_in, NOW + starts_in + hours * HOUR
    )


def item(sku: Sku, price: int = 9_900, stock: int = 10, limit: int = 1) -> admin.FlashItemFields:
    return admin.FlashItemFields(
        sku_id=sku.id, flash_price_fen=price, stock_total=stock, per_member_limit=limit
    )


async def test_a_flash_sale_ends_after_it_starts_with_time_zones() -> None:
    with pytest.raises(BusinessError) as backwards:
        await admin.save_flash_sale(None, "秒杀", NOW + 2 * HOUR, NOW + HOUR)
    assert refused(backwards, "INVALID_INPUT", "endsAt")
    with pytest.raises(BusinessError) as past:
        await admin.save_flash_sale(None, "秒杀", NOW - 3 * HOUR, NOW - 2 * HOUR)
    assert refused(past, "INVALID_INPUT", "endsAt")
    with pytest.raises(BusinessError) as naive:
        await admin.save_flash_sale(None, "秒杀", datetime(2030, 1, 1), datetime(2030, 1, 2))
    assert refused(naive, "INVALID_INPUT", "startsAt")
    with pytest.raises(BusinessError) as untitled:
        await admin.save_flash_sale(None, "  ", NOW + HOUR, NOW + 2 * HOUR)
    assert refused(untitled, "INVALID_INPUT", "title")


async def test_flash_prices_are_within_the_list_price() -> None:
    sku, flash = await new_sku(), await sale()
    for price in (0, LIST_PRICE + 1):
        with pytest.raises(BusinessError) as bad:
            await admin.save_flash_sale_item(flash.id, None, item(sku, price=price))
        assert refused(bad, "INVALID_INPUT", "flashPrice")
    with pytest.raises(BusinessError) as limit:
        await admin.save_flash_sale_item(flash.id, None, item(sku, stock=5, limit=6))
    assert refused(limit, "INVALID_INPUT", "perMemberLimit")
    saved = await admin.save_flash_sale_item(flash.id, None, item(sku, price=LIST_PRICE))
    assert (saved.product_id, saved.flash_price_fen) == (sku.product_id, LIST_PRICE)


async def test_one_sku_is_never_in_two_overlapping_flash_sales() -> None:
    sku = await new_sku()
    first = await sale(starts_in=HOUR, hours=2)  # [+1h, +3h)
    await admin.save_flash_sale_item(first.id, None, item(sku))
    with pytest.raises(BusinessError) as twice:
        await admin.save_flash_sale_item(first.id, None, item(sku))
    assert refused(twice, "INVALID_INPUT", "skuId")
    overlapping = await sale(starts_in=2 * HOUR, hours=2)  # [+2h, +4h)
    with pytest.raises(BusinessError) as clash:
        await admin.save_flash_sale_item(overlapping.id, None, item(sku))
    assert refused(clash, "INVALID_INPUT", "skuId") and str(first.id) in clash.value.message
    adjacent = await sale(starts_in=3 * HOUR, hours=1)  # [+3h, +4h): touches, does not overlap
    await admin.save_flash_sale_item(adjacent.id, None, item(sku))
    # Moving a sale onto another one's time is an overlap too.
    with pytest.raises(BusinessError) as moved:
        await admin.save_flash_sale(adjacent.id, adjacent.title, NOW + 2 * HOUR, NOW + 4 * HOUR)
    assert refused(moved, "INVALID_INPUT", "startsAt")


async def test_a_started_flash_sale_keeps_its_items_and_times() -> None:
    sku = await new_sku()
    # Ended rather than running: a running sale without items would be the home screen's flash sale.
    running = await FlashSale.create(title="已开始", starts_at=NOW - 2 * HOUR, ends_at=NOW - HOUR)
    with pytest.raises(BusinessError) as add:
        await admin.save_flash_sale_item(running.id, None, item(sku))
    assert add.value.code == "INVALID_STATE"
    with pytest.raises(BusinessError) as retime:
        await admin.save_flash_sale(running.id, "进行中", running.starts_at, running.ends_at + HOUR)
    assert retime.value.code == "INVALID_STATE"
    renamed = await admin.save_flash_sale(running.id, "改个名字", running.starts_at, running.ends_at)
    assert renamed.title == "改个名字"


async def test_items_of_a_future_sale_can_be_edited_and_removed() -> None:
    sku, flash = await new_sku(), await sale()
    saved = await admin.save_flash_sale_item(flash.id, None, item(sku))
    edited = await admin.save_flash_sale_item(flash.id, saved.id, item(sku, price=8_800, stock=20))
    assert (edited.id, edited.flash_price_fen, edited.stock_total) == (saved.id, 8_800, 20)
    await admin.delete_flash_sale_item(saved.id)
    with pytest.raises(BusinessError) as gone:
        await admin.delete_flash_sale_item(saved.id)
    assert gone.value.code == "NOT_FOUND"


def group(sku: Sku, **changes: object) -> admin.GroupBuyFields:
    values: dict[str, object] = {
        "title": "两人团",
        "sku_id": sku.id,
        "group_price_fen": 12_900,
        "group_size": 2,
        "team_ttl_minutes": 60,
        "starts_at": NOW + HOUR,
        "ends_at": NOW + 5 * HOUR,
        **changes,
    }
    return admin.GroupBuyFields(**values)  # type: ignore[arg-type]


async def test_a_group_buy_needs_two_members_and_a_price_within_list() -> None:
    sku = await new_sku()
    with pytest.raises(BusinessError) as alone:
        await admin.save_group_buy(None, group(sku, group_size=1))
    assert refused(alone, "INVALID_INPUT", "groupSize")
    with pytest.raises(BusinessError) as dear:
        await admin.save_group_buy(None, group(sku, group_price_fen=LIST_PRICE + 1))
    assert refused(dear, "INVALID_INPUT", "groupPrice")
    with pytest.raises(BusinessError) as missing:
        await admin.save_group_buy(None, group(sku, sku_id=0))
    assert refused(missing, "NOT_FOUND", "skuId")
    made = await admin.save_group_buy(None, group(sku))
    assert (made.group_size, made.product_id) == (2, sku.product_id)


async def test_a_started_group_buy_can_only_be_renamed_or_extended() -> None:
    sku = await new_sku()
    # Already over (not running): other tests read the running group-buy's teams.
    made = await GroupBuyCampaign.create(
        title="两人团",
        product_id=sku.product_id,
        sku_id=sku.id,
        group_price_fen=12_900,
        group_size=2,
        team_ttl_minutes=60,
        starts_at=NOW - 3 * HOUR,
        ends_at=NOW - 2 * HOUR,
    )
    started = group(sku, starts_at=made.starts_at, ends_at=made.ends_at)
    with pytest.raises(BusinessError) as repriced:
        await admin.save_group_buy(made.id, replace(started, group_price_fen=9_900))
    assert repriced.value.code == "INVALID_STATE"
    with pytest.raises(BusinessError) as shortened:
        await admin.save_group_buy(made.id, replace(started, ends_at=NOW - 150 * timedelta(minutes=1)))
    assert refused(shortened, "INVALID_STATE", "endsAt")
    extended = await admin.save_group_buy(made.id, replace(started, title="三人团", ends_at=NOW - HOUR))
    assert extended.title == "三人团" and extended.ends_at == NOW - HOUR


def bargain(sku: Sku, **changes: object) -> admin.BargainFields:
    values: dict[str, object] = {
        "title": "砍到底",
        "sku_id": sku.id,
        "start_price_fen": LIST_PRICE,
        "floor_price_fen": 100,
        "helpers_needed": 5,
        "session_ttl_minutes": 60,
        "starts_at": NOW,
        "ends_at": NOW + 5 * HOUR,
        **changes,
    }
    return admin.BargainFields(**values)  # type: ignore[arg-type]


async def test_a_bargain_floor_is_below_its_start_and_reachable_by_its_helpers() -> None:
    sku = await new_sku()
    with pytest.raises(BusinessError) as floor:
        await admin.save_bargain(None, bargain(sku, floor_price_fen=LIST_PRICE))
    assert refused(floor, "INVALID_INPUT", "floorPrice")
    with pytest.raises(BusinessError) as helpers:
        await admin.save_bargain(
            None, bargain(sku, start_price_fen=105, floor_price_fen=100, helpers_needed=6)
        )
    assert refused(helpers, "INVALID_INPUT", "helpersNeeded")
    assert (await admin.save_bargain(None, bargain(sku))).helpers_needed == 5


def presale_fields(sku: Sku, **changes: object) -> admin.PresaleFields:
    values: dict[str, object] = {
        "title": "双11预售",
        "sku_id": sku.id,
        "presale_price_fen": 15_900,
        "deposit_fen": 5_000,
        "deposit_deduction_fen": 10_000,
        "deposit_starts_at": NOW + HOUR,
        "deposit_ends_at": NOW + 2 * HOUR,
        "balance_starts_at": NOW + 2 * HOUR,
        "balance_ends_at": NOW + 3 * HOUR,
        **changes,
    }
    return admin.PresaleFields(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"deposit_ends_at": NOW + HOUR}, "depositEndsAt"),
        ({"balance_starts_at": NOW + HOUR}, "balanceStartsAt"),
        ({"balance_ends_at": NOW + 2 * HOUR}, "balanceEndsAt"),
        ({"presale_price_fen": LIST_PRICE + 1}, "presalePrice"),
        ({"deposit_fen": 15_900}, "deposit"),
        ({"deposit_deduction_fen": 4_000}, "depositDeduction"),
        ({"deposit_deduction_fen": 15_900}, "depositDeduction"),
    ],
)
async def test_presale_windows_and_amounts_are_checked(changes: dict[str, object], field: str) -> None:
    sku = await new_sku()
    with pytest.raises(BusinessError) as bad:
        await admin.save_presale(None, presale_fields(sku, **changes))
    assert refused(bad, "INVALID_INPUT", field)


async def test_a_presale_locks_its_terms_once_the_deposit_opens_and_cannot_be_edited_cancelled() -> None:
    sku = await new_sku()
    future = await admin.save_presale(None, presale_fields(sku))
    edited = await admin.save_presale(future.id, presale_fields(sku, deposit_fen=6_000))
    assert edited.deposit_fen == 6_000
    await PresaleCampaign.filter(id=future.id).update(deposit_starts_at=NOW - HOUR)
    started = await PresaleCampaign.get(id=future.id)
    fields = presale_fields(sku, deposit_fen=6_000, deposit_starts_at=started.deposit_starts_at)
    with pytest.raises(BusinessError) as locked:
        await admin.save_presale(future.id, presale_fields(sku, deposit_starts_at=started.deposit_starts_at))
    assert locked.value.code == "INVALID_STATE"
    renamed = await admin.save_presale(future.id, replace(fields, title="新名字"))
    assert renamed.title == "新名字"
    await presale.cancel_campaign(future.id)
    with pytest.raises(BusinessError) as cancelled:
        await admin.save_presale(future.id, fields)
    assert cancelled.value.code == "INVALID_STATE"


async def test_lottery_pools_check_costs_and_daily_draws() -> None:
    base = admin.LotteryPoolFields(
        name="幸运大转盘", points_cost=10, daily_draws=3, starts_at=NOW, ends_at=NOW + HOUR
    )
    for fields, field in (
        (replace(base, points_cost=-1), "pointsCost"),
        (replace(base, daily_draws=0), "dailyDraws"),
    ):
        with pytest.raises(BusinessError) as bad:
            await admin.save_lottery_pool(None, fields)
        assert refused(bad, "INVALID_INPUT", field)
    pool = await admin.save_lottery_pool(None, base)
    with pytest.raises(BusinessError) as restart:
        await admin.save_lottery_pool(pool.id, replace(base, starts_at=NOW + HOUR, ends_at=NOW + 2 * HOUR))
    assert restart.value.code == "INVALID_STATE"


async def test_prize_weights_sum_to_at_most_a_million_ppm() -> None:
    pool = await LotteryPool.create(name="奖池", starts_at=NOW + HOUR, ends_at=NOW + 2 * HOUR)
    first = await admin.save_lottery_prize(
        pool.id, None, admin.LotteryPrizeFields("PHYSICAL", "耳机", 600_000, 5)
    )
    with pytest.raises(BusinessError) as over:
        await admin.save_lottery_prize(
            pool.id, None, admin.LotteryPrizeFields("POINTS", "积分", 400_001, points=10)
        )
    assert refused(over, "INVALID_INPUT", "weight")
    await admin.save_lottery_prize(
        pool.id, None, admin.LotteryPrizeFields("POINTS", "积分", 400_000, points=10)
    )
    # Editing a prize counts the others only, so it can keep (or lower) its own share.
    edited = await admin.save_lottery_prize(
        pool.id, first.id, admin.LotteryPrizeFields("PHYSICAL", "耳机", 500_000, 5)
    )
    assert edited.weight == 500_000


async def test_prizes_give_something_real() -> None:
    pool = await LotteryPool.create(name="奖池", starts_at=NOW + HOUR, ends_at=NOW + 2 * HOUR)
    cases = [
        (admin.LotteryPrizeFields("COUPON", "券", 1_000), "couponTemplateId"),
        (admin.LotteryPrizeFields("COUPON", "券", 1_000, coupon_template_id=0), "couponTemplateId"),
        (admin.LotteryPrizeFields("POINTS", "积分", 1_000), "points"),
        (admin.LotteryPrizeFields("PHYSICAL", "耳机", 1_000, stock=-2), "stock"),
        (admin.LotteryPrizeFields("CASH", "现金", 1_000), "kind"),
        (admin.LotteryPrizeFields("PHYSICAL", "耳机", 1_000_001), "weight"),
    ]
    for fields, field in cases:
        with pytest.raises(BusinessError) as bad:
            await admin.save_lottery_prize(pool.id, None, fields)
        assert refused(bad, "INVALID_INPUT", field), fields
    template = await CouponTemplate.create(name="抽奖券", kind="FIXED", amount_fen=500, valid_days=7)
    coupon = await admin.save_lottery_prize(
        pool.id, None, admin.LotteryPrizeFields("COUPON", "券", 1_000, coupon_template_id=template.id)
    )
    assert coupon.coupon_template_id == template.id


async def test_a_started_pool_keeps_what_each_prize_gives() -> None:
    pool = await LotteryPool.create(name="奖池", starts_at=NOW - HOUR, ends_at=NOW + HOUR)
    prize = await admin.save_lottery_prize(
        pool.id, None, admin.LotteryPrizeFields("POINTS", "积分", 1_000, points=10)
    )
    with pytest.raises(BusinessError) as changed:
        await admin.save_lottery_prize(
            pool.id, prize.id, admin.LotteryPrizeFields("POINTS", "积分", 1_000, points=99)
        )
    assert changed.value.code == "INVALID_STATE"
    restocked = await admin.save_lottery_prize(
        pool.id, prize.id, admin.LotteryPrizeFields("POINTS", "积分", 2_000, stock=50, points=10)
    )
    assert (restocked.weight, restocked.stock) == (2_000, 50)
