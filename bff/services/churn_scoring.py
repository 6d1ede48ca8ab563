"""Churn scoring rules, pure: RFM quintile scores, segments, high value, and why a member looks like leaving.

- R, F, M scores 1-5 by mid-rank quintile among the scored members; equal values share a score, the
  lowest value always scores 1 and the highest 5, and when all are equal they score 3.
- high_value: monetary in the top 20% of members with monetary > 0 (at least one member; ties at
  the boundary are in). Only high-value members get reasons; at_risk = high_value and any reason:
  NO_PURCHASE_IN_N_DAYS (recency > max(45, 2 x median gap between distinct purchase days)),
  ACTIVITY_DROP (recent < 50% of prior, prior >= 4), NO_VISIT_IN_21_DAYS (active in days 31-60,
  no active day in the last 21).
"""

from __future__ import annotations

import itertools
import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

ACTIVITY_WINDOW_DAYS = 30  # recent = days 0-29 back, prior = days 30-59 back
NO_VISIT_DAYS = 21
MIN_SILENCE_DAYS = 45
GAP_FACTOR = 2
MIN_PRIOR_ACTIVITY = 4
HIGH_VALUE_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """What scoring needs to know about one member on `today`."""

    member_id: int
    recency_days: int
    frequency: int
    monetary_fen: int
    recent_activity: int = 0
    prior_activity: int = 0
    active_last_21: int = 0  # active days in the last NO_VISIT_DAYS days


@dataclass(frozen=True, slots=True)
class Score:
    """One member's score and, for a high-value member, why they look like leaving."""

    member_id: int
    recency_days: int
    frequency: int
    monetary_fen: int
    r_score: int
    f_score: int
    m_score: int
    segment: str
    high_value: bool
    at_risk: bool
    reasons: tuple[str, ...]
    recent_activity: int
    prior_activity: int


def quintile_scores(values: Sequence[int]) -> list[int]:
    """1-5 per value by mid-rank among all values (higher value, higher score); ties share a score.

    The lowest value always scores 1 and the highest 5 (a big tie at either end, e.g. most members
    bought once, stays at its end); when every value is equal they all score 3.
    """
    ordered = sorted(values)
    n = len(ordered)
    scores = []
    for v in values:
        below, equal = bisect_left(ordered, v), bisect_right(ordered, v) - bisect_left(ordered, v)
        if equal == n:
            scores.append(3)
        elif below == 0:
            scores.append(1)
        elif below + equal == n:
            scores.append(5)
        else:
            # Mid-rank percentile (below + equal/2) / n in fifths, in integers.
            scores.append(min(5, 1 + 5 * (2 * below + equal) // (2 * n)))
    return scores


def high_value_ids(monetary: Mapping[int, int]) -> set[int]:
    """Members whose monetary is in the top HIGH_VALUE_SHARE of those above 0 (boundary ties included)."""
    positive = sorted((m for m in monetary.values() if m > 0), reverse=True)
    if not positive:
        return set()
    threshold = positive[max(1, math.ceil(len(positive) * HIGH_VALUE_SHARE)) - 1]
    return {member for member, m in monetary.items() if m > 0 and m >= threshold}


def segment(r: int, f: int, m: int) -> str:
    """The RFM segment name of a score triple (descriptive; the at_risk flag is separate)."""
    if r >= 4 and f >= 4 and m >= 4:
        return "champions"
    if r >= 3 and f >= 4:
        return "loyal"
    if r >= 4 and f <= 2:
        return "new"
    if r <= 2 and (f >= 3 or m >= 4):
        return "at_risk"
    if r <= 2:
        return "hibernating"
    return "others"


def median_gap(days: Sequence[date]) -> float | None:
    """The median number of days between consecutive distinct purchase days; None with fewer than two."""
    distinct = sorted(set(days))
    if len(distinct) < 2:
        return None
    return statistics.median((b - a).days for a, b in itertools.pairwise(distinct))


def silence_limit(gap: float | None) -> float:
    """Days without a purchase after which a member counts as gone quiet."""
    return max(float(MIN_SILENCE_DAYS), GAP_FACTOR * gap) if gap is not None else float(MIN_SILENCE_DAYS)


def risk_reasons(facts: MemberFacts, gap: float | None) -> tuple[str, ...]:
    """The readable reasons (code and figures) a member looks like leaving; empty when none."""
    reasons: list[str] = []
    if facts.recency_days > silence_limit(gap):
        usual = f"usual gap {round(gap)} days" if gap is not None else "one purchase day only"
        reasons.append(f"NO_PURCHASE_IN_{facts.recency_days}_DAYS ({usual})")
    if facts.prior_activity >= MIN_PRIOR_ACTIVITY and 2 * facts.recent_activity < facts.prior_activity:
        reasons.append(
            f"ACTIVITY_DROP ({facts.recent_activity} active days in the last 30, "
            f"{facts.prior_activity} in the 30 before)"
        )
    if facts.prior_activity > 0 and facts.active_last_21 == 0:
        reasons.append(f"NO_VISIT_IN_21_DAYS ({facts.prior_activity} active days in days 31-60)")
    return tuple(reasons)


def needs_history(facts: Sequence[MemberFacts]) -> list[int]:
    """Members whose purchase days decide NO_PURCHASE: high-value ones silent for over the minimum."""
    high = high_value_ids({f.member_id: f.monetary_fen for f in facts})
    return [f.member_id for f in facts if f.member_id in high and f.recency_days > MIN_SILENCE_DAYS]


def score_members(
    facts: Sequence[MemberFacts], purchase_days: Mapping[int, Sequence[date]] | None = None
) -> list[Score]:
    """Score members against each other; `purchase_days` gives the usual gap (absent: no gap known)."""
    if not facts:
        return []
    days = purchase_days or {}
    r = quintile_scores([-f.recency_days for f in facts])
    f_ = quintile_scores([f.frequency for f in facts])
    m = quintile_scores([f.monetary_fen for f in facts])
    high = high_value_ids({f.member_id: f.monetary_fen for f in facts})
    scores = []
    for i, x in enumerate(facts):
        is_high = x.member_id in high
        reasons = risk_reasons(x, median_gap(days.get(x.member_id, ()))) if is_high else ()
        scores.append(
            Score(
                member_id=x.member_id,
                recency_days=x.recency_days,
                frequency=x.frequency,
                monetary_fen=x.monetary_fen,
                r_score=r[i],
                f_score=f_[i],
                m_score=m[i],
                segment=segment(r[i], f_[i], m[i]),
                high_value=is_high,
                at_risk=bool(reasons),
                reasons=reasons,
                recent_activity=x.recent_activity,
                prior_activity=x.prior_activity,
            )
        )
    return scores


def window_counts(days: set[date], today: date) -> tuple[int, int, int]:
    """(recent, prior, last 21) active-day counts of a set of days, as of `today`."""
    back = [(today - d).days for d in days if d <= today]
    recent = sum(1 for b in back if 0 <= b < ACTIVITY_WINDOW_DAYS)
    prior = sum(1 for b in back if ACTIVITY_WINDOW_DAYS <= b < 2 * ACTIVITY_WINDOW_DAYS)
    return recent, prior, sum(1 for b in back if 0 <= b < NO_VISIT_DAYS)
