"""Member levels, demo members with their points ledgers, addresses and carts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bff.models.cart import CartItem
from bff.models.member import Address, Member, MemberLevel, PointsLedger
from bff.seed.catalog import ProductRow, SkuRow, image_url
from bff.seed.context import LevelRef, MemberRef, SeedContext

# (name, rank, min growth, % off, free shipping, benefits)
LEVELS: tuple[tuple[str, int, int, int, bool, tuple[str, ...]], ...] = (
    ("普通", 0, 0, 0, False, ("积分兑换好礼", "生日礼包", "新人专享券")),
    ("白银", 1, 1000, 3, False, ("全场商品97折", "积分1.2倍累积", "生日礼包", "每月专属优惠券")),
    ("黄金", 2, 5000, 5, True, ("全场商品95折", "全场包邮", "积分1.5倍累积", "生日礼包", "专属客服")),
    (
        "钻石",
        3,
        20000,
        10,
        True,
        ("全场商品9折", "全场包邮", "积分2倍累积", "生日双倍积分", "专属客服", "新品优先购"),
    ),
)


@dataclass(frozen=True)
class DemoMember:
    name: str  # sign in with code "sim_<name>", openid "o_<name>"
    nickname: str
    growth: int
    ledger_entries: int
    addresses: int
    joined_days_ago: int
    cart_lines: int


DEMO_MEMBERS: tuple[DemoMember, ...] = (
    DemoMember("alice", "爱丽丝", 6800, 26, 3, 420, 3),
    DemoMember("bob", "鲍勃", 320, 4, 1, 30, 2),
    DemoMember("carol", "卡罗尔", 25600, 18, 2, 900, 3),
    DemoMember("dave", "戴夫", 1800, 8, 1, 200, 1),
    DemoMember("erin", "艾琳", 60, 2, 1, 3, 0),
    DemoMember("frank", "弗兰克", 3200, 10, 2, 320, 2),
    DemoMember("grace", "格蕾丝", 9100, 12, 1, 500, 1),
    DemoMember("heidi", "海蒂", 0, 1, 1, 1, 0),
)

_ADDRESSES = (
    ("上海市", "上海市", "浦东新区", "张江高科技园区博云路2号 8幢1201室"),
    ("北京市", "北京市", "朝阳区", "望京街道阜通东大街6号 方恒国际A座1503"),
    ("广东省", "深圳市", "南山区", "粤海街道深南大道10000号 腾讯大厦"),
    ("浙江省", "杭州市", "西湖区", "文三路90号 东部软件园2号楼302"),
    ("四川省", "成都市", "武侯区", "天府大道北段1700号 环球中心W3-1808"),
    ("江苏省", "南京市", "鼓楼区", "汉中路2号 亚太商务楼18楼"),
    ("湖北省", "武汉市", "洪山区", "珞喻路1037号 南一楼"),
    ("上海市", "上海市", "徐汇区", "漕溪北路88号 圣爱大厦2203"),
)
_RECIPIENTS = ("李爱丽", "王小明", "张伟", "刘芳", "陈静", "杨帆", "赵磊", "孙悦", "周婷", "吴昊")


def level_rank_for(growth: int) -> int:
    """The rank of the highest level whose growth threshold the value reaches."""
    return max(rank for _, rank, min_growth, *_ in LEVELS if growth >= min_growth)


async def seed_levels(ctx: SeedContext) -> None:
    """Insert the four levels, or bring existing rows of the same rank up to date."""
    existing = {level.rank: level for level in await MemberLevel.all().using_db(ctx.writer.connection)}
    new_rows: list[dict[str, Any]] = []
    for name, rank, min_growth, percent, free_shipping, benefits in LEVELS:
        values = {
            "name": name,
            "rank": rank,
            "min_growth": min_growth,
            "discount_percent": percent,
            "free_shipping": free_shipping,
            "benefits": list(benefits),
        }
        if rank in existing:
            level_id = existing[rank].id
            await MemberLevel.filter(id=level_id).using_db(ctx.writer.connection).update(**values)
        else:
            level_id = ctx.ids.take(MemberLevel)
            new_rows.append({"id": level_id, **values})
        ctx.levels[rank] = LevelRef(level_id, rank, name, percent, free_shipping)
    await ctx.writer.insert_dicts(MemberLevel, new_rows)


async def resolve_members(ctx: SeedContext) -> None:
    """Give every demo member an id: a new one, or that of an existing member with the same openid."""
    connection = ctx.writer.connection
    openids = [f"o_{spec.name}" for spec in DEMO_MEMBERS]
    existing = {
        row["openid"]: row
        for row in await Member.filter(openid__in=openids)
        .using_db(connection)
        .values("id", "openid", "points_balance")
    }
    with_default = set(
        await Address.filter(member_id__in=[row["id"] for row in existing.values()], is_default=True)
        .using_db(connection)
        .values_list("member_id", flat=True)
    )
    for spec in DEMO_MEMBERS:
        openid = f"o_{spec.name}"
        level = ctx.levels[level_rank_for(spec.growth)]
        row = existing.get(openid)
        ctx.members[spec.name] = MemberRef(
            id=row["id"] if row else ctx.ids.take(Member),
            name=spec.name,
            openid=openid,
            level_id=level.id,
            level_rank=level.rank,
            existing=row is not None,
            opening_balance=row["points_balance"] if row else 0,
            has_default_address=row is not None and row["id"] in with_default,
        )


def _ledger(
    rng: random.Random, ctx: SeedContext, spec: DemoMember, member: MemberRef
) -> tuple[list[dict[str, Any]], int]:
    balance = member.opening_balance
    joined = ctx.now - timedelta(days=spec.joined_days_ago)
    gap = (ctx.now - joined) / (spec.ledger_entries + 1)
    rows: list[dict[str, Any]] = []
    for index in range(spec.ledger_entries):
        if index == 0:
            delta, reason = 100, "新人注册赠送"
        else:
            roll = rng.random()
            if roll < 0.4:
                delta, reason = rng.randrange(10, 400), "购物返积分"
            elif roll < 0.65:
                delta, reason = 5, "每日签到"
            elif roll < 0.75:
                delta, reason = 20, "评价奖励"
            elif balance >= 100:
                delta, reason = -min(balance, rng.randrange(50, 300)), "积分抵扣订单"
            else:
                delta, reason = 10, "分享奖励"
        balance += delta
        at = joined + gap * (index + 1) + timedelta(minutes=rng.randrange(0, 600))
        rows.append(
            {
                "id": ctx.ids.take(PointsLedger),
                "member_id": member.id,
                "delta": delta,
                "reason": reason,
                "balance_after": balance,
                "created_at": min(at, ctx.now - timedelta(minutes=5)),
            }
        )
    return rows, balance


def _addresses(
    rng: random.Random, ctx: SeedContext, spec: DemoMember, member: MemberRef, number: int
) -> list[dict[str, Any]]:
    picks = rng.sample(range(len(_ADDRESSES)), spec.addresses)
    rows = []
    for order, pick in enumerate(picks):
        province, city, district, detail = _ADDRESSES[pick]
        name = _RECIPIENTS[(number + order) % len(_RECIPIENTS)]
        row = {
            "id": ctx.ids.take(Address),
            "member_id": member.id,
            "name": name,
            "phone": f"1380000{number:02d}{order + 1:02d}",
            "province": province,
            "city": city,
            "district": district,
            "detail": detail,
            # The first address is the default, unless an existing member already has one.
            "is_default": order == 0 and not member.has_default_address,
            "created_at": ctx.now - timedelta(days=spec.joined_days_ago - order),
        }
        if order == 0:
            member.default_address = {
                key: str(row[key]) for key in ("name", "phone", "province", "city", "district", "detail")
            }
        rows.append(row)
    return rows


async def seed_members(ctx: SeedContext) -> None:
    """Insert (or fill in) the demo members with their points ledgers and addresses."""
    rng = ctx.rng("members")
    new_members: list[dict[str, Any]] = []
    ledger: list[dict[str, Any]] = []
    addresses: list[dict[str, Any]] = []
    for number, spec in enumerate(DEMO_MEMBERS, start=1):
        member = ctx.members[spec.name]
        rows, balance = _ledger(rng, ctx, spec, member)
        ledger += rows
        addresses += _addresses(rng, ctx, spec, member, number)
        values: dict[str, Any] = {
            "nickname": spec.nickname,
            "avatar_url": image_url(f"avatar-{spec.name}", 200),
            "level_id": member.level_id,
            "growth_value": spec.growth,
            "points_balance": balance,
        }
        if member.existing:
            await Member.filter(id=member.id).using_db(ctx.writer.connection).update(**values)
            continue
        new_members.append(
            {
                "id": member.id,
                "openid": member.openid,
                "unionid": None,
                "phone": f"1390000{number:04d}",
                **values,
                "created_at": ctx.now - timedelta(days=spec.joined_days_ago),
                "last_login_at": ctx.now - timedelta(hours=rng.randrange(1, 72)),
            }
        )
    await ctx.writer.insert_dicts(Member, new_members)
    await ctx.writer.insert_dicts(PointsLedger, ledger)
    await ctx.writer.insert_dicts(Address, addresses)


def _cart_row(
    ctx: SeedContext, member: MemberRef, sku: SkuRow, quantity: int, selected: bool, hours: int
) -> dict[str, Any]:
    at = ctx.now - timedelta(hours=hours)
    return {
        "id": ctx.ids.take(CartItem),
        "member_id": member.id,
        "sku_id": sku.id,
        "quantity": quantity,
        "selected": selected,
        "created_at": at,
        "updated_at": at,
    }


def _stocked_sku(rng: random.Random, product: ProductRow) -> SkuRow:
    return rng.choice([sku for sku in product.skus if sku.stock > 0])


async def seed_carts(ctx: SeedContext) -> None:
    """Cart lines; alice's include a sold-out SKU and an off-shelf product, as the cart screen must show."""
    rng = ctx.rng("carts")
    pools = ctx.pools
    rows: list[dict[str, Any]] = []
    for spec in DEMO_MEMBERS:
        member = ctx.members[spec.name]
        products = rng.sample(pools.buyable, min(spec.cart_lines, len(pools.buyable)))
        for index, product in enumerate(products):
            quantity = rng.choice((1, 1, 2, 3))
            # One line left unselected so the selected count differs from the line count.
            rows.append(
                _cart_row(ctx, member, _stocked_sku(rng, product), quantity, index != 1, 2 + index * 5)
            )
        if spec.name != "alice":
            continue
        if pools.sold_out_skus:
            _, sku = rng.choice(pools.sold_out_skus)
            rows.append(_cart_row(ctx, member, sku, 1, True, 30))
        if pools.off_shelf:
            rows.append(_cart_row(ctx, member, _stocked_sku(rng, rng.choice(pools.off_shelf)), 1, True, 50))
    await ctx.writer.insert_dicts(CartItem, rows)
