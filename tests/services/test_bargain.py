"""Bargain rules: exact cuts to the floor (property test), one help each, buying, expiry."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bff.cache import Cache, create_cache
from bff.context import Services
from bff.models import order as status
from bff.models.marketing import BargainCampaign, BargainHelp, BargainSession
from bff.models.member import Address, Member, MemberLevel
from bff.models.order import Order, OrderLine
from bff.models.outbox import OutboxMessage
from bff.services import bargain, orders, payments
from bff.services.campaign_checkout import BARGAIN, CampaignRef
from bff.services.checkout import CheckoutRequest
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext
from bff.settings import Settings, load_settings
from tests.support.factories import make_product

SETTINGS: Settings = replace(load_settings(), cache_prefix=f"bff-bg-{uuid.uuid4().hex[:8]}:")


# --- the cut plan ---------------------------------------------------------------------------------


def cuts_until_floor(total: int, helpers_needed: int, rng: random.Random) -> list[int]:
    """Help after help until the price reaches the floor (or every helper needed has helped)."""
    cuts: list[int] = []
    remaining = total
    while remaining > 0 and len(cuts) < helpers_needed:
        cut = bargain.plan_cut(remaining, helpers_needed - len(cuts), rng)
        assert 1 <= cut <= remaining
        cuts.append(cut)
        remaining -= cut
    return cuts


@given(
    total=st.integers(min_value=1, max_value=10_000_000),
    helpers_needed=st.integers(min_value=1, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_the_cuts_reach_the_floor_exactly_within_the_helpers_needed(
    total: int, helpers_needed: int, seed: int
) -> None:
    cuts = cuts_until_floor(total, helpers_needed, random.Random(seed))
    assert sum(cuts) == total  # the price lands on the floor to the fen
    assert len(cuts) <= helpers_needed
    if total >= helpers_needed:
        assert len(cuts) == helpers_needed  # every helper needed cuts at least 1 fen


@given(
    remaining=st.integers(min_value=0, max_value=1_000_000),
    helpers_left=st.integers(min_value=1, max_value=100),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_cut_leaves_at_least_a_fen_for_each_helper_still_needed(
    remaining: int, helpers_left: int, seed: int
) -> None:
    cut = bargain.plan_cut(remaining, helpers_left, random.Random(seed))
    assert 0 <= cut <= remaining
    if remaining >= helpers_left:
        assert remaining - cut >= helpers_left - 1
        assert cut >= 1


# --- sessions -------------------------------------------------------------------------------------


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
    member = await Member.create(openid=f"o_bg{tag}", level_id=level.id, nickname=f"好友{tag[:4]}")
    address = await Address.create(
        member_id=member.id, name="李四", phone="13900000000", province="浙江省", city="杭州市",
        district="西湖区", detail="文三路 1 号",
    )  # fmt: skip
    return Shopper(member.id, address.id)


async def campaign(
    start: int = 10_000, floor: int = 1_000, helpers: int = 5, ttl_minutes: int = 60
) -> BargainCampaign:
    _, skus = await make_product([(start, 50)])
    now = datetime.now(UTC)
    return await BargainCampaign.create(
        title="测试砍价",
        product_id=skus[0].product_id,
        sku_id=skus[0].id,
        start_price_fen=start,
        floor_price_fen=floor,
        helpers_needed=helpers,
        session_ttl_minutes=ttl_minutes,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=3),
    )


async def code_of(call: Any) -> str:
    with pytest.raises(BusinessError) as raised:
        await call
    return raised.value.code


async def buy(who: Shopper, session_id: int, cache: Cache) -> Order:
    request = CheckoutRequest(
        member_id=who.id,
        source="BUY_NOW",
        address_id=who.address_id,
        campaign=CampaignRef(BARGAIN, session_id),
    )
    return await orders.place_order(request, SETTINGS, cache, None)


async def pay(order: Order, cache: Cache) -> None:
    resource = {
        "out_trade_no": order.order_no,
        "transaction_id": f"42{uuid.uuid4().int % 10**26:026d}",
        "trade_state": "SUCCESS",
        "amount": {"total": order.payable_fen},
        "success_time": datetime.now(UTC).isoformat(),
    }
    assert (await payments.record_payment(resource, cache)).result == "paid"


def handler_context(cache: Cache, now: datetime) -> HandlerContext:
    services = cast(Services, SimpleNamespace(settings=SETTINGS, cache=cache))
    return HandlerContext(services=services, message_id=0, attempt=1, now=now)


async def test_friends_cut_a_session_exactly_to_the_floor(seeded: None) -> None:
    camp = await campaign(start=9_999, floor=1_234, helpers=4)
    owner = await shopper()
    session = await bargain.start(owner.id, camp.id)
    assert (session.status, session.current_price_fen) == ("OPEN", 9_999)
    assert (await bargain.start(owner.id, camp.id)).id == session.id  # one active session per campaign
    assert await OutboxMessage.exists(dedupe_key=f"bargain-expire:{session.id}", run_at=session.expires_at)

    assert await code_of(bargain.help_cut(owner.id, session.id)) == "INVALID_INPUT"
    helpers = [await shopper() for _ in range(4)]
    first = await bargain.help_cut(helpers[0].id, session.id)
    assert await code_of(bargain.help_cut(helpers[0].id, session.id)) == "LIMIT_REACHED"
    cuts = [first.cut_fen] + [(await bargain.help_cut(h.id, session.id)).cut_fen for h in helpers[1:]]

    done = await BargainSession.get(id=session.id)
    assert (done.status, done.current_price_fen, done.helpers_count) == ("FLOOR", 1_234, 4)
    assert sum(cuts) == 9_999 - 1_234 and all(c >= 1 for c in cuts)
    assert sum(h.cut_fen for h in await BargainHelp.filter(session_id=session.id)) == 9_999 - 1_234
    assert await code_of(bargain.help_cut((await shopper()).id, session.id)) == "INVALID_STATE"


async def test_concurrent_helpers_never_cut_below_the_floor(seeded: None) -> None:
    camp = await campaign(start=50_000, floor=10_000, helpers=5)
    owner = await shopper()
    session = await bargain.start(owner.id, camp.id)
    friends = [await shopper() for _ in range(9)]

    results = await asyncio.gather(
        *(bargain.help_cut(f.id, session.id) for f in friends), return_exceptions=True
    )

    helped = [r for r in results if isinstance(r, bargain.Help)]
    refused = [r for r in results if isinstance(r, BusinessError)]
    assert len(helped) == 5 and len(refused) == 4, results
    assert {e.code for e in refused} == {"INVALID_STATE"}
    done = await BargainSession.get(id=session.id)
    assert (done.status, done.current_price_fen, done.helpers_count) == ("FLOOR", 10_000, 5)
    assert sum(h.cut_fen for h in helped) == 40_000


async def test_buying_at_the_current_price_and_paying_marks_the_session_bought(
    seeded: None, cache: Cache
) -> None:
    camp = await campaign(start=20_000, floor=5_000, helpers=3)
    owner, friend, late = await shopper(), await shopper(), await shopper()
    session = await bargain.start(owner.id, camp.id)
    await bargain.help_cut(friend.id, session.id)
    price = (await BargainSession.get(id=session.id)).current_price_fen
    assert await code_of(buy(friend, session.id, cache)) == "NOT_FOUND"  # only the owner buys

    order = await buy(owner, session.id, cache)
    line = await OrderLine.get(order_id=order.id)
    assert (line.unit_price_fen, line.quantity) == (price, 1)
    assert await code_of(bargain.help_cut(late.id, session.id)) == "INVALID_STATE"  # ordered: frozen
    assert await code_of(buy(owner, session.id, cache)) == "INVALID_STATE"  # one order at a time

    await orders.cancel_unpaid(owner.id, order.id, "", cache)
    reopened = await BargainSession.get(id=session.id)
    assert (reopened.status, reopened.order_id) == ("OPEN", None)
    await bargain.help_cut(late.id, session.id)  # helping goes on after the order closed
    order = await buy(owner, session.id, cache)
    await pay(order, cache)

    bought = await BargainSession.get(id=session.id)
    assert (bought.status, bought.order_id) == ("BOUGHT", order.id)
    assert await OutboxMessage.exists(topic="erp.push_order", dedupe_key=f"erp-push:{order.id}")
    assert await code_of(buy(owner, session.id, cache)) == "INVALID_STATE"
    assert (await bargain.start(owner.id, camp.id)).id != session.id  # bought: a new one may start


async def test_a_cut_between_quote_and_order_is_price_changed(seeded: None, cache: Cache) -> None:
    camp = await campaign(helpers=5)
    owner, friend = await shopper(), await shopper()
    session = await bargain.start(owner.id, camp.id)
    handler = bargain.BargainHandler()
    line = await handler.quote(owner.id, CampaignRef(BARGAIN, session.id), ())
    await bargain.help_cut(friend.id, session.id)
    order = await Order.create(order_no=f"B{uuid.uuid4().hex[:20]}", member_id=owner.id, payable_fen=1)

    with pytest.raises(BusinessError) as raised:
        await handler.hold(order, CampaignRef(BARGAIN, session.id), line)

    assert raised.value.code == "PRICE_CHANGED"
    assert (await BargainSession.get(id=session.id)).order_id is None


async def test_an_expired_session_can_be_neither_helped_nor_bought(seeded: None, cache: Cache) -> None:
    camp = await campaign(helpers=3)
    owner, friend = await shopper(), await shopper()
    session = await bargain.start(owner.id, camp.id)
    later = session.expires_at + timedelta(seconds=1)

    assert await code_of(bargain.help_cut(friend.id, session.id, now=later)) == "INVALID_STATE"
    with pytest.raises(RuntimeError):
        await bargain.expire_session({"session_id": session.id}, handler_context(cache, datetime.now(UTC)))
    await BargainSession.filter(id=session.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await code_of(buy(owner, session.id, cache)) == "INVALID_STATE"

    await bargain.expire_session({"session_id": session.id}, handler_context(cache, later))

    assert (await BargainSession.get(id=session.id)).status == "EXPIRED"
    assert await code_of(bargain.help_cut(friend.id, session.id)) == "INVALID_STATE"
    assert (await bargain.start(owner.id, camp.id)).id != session.id


async def test_an_order_outliving_its_session_decides_it(seeded: None, cache: Cache) -> None:
    camp = await campaign(helpers=2)
    owner = await shopper()
    session = await bargain.start(owner.id, camp.id)
    order = await buy(owner, session.id, cache)
    await BargainSession.filter(id=session.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    # The deadline leaves a session with an order alone: its payment or its close settles it.
    await bargain.expire_session({"session_id": session.id}, handler_context(cache, datetime.now(UTC)))
    assert (await BargainSession.get(id=session.id)).status == "OPEN"
    assert await orders.end_unpaid(order.id, status.CLOSED, "超时未支付，订单已关闭", cache)
    assert (await BargainSession.get(id=session.id)).status == "EXPIRED"
