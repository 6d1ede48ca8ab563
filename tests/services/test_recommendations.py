"""The recommendation algorithm on plain values: neighbours, affinity, CRM, fallback, exclusions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bff.services.recommendations import (
    AFFINITY,
    CART,
    CO_OCCURRENCE,
    CRM_PREFERENCE,
    POPULAR,
    PURCHASE,
    VIEW,
    Interaction,
    MemberInput,
    ProductFacts,
    Scored,
    Tuning,
    item_neighbours,
    member_visitor,
    recommend,
    visitor_profiles,
)

NOW = datetime(2031, 6, 30, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)


def catalog(
    *specs: tuple[int, int, int | None, int], unavailable: set[int] | None = None
) -> dict[int, ProductFacts]:
    """Products from (id, category, brand, sales_count)."""
    off = unavailable or set()
    return {pid: ProductFacts(pid, cat, brand, sales, pid not in off) for pid, cat, brand, sales in specs}


def views(visitor: str, *products: int, weight: float = VIEW, at: datetime = EARLIER) -> list[Interaction]:
    return [Interaction(visitor, pid, weight, at) for pid in products]


def crowd(size: int, *products: int) -> list[Interaction]:
    """`size` anonymous visitors who each viewed all of `products`."""
    return [event for n in range(size) for event in views(f"a:crowd{n}", *products)]


def ids(items: list[Scored]) -> list[int]:
    return [i.product_id for i in items]


def test_products_seen_together_by_many_visitors_are_the_closest_neighbours() -> None:
    products = catalog(*((pid, 1, None, 0) for pid in (1, 2, 3, 4)))
    log = [
        *views("a:1", 1, 2),
        *views("a:2", 1, 2),
        *views("a:3", 1, 2, 3),
        *views("a:4", 1, 3),
        *views("a:5", 4),
    ]
    neighbours = item_neighbours(visitor_profiles(log), set(products))
    assert ids(neighbours[1]) == [2, 3]
    assert ids(neighbours[2]) == [1, 3]
    assert 4 not in neighbours  # seen with nothing
    assert all(n.reason == CO_OCCURRENCE for n in neighbours[1])


def test_similarity_is_a_cosine_shrunk_by_how_few_visitors_share_the_pair() -> None:
    log = [*views("a:1", 1, 2), *views("a:2", 1, 2)]
    (only,) = item_neighbours(visitor_profiles(log), {1, 2}, Tuning(support_shrink=2.0))[1]
    # Both vectors are (1, 1): cosine 1, two shared visitors: 2 / (2 + 2).
    assert only.score == pytest.approx(0.5)
    (unshrunk,) = item_neighbours(visitor_profiles(log), {1, 2}, Tuning(support_shrink=0.0))[1]
    assert unshrunk.score == pytest.approx(1.0)


def test_a_purchase_outweighs_a_view_and_repeats_do_not_add_up() -> None:
    log = [
        *views("a:1", 1),
        *views("a:1", 1),
        *views("a:1", 1, weight=CART),
        *views("a:1", 2, weight=PURCHASE),
    ]
    profile = visitor_profiles(log)["a:1"]
    assert (profile[1].weight, profile[2].weight) == (CART, PURCHASE)


def test_only_a_visitors_most_recent_products_count() -> None:
    log = [Interaction("a:1", pid, VIEW, EARLIER + timedelta(minutes=pid)) for pid in range(1, 11)]
    profile = visitor_profiles(log, Tuning(items_per_visitor=3))["a:1"]
    assert sorted(profile) == [8, 9, 10]


def test_unavailable_products_are_never_neighbours_nor_picked() -> None:
    products = catalog((1, 1, None, 0), (2, 1, None, 0), (3, 1, None, 999), unavailable={3})
    log = crowd(3, 1, 2, 3) + views(member_visitor(7), 1)
    result = recommend(log, products, [MemberInput(7)], NOW)
    assert ids(result.neighbours[1]) == [2]
    assert 3 in result.neighbours  # an unavailable product's page still gets neighbours
    assert 3 not in ids(result.members[7]) and 3 not in ids(result.popular)


def test_a_member_gets_the_neighbours_of_what_they_viewed_first() -> None:
    # Category 1: 1 and 2 go together; category 2 holds the shop's best sellers.
    products = catalog(
        (1, 1, None, 0), (2, 1, None, 0), (3, 1, None, 0), *((pid, 2, None, 500) for pid in range(10, 20))
    )
    log = crowd(4, 1, 2) + views(member_visitor(7), 1)
    picks = recommend(log, products, [MemberInput(7)], NOW).members[7]
    assert picks[0].product_id == 2 and picks[0].reason == CO_OCCURRENCE


def test_category_and_brand_affinity_rank_the_members_kind_of_products_above_best_sellers() -> None:
    products = catalog(
        (1, 1, 50, 0),
        (2, 1, None, 10),  # same category
        (3, 3, 50, 5),  # same brand, other category
        *((pid, 2, None, 500) for pid in range(10, 20)),
    )
    log = views(member_visitor(7), 1, weight=PURCHASE, at=NOW - timedelta(days=40))
    picks = recommend(log, products, [MemberInput(7)], NOW).members[7]
    assert ids(picks)[:3] == [1, 2, 3]  # bought 40 days ago: no longer excluded
    assert {p.reason for p in picks[:3]} == {AFFINITY}
    assert {p.reason for p in picks[3:]} == {POPULAR}


def test_crm_preferred_categories_lift_their_products_for_a_member_with_no_history() -> None:
    products = catalog((1, 1, None, 3), (2, 1, None, 2), *((pid, 2, None, 500) for pid in range(10, 20)))
    picks = recommend([], products, [MemberInput(7, preferred_category_ids=frozenset({1}))], NOW).members[7]
    assert ids(picks)[:2] == [1, 2]
    assert {p.reason for p in picks[:2]} == {CRM_PREFERENCE}


def test_without_any_signal_popularity_fills_the_list_and_best_sellers_start_it() -> None:
    products = catalog(*((pid, 1, None, 100 - pid) for pid in range(1, 30)))
    cold = recommend([], products, [MemberInput(7)], NOW, Tuning(picks=5, popular=10))
    assert ids(cold.popular) == list(range(1, 11))  # no activity yet: best sellers
    assert ids(cold.members[7]) == list(range(1, 6))
    assert {p.reason for p in cold.members[7]} == {POPULAR}

    warm = recommend([*views("a:1", 29), *views("a:2", 29)], products, [], NOW, Tuning(popular=3))
    assert ids(warm.popular) == [29, 1, 2]  # recent activity first, best sellers after


def test_popularity_decays_with_age() -> None:
    products = catalog((1, 1, None, 0), (2, 1, None, 0))
    log = [*views("a:1", 1, at=NOW - timedelta(days=60)), *views("a:2", 1, at=NOW - timedelta(days=60))]
    log += views("a:3", 2, at=NOW - timedelta(days=1))
    assert ids(recommend(log, products, [], NOW).popular) == [2, 1]


def test_what_the_member_bought_recently_is_left_out() -> None:
    products = catalog(*((pid, 1, None, 10) for pid in range(1, 6)))
    log = crowd(3, 1, 2, 3) + views(member_visitor(7), 1)
    member = MemberInput(7, bought_recently=frozenset({2, 4}))
    picks = ids(recommend(log, products, [member], NOW).members[7])
    assert 2 not in picks and 4 not in picks
    assert picks[0] == 3


def test_the_same_inputs_in_any_order_give_the_same_lists() -> None:
    rng = random.Random(5)
    products = catalog(*((pid, pid % 4, pid % 7 or None, rng.randrange(100)) for pid in range(1, 80)))
    log = [
        Interaction(
            member_visitor(m) if m < 20 else f"a:{m}",
            rng.randrange(1, 80),
            rng.choice((VIEW, CART, PURCHASE)),
            NOW - timedelta(hours=rng.randrange(2000)),
        )
        for m in (rng.randrange(40) for _ in range(600))
    ]
    members = [MemberInput(m, frozenset({m % 4}), frozenset({m + 1})) for m in range(20)]
    first = recommend(log, products, members, NOW)
    shuffled = log[:]
    rng.shuffle(shuffled)
    second = recommend(shuffled, products, list(reversed(members)), NOW)
    assert first == second
    assert all(len(picks) == len(set(ids(picks))) for picks in first.members.values())


def test_on_a_small_generated_log_it_beats_popularity_clearly() -> None:
    from bench.reco_eval import Shape, evaluate

    figures = evaluate(Shape(members=300, products=400, categories=10, brands=30, bundles=60, anonymous=300))
    assert figures["hit_rate_personal"] > 2 * figures["hit_rate_popularity"]
