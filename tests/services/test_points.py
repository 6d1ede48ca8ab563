"""Points: grants with expiry, oldest-first spends, the expiry job, levels, sign-in; concurrency and a
property test that the balance always equals the ledger (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bff.context import Services
from bff.models.member import Member, MemberLevel, PointsLedger, SignIn
from bff.models.outbox import OutboxMessage
from bff.runtime import build_services
from bff.services import loyalty, outbox, points
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext
from bff.settings import load_settings

START = datetime(2031, 3, 1, 4, 0, tzinfo=UTC)  # far from the session's real grants


async def new_member(points_balance: int = 0) -> Member:
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    return await Member.create(
        openid=f"sim_{uuid.uuid4().hex[:12]}", level_id=level.id, points_balance=points_balance
    )


async def invariants(member_id: int) -> int:
    """Balance = ledger sum = what the grants still hold (for members with no untracked balance)."""
    balance = (await Member.get(id=member_id)).points_balance
    rows = await PointsLedger.filter(member_id=member_id)
    assert balance >= 0
    assert balance == sum(r.delta for r in rows)
    assert balance == sum(r.remaining for r in rows)
    assert all(r.remaining >= 0 and (r.remaining == 0 or r.delta > 0) for r in rows)
    return balance


def test_points_expire_at_the_end_of_the_following_shop_year() -> None:
    assert points.expiry_for(datetime(2025, 6, 1, tzinfo=UTC)) == datetime(2026, 12, 31, 16, tzinfo=UTC)
    # 2025-12-31 17:00 UTC is already 2026 in Beijing: those points last until the end of 2027.
    assert points.expiry_for(datetime(2025, 12, 31, 17, tzinfo=UTC)) == datetime(2027, 12, 31, 16, tzinfo=UTC)


async def test_an_earning_is_a_grant_and_schedules_its_expiry_run(seeded: str) -> None:
    member = await new_member()
    assert await points.change_points(member.id, 120, "测试", now=START) == 120
    grant = await PointsLedger.get(member_id=member.id)
    expires = points.expiry_for(START)
    assert (grant.delta, grant.remaining, grant.balance_after, grant.expires_at) == (120, 120, 120, expires)
    await points.change_points(member.id, 5, "测试", now=START + timedelta(days=30))
    runs = await OutboxMessage.filter(topic=points.EXPIRE_TOPIC, run_at=expires)
    assert len(runs) == 1 and runs[0].status == "PENDING"  # one run per expiry instant, however many grants
    assert points.EXPIRE_TOPIC in outbox.registered_topics()


async def test_spends_take_untracked_balance_then_the_oldest_grants(seeded: str) -> None:
    member = await new_member(points_balance=50)  # balance from before grants were tracked
    await PointsLedger.create(member_id=member.id, delta=50, reason="旧积分", balance_after=50)
    await points.change_points(member.id, 100, "2031", now=START)
    await points.change_points(member.id, 100, "2032", now=START + timedelta(days=365))
    await points.change_points(member.id, -120, "抵扣")
    grants = await PointsLedger.filter(member_id=member.id, delta__gt=0).order_by("id")
    assert [g.remaining for g in grants] == [0, 30, 100]  # the untracked 50 first, then 70 of 2031's
    with pytest.raises(BusinessError) as refused:
        await points.change_points(member.id, -131, "抵扣")
    assert refused.value.code == "INSUFFICIENT_POINTS"
    assert (await Member.get(id=member.id)).points_balance == 130


async def test_expiry_takes_what_is_left_of_due_grants_once(seeded: str) -> None:
    member = await new_member()
    await points.change_points(member.id, 100, "2031", now=START)
    await points.change_points(member.id, 40, "2032", now=START + timedelta(days=365))
    await points.change_points(member.id, -30, "抵扣")
    boundary = points.expiry_for(START)
    assert await points.expire_points(boundary - timedelta(seconds=1), member_ids=[member.id]) == 0
    assert await points.expire_points(boundary, member_ids=[member.id]) == 70
    assert await points.expire_points(boundary, member_ids=[member.id]) == 0  # idempotent
    last = await PointsLedger.filter(member_id=member.id).order_by("-id").first()
    assert last is not None and (last.delta, last.reason, last.balance_after) == (-70, "积分过期", 40)
    assert await invariants(member.id) == 40
    assert await points.expiring_soon(member.id, boundary) == (
        40,
        points.expiry_for(START + timedelta(days=365)),
    )


async def test_concurrent_spends_never_overdraw(seeded: str) -> None:
    member = await new_member()
    await points.change_points(member.id, 60, "a", now=START)
    await points.change_points(member.id, 40, "b", now=START + timedelta(days=400))

    async def spend() -> bool:
        try:
            await points.change_points(member.id, -7, "抵扣")
        except BusinessError as exc:
            assert exc.code == "INSUFFICIENT_POINTS"
            return False
        return True

    results = await asyncio.gather(*(spend() for _ in range(25)))
    assert sum(results) == 100 // 7
    assert await invariants(member.id) == 100 % 7


async def test_spends_racing_the_expiry_job_keep_the_ledger_exact(seeded: str) -> None:
    member = await new_member()
    for i in range(5):
        await points.change_points(member.id, 20, f"g{i}", now=START + timedelta(days=200 * i))

    async def spend() -> None:
        try:
            await points.change_points(member.id, -9, "抵扣")
        except BusinessError:
            pass

    boundary = points.expiry_for(START + timedelta(days=400))
    await asyncio.gather(
        *(spend() for _ in range(8)), points.expire_points(boundary, member_ids=[member.id]), spend()
    )
    await invariants(member.id)
    due = await PointsLedger.filter(member_id=member.id, expires_at__lte=boundary, remaining__gt=0)
    assert due == []


ops = st.lists(
    st.tuples(st.sampled_from(["earn", "spend", "expire"]), st.integers(1, 400), st.integers(0, 300)),
    max_size=14,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops)
async def test_random_sequences_match_a_fifo_model(seeded: str, ops: list[tuple[str, int, int]]) -> None:
    member = await new_member()
    expiries: list[datetime] = []  # the model: one entry per grant, in creation order
    left: list[int] = []
    clock = START
    for op, amount, advance in ops:
        clock += timedelta(days=advance)
        if op == "earn":
            await points.change_points(member.id, amount, "earn", now=clock)
            expiries.append(points.expiry_for(clock))
            left.append(amount)
        elif op == "spend" and amount > sum(left):
            with pytest.raises(BusinessError):
                await points.change_points(member.id, -amount, "spend")
        elif op == "spend":
            await points.change_points(member.id, -amount, "spend")
            need = amount
            for i in sorted(range(len(left)), key=lambda i: (expiries[i], i)):  # oldest first
                take = min(need, left[i])
                left[i] -= take
                need -= take
        else:
            await points.expire_points(clock, member_ids=[member.id])
            left = [0 if expires <= clock else n for expires, n in zip(expiries, left, strict=True)]
        assert await invariants(member.id) == sum(left)
        stored = await PointsLedger.filter(member_id=member.id, delta__gt=0).order_by("id")
        assert [g.remaining for g in stored] == left


async def test_levels_follow_growth_both_ways(seeded: str) -> None:
    levels = await MemberLevel.all().order_by("rank")
    member = await new_member()
    await points.change_growth(member.id, levels[2].min_growth)
    assert (await Member.get(id=member.id)).level_id == levels[2].id
    await points.change_growth(member.id, -1)  # a refund takes growth back: one below the threshold
    assert (await Member.get(id=member.id)).level_id == levels[1].id
    await points.change_growth(member.id, -levels[2].min_growth)  # never below the entry level
    assert (await Member.get(id=member.id)).level_id == levels[0].id


async def test_sign_in_once_a_shop_day_with_a_weekly_streak_bonus(seeded: str) -> None:
    member = await new_member()
    day = datetime(2031, 5, 1, 15, 59, tzinfo=UTC)  # 23:59 in Beijing
    earned = [(await loyalty.sign_in(member.id, now=day + timedelta(days=i)))[0].points for i in range(8)]
    assert earned == [5, 5, 5, 5, 5, 5, 25, 5]
    midnight = day + timedelta(days=7, minutes=1)  # 00:00 the next shop day, a minute later
    row, _ = await loyalty.sign_in(member.id, now=midnight)
    assert row.streak == 9
    with pytest.raises(BusinessError) as again:
        await loyalty.sign_in(member.id, now=midnight + timedelta(hours=12))
    assert again.value.code == "LIMIT_REACHED"
    state = await loyalty.sign_in_state(member.id, now=midnight)
    assert (state.signed_today, state.streak, state.today_points, state.next_points) == (True, 9, 5, 5)
    row, _ = await loyalty.sign_in(member.id, now=midnight + timedelta(days=2))  # a day missed
    assert row.streak == 1
    assert await invariants(member.id) == sum(earned) + 5 + 5


async def test_concurrent_sign_ins_count_once(seeded: str) -> None:
    member = await new_member()
    day = datetime(2031, 6, 1, 2, tzinfo=UTC)

    async def attempt() -> str:
        try:
            await loyalty.sign_in(member.id, now=day)
        except BusinessError as exc:
            return exc.code
        return "OK"

    outcomes = await asyncio.gather(*(attempt() for _ in range(10)))
    assert outcomes.count("OK") == 1 and set(outcomes) == {"OK", "LIMIT_REACHED"}
    assert await SignIn.filter(member_id=member.id).count() == 1
    assert await invariants(member.id) == 5


@pytest.fixture(scope="module")
async def services(database_url: str) -> AsyncIterator[Services]:
    # The expiry handler uses no upstream client; these services only carry the settings.
    settings = replace(
        load_settings(), database_url=database_url, redis_url=None, wechat_api_base_url="http://127.0.0.1:9"
    )
    async with AsyncExitStack() as stack:
        yield await build_services(settings, stack)


async def test_the_outbox_expiry_run_continues_in_bounded_steps(
    seeded: str, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler is called directly, at a far-future clock: it expires older grants of other tests
    # too, but leaves the scheduled messages of real expiry dates to the tests that run them.
    earned_at = datetime(2040, 7, 1, tzinfo=UTC)
    members = [await new_member() for _ in range(3)]
    for member in members:
        await points.change_points(member.id, 30, "2040", now=earned_at)
    boundary = points.expiry_for(earned_at)
    monkeypatch.setattr(points, "EXPIRE_MEMBERS_PER_RUN", 1)
    message_id = 10**12 + uuid.uuid4().int % 10**9  # no real message has it
    runs = 0
    while True:
        runs += 1
        ctx = HandlerContext(services=services, message_id=message_id + runs, attempt=1, now=boundary)
        await points.run_expiry({}, ctx)
        follow_up = await OutboxMessage.get_or_none(dedupe_key=f"points-expire:more:{message_id + runs}")
        if follow_up is None:
            break
        assert follow_up.topic == points.EXPIRE_TOPIC and follow_up.run_at == boundary
        await OutboxMessage.filter(id=follow_up.id).update(status="DONE")  # "ran" as the next step
    assert runs >= 3  # one member per run
    for member in members:
        assert await invariants(member.id) == 0
    assert not await PointsLedger.filter(remaining__gt=0, expires_at__lte=boundary).exists()
