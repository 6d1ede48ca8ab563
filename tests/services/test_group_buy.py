"""Group-buy rules through the checkout hooks: seats, completion, concurrency, deadline refunds."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bff.cache import Cache, create_cache
from bff.context import Services
from bff.models import order as status
from bff.models.marketing import GroupBuyCampaign, GroupBuyTeam, GroupBuyTeamMember
from bff.models.member import Address, Member, MemberLevel, PointsLedger
from bff.models.order import Order, Payment, Refund
from bff.models.outbox import OutboxMessage
from bff.services import group_buy, orders, payments
from bff.services.campaign_checkout import GROUP_BUY_JOIN, GROUP_BUY_OPEN, CampaignRef
from bff.services.checkout import CheckoutRequest
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext
from bff.settings import Settings, load_settings
from tests.support.factories import make_product

SETTINGS: Settings = replace(load_settings(), cache_prefix=f"bff-gb-{uuid.uuid4().hex[:8]}:")


@pytest.fixture(autouse=True)
def _db(seeded: None) -> None:
    """Every test here needs the seeded, initialised database."""


@pytest.fixture(scope="module")
def cache() -> Cache:
    return create_cache(SETTINGS.redis_url, SETTINGS.cache_prefix)


@dataclass(frozen=True)
class Shopper:
    id: int
    address_id: int


async def shopper() -> Shopper:
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    tag = uuid.uuid4().hex[:12]
    member = await Member.create(openid=f"o_gb{tag}", level_id=level.id, nickname=f"团员{tag[:4]}")
    address = await Address.create(
        member_id=member.id, name="张三", phone="13800000000", province="上海市", city="上海市",
        district="徐汇区", detail="漕溪北路 1 号",
    )  # fmt: skip
    return Shopper(member.id, address.id)


async def campaign(group_size: int = 3, ttl_minutes: int = 60, stock: int = 100) -> GroupBuyCampaign:
    _, skus = await make_product([(10_000, stock)])
    now = datetime.now(UTC)
    return await GroupBuyCampaign.create(
        title="测试拼团",
        product_id=skus[0].product_id,
        sku_id=skus[0].id,
        group_price_fen=7_900,
        group_size=group_size,
        team_ttl_minutes=ttl_minutes,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=3),
    )


async def place(who: Shopper, kind: str, ref_id: int, cache: Cache) -> Order:
    request = CheckoutRequest(
        member_id=who.id, source="BUY_NOW", address_id=who.address_id, campaign=CampaignRef(kind, ref_id)
    )
    return await orders.place_order(request, SETTINGS, cache, None)


async def open_team(who: Shopper, camp: GroupBuyCampaign, cache: Cache) -> tuple[Order, GroupBuyTeam]:
    order = await place(who, GROUP_BUY_OPEN, camp.id, cache)
    seat = await GroupBuyTeamMember.get(order_id=order.id)
    return order, await GroupBuyTeam.get(id=seat.team_id)


async def pay(order: Order, cache: Cache) -> None:
    resource = {
        "out_trade_no": order.order_no,
        "transaction_id": f"42{uuid.uuid4().int % 10**26:026d}",
        "trade_state": "SUCCESS",
        "amount": {"total": order.payable_fen},
        "success_time": datetime.now(UTC).isoformat(),
    }
    assert (await payments.record_payment(resource, cache)).result == "paid"


async def code_of(call: Any) -> str:
    with pytest.raises(BusinessError) as raised:
        await call
    return raised.value.code


async def pushed(order: Order) -> bool:
    return await OutboxMessage.exists(topic="erp.push_order", dedupe_key=f"erp-push:{order.id}")


def handler_context(cache: Cache, now: datetime) -> HandlerContext:
    services = cast(Services, SimpleNamespace(settings=SETTINGS, cache=cache))
    return HandlerContext(services=services, message_id=0, attempt=1, now=now)


async def test_a_team_opens_when_its_leader_pays_and_ships_when_full_and_paid(cache: Cache) -> None:
    camp = await campaign(group_size=3)
    leader, first, second = await shopper(), await shopper(), await shopper()

    lead_order, team = await open_team(leader, camp, cache)
    assert (team.status, team.member_count, team.leader_id) == ("PENDING", 1, leader.id)
    assert lead_order.campaign_kind == GROUP_BUY_OPEN
    deadline = await OutboxMessage.get(dedupe_key=f"group-buy-expire:{team.id}")
    assert deadline.topic == group_buy.EXPIRE_TOPIC and deadline.run_at == team.expires_at
    assert await code_of(place(first, GROUP_BUY_JOIN, team.id, cache)) == "INVALID_STATE"  # not paid yet

    await pay(lead_order, cache)
    assert (await GroupBuyTeam.get(id=team.id)).status == "OPEN"
    assert not await pushed(lead_order)  # fulfilment waits for the team

    first_order = await place(first, GROUP_BUY_JOIN, team.id, cache)
    second_order = await place(second, GROUP_BUY_JOIN, team.id, cache)
    assert first_order.payable_fen == second_order.payable_fen == lead_order.payable_fen
    assert (await GroupBuyTeam.get(id=team.id)).member_count == 3
    await pay(first_order, cache)
    view = await group_buy.team_view(team.id)
    assert view is not None and (view.status, view.paid_count, view.missing_count) == ("OPEN", 2, 0)
    assert not await pushed(first_order)

    await pay(second_order, cache)
    assert (await GroupBuyTeam.get(id=team.id)).status == "COMPLETED"
    for order in (lead_order, first_order, second_order):
        assert await pushed(order)
        assert (await Order.get(id=order.id)).status == status.PAID
    progress = await OutboxMessage.filter(topic=group_buy.PROGRESS_TOPIC).order_by("-id").limit(20)
    assert any(m.payload == {"team_id": team.id} for m in progress)


async def test_a_member_is_in_a_team_once(cache: Cache) -> None:
    camp = await campaign(group_size=4)
    leader, friend = await shopper(), await shopper()
    lead_order, team = await open_team(leader, camp, cache)
    await pay(lead_order, cache)

    assert await code_of(place(leader, GROUP_BUY_JOIN, team.id, cache)) == "LIMIT_REACHED"
    joined = await place(friend, GROUP_BUY_JOIN, team.id, cache)
    assert await code_of(place(friend, GROUP_BUY_JOIN, team.id, cache)) == "LIMIT_REACHED"
    await pay(joined, cache)
    assert await code_of(place(friend, GROUP_BUY_JOIN, team.id, cache)) == "LIMIT_REACHED"
    assert await code_of(place(friend, GROUP_BUY_OPEN, camp.id, cache)) == "LIMIT_REACHED"
    assert await GroupBuyTeamMember.filter(team_id=team.id, member_id=friend.id).count() == 1
    assert (await GroupBuyTeam.get(id=team.id)).member_count == 2


async def test_the_same_member_joining_twice_at_once_gets_one_seat(cache: Cache) -> None:
    camp = await campaign(group_size=5)
    leader, friend = await shopper(), await shopper()
    lead_order, team = await open_team(leader, camp, cache)
    await pay(lead_order, cache)

    results = await asyncio.gather(
        *(place(friend, GROUP_BUY_JOIN, team.id, cache) for _ in range(4)), return_exceptions=True
    )

    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, BusinessError)]
    assert len(placed) == 1 and len(refused) == 3, results
    assert {e.code for e in refused} == {"LIMIT_REACHED"}
    assert (await GroupBuyTeam.get(id=team.id)).member_count == 2


async def test_concurrent_joins_never_exceed_the_team_size(cache: Cache) -> None:
    camp = await campaign(group_size=4)
    leader = await shopper()
    lead_order, team = await open_team(leader, camp, cache)
    await pay(lead_order, cache)
    friends = [await shopper() for _ in range(12)]

    results = await asyncio.gather(
        *(place(f, GROUP_BUY_JOIN, team.id, cache) for f in friends), return_exceptions=True
    )

    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, BusinessError)]
    assert len(placed) == 3 and len(refused) == 9, results
    assert {e.code for e in refused} == {"SOLD_OUT"}
    assert (await GroupBuyTeam.get(id=team.id)).member_count == 4
    assert await GroupBuyTeamMember.filter(team_id=team.id).count() == 4


async def test_an_unpaid_seat_is_given_back_when_its_order_closes(cache: Cache) -> None:
    camp = await campaign(group_size=2)
    leader, slow, next_one = await shopper(), await shopper(), await shopper()
    lead_order, team = await open_team(leader, camp, cache)
    await pay(lead_order, cache)
    held = await place(slow, GROUP_BUY_JOIN, team.id, cache)
    assert await code_of(place(next_one, GROUP_BUY_JOIN, team.id, cache)) == "SOLD_OUT"

    await orders.cancel_unpaid(slow.id, held.id, "不想要了", cache)

    assert (await GroupBuyTeam.get(id=team.id)).member_count == 1
    assert not await GroupBuyTeamMember.exists(team_id=team.id, member_id=slow.id)
    joined = await place(next_one, GROUP_BUY_JOIN, team.id, cache)
    await pay(joined, cache)
    assert (await GroupBuyTeam.get(id=team.id)).status == "COMPLETED"
    assert await pushed(lead_order) and await pushed(joined)


async def test_a_team_whose_leader_never_pays_fails(cache: Cache) -> None:
    camp = await campaign()
    leader = await shopper()
    lead_order, team = await open_team(leader, camp, cache)

    assert await orders.end_unpaid(lead_order.id, status.CLOSED, "超时未支付，订单已关闭", cache)

    assert (await GroupBuyTeam.get(id=team.id)).status == "FAILED"
    again, _ = await open_team(leader, camp, cache)  # the leader may open a new one
    assert again.id != lead_order.id


async def test_a_team_incomplete_at_its_deadline_fails_and_refunds_every_paid_member(cache: Cache) -> None:
    camp = await campaign(group_size=3, ttl_minutes=30)
    leader, paid_friend, unpaid_friend = await shopper(), await shopper(), await shopper()
    lead_order, team = await open_team(leader, camp, cache)
    await pay(lead_order, cache)
    paid_order = await place(paid_friend, GROUP_BUY_JOIN, team.id, cache)
    await pay(paid_order, cache)
    unpaid_order = await place(unpaid_friend, GROUP_BUY_JOIN, team.id, cache)
    assert (await Member.get(id=leader.id)).points_balance > 0  # earned by paying

    with pytest.raises(RuntimeError):
        await group_buy.expire_team({"team_id": team.id}, handler_context(cache, datetime.now(UTC)))
    assert (await GroupBuyTeam.get(id=team.id)).status == "OPEN"

    at_deadline = handler_context(cache, team.expires_at + timedelta(seconds=1))
    await group_buy.expire_team({"team_id": team.id}, at_deadline)
    await group_buy.expire_team({"team_id": team.id}, at_deadline)  # a redelivery changes nothing

    assert (await GroupBuyTeam.get(id=team.id)).status == "FAILED"
    for order, who in ((lead_order, leader), (paid_order, paid_friend)):
        refund = await Refund.get(order_id=order.id)
        assert refund.amount_fen == order.payable_fen and refund.out_refund_no == f"GB{order.id:010d}"
        assert await OutboxMessage.exists(topic="wechatpay.refund", dedupe_key=f"refund:{refund.id}")
        assert (await Payment.get(order_id=order.id)).status == "REFUNDING"
        closed = await Order.get(id=order.id)
        assert closed.status == status.CLOSED and not await pushed(order)
        member = await Member.get(id=who.id)
        assert member.points_balance == 0 and member.growth_value == 0
        ledger = sum(e.delta for e in await PointsLedger.filter(member_id=who.id))
        assert ledger == member.points_balance
    assert (await Order.get(id=unpaid_order.id)).status == status.CLOSED
    assert await GroupBuyTeamMember.filter(team_id=team.id, status="REFUNDED").count() == 2
    assert not await GroupBuyTeamMember.exists(order_id=unpaid_order.id)


async def test_a_payment_landing_after_the_team_failed_is_refunded_not_shipped(cache: Cache) -> None:
    camp = await campaign(group_size=3)
    leader, late = await shopper(), await shopper()
    lead_order, team = await open_team(leader, camp, cache)
    await pay(lead_order, cache)
    late_order = await place(late, GROUP_BUY_JOIN, team.id, cache)

    # The deadline job failed the team but has not closed the unpaid order yet when its payment lands.
    assert await group_buy.fail_team(team.id, team.expires_at) == [late_order.id]
    await pay(late_order, cache)

    assert (await Order.get(id=late_order.id)).status == status.CLOSED
    assert (await Refund.get(order_id=late_order.id)).amount_fen == late_order.payable_fen
    assert not await pushed(late_order)


async def test_a_team_that_filled_and_paid_completes_at_its_deadline_instead_of_failing(cache: Cache) -> None:
    camp = await campaign(group_size=2)
    leader, friend = await shopper(), await shopper()
    lead_order, team = await open_team(leader, camp, cache)
    await pay(lead_order, cache)
    friend_order = await place(friend, GROUP_BUY_JOIN, team.id, cache)
    await pay(friend_order, cache)
    # Simulate a completion that was missed (a crash between the payment and the status change).
    await GroupBuyTeam.filter(id=team.id).update(status="OPEN")

    await group_buy.expire_team({"team_id": team.id}, handler_context(cache, team.expires_at))

    assert (await GroupBuyTeam.get(id=team.id)).status == "COMPLETED"
    assert not await Refund.exists(order_id=friend_order.id)
