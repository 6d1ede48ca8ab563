"""Churn scoring: the pure RFM scoring on hand-made numbers, the daily job on a fixture of members and
orders (SQLite, or PostgreSQL with DATABASE_URL), the weekly care flow and its outbox handlers.

The job only sees purchases up to the end of its `today`; the fixture's orders are all in 2020, before
anything the seed or other tests write, so a run on TODAY scores exactly this module's members.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bff.context import Services
from bff.models.analytics import VisitorDay
from bff.models.churn import CareFlow, MemberScore
from bff.models.marketing import CouponTemplate, MemberCoupon
from bff.models.member import Member, MemberLevel
from bff.models.order import CLOSED, COMPLETED, PENDING_PAYMENT, Order
from bff.models.outbox import OutboxMessage
from bff.services import churn, coupon_claims
from bff.services.churn_scoring import MemberFacts, median_gap, quintile_scores, score_members, segment
from bff.services.outbox import HandlerContext
from bff.services.shop_time import SHOP_TZ
from bff.settings import load_settings
from integrations.crm import CareTaskResult
from integrations.errors import UpstreamError, UpstreamUnavailable

TODAY = date(2020, 6, 1)
NOW = datetime(2020, 6, 1, 10, 0, tzinfo=SHOP_TZ)


# --- pure scoring ----------------------------------------------------------------------------------


def test_quintiles_rank_values_and_ties_share_a_score() -> None:
    assert quintile_scores([10, 20, 30, 40, 50]) == [1, 2, 3, 4, 5]
    assert quintile_scores([50, 10, 30, 40, 20]) == [5, 1, 3, 4, 2]
    assert quintile_scores([7]) == [3]  # alone: neither best nor worst
    assert quintile_scores([4, 4, 4]) == [3, 3, 3]
    assert quintile_scores([1, 2]) == [1, 5]
    assert quintile_scores([0, 0, 0, 0, 9]) == [1, 1, 1, 1, 5]  # a tie at the bottom stays there
    assert quintile_scores([1, 2, 2, 2, 2, 2, 3, 9, 9, 9]) == [1, 2, 2, 2, 2, 2, 4, 5, 5, 5]
    ten = quintile_scores(list(range(10)))
    assert ten == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_segments_follow_the_scores() -> None:
    assert segment(5, 5, 5) == "champions"
    assert segment(3, 4, 2) == "loyal"
    assert segment(5, 1, 1) == "new"
    assert segment(1, 4, 2) == "at_risk"
    assert segment(2, 1, 5) == "at_risk"
    assert segment(1, 1, 1) == "hibernating"
    assert segment(3, 3, 3) == "others"


def test_the_usual_gap_is_the_median_between_distinct_purchase_days() -> None:
    d = date(2031, 1, 1)
    assert median_gap([d]) is None
    assert median_gap([d, d]) is None  # two orders on one day are one visit
    assert median_gap([d, d + timedelta(days=10), d + timedelta(days=40)]) == 20
    assert median_gap([d + timedelta(days=x) for x in (0, 5, 5, 15, 45)]) == 10  # gaps 5, 10, 30


def facts(member_id: int, recency: int, frequency: int, monetary: int, **activity: int) -> MemberFacts:
    return MemberFacts(member_id, recency, frequency, monetary, **activity)


def test_only_high_value_members_are_flagged_with_readable_reasons() -> None:
    population = [
        facts(1, 62, 8, 900_000),  # silent for three times its usual gap
        facts(2, 10, 12, 800_000, recent_activity=1, prior_activity=6, active_last_21=1),
        facts(3, 30, 4, 700_000, recent_activity=0, prior_activity=4, active_last_21=0),
        facts(4, 70, 5, 600_000),  # slow buyer: usual gap 60 days
        facts(5, 3, 20, 500_000, recent_activity=9, prior_activity=10, active_last_21=6),
        *(facts(100 + i, 100, 1, 1_000 + i) for i in range(20)),  # low value, long gone
    ]
    day = date(2031, 6, 1)
    history = {
        1: [day - timedelta(days=62 + 20 * k) for k in range(8)],
        4: [day - timedelta(days=70 + 60 * k) for k in range(5)],
    }
    scores = {s.member_id: s for s in score_members(population, history)}

    assert {m for m, s in scores.items() if s.high_value} == {1, 2, 3, 4, 5}
    assert scores[1].reasons == ("NO_PURCHASE_IN_62_DAYS (usual gap 20 days)",)
    assert scores[2].reasons == ("ACTIVITY_DROP (1 active days in the last 30, 6 in the 30 before)",)
    assert scores[3].reasons == (
        "ACTIVITY_DROP (0 active days in the last 30, 4 in the 30 before)",
        "NO_VISIT_IN_21_DAYS (4 active days in days 31-60)",
    )
    assert scores[4].reasons == () and not scores[4].at_risk
    assert scores[5].reasons == () and not scores[5].at_risk
    assert [m for m, s in scores.items() if s.at_risk] == [1, 2, 3]
    # Low-value members are not flagged, however long they have been gone.
    assert all(not s.at_risk and s.reasons == () for m, s in scores.items() if m >= 100)
    assert (scores[5].r_score, scores[5].f_score, scores[5].m_score) == (5, 5, 5)
    assert scores[5].segment == "champions"
    assert scores[100].segment == "hibernating"


def test_without_a_known_gap_silence_counts_from_45_days() -> None:
    lone = score_members([facts(1, 46, 1, 10_000)])
    assert lone[0].high_value and lone[0].reasons == ("NO_PURCHASE_IN_46_DAYS (one purchase day only)",)
    assert score_members([facts(1, 45, 1, 10_000)])[0].reasons == ()
    assert score_members([facts(1, 400, 0, 0)])[0].high_value is False  # nothing spent: never high value
    assert score_members([]) == []


def test_an_activity_drop_needs_enough_prior_activity() -> None:
    few = score_members([facts(1, 5, 3, 10_000, recent_activity=0, prior_activity=3, active_last_21=0)])
    assert few[0].reasons == ("NO_VISIT_IN_21_DAYS (3 active days in days 31-60)",)
    half = score_members([facts(1, 5, 3, 10_000, recent_activity=2, prior_activity=4, active_last_21=1)])
    assert half[0].reasons == ()


# --- the daily job on the database -----------------------------------------------------------------


@dataclass
class Population:
    quiet: int  # NO_PURCHASE
    dropping: int  # ACTIVITY_DROP
    gone: int  # ACTIVITY_DROP + NO_VISIT
    regular: int  # high value, buying every week
    slow: int  # high value, buying every 60 days
    small: int  # low value and long gone
    fillers: list[int] = field(default_factory=list)

    @property
    def everyone(self) -> list[int]:
        return [self.quiet, self.dropping, self.gone, self.regular, self.slow, self.small, *self.fillers]


def at(days_back: int, hour: int = 9) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_back), datetime.min.time(), SHOP_TZ) + timedelta(
        hours=hour
    )


async def new_member() -> int:
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    return (await Member.create(openid=f"churn_{uuid.uuid4().hex[:12]}", level_id=level.id)).id


def order(member_id: int, days_back: int, payable: int, **values: Any) -> Order:
    return Order(
        order_no=f"CH{uuid.uuid4().hex[:20]}",
        member_id=member_id,
        status=values.pop("status", COMPLETED),
        payable_fen=payable,
        paid_at=values.pop("paid_at", at(days_back)),
        **values,
    )


def visits(member_id: int, *days_back: int) -> list[VisitorDay]:
    return [
        VisitorDay(
            day=TODAY - timedelta(days=d), visitor_key=f"m:{member_id}", member_id=member_id, page_views=3
        )
        for d in days_back
    ]


@pytest.fixture(scope="module")
async def population(seeded: str) -> AsyncIterator[Population]:
    p = Population(*[await new_member() for _ in range(6)])
    p.fillers = [await new_member() for _ in range(15)]
    orders = [
        *(order(p.quiet, 62 + 20 * k, 3_000_000) for k in range(8)),
        order(p.quiet, 82, 5_000_000, status=CLOSED, refunded_fen=5_000_000),  # refunded in full
        order(p.quiet, 5, 9_000_000, status=CLOSED),
        order(p.quiet, 1, 9_000_000, status=PENDING_PAYMENT, paid_at=None),
        *(order(p.dropping, 15 * k, 2_000_000) for k in range(1, 14)),
        *(order(p.gone, 30 * k, 5_000_000) for k in range(1, 6)),
        *(order(p.regular, 7 * k, 1_000_000) for k in range(0, 21)),
        order(p.regular, -1, 1_000_000),  # after TODAY: not seen by TODAY's run
        *(order(p.slow, 70 + 60 * k, 4_000_000) for k in range(5)),
        order(p.small, 100, 50),
        *(order(f, 3, 100 + i) for i, f in enumerate(p.fillers)),
    ]
    # One refund: monetary is what was paid minus what came back.
    orders[1].refunded_fen = 1_000_000
    await Order.bulk_create(orders)
    await VisitorDay.bulk_create(
        [
            *visits(p.dropping, 45, 50, 52, 54, 56, 58, 15),  # 45 and 15 are also purchase days
            *visits(p.gone, 40, 35, 31),
            *visits(p.regular, 1, 2, 3, 35),
            *visits(p.small, 40, 41, 42, 43),
        ]
    )
    yield p
    for member_id in p.everyone:
        await OutboxMessage.filter(dedupe_key__startswith=f"churn.care:{member_id}:").delete()


async def scores_of(p: Population) -> dict[int, MemberScore]:
    return {s.member_id: s for s in await MemberScore.filter(member_id__in=p.everyone)}


async def flows_of(member_id: int) -> list[CareFlow]:
    return await CareFlow.filter(member_id=member_id).order_by("started_on")


async def test_the_job_scores_every_member_and_flags_the_drifting_high_value_ones(
    population: Population,
) -> None:
    p = population
    summary = await churn.run_scoring(TODAY, now=NOW)

    assert summary.scored >= len(p.everyone) and summary.at_risk >= 3 and summary.care_coupon_configured
    s = await scores_of(p)
    assert set(s) == set(p.everyone)
    quiet = s[p.quiet]
    assert (quiet.scored_on, quiet.recency_days, quiet.frequency, quiet.monetary_fen) == (
        TODAY,
        62,
        8,
        8 * 3_000_000 - 1_000_000,
    )
    assert quiet.reasons == ["NO_PURCHASE_IN_62_DAYS (usual gap 20 days)"]
    dropping = s[p.dropping]
    assert (dropping.recent_activity, dropping.prior_activity) == (1, 7)
    assert dropping.reasons == ["ACTIVITY_DROP (1 active days in the last 30, 7 in the 30 before)"]
    assert s[p.gone].reasons == [
        "ACTIVITY_DROP (0 active days in the last 30, 4 in the 30 before)",
        "NO_VISIT_IN_21_DAYS (4 active days in days 31-60)",
    ]
    regular = s[p.regular]
    assert (regular.recency_days, regular.frequency, regular.recent_activity) == (
        0,
        21,
        8,
    )  # 5 purchase + 3 visit days
    assert regular.high_value and not regular.at_risk and regular.reasons == []
    assert (regular.r_score, regular.f_score) == (5, 5)
    assert s[p.slow].high_value and not s[p.slow].at_risk  # 70 days is normal for a 60-day buyer
    assert not s[p.small].high_value and not s[p.small].at_risk and s[p.small].reasons == []
    assert {m for m, x in s.items() if x.at_risk} == {p.quiet, p.dropping, p.gone}
    assert {m for m, x in s.items() if x.high_value} == {p.quiet, p.dropping, p.gone, p.regular, p.slow}

    for member_id in (p.quiet, p.dropping, p.gone):
        (flow,) = await flows_of(member_id)
        assert (flow.started_on, flow.reasons) == (TODAY, s[member_id].reasons)
        coupon = await MemberCoupon.get(id=flow.member_coupon_id).select_related("template")
        assert (coupon.member_id, coupon.source, coupon.template.purpose) == (member_id, "CARE", "CARE")
        keys = await OutboxMessage.filter(dedupe_key__startswith=f"churn.care:{member_id}:").values_list(
            "topic", "dedupe_key"
        )
        assert sorted(keys) == [
            ("churn.care_message", f"churn.care:{member_id}:2020-06-01:message"),
            ("churn.care_task", f"churn.care:{member_id}:2020-06-01:crm"),
        ]
    for member_id in (p.regular, p.slow, p.small):
        assert await flows_of(member_id) == []


async def counts(p: Population) -> tuple[int, int, int]:
    flows = await CareFlow.filter(member_id__in=p.everyone).count()
    coupons = await MemberCoupon.filter(member_id__in=p.everyone, source="CARE").count()
    messages = 0
    for member_id in p.everyone:
        messages += await OutboxMessage.filter(dedupe_key__startswith=f"churn.care:{member_id}:").count()
    return flows, coupons, messages


async def test_reruns_start_nothing_twice_and_a_week_later_a_new_flow(population: Population) -> None:
    p = population
    await churn.run_scoring(TODAY, now=NOW)
    assert await counts(p) == (3, 3, 6)

    again = await churn.run_scoring(TODAY, now=NOW + timedelta(hours=5))
    assert await counts(p) == (3, 3, 6)
    assert again.flows_started == 0
    for day in (1, 6):
        await churn.run_scoring(TODAY + timedelta(days=day), now=NOW + timedelta(days=day))
        assert await counts(p) == (3, 3, 6)

    week = await churn.run_scoring(TODAY + timedelta(days=7), now=NOW + timedelta(days=7))
    assert week.flows_started >= 3
    assert [f.started_on for f in await flows_of(p.quiet)] == [TODAY, TODAY + timedelta(days=7)]
    assert await counts(p) == (6, 6, 12)

    # Without a CARE template the flow still starts, only without a coupon.
    async def no_templates(purpose: str, *, now: datetime | None = None) -> list[CouponTemplate]:
        return []

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(coupon_claims, "active_templates", no_templates)
        later = await churn.run_scoring(TODAY + timedelta(days=14), now=NOW + timedelta(days=14))
    assert not later.care_coupon_configured
    newest = (await flows_of(p.quiet))[-1]
    assert (newest.started_on, newest.member_coupon_id) == (TODAY + timedelta(days=14), None)
    assert await counts(p) == (9, 6, 18)


async def test_a_member_no_longer_scored_is_no_longer_at_risk(population: Population) -> None:
    stale = await new_member()
    await MemberScore.create(member_id=stale, scored_on=date(2019, 1, 1), at_risk=True, reasons=["old"])
    await churn.run_scoring(TODAY, now=NOW)
    assert (await MemberScore.get(member_id=stale)).at_risk is False
    assert (await MemberScore.get(member_id=population.quiet)).at_risk is True


async def test_the_daily_job_is_queued_once_per_shop_day(seeded: str) -> None:
    day = datetime(2032, 3, 4, 1, 0, tzinfo=SHOP_TZ)
    for minutes in (0, 30, 600):
        await churn.enqueue_daily_scoring(day + timedelta(minutes=minutes))
    rows = await OutboxMessage.filter(dedupe_key="churn.score:2032-03-04")
    assert [(r.topic, r.payload, r.run_at) for r in rows] == [
        ("churn.score", {"day": "2032-03-04"}, datetime(2032, 3, 4, 2, 0, tzinfo=SHOP_TZ))
    ]
    await OutboxMessage.filter(dedupe_key="churn.score:2032-03-04").delete()


# --- the care flow's outbox handlers ---------------------------------------------------------------


class FakeCrm:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str | None]] = []

    async def create_care_task(
        self, member_ref: str, kind: str, reason: str, suggested_coupon_template: str | None = None
    ) -> CareTaskResult:
        self.calls.append((member_ref, kind, reason, suggested_coupon_template))
        return CareTaskResult(task_id=f"task_{len(self.calls)}", created=True)


class FakeWeChat:
    def __init__(self, answer: bool | Exception = True) -> None:
        self.answer = answer
        self.sent: list[tuple[str, str, str, dict[str, str]]] = []

    async def send_subscribe_message(self, touser: str, template_id: str, page: str, data: Any) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        self.sent.append((touser, template_id, page, dict(data)))
        return self.answer


def context(crm: FakeCrm | None = None, wechat: FakeWeChat | None = None, attempt: int = 1) -> HandlerContext:
    services = SimpleNamespace(crm=crm or FakeCrm(), wechat=wechat or FakeWeChat(), settings=load_settings())
    return HandlerContext(services=cast(Services, services), message_id=0, attempt=attempt, now=NOW)


async def new_flow(with_coupon: bool = True) -> CareFlow:
    member_id = await new_member()
    coupon_id = None
    if with_coupon:
        template = (await coupon_claims.active_templates("CARE"))[0]
        coupon = await coupon_claims.grant(member_id, template, "CARE", now=NOW)
        assert coupon is not None
        coupon_id = coupon.id
    return await CareFlow.create(
        member_id=member_id, started_on=TODAY, reasons=["A", "B"], member_coupon_id=coupon_id
    )


async def test_the_crm_task_is_opened_once_and_its_id_kept(seeded: str) -> None:
    flow = await new_flow()
    crm = FakeCrm()
    for _ in range(2):
        await churn.open_care_task({"care_flow_id": flow.id}, context(crm))
    template_id = (await MemberCoupon.get(id=flow.member_coupon_id)).template_id
    assert crm.calls == [(f"m_{flow.member_id}", "churn_risk", "A; B", str(template_id))]
    assert (await CareFlow.get(id=flow.id)).crm_task_id == "task_1"


async def test_the_message_points_at_the_coupon_and_its_outcome_is_kept(seeded: str) -> None:
    flow = await new_flow()
    member = await Member.get(id=flow.member_id)
    wechat = FakeWeChat()
    for _ in range(2):
        await churn.send_care_message({"care_flow_id": flow.id}, context(wechat=wechat))
    ((touser, template_id, page, data),) = wechat.sent
    assert (touser, template_id, page) == (
        member.openid,
        load_settings().churn_message_template_id,
        "pages/member/coupons",
    )
    assert data["thing1"] == "回归礼 满99减20" and data["time2"] == "2020-06-15"
    assert (await CareFlow.get(id=flow.id)).message_status == "SENT"

    unsubscribed = await new_flow(with_coupon=False)
    await churn.send_care_message({"care_flow_id": unsubscribed.id}, context(wechat=FakeWeChat(False)))
    assert (await CareFlow.get(id=unsubscribed.id)).message_status == "NOT_SUBSCRIBED"


async def test_a_message_that_cannot_be_sent_is_marked_failed(seeded: str) -> None:
    flow = await new_flow(with_coupon=False)
    refused = FakeWeChat(UpstreamError("wechat", "HTTP 400", status=400))
    with pytest.raises(UpstreamError):
        await churn.send_care_message({"care_flow_id": flow.id}, context(wechat=refused))
    assert (await CareFlow.get(id=flow.id)).message_status == "FAILED"

    flaky = await new_flow(with_coupon=False)
    down = FakeWeChat(UpstreamUnavailable("wechat", "HTTP 503", status=503))
    with pytest.raises(UpstreamUnavailable):
        await churn.send_care_message({"care_flow_id": flaky.id}, context(wechat=down))
    assert (await CareFlow.get(id=flaky.id)).message_status == "PENDING"  # the outbox retries
    last = load_settings().outbox_max_attempts
    with pytest.raises(UpstreamUnavailable):
        await churn.send_care_message({"care_flow_id": flaky.id}, context(wechat=down, attempt=last))
    assert (await CareFlow.get(id=flaky.id)).message_status == "FAILED"
