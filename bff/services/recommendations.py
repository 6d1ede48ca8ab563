"""Personal recommendations from plain values: item-to-item co-occurrence, affinities, popularity.

No database here: `bff.services.reco_refresh` loads the inputs and stores the output, and the
offline evaluation (`bench/reco_eval.py`) trains these same functions on a generated log.

- A visitor's profile keeps, per product, the strongest thing they did with it (view 1, cart 3,
  purchase 5) and when they last did it; only their `items_per_visitor` most recent products count.
- Neighbours: cosine similarity of products over visitors' profiles, shrunk towards 0 when few
  visitors share the pair (`support / (support + support_shrink)`), so one shared visitor is weak.
- A member's score for a candidate adds, each in [0, 1] times its weight: the neighbours of what they
  touched (recency-decayed, scaled to the best candidate), their category and brand affinity (share
  of their decayed activity) times the product's appeal within that group, the CRM's preferred
  categories, and overall popularity. `reason` names the largest contribution.
- Popularity: decayed activity over every visitor; best sellers fill it up (the cold start).
- Never recommended: products unavailable now (off shelf or out of stock) and, to a member, what
  they bought recently.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

VIEW = 1.0
CART = 3.0
PURCHASE = 5.0
# What a member bought this recently is not recommended to them again (here and on the request path).
BOUGHT_RECENTLY = timedelta(days=30)

CO_OCCURRENCE = "co_occurrence"
AFFINITY = "affinity"
CRM_PREFERENCE = "crm_preference"
POPULAR = "popular"


@dataclass(frozen=True, slots=True)
class Interaction:
    """One thing a visitor did with a product; `weight` is VIEW, CART or PURCHASE."""

    visitor: str
    product_id: int
    weight: float
    at: datetime


@dataclass(frozen=True, slots=True)
class ProductFacts:
    id: int
    category_id: int
    brand_id: int | None
    sales_count: int
    available: bool  # on shelf and in stock


@dataclass(frozen=True, slots=True)
class MemberInput:
    """What is known of one member besides their interactions."""

    member_id: int
    preferred_category_ids: frozenset[int] = frozenset()
    bought_recently: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Scored:
    product_id: int
    score: float
    reason: str = POPULAR


@dataclass(frozen=True, slots=True)
class Signal:
    """A visitor's strongest interaction with one product and when they last interacted."""

    weight: float
    last_at: datetime


Profile = dict[int, Signal]


@dataclass(frozen=True)
class Tuning:
    neighbours: int = 20
    picks: int = 50
    popular: int = 200
    items_per_visitor: int = 50
    half_life_days: float = 30.0
    support_shrink: float = 2.0
    co_occurrence_weight: float = 1.0
    category_weight: float = 0.6
    brand_weight: float = 0.3
    crm_weight: float = 0.3
    popular_weight: float = 0.05
    # How deep affinity and CRM preferences look into a category's or a brand's most popular products.
    group_depth: int = 50


@dataclass(frozen=True)
class Recommendations:
    neighbours: dict[int, list[Scored]]
    members: dict[int, list[Scored]]
    popular: list[Scored]


def member_visitor(member_id: int) -> str:
    """The visitor key a member's interactions are grouped under."""
    return f"m:{member_id}"


def _decay(at: datetime, now: datetime, half_life_days: float) -> float:
    age_days = max(0.0, (now - at).total_seconds() / 86400.0)
    return float(0.5 ** (age_days / half_life_days))


def visitor_profiles(interactions: Iterable[Interaction], tuning: Tuning = Tuning()) -> dict[str, Profile]:
    """Each visitor's strongest signal per product, limited to their most recent products."""
    profiles: dict[str, Profile] = defaultdict(dict)
    for event in interactions:
        profile = profiles[event.visitor]
        seen = profile.get(event.product_id)
        if seen is None:
            profile[event.product_id] = Signal(event.weight, event.at)
        else:
            profile[event.product_id] = Signal(max(seen.weight, event.weight), max(seen.last_at, event.at))
    limit = tuning.items_per_visitor
    for visitor, profile in profiles.items():
        if len(profile) > limit:
            recent = sorted(profile.items(), key=lambda kv: (kv[1].last_at, kv[0]), reverse=True)[:limit]
            profiles[visitor] = dict(recent)
    return dict(profiles)


def item_neighbours(
    profiles: Mapping[str, Profile], available: set[int], tuning: Tuning = Tuning()
) -> dict[int, list[Scored]]:
    """Per product, its `tuning.neighbours` most similar available products (shrunk cosine), best first."""
    norms: dict[int, float] = defaultdict(float)
    dots: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    support: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for visitor in sorted(profiles):
        items = sorted(profiles[visitor].items())
        for i, (a, sa) in enumerate(items):
            norms[a] += sa.weight * sa.weight
            for b, sb in items[i + 1 :]:
                dots[a][b] += sa.weight * sb.weight
                support[a][b] += 1
    similar: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for a, row in dots.items():
        for b, dot in row.items():
            shared = support[a][b]
            score = dot / math.sqrt(norms[a] * norms[b]) * shared / (shared + tuning.support_shrink)
            if b in available:
                similar[a].append((score, b))
            if a in available:
                similar[b].append((score, a))
    return {
        product: [
            Scored(b, s, CO_OCCURRENCE)
            for s, b in heapq.nsmallest(tuning.neighbours, pairs, key=lambda p: (-p[0], p[1]))
        ]
        for product, pairs in sorted(similar.items())
    }


def product_activity(
    profiles: Mapping[str, Profile], now: datetime, tuning: Tuning = Tuning()
) -> dict[int, float]:
    """Per product, the recency-decayed sum of every visitor's strongest signal."""
    activity: dict[int, float] = defaultdict(float)
    # Sorted walks everywhere: float sums in a fixed order make the output independent of input order.
    for visitor in sorted(profiles):
        for product_id, signal in sorted(profiles[visitor].items()):
            activity[product_id] += signal.weight * _decay(signal.last_at, now, tuning.half_life_days)
    return dict(activity)


def popularity(
    activity: Mapping[int, float], products: Mapping[int, ProductFacts], tuning: Tuning = Tuning()
) -> list[Scored]:
    """Available products by activity, best sellers filling up the rest (the cold start)."""
    ranked = sorted(
        (p for p in products.values() if p.available),
        key=lambda p: (-activity.get(p.id, 0.0), -p.sales_count, p.id),
    )
    return [Scored(p.id, activity.get(p.id, 0.0), POPULAR) for p in ranked[: tuning.popular]]


class _Appeal:
    """How appealing each available product is overall and within its category and its brand."""

    def __init__(
        self,
        products: Mapping[int, ProductFacts],
        activity: Mapping[int, float],
        popular: list[Scored],
        depth: int,
    ) -> None:
        by_category: dict[int, list[ProductFacts]] = defaultdict(list)
        by_brand: dict[int, list[ProductFacts]] = defaultdict(list)
        for p in products.values():
            if p.available:
                by_category[p.category_id].append(p)
                if p.brand_id is not None:
                    by_brand[p.brand_id].append(p)
        # By position in the popular list, which best sellers fill before there is any activity.
        self.overall = {p.product_id: 1.0 - i / len(popular) for i, p in enumerate(popular)}
        self.in_category, self.category_top = self._groups(by_category, activity, depth)
        self.in_brand, self.brand_top = self._groups(by_brand, activity, depth)

    @staticmethod
    def _groups(
        groups: Mapping[int, list[ProductFacts]], activity: Mapping[int, float], depth: int
    ) -> tuple[dict[int, float], dict[int, list[int]]]:
        # Relative to the group's leader, smoothed so a group nobody touched still ranks by sales.
        appeal: dict[int, float] = {}
        tops: dict[int, list[int]] = {}
        for key, members in groups.items():
            ranked = sorted(members, key=lambda p: (-activity.get(p.id, 0.0), -p.sales_count, p.id))
            leader = activity.get(ranked[0].id, 0.0) + 1.0
            for p in ranked:
                appeal[p.id] = (activity.get(p.id, 0.0) + 1.0) / leader
            tops[key] = [p.id for p in ranked[:depth]]
        return appeal, tops


def _shares(weights: Iterable[tuple[int | None, float]]) -> dict[int, float]:
    totals: dict[int, float] = defaultdict(float)
    grand = 0.0
    for key, weight in weights:
        grand += weight
        if key is not None:
            totals[key] += weight
    return {k: v / grand for k, v in totals.items()} if grand > 0 else {}


def member_picks(
    member: MemberInput,
    profile: Profile,
    neighbours: Mapping[int, list[Scored]],
    products: Mapping[int, ProductFacts],
    appeal: _Appeal,
    popular: list[Scored],
    now: datetime,
    tuning: Tuning = Tuning(),
) -> list[Scored]:
    """The member's best `tuning.picks` available products not bought recently, best first."""
    decayed = {pid: s.weight * _decay(s.last_at, now, tuning.half_life_days) for pid, s in profile.items()}
    co: dict[int, float] = defaultdict(float)
    for source in sorted(decayed):
        for n in neighbours.get(source, ()):
            co[n.product_id] += decayed[source] * n.score
    known = [(pid, w) for pid, w in sorted(decayed.items()) if pid in products]
    category_share = _shares((products[pid].category_id, w) for pid, w in known)
    brand_share = _shares((products[pid].brand_id, w) for pid, w in known)
    preferred = member.preferred_category_ids
    candidates = set(co)
    for category in set(category_share) | set(preferred):
        candidates.update(appeal.category_top.get(category, ()))
    for brand in brand_share:
        candidates.update(appeal.brand_top.get(brand, ()))
    candidates.update(p.product_id for p in popular[: tuning.picks])
    best_co = max(co.values(), default=0.0)
    scored: list[tuple[float, int, str]] = []
    for pid in candidates:
        facts = products.get(pid)
        if facts is None or not facts.available or pid in member.bought_recently:
            continue
        in_category = appeal.in_category.get(pid, 0.0)
        parts = {
            CO_OCCURRENCE: tuning.co_occurrence_weight * (co.get(pid, 0.0) / best_co if best_co > 0 else 0.0),
            AFFINITY: tuning.category_weight * category_share.get(facts.category_id, 0.0) * in_category
            + tuning.brand_weight
            * (brand_share.get(facts.brand_id, 0.0) if facts.brand_id is not None else 0.0)
            * appeal.in_brand.get(pid, 0.0),
            CRM_PREFERENCE: tuning.crm_weight * in_category if facts.category_id in preferred else 0.0,
            POPULAR: tuning.popular_weight * appeal.overall.get(pid, 0.0),
        }
        reason = max(parts, key=lambda k: parts[k]) if any(parts.values()) else POPULAR
        scored.append((sum(parts.values()), pid, reason))
    best = heapq.nsmallest(tuning.picks, scored, key=lambda t: (-t[0], t[1]))
    return [Scored(pid, score, reason) for score, pid, reason in best]


def recommend(
    interactions: Iterable[Interaction],
    products: Mapping[int, ProductFacts],
    members: Iterable[MemberInput],
    now: datetime,
    tuning: Tuning = Tuning(),
) -> Recommendations:
    """Neighbours per product, picks per member and the popularity list, deterministically."""
    profiles = visitor_profiles(interactions, tuning)
    available = {p.id for p in products.values() if p.available}
    neighbours = item_neighbours(profiles, available, tuning)
    activity = product_activity(profiles, now, tuning)
    popular = popularity(activity, products, tuning)
    appeal = _Appeal(products, activity, popular, tuning.group_depth)
    picks: dict[int, list[Scored]] = {}
    for member in sorted(members, key=lambda m: m.member_id):
        profile = profiles.get(member_visitor(member.member_id), {})
        picks[member.member_id] = member_picks(
            member, profile, neighbours, products, appeal, popular, now, tuning
        )
    return Recommendations(neighbours=neighbours, members=picks, popular=popular)
