"""Operators create and edit campaigns: flash sales and their items, group-buy, presale, bargain, lottery.

Rules every campaign shares: a title of 1-100 characters; times carry a time zone; the end is after
the start and, for a new campaign, in the future; campaign prices are positive and at most the SKU's
list price. Once a campaign has started its terms (SKU, prices, sizes, stock, start) are locked:
shoppers have acted on them. What stays editable is noted per function. A presale is ended early by
`presale.cancel_campaign`, never by editing its windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bff.models.catalog import Sku
from bff.models.marketing import (
    BargainCampaign,
    CouponTemplate,
    FlashSale,
    FlashSaleItem,
    GroupBuyCampaign,
    LotteryPool,
    LotteryPrize,
    PresaleCampaign,
)
from bff.services.errors import BusinessError
from bff.services.lottery import PRIZE_KINDS, ROLL_SPACE
from bff.services.presale import is_cancelled

MAX_TITLE = 100
MAX_GROUP_SIZE = 50
MAX_TEAM_TTL_MINUTES = 7 * 24 * 60
MAX_FLASH_STOCK = 1_000_000
MAX_HELPERS = 100
MAX_DAILY_DRAWS = 100
MAX_POINTS = 1_000_000


def _invalid(message: str, field: str) -> BusinessError:
    return BusinessError("INVALID_INPUT", message, field)


def _title(title: str, field: str = "title", limit: int = MAX_TITLE) -> str:
    text = title.strip()
    if not 1 <= len(text) <= limit:
        raise _invalid(f"名称须为 1 到 {limit} 个字符", field)
    return text


def _aware(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _invalid("时间须带时区（如 2025-11-11T20:00:00+08:00）", field)
    return moment.astimezone(UTC)


def _window(starts_at: datetime, ends_at: datetime, now: datetime, *, new: bool) -> tuple[datetime, datetime]:
    start, end = _aware(starts_at, "startsAt"), _aware(ends_at, "endsAt")
    if end <= start:
        raise _invalid("结束时间须晚于开始时间", "endsAt")
    if new and end <= now:
        raise _invalid("结束时间须晚于当前时间", "endsAt")
    return start, end


def _range(value: int, low: int, high: int, message: str, field: str) -> int:
    if not low <= value <= high:
        raise _invalid(message, field)
    return value


async def _sku(sku_id: int) -> Sku:
    sku = await Sku.get_or_none(id=sku_id)
    if sku is None:
        raise BusinessError("NOT_FOUND", "商品规格不存在", "skuId")
    return sku


def _price(price_fen: int, sku: Sku, field: str) -> int:
    if not 0 < price_fen <= sku.price_fen:
        raise _invalid(f"活动价须大于 0 且不高于原价 {sku.price_fen} 分", field)
    return price_fen


def _locked(changed: bool, what: str) -> None:
    if changed:
        raise BusinessError("INVALID_STATE", f"活动已开始，不能修改{what}", None)


# --- flash sales ---------------------------------------------------------------------------------


async def _overlapping_item(
    sku_id: int, sale_id: int, start: datetime, end: datetime
) -> FlashSaleItem | None:
    """An item of another flash sale selling the same SKU in an overlapping time."""
    return (
        await FlashSaleItem.filter(
            sku_id=sku_id,
            flash_sale__starts_at__lt=end,
            flash_sale__ends_at__gt=start,
        )
        .exclude(flash_sale_id=sale_id)
        .first()
    )


async def save_flash_sale(
    sale_id: int | None, title: str, starts_at: datetime, ends_at: datetime, now: datetime | None = None
) -> FlashSale:
    """Create or edit a flash sale; once started only its title changes."""
    moment = now or datetime.now(UTC)
    name = _title(title)
    start, end = _window(starts_at, ends_at, moment, new=sale_id is None)
    if sale_id is None:
        return await FlashSale.create(title=name, starts_at=start, ends_at=end)
    sale = await FlashSale.get_or_none(id=sale_id)
    if sale is None:
        raise BusinessError("NOT_FOUND", "秒杀活动不存在", "id")
    if sale.starts_at <= moment:
        _locked(start != sale.starts_at or end != sale.ends_at, "时间")
    else:
        for item in await FlashSaleItem.filter(flash_sale_id=sale.id):
            clash = await _overlapping_item(item.sku_id, sale.id, start, end)
            if clash is not None:
                raise _invalid(f"规格 {item.sku_id} 在秒杀活动 {clash.flash_sale_id} 中时间重叠", "startsAt")
    await FlashSale.filter(id=sale.id).update(title=name, starts_at=start, ends_at=end)
    return await FlashSale.get(id=sale.id)


@dataclass(frozen=True)
class FlashItemFields:
    sku_id: int
    flash_price_fen: int
    stock_total: int
    per_member_limit: int = 1
    sort_order: int = 0


async def save_flash_sale_item(
    sale_id: int, item_id: int | None, fields: FlashItemFields, now: datetime | None = None
) -> FlashSaleItem:
    """Add or edit an item of a flash sale that has not started; one SKU is never in two overlapping sales."""
    moment = now or datetime.now(UTC)
    sale = await FlashSale.get_or_none(id=sale_id)
    if sale is None:
        raise BusinessError("NOT_FOUND", "秒杀活动不存在", "flashSaleId")
    if sale.starts_at <= moment:
        raise BusinessError("INVALID_STATE", "秒杀已开始，不能修改商品", "flashSaleId")
    sku = await _sku(fields.sku_id)
    _price(fields.flash_price_fen, sku, "flashPrice")
    _range(fields.stock_total, 1, MAX_FLASH_STOCK, f"秒杀库存须在 1 到 {MAX_FLASH_STOCK} 之间", "stockTotal")
    _range(
        fields.per_member_limit,
        1,
        fields.stock_total,
        "每人限购须至少 1 件且不超过秒杀库存",
        "perMemberLimit",
    )
    same_sale = FlashSaleItem.filter(flash_sale_id=sale.id, sku_id=sku.id)
    if item_id is not None:
        same_sale = same_sale.exclude(id=item_id)
    if await same_sale.exists():
        raise _invalid("该规格已在本场秒杀中", "skuId")
    clash = await _overlapping_item(sku.id, sale.id, sale.starts_at, sale.ends_at)
    if clash is not None:
        raise _invalid(f"该规格已在时间重叠的秒杀活动 {clash.flash_sale_id} 中", "skuId")
    values: dict[str, Any] = {
        "sku_id": sku.id,
        "product_id": sku.product_id,
        "flash_price_fen": fields.flash_price_fen,
        "stock_total": fields.stock_total,
        "per_member_limit": fields.per_member_limit,
        "sort_order": fields.sort_order,
    }
    if item_id is None:
        return await FlashSaleItem.create(flash_sale_id=sale.id, **values)
    if not await FlashSaleItem.filter(id=item_id, flash_sale_id=sale.id).update(**values):
        raise BusinessError("NOT_FOUND", "秒杀商品不存在", "id")
    return await FlashSaleItem.get(id=item_id)


async def delete_flash_sale_item(item_id: int, now: datetime | None = None) -> None:
    """Remove an item from a flash sale that has not started."""
    moment = now or datetime.now(UTC)
    item = await FlashSaleItem.get_or_none(id=item_id).select_related("flash_sale")
    if item is None:
        raise BusinessError("NOT_FOUND", "秒杀商品不存在", "id")
    if item.flash_sale.starts_at <= moment:
        raise BusinessError("INVALID_STATE", "秒杀已开始，不能删除商品", "id")
    await FlashSaleItem.filter(id=item.id).delete()


# --- group-buy, bargain, presale -----------------------------------------------------------------


@dataclass(frozen=True)
class GroupBuyFields:
    title: str
    sku_id: int
    group_price_fen: int
    group_size: int
    team_ttl_minutes: int
    starts_at: datetime
    ends_at: datetime


async def save_group_buy(
    campaign_id: int | None, fields: GroupBuyFields, now: datetime | None = None
) -> GroupBuyCampaign:
    """Create or edit a group-buy; once started only the title and a later end can change."""
    moment = now or datetime.now(UTC)
    title = _title(fields.title)
    start, end = _window(fields.starts_at, fields.ends_at, moment, new=campaign_id is None)
    sku = await _sku(fields.sku_id)
    _price(fields.group_price_fen, sku, "groupPrice")
    _range(fields.group_size, 2, MAX_GROUP_SIZE, f"成团人数须在 2 到 {MAX_GROUP_SIZE} 之间", "groupSize")
    _range(
        fields.team_ttl_minutes, 5, MAX_TEAM_TTL_MINUTES, "成团时限须在 5 分钟到 7 天之间", "teamTtlMinutes"
    )
    values: dict[str, Any] = {
        "title": title,
        "product_id": sku.product_id,
        "sku_id": sku.id,
        "group_price_fen": fields.group_price_fen,
        "group_size": fields.group_size,
        "team_ttl_minutes": fields.team_ttl_minutes,
        "starts_at": start,
        "ends_at": end,
    }
    if campaign_id is None:
        return await GroupBuyCampaign.create(**values)
    current = await GroupBuyCampaign.get_or_none(id=campaign_id)
    if current is None:
        raise BusinessError("NOT_FOUND", "拼团活动不存在", "id")
    if current.starts_at <= moment:
        _locked(
            (current.sku_id, current.group_price_fen, current.group_size, current.team_ttl_minutes)
            != (sku.id, fields.group_price_fen, fields.group_size, fields.team_ttl_minutes)
            or start != current.starts_at,
            "商品、拼团价、人数、时限或开始时间",
        )
        if end < current.ends_at:
            raise BusinessError("INVALID_STATE", "活动已开始，结束时间只能延后", "endsAt")
    await GroupBuyCampaign.filter(id=current.id).update(**values)
    return await GroupBuyCampaign.get(id=current.id)


@dataclass(frozen=True)
class BargainFields:
    title: str
    sku_id: int
    start_price_fen: int
    floor_price_fen: int
    helpers_needed: int
    session_ttl_minutes: int
    starts_at: datetime
    ends_at: datetime


async def save_bargain(
    campaign_id: int | None, fields: BargainFields, now: datetime | None = None
) -> BargainCampaign:
    """Create or edit a bargain; every helper must be able to cut at least 1 fen to the floor."""
    moment = now or datetime.now(UTC)
    title = _title(fields.title)
    start, end = _window(fields.starts_at, fields.ends_at, moment, new=campaign_id is None)
    sku = await _sku(fields.sku_id)
    _price(fields.start_price_fen, sku, "startPrice")
    if not 0 < fields.floor_price_fen < fields.start_price_fen:
        raise _invalid("底价须大于 0 且低于起始价", "floorPrice")
    _range(fields.helpers_needed, 1, MAX_HELPERS, f"助力人数须在 1 到 {MAX_HELPERS} 之间", "helpersNeeded")
    if fields.start_price_fen - fields.floor_price_fen < fields.helpers_needed:
        raise _invalid("可砍金额须至少为每位助力 1 分", "helpersNeeded")
    _range(
        fields.session_ttl_minutes,
        5,
        MAX_TEAM_TTL_MINUTES,
        "砍价时限须在 5 分钟到 7 天之间",
        "sessionTtlMinutes",
    )
    values: dict[str, Any] = {
        "title": title,
        "product_id": sku.product_id,
        "sku_id": sku.id,
        "start_price_fen": fields.start_price_fen,
        "floor_price_fen": fields.floor_price_fen,
        "helpers_needed": fields.helpers_needed,
        "session_ttl_minutes": fields.session_ttl_minutes,
        "starts_at": start,
        "ends_at": end,
    }
    if campaign_id is None:
        return await BargainCampaign.create(**values)
    current = await BargainCampaign.get_or_none(id=campaign_id)
    if current is None:
        raise BusinessError("NOT_FOUND", "砍价活动不存在", "id")
    if current.starts_at <= moment:
        terms = (
            current.sku_id,
            current.start_price_fen,
            current.floor_price_fen,
            current.helpers_needed,
            current.session_ttl_minutes,
        )
        _locked(
            terms
            != (
                sku.id,
                fields.start_price_fen,
                fields.floor_price_fen,
                fields.helpers_needed,
                fields.session_ttl_minutes,
            )
            or start != current.starts_at,
            "商品、价格、助力人数、时限或开始时间",
        )
        if end < current.ends_at:
            raise BusinessError("INVALID_STATE", "活动已开始，结束时间只能延后", "endsAt")
    await BargainCampaign.filter(id=current.id).update(**values)
    return await BargainCampaign.get(id=current.id)


@dataclass(frozen=True)
class PresaleFields:
    title: str
    sku_id: int
    presale_price_fen: int
    deposit_fen: int
    deposit_deduction_fen: int
    deposit_starts_at: datetime
    deposit_ends_at: datetime
    balance_starts_at: datetime
    balance_ends_at: datetime


async def save_presale(
    campaign_id: int | None, fields: PresaleFields, now: datetime | None = None
) -> PresaleCampaign:
    """Create or edit a presale; once the deposit window opens only the title changes."""
    moment = now or datetime.now(UTC)
    title = _title(fields.title)
    deposit_start = _aware(fields.deposit_starts_at, "depositStartsAt")
    deposit_end = _aware(fields.deposit_ends_at, "depositEndsAt")
    balance_start = _aware(fields.balance_starts_at, "balanceStartsAt")
    balance_end = _aware(fields.balance_ends_at, "balanceEndsAt")
    if deposit_end <= deposit_start:
        raise _invalid("定金结束时间须晚于开始时间", "depositEndsAt")
    if balance_start < deposit_end:
        raise _invalid("尾款开始时间不能早于定金结束时间", "balanceStartsAt")
    if balance_end <= balance_start:
        raise _invalid("尾款结束时间须晚于开始时间", "balanceEndsAt")
    if campaign_id is None and deposit_end <= moment:
        raise _invalid("定金结束时间须晚于当前时间", "depositEndsAt")
    sku = await _sku(fields.sku_id)
    _price(fields.presale_price_fen, sku, "presalePrice")
    if not 0 < fields.deposit_fen < fields.presale_price_fen:
        raise _invalid("定金须大于 0 且低于预售价", "deposit")
    if not fields.deposit_fen <= fields.deposit_deduction_fen < fields.presale_price_fen:
        raise _invalid("定金抵扣额须不低于定金且低于预售价（尾款至少 1 分）", "depositDeduction")
    values: dict[str, Any] = {
        "title": title,
        "product_id": sku.product_id,
        "sku_id": sku.id,
        "presale_price_fen": fields.presale_price_fen,
        "deposit_fen": fields.deposit_fen,
        "deposit_deduction_fen": fields.deposit_deduction_fen,
        "deposit_starts_at": deposit_start,
        "deposit_ends_at": deposit_end,
        "balance_starts_at": balance_start,
        "balance_ends_at": balance_end,
    }
    if campaign_id is None:
        return await PresaleCampaign.create(**values)
    current = await PresaleCampaign.get_or_none(id=campaign_id)
    if current is None:
        raise BusinessError("NOT_FOUND", "预售活动不存在", "id")
    if is_cancelled(current):
        raise BusinessError("INVALID_STATE", "预售活动已取消", "id")
    if current.deposit_starts_at <= moment:
        locked = {k: v for k, v in values.items() if k != "title"}
        _locked(any(getattr(current, k) != v for k, v in locked.items()), "商品、价格或时间")
    await PresaleCampaign.filter(id=current.id).update(**values)
    return await PresaleCampaign.get(id=current.id)


# --- lottery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LotteryPoolFields:
    name: str
    points_cost: int
    daily_draws: int
    starts_at: datetime
    ends_at: datetime


async def save_lottery_pool(
    pool_id: int | None, fields: LotteryPoolFields, now: datetime | None = None
) -> LotteryPool:
    """Create or edit a lottery pool; once started its start is fixed and its end only moves later."""
    moment = now or datetime.now(UTC)
    name = _title(fields.name, "name", 64)
    start, end = _window(fields.starts_at, fields.ends_at, moment, new=pool_id is None)
    _range(fields.points_cost, 0, MAX_POINTS, f"每次消耗积分须在 0 到 {MAX_POINTS} 之间", "pointsCost")
    _range(fields.daily_draws, 1, MAX_DAILY_DRAWS, f"每日次数须在 1 到 {MAX_DAILY_DRAWS} 之间", "dailyDraws")
    values: dict[str, Any] = {
        "name": name,
        "points_cost": fields.points_cost,
        "daily_draws": fields.daily_draws,
        "starts_at": start,
        "ends_at": end,
    }
    if pool_id is None:
        return await LotteryPool.create(**values)
    current = await LotteryPool.get_or_none(id=pool_id)
    if current is None:
        raise BusinessError("NOT_FOUND", "抽奖活动不存在", "id")
    if current.starts_at <= moment:
        _locked(start != current.starts_at, "开始时间")
        if end < current.ends_at:
            raise BusinessError("INVALID_STATE", "活动已开始，结束时间只能延后", "endsAt")
    await LotteryPool.filter(id=current.id).update(**values)
    return await LotteryPool.get(id=current.id)


@dataclass(frozen=True)
class LotteryPrizeFields:
    kind: str
    name: str
    weight: int  # parts per million
    stock: int = -1  # -1 = unlimited
    coupon_template_id: int | None = None
    points: int = 0


async def save_lottery_prize(
    pool_id: int, prize_id: int | None, fields: LotteryPrizeFields, now: datetime | None = None
) -> LotteryPrize:
    """Add or edit a prize: weights of a pool sum to at most 1e6; once started a prize keeps what it gives."""
    moment = now or datetime.now(UTC)
    pool = await LotteryPool.get_or_none(id=pool_id)
    if pool is None:
        raise BusinessError("NOT_FOUND", "抽奖活动不存在", "poolId")
    name = _title(fields.name, "name", 64)
    if fields.kind not in PRIZE_KINDS:
        raise _invalid("奖品类型须为 COUPON、POINTS、PHYSICAL 或 NOTHING", "kind")
    _range(fields.weight, 0, ROLL_SPACE, "中奖概率须在 0 到 1000000（百万分之）之间", "weight")
    if fields.stock < -1:
        raise _invalid("库存须为 -1（不限）或不小于 0", "stock")
    template_id = fields.coupon_template_id if fields.kind == "COUPON" else None
    if fields.kind == "COUPON" and (
        template_id is None or not await CouponTemplate.filter(id=template_id).exists()
    ):
        raise _invalid("请选择存在的优惠券模板", "couponTemplateId")
    prize_points = fields.points if fields.kind == "POINTS" else 0
    if fields.kind == "POINTS":
        _range(prize_points, 1, MAX_POINTS, f"奖励积分须在 1 到 {MAX_POINTS} 之间", "points")
    others = LotteryPrize.filter(pool_id=pool.id)
    if prize_id is not None:
        others = others.exclude(id=prize_id)
    taken = sum(p.weight for p in await others)
    if taken + fields.weight > ROLL_SPACE:
        raise _invalid(f"奖品概率之和不能超过 100%（其余奖品已占 {taken}/1000000）", "weight")
    values: dict[str, Any] = {
        "kind": fields.kind,
        "name": name,
        "weight": fields.weight,
        "stock": fields.stock,
        "coupon_template_id": template_id,
        "points": prize_points,
    }
    if prize_id is None:
        return await LotteryPrize.create(pool_id=pool.id, **values)
    current = await LotteryPrize.get_or_none(id=prize_id, pool_id=pool.id)
    if current is None:
        raise BusinessError("NOT_FOUND", "奖品不存在", "id")
    if pool.starts_at <= moment:
        _locked(
            (current.kind, current.coupon_template_id, current.points)
            != (fields.kind, template_id, prize_points),
            "奖品内容",
        )
    await LotteryPrize.filter(id=current.id).update(**values)
    return await LotteryPrize.get(id=current.id)
