"""A small analytics world with hand-countable figures, placed in two weeks of a far-away year.

Day `d(k)` is `monday + k`. The reported range is d(2) (a Wednesday) .. d(15) (a Thursday), so its
ISO weeks are d(2)-d(6), d(7)-d(13) and d(14)-d(15). Events and orders on d(0), d(1) and d(16) lie
just outside the range and must not count. The expected figures are written out, with how each
was counted, in tests/screens/test_dashboard_api.py.

Visitors: devices A0..A3 browse anonymously; members M1..M3 browse or buy signed in.
- A0 visited d0 (before the range) and d2: counted in the range, but in no cohort.
- A1 first visits d2 and is back d3 (day 1) and d9 (day 7).   A2 visits d2 and d15.
- A3 only sees an exposure on d9 (no page view) and comes back d16, after the range.
- M1 (registered long before) visits d3 and d15 and pays three orders; M2 (registered d9) visits
  d9 and d10 and pays two; M3 (registered before) pays one without any tracked visit; M4
  (registered before) only leaves an unpaid order; M5 registers on d2 at 00:00 sharp, M6 on d16
  at 00:00 sharp (the end is exclusive).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bff.models.analytics import TrackedEvent
from bff.models.marketing import (
    BargainCampaign,
    BargainSession,
    FlashSale,
    FlashSaleItem,
    GroupBuyCampaign,
    GroupBuyTeam,
)
from bff.models.member import Member, MemberLevel
from bff.models.order import Order, OrderLine, Refund
from bff.services.rollups import mark_dirty
from bff.services.shop_time import SHOP_TZ
from tests.support.factories import make_product


def monday_on_or_before(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass
class World:
    monday: date
    members: dict[str, int] = field(default_factory=dict)  # M1.. → member id
    products: dict[str, int] = field(default_factory=dict)  # P1.. → product id
    titles: dict[str, str] = field(default_factory=dict)
    campaigns: dict[str, int] = field(default_factory=dict)  # FS, GB, BC, PS → campaign id
    devices: dict[str, str] = field(default_factory=dict)  # A0.. and M1.. → anonymous id
    events: list[TrackedEvent] = field(default_factory=list)

    def d(self, k: int) -> date:
        return self.monday + timedelta(days=k)

    def at(self, k: int, hour: int, minute: int = 0) -> datetime:
        """Shop-local time on d(k)."""
        return datetime.combine(self.d(k), time(hour, minute), SHOP_TZ)

    @property
    def first(self) -> date:
        return self.d(2)

    @property
    def last(self) -> date:
        return self.d(15)

    def event(
        self,
        k: int,
        who: str,
        type_: str,
        product: str | None = None,
        keyword: str | None = None,
        results: int | None = None,
    ) -> None:
        """One tracked event of visitor `who` (A0.., or a member M1..) on d(k) at noon."""
        occurred = self.at(k, 12, len(self.events) % 60)
        self.events.append(
            TrackedEvent(
                client_event_id=f"e{len(self.events)}",
                anonymous_id=self.devices[who],
                member_id=self.members.get(who),
                session_id=f"s-{who}-{k}",
                type=type_,
                page="pages/product/index" if product else "pages/home/index",
                product_id=self.products[product] if product else None,
                keyword=keyword,
                result_count=results,
                properties={},
                occurred_at=occurred,
                received_at=occurred,
                day=self.d(k),
            )
        )


async def _member(world: World, name: str, registered: datetime) -> None:
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    member = await Member.create(openid=f"o_dash_{uuid.uuid4().hex[:12]}", nickname=name, level_id=level.id)
    await Member.filter(id=member.id).update(created_at=registered)
    world.members[name] = member.id


async def _order(
    world: World,
    member: str,
    created: datetime,
    paid: datetime | None,
    payable_fen: int,
    lines: list[tuple[str, int, int, int]],  # (product, quantity, paid_fen, refunded_fen)
    campaign: tuple[str, int] | None = None,
) -> int:
    order = await Order.create(
        order_no=f"D{uuid.uuid4().hex[:20]}",
        member_id=world.members[member],
        status="PAID" if paid else "CLOSED",
        payable_fen=payable_fen,
        refunded_fen=sum(line[3] for line in lines),
        paid_at=paid,
        campaign_kind=campaign[0] if campaign else None,
        campaign_ref=campaign[1] if campaign else None,
    )
    await Order.filter(id=order.id).update(created_at=created)
    for product, quantity, paid_fen, refunded_fen in lines:
        await OrderLine.create(
            order_id=order.id,
            sku_id=0,
            product_id=world.products[product],
            product_title=world.titles[product],
            quantity=quantity,
            unit_price_fen=paid_fen // quantity,
            line_total_fen=paid_fen,
            paid_fen=paid_fen,
            refunded_fen=refunded_fen,
        )
    return order.id


async def _refund(order_id: int, amount_fen: int, status: str, succeeded: datetime | None) -> None:
    await Refund.create(
        order_id=order_id,
        out_refund_no=f"R{uuid.uuid4().hex[:20]}",
        amount_fen=amount_fen,
        status=status,
        succeeded_at=succeeded,
    )


async def _catalog(world: World) -> None:
    for name in ("P1", "P2", "P3", "P4"):
        product, _ = await make_product([(1000, 10)])
        world.products[name], world.titles[name] = product.id, product.title
    # P5 is no longer in the catalog: its title comes from the order line's snapshot.
    world.products["P5"] = 1_000_000_000 + uuid.uuid4().int % 100_000_000
    world.titles["P5"] = "已下架的旧商品"


async def _campaigns(world: World) -> dict[str, int]:
    """The campaigns, and the refs orders carry (an item, a team, a session, or the campaign)."""
    window: dict[str, Any] = {"starts_at": world.at(0, 0), "ends_at": world.at(20, 0)}
    p1 = world.products["P1"]
    sale = await FlashSale.create(title="闪购测试", **window)
    item = await FlashSaleItem.create(
        flash_sale_id=sale.id, sku_id=0, product_id=p1, flash_price_fen=5000, stock_total=10
    )
    group = await GroupBuyCampaign.create(
        title="拼团测试", product_id=p1, sku_id=0, group_price_fen=2001, group_size=2, **window
    )
    team = await GroupBuyTeam.create(
        campaign_id=group.id, leader_id=world.members["M2"], expires_at=world.at(20, 0)
    )
    bargain = await BargainCampaign.create(
        title="砍价测试",
        product_id=p1,
        sku_id=0,
        start_price_fen=9000,
        floor_price_fen=1000,
        helpers_needed=3,
        **window,
    )
    session = await BargainSession.create(
        campaign_id=bargain.id,
        member_id=world.members["M1"],
        current_price_fen=1500,
        expires_at=world.at(20, 0),
    )
    # A presale campaign that has since been deleted: its orders keep the id, the name is gone.
    world.campaigns.update(FS=sale.id, GB=group.id, BC=bargain.id, PS=2_000_000_000 + uuid.uuid4().int % 1000)
    return {"item": item.id, "team": team.id, "session": session.id}


async def build_world(monday: date) -> World:
    """Write the world's rows, events and rollup marks; the rollups are left dirty."""
    assert monday.weekday() == 0
    world = World(monday=monday)
    tag = uuid.uuid4().hex[:10]
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    await _member(world, "M1", long_ago)
    await _member(world, "M2", world.at(9, 8))
    await _member(world, "M3", long_ago)
    await _member(world, "M4", long_ago)
    await _member(world, "M5", world.at(2, 0))
    await _member(world, "M6", world.at(16, 0))
    world.devices = {name: f"dash-{name}-{tag}" for name in ("A0", "A1", "A2", "A3", "M1", "M2", "M3")}
    await _catalog(world)
    refs = await _campaigns(world)

    e = world.event
    e(0, "A0", "page_view")
    # d2
    e(2, "A1", "page_view")
    e(2, "A1", "product_exposure", "P1")
    e(2, "A1", "product_exposure", "P2")
    e(2, "A1", "product_click", "P1")
    e(2, "A1", "page_view", "P1")
    e(2, "A1", "add_to_cart", "P1")
    e(2, "A1", "search", keyword="kwA", results=3)
    e(2, "A1", "search", keyword="kwZ", results=0)
    e(2, "A2", "page_view")
    e(2, "A2", "search", keyword="kwZ", results=0)
    e(2, "A0", "page_view")
    # d3
    e(3, "A1", "page_view")
    e(3, "A1", "checkout_start")
    e(3, "A1", "share")
    e(3, "M1", "page_view", "P2")
    e(3, "M1", "add_to_cart", "P2")
    e(3, "M1", "checkout_start")
    # d9
    e(9, "A1", "page_view")
    e(9, "M2", "page_view")
    e(9, "M2", "page_view", "P1")
    e(9, "M2", "add_to_cart", "P1")
    e(9, "M2", "search", keyword="kwA", results=5)
    e(9, "A3", "product_exposure", "P1")
    # d10
    e(10, "M2", "page_view")
    e(10, "M2", "search", keyword="kwY", results=0)
    e(10, "M2", "search", keyword="kwY", results=4)
    e(10, "M2", "experiment_exposure")
    # d15
    e(15, "A2", "page_view")
    e(15, "A2", "search", keyword="kwA", results=1)
    e(15, "M1", "page_view")
    e(15, "M1", "search", keyword="kwB", results=2)
    # d16, after the range
    e(16, "A3", "page_view")
    e(16, "A3", "search", keyword="kwOut", results=0)
    await TrackedEvent.bulk_create(world.events)
    await mark_dirty({event.day for event in world.events})

    o1 = await _order(
        world, "M1", world.at(3, 10), world.at(3, 10, 5), 10000, [("P1", 2, 8000, 500), ("P2", 1, 2000, 0)]
    )
    o2 = await _order(
        world,
        "M1",
        world.at(9, 20),
        world.at(9, 20, 10),
        5000,
        [("P2", 1, 5000, 1000)],
        ("FLASH_SALE", refs["item"]),
    )
    # Paid at 23:30 shop time on d15: 15:30 UTC, still inside the range.
    await _order(
        world,
        "M3",
        world.at(15, 23),
        world.at(15, 23, 30),
        7502,
        [("P3", 1, 3001, 0), ("P4", 3, 4501, 0)],
        ("GROUP_BUY_JOIN", refs["team"]),
    )
    await _order(
        world,
        "M2",
        world.at(9, 12),
        world.at(9, 12, 5),
        2001,
        [("P1", 1, 2001, 0)],
        ("GROUP_BUY_OPEN", world.campaigns["GB"]),
    )
    await _order(world, "M4", world.at(5, 9), None, 9999, [("P1", 1, 9999, 0)])
    # Created before the range, paid just after its first midnight.
    await _order(
        world,
        "M1",
        world.at(1, 22),
        world.at(2, 0, 30),
        6001,
        [("P3", 1, 1500, 0), ("P5", 3, 4501, 0)],
        ("BARGAIN", refs["session"]),
    )
    # Created in the range (d15 23:50), paid after it (d16 00:10).
    await _order(world, "M2", world.at(15, 23, 50), world.at(16, 0, 10), 7000, [("P1", 1, 7000, 0)])
    o8 = await _order(world, "M3", world.at(1, 23), world.at(1, 23, 50), 4444, [("P2", 1, 4444, 0)])
    await _order(world, "M2", world.at(10, 11), world.at(10, 12), 999, [], ("PRESALE", world.campaigns["PS"]))

    await _refund(o2, 1000, "SUCCESS", world.at(10, 9))
    await _refund(o1, 500, "SUCCESS", world.at(15, 23, 59))
    await _refund(o1, 700, "FAILED", None)
    await _refund(o1, 200, "PROCESSING", None)
    await _refund(o8, 300, "SUCCESS", world.at(1, 23, 55))
    await _refund(o2, 300, "SUCCESS", world.at(16, 0, 0))
    return world
