"""Churn warnings: the daily scoring job, at-risk high-value members, and the weekly care flow.

Scoring (`run_scoring`, daily as the outbox job `churn.score`, or on demand; rules in
`bff.services.churn_scoring`):
- Scored: every member with a purchase up to the end of `today` (shop calendar). A purchase is an
  order with `paid_at` whose status is not CLOSED/CANCELLED (those were refunded in full).
- recency_days: days since the last purchase day; frequency: purchases in the last 365 days;
  monetary_fen: lifetime payable minus refunded of purchases; recent_activity / prior_activity:
  distinct active days (a VisitorDay of the member, or a purchase) in days 1-30 / 31-60 back.
- Reads are grouped aggregates plus chunked IN queries; every scored member's MemberScore is
  upserted in bulk; a member this run did not score loses at_risk.

Care flow: an at-risk member with no CareFlow started in the last 7 days gets one, in one transaction
with one coupon of an active CARE template (the oldest that has coupons left; none configured: the
flow goes on without a coupon) and two outbox messages: `churn.care_task` (CRM task, stores
crm_task_id) and `churn.care_message` (subscribe message, stores message_status). The unique
(member, started_on) and the dedupe keys make reruns start, grant and send nothing twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count, Max, Sum
from tortoise.transactions import in_transaction

from bff.models.analytics import VisitorDay
from bff.models.churn import CareFlow, MemberScore
from bff.models.marketing import CouponTemplate, MemberCoupon
from bff.models.member import Member
from bff.models.order import CANCELLED, CLOSED, Order
from bff.services import coupon_claims
from bff.services.churn_scoring import (
    ACTIVITY_WINDOW_DAYS,
    NO_VISIT_DAYS,
    MemberFacts,
    Score,
    needs_history,
    score_members,
    window_counts,
)
from bff.services.outbox import HandlerContext, PermanentFailure, enqueue, handler
from bff.services.shop_time import SHOP_TZ, shop_day
from bff.services.side_effects import member_ref

log = logging.getLogger("bff.churn")

SCORE_TOPIC = "churn.score"
CARE_TASK_TOPIC = "churn.care_task"
CARE_MESSAGE_TOPIC = "churn.care_message"
CARE_PURPOSE = "CARE"  # CouponTemplate.purpose of the care coupon, and MemberCoupon.source
CRM_TASK_KIND = "churn_risk"
COUPON_PAGE = "pages/member/coupons"
HOME_PAGE = "pages/index/index"
SCORE_HOUR = 2  # the daily job runs from 02:00 shop time, after yesterday's activity rollup
FREQUENCY_WINDOW_DAYS = 365
CARE_INTERVAL_DAYS = 7
CHUNK = 500  # ids per IN (...) query

ENDED = (CLOSED, CANCELLED)
PENDING, SENT, NOT_SUBSCRIBED, FAILED = "PENDING", "SENT", "NOT_SUBSCRIBED", "FAILED"

T = TypeVar("T")


# --- loading (grouped, chunked) --------------------------------------------------------------------


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), SHOP_TZ)


def _purchases(end: datetime) -> Q:
    return Q(paid_at__isnull=False, paid_at__lt=end) & ~Q(status__in=list(ENDED))


async def _purchase_facts(today: date) -> dict[int, MemberFacts]:
    """Recency, frequency and monetary of every member with a purchase (one grouped query)."""
    end = _day_start(today + timedelta(days=1))
    year_ago = _day_start(today - timedelta(days=FREQUENCY_WINDOW_DAYS - 1))
    rows = (
        await Order.filter(_purchases(end))
        .annotate(
            last_paid=Max("paid_at"),
            orders=Count("id", _filter=Q(paid_at__gte=year_ago)),
            payable=Sum("payable_fen"),
            refunded=Sum("refunded_fen"),
        )
        .group_by("member_id")
        .values("member_id", "last_paid", "orders", "payable", "refunded")
    )
    return {
        int(row["member_id"]): MemberFacts(
            member_id=int(row["member_id"]),
            recency_days=(today - shop_day(row["last_paid"])).days,
            frequency=int(row["orders"] or 0),
            monetary_fen=int(row["payable"] or 0) - int(row["refunded"] or 0),
        )
        for row in rows
    }


async def _activity(today: date) -> dict[int, tuple[int, int, int]]:
    """(recent, prior, last 21) active days per member: grouped visit counts, unioned with purchase days."""
    first = today - timedelta(days=2 * ACTIVITY_WINDOW_DAYS - 1)
    recent_from = today - timedelta(days=ACTIVITY_WINDOW_DAYS - 1)
    quiet_from = today - timedelta(days=NO_VISIT_DAYS - 1)
    visits = (
        await VisitorDay.filter(member_id__isnull=False, day__gte=first, day__lte=today)
        .annotate(
            recent=Count("day", distinct=True, _filter=Q(day__gte=recent_from)),
            prior=Count("day", distinct=True, _filter=Q(day__lt=recent_from)),
            quiet=Count("day", distinct=True, _filter=Q(day__gte=quiet_from)),
        )
        .group_by("member_id")
        .values("member_id", "recent", "prior", "quiet")
    )
    result = {int(v["member_id"]): (int(v["recent"]), int(v["prior"]), int(v["quiet"])) for v in visits}
    bought: dict[int, set[date]] = defaultdict(set)
    end = _day_start(today + timedelta(days=1))
    for member_id, paid_at in await Order.filter(_purchases(end), paid_at__gte=_day_start(first)).values_list(
        "member_id", "paid_at"
    ):
        bought[int(member_id)].add(shop_day(paid_at))
    # A purchase day may or may not also be a visit day: union the two for members who bought.
    members = sorted(bought)
    for chunk in _chunks(members):
        rows = await VisitorDay.filter(member_id__in=list(chunk), day__gte=first, day__lte=today).values_list(
            "member_id", "day"
        )
        for member_id, day in rows:
            bought[int(member_id)].add(day)
    for member_id in members:
        result[member_id] = window_counts(bought[member_id], today)
    return result


async def _purchase_days(member_ids: Sequence[int], today: date) -> dict[int, list[date]]:
    """Every purchase day of the given members up to `today` (chunked)."""
    end = _day_start(today + timedelta(days=1))
    days: dict[int, list[date]] = defaultdict(list)
    for chunk in _chunks(member_ids):
        rows = await Order.filter(_purchases(end), member_id__in=list(chunk)).values_list(
            "member_id", "paid_at"
        )
        for member_id, paid_at in rows:
            days[int(member_id)].append(shop_day(paid_at))
    return days


async def member_facts(today: date) -> tuple[list[MemberFacts], dict[int, list[date]]]:
    """The facts of every member to score on `today`, and the purchase days scoring needs."""
    purchases = await _purchase_facts(today)
    activity = await _activity(today)
    # Deleted accounts are anonymised: nobody to score, care for or message any more.
    deleted = {int(row["id"]) for row in await Member.filter(deleted_at__isnull=False).values("id")}
    facts = []
    for member_id, f in sorted(purchases.items()):
        if member_id in deleted:
            continue
        recent, prior, quiet = activity.get(member_id, (0, 0, 0))
        facts.append(
            MemberFacts(
                f.member_id, f.recency_days, f.frequency, f.monetary_fen, recent, prior, active_last_21=quiet
            )
        )
    return facts, await _purchase_days(needs_history(facts), today)


async def _save_scores(scores: Sequence[Score], today: date, now: datetime) -> None:
    rows = [
        MemberScore(
            member_id=s.member_id,
            scored_on=today,
            recency_days=s.recency_days,
            frequency=s.frequency,
            monetary_fen=s.monetary_fen,
            r_score=s.r_score,
            f_score=s.f_score,
            m_score=s.m_score,
            segment=s.segment,
            high_value=s.high_value,
            at_risk=s.at_risk,
            reasons=list(s.reasons),
            recent_activity=s.recent_activity,
            prior_activity=s.prior_activity,
            updated_at=now,
        )
        for s in scores
    ]
    updated = [f for f in MemberScore._meta.fields_db_projection if f != "member_id"]
    await MemberScore.bulk_create(rows, batch_size=CHUNK, on_conflict=["member_id"], update_fields=updated)
    # Members this run did not score (no purchase left) are no longer at risk.
    await MemberScore.filter(at_risk=True).exclude(scored_on=today).update(at_risk=False)


# --- the care flow ---------------------------------------------------------------------------------


async def _recently_cared(member_ids: Sequence[int], today: date) -> set[int]:
    since = today - timedelta(days=CARE_INTERVAL_DAYS)
    found: set[int] = set()
    for chunk in _chunks(member_ids):
        rows = await CareFlow.filter(member_id__in=list(chunk), started_on__gt=since).values("member_id")
        found.update(int(row["member_id"]) for row in rows)
    return found


async def _grant_care_coupon(
    member_id: int, templates: Sequence[CouponTemplate], now: datetime
) -> int | None:
    for template in templates:
        coupon = await coupon_claims.grant(member_id, template, CARE_PURPOSE, now=now)
        if coupon is not None:
            return coupon.id
    log.warning("member %s: no CARE coupon template with coupons left; care flow without a coupon", member_id)
    return None


async def _start_flow(score: Score, today: date, now: datetime, templates: Sequence[CouponTemplate]) -> bool:
    """Start one member's care flow (flow, coupon, two messages) in one transaction; False if one exists."""
    since = today - timedelta(days=CARE_INTERVAL_DAYS)
    try:
        async with in_transaction():
            # The score row lock serialises concurrent runs for this member (SQLite serialises writers).
            await MemberScore.filter(member_id=score.member_id).select_for_update().only("member_id")
            if await CareFlow.filter(member_id=score.member_id, started_on__gt=since).exists():
                return False
            coupon_id = await _grant_care_coupon(score.member_id, templates, now)
            flow = await CareFlow.create(
                member_id=score.member_id,
                started_on=today,
                reasons=list(score.reasons),
                member_coupon_id=coupon_id,
            )
            key = f"churn.care:{score.member_id}:{today.isoformat()}"
            await enqueue(CARE_TASK_TOPIC, {"care_flow_id": flow.id}, dedupe_key=f"{key}:crm", run_at=now)
            await enqueue(
                CARE_MESSAGE_TOPIC, {"care_flow_id": flow.id}, dedupe_key=f"{key}:message", run_at=now
            )
    except IntegrityError:
        return False  # a concurrent run started today's flow first: everything above rolled back
    return True


@dataclass(frozen=True)
class RunSummary:
    """What one scoring run did."""

    scored_on: date
    scored: int
    at_risk: int
    flows_started: int
    care_coupon_configured: bool


async def run_scoring(today: date | None = None, *, now: datetime | None = None) -> RunSummary:
    """Score every member as of `today` (shop day of `now` by default) and start due care flows."""
    clock = now or datetime.now(UTC)
    day = today or shop_day(clock)
    facts, purchase_days = await member_facts(day)
    scores = score_members(facts, purchase_days)
    await _save_scores(scores, day, clock)
    at_risk = [s for s in scores if s.at_risk]
    cared = await _recently_cared([s.member_id for s in at_risk], day)
    templates = await coupon_claims.active_templates(CARE_PURPOSE, now=clock)
    if at_risk and not templates:
        log.warning("no active CARE coupon template: care flows start without a coupon")
    started = 0
    for score in at_risk:
        if score.member_id not in cared and await _start_flow(score, day, clock, templates):
            started += 1
    log.info(
        "churn scoring %s: %d scored, %d at risk, %d care flows started",
        day,
        len(scores),
        len(at_risk),
        started,
    )
    return RunSummary(day, len(scores), len(at_risk), started, bool(templates))


# --- what operators read -------------------------------------------------------------------------


async def at_risk_page(n: int, after: tuple[int, int] | None) -> tuple[list[MemberScore], bool]:
    """Up to n at-risk scores by monetary (desc) then member id, after the (monetary, member) key."""
    query = MemberScore.filter(at_risk=True)
    if after is not None:
        monetary, member_id = after
        query = query.filter(Q(monetary_fen__lt=monetary) | Q(monetary_fen=monetary, member_id__gt=member_id))
    rows = await query.order_by("-monetary_fen", "member_id").limit(n + 1)
    return rows[:n], len(rows) > n


async def at_risk_count() -> int:
    """How many members are at risk now."""
    return await MemberScore.filter(at_risk=True).count()


async def score_of(member_id: int) -> MemberScore | None:
    """A member's latest score, if ever scored."""
    return await MemberScore.get_or_none(member_id=member_id)


# --- outbox ----------------------------------------------------------------------------------------


async def enqueue_daily_scoring(now: datetime | None = None) -> None:
    """Queue today's scoring job (once per shop day, from SCORE_HOUR); called by the worker's sweep."""
    day = shop_day(now or datetime.now(UTC))
    run_at = _day_start(day) + timedelta(hours=SCORE_HOUR)
    await enqueue(
        SCORE_TOPIC, {"day": day.isoformat()}, dedupe_key=f"churn.score:{day.isoformat()}", run_at=run_at
    )


@handler(SCORE_TOPIC)
async def score_daily(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Run the scoring of the payload's day (idempotent: flows are once per 7 days)."""
    try:
        day = date.fromisoformat(str(payload["day"]))
    except (KeyError, ValueError) as exc:
        raise PermanentFailure(f"payload needs an ISO 'day': {payload!r}") from exc
    await run_scoring(day, now=ctx.now)


async def _flow(payload: dict[str, Any]) -> CareFlow:
    try:
        flow_id = int(payload["care_flow_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"payload needs an integer 'care_flow_id': {payload!r}") from exc
    flow = await CareFlow.get_or_none(id=flow_id)
    if flow is None:
        raise PermanentFailure(f"care flow {flow_id} does not exist")
    return flow


@handler(CARE_TASK_TOPIC)
async def open_care_task(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Open the CRM care task of a flow and store its id (the CRM dedupes a member's task for 7 days)."""
    flow = await _flow(payload)
    if flow.crm_task_id:
        return
    template_ids = await MemberCoupon.filter(id=flow.member_coupon_id or 0).values_list(
        "template_id", flat=True
    )
    result = await ctx.services.crm.create_care_task(
        member_ref(flow.member_id),
        CRM_TASK_KIND,
        "; ".join(flow.reasons),
        str(template_ids[0]) if template_ids else None,
    )
    await CareFlow.filter(id=flow.id, crm_task_id__isnull=True).update(crm_task_id=result.task_id)


async def _message(flow: CareFlow) -> tuple[str, dict[str, str]]:
    """The page and data of a flow's subscribe message: the coupon when there is one."""
    coupon = None
    if flow.member_coupon_id is not None:
        coupon = await MemberCoupon.get_or_none(id=flow.member_coupon_id).select_related("template")
    if coupon is None:
        return HOME_PAGE, {"thing1": "好久不见", "thing3": "新品上架，欢迎回来看看"}
    expires = shop_day(coupon.expires_at).isoformat()
    return COUPON_PAGE, {"thing1": coupon.template.name[:20], "time2": expires, "thing3": "回归礼券已到账"}


async def _set_message_status(flow_id: int, status: str) -> None:
    await CareFlow.filter(id=flow_id, message_status=PENDING).update(message_status=status)


@handler(CARE_MESSAGE_TOPIC)
async def send_care_message(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Send the flow's subscribe message; record SENT, NOT_SUBSCRIBED, or FAILED when giving up."""
    flow = await _flow(payload)
    if flow.message_status != PENDING:
        return
    member = await Member.get_or_none(id=flow.member_id)
    if member is None:
        await _set_message_status(flow.id, FAILED)
        log.warning("member %s no longer exists: care message dropped", flow.member_id)
        return
    page, data = await _message(flow)
    try:
        sent = await ctx.services.wechat.send_subscribe_message(
            member.openid, ctx.services.settings.churn_message_template_id, page, data
        )
    except Exception as exc:
        # The outbox retries what it can; the flow shows FAILED once it will not.
        if (
            getattr(exc, "retryable", True) is False
            or ctx.attempt >= ctx.services.settings.outbox_max_attempts
        ):
            await _set_message_status(flow.id, FAILED)
        raise
    await _set_message_status(flow.id, SENT if sent else NOT_SUBSCRIBED)
