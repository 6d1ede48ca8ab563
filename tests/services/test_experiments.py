"""A/B tests: the statistics against hand-computed values, assignment, definitions and lifecycle, results."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bff.models.analytics import ExperimentVisitor
from bff.models.experiment import Experiment
from bff.models.order import Order
from bff.services import experiment_results, experiments
from bff.services.errors import BusinessError
from bff.services.experiment_stats import Sample, two_proportion_p, two_proportion_z, welch_p, welch_z
from bff.services.experiments import Definition, InvalidExperiment, assign_variant, problems_of


@pytest.fixture
def _db(seeded: str) -> None:
    """Tests that touch the database ask for it."""


def new_key() -> str:
    return f"exp-{uuid.uuid4().hex[:12]}"


def definition(key: str | None = None, **changes: Any) -> Definition:
    base = Definition(
        key=key or new_key(), name="首页横幅", screen="HOME", variants=(("control", 50), ("b", 50))
    )
    return replace(base, **changes)


# --- statistics ---------------------------------------------------------------------------------------


def test_the_two_proportion_z_test_matches_a_hand_computation() -> None:
    # 200/1000 vs 250/1000: pooled p = 450/2000 = 0.225, se = sqrt(0.225·0.775·(2/1000)) = 0.0186748,
    # z = (0.20 − 0.25) / 0.0186748 = −2.6774; p = 2·(1 − Φ(2.6774)) = 0.00742 (normal table).
    z = two_proportion_z(200, 1000, 250, 1000)
    assert z == pytest.approx(-2.6774, abs=1e-4)
    assert two_proportion_p(200, 1000, 250, 1000) == pytest.approx(0.00742, abs=1e-5)
    assert two_proportion_p(250, 1000, 200, 1000) == two_proportion_p(200, 1000, 250, 1000)
    # Equal rates: z = 0, p = 1.
    assert two_proportion_p(30, 100, 60, 200) == pytest.approx(1.0)


def test_the_two_proportion_test_is_undefined_without_visitors_or_spread() -> None:
    assert two_proportion_p(0, 0, 5, 10) is None
    assert two_proportion_p(0, 50, 0, 60) is None  # both 0%
    assert two_proportion_p(50, 50, 60, 60) is None  # both 100%


def test_welch_matches_a_hand_computation() -> None:
    # a = 100, 200, 300: mean 200, s² = (100² + 0 + 100²) / 2 = 10000; b = 300, 400, 500: mean 400, s² 10000.
    # se = sqrt(10000/3 + 10000/3) = 81.650, z = −200 / 81.650 = −2.4495, p = 2·Φ(−2.4495) = 0.01431.
    a = Sample(n=3, total=600, squares=100**2 + 200**2 + 300**2)
    b = Sample(n=3, total=1200, squares=300**2 + 400**2 + 500**2)
    assert a.variance == 10000 and b.mean == 400
    assert welch_z(a, b) == pytest.approx(-2.4495, abs=1e-4)
    assert welch_p(a, b) == pytest.approx(0.01431, abs=1e-5)


def test_welch_needs_two_values_per_arm_and_some_variance() -> None:
    one = Sample(n=1, total=500, squares=500**2)
    flat = Sample(n=4, total=400, squares=4 * 100**2)
    assert welch_p(one, Sample(n=3, total=600, squares=140_000)) is None
    assert welch_p(flat, flat) is None
    assert flat.variance == 0


def test_the_variance_from_aggregates_is_exact_where_floats_would_cancel() -> None:
    values = [10**9 + d for d in (0, 1, 2)]  # mean 10⁹ + 1, s² exactly 1
    sample = Sample(n=3, total=sum(values), squares=sum(v * v for v in values))
    assert sample.variance == 1


# --- assignment ---------------------------------------------------------------------------------------


def test_assignment_is_deterministic_and_depends_on_the_experiment() -> None:
    variants = (("control", 50), ("b", 50))
    assert assign_variant("banner", "m:42", variants) == assign_variant("banner", "m:42", variants)
    identities = [f"m:{i}" for i in range(200)]
    a = [assign_variant("banner", i, variants) for i in identities]
    b = [assign_variant("checkout-copy", i, variants) for i in identities]
    assert a != b  # another experiment shuffles people independently


def test_the_split_follows_the_weights() -> None:
    identities = [f"a:device-{i}" for i in range(10_000)]
    halves = Counter(assign_variant("split", i, (("control", 50), ("b", 50))) for i in identities)
    # Binomial(10000, ½) has sd 50: a fair hash lands within 5 sd of 5000.
    assert abs(halves["control"] - 5000) <= 250 and halves["control"] + halves["b"] == 10_000
    thirds = Counter(assign_variant("split3", i, (("c", 20), ("x", 30), ("y", 50))) for i in identities)
    for key, share in (("c", 0.2), ("x", 0.3), ("y", 0.5)):
        assert abs(thirds[key] - 10_000 * share) <= 5 * math.sqrt(10_000 * share * (1 - share))
    everyone = Counter(assign_variant("split", i, (("control", 0), ("b", 100))) for i in identities)
    assert everyone == {"b": 10_000}


def test_assignment_needs_a_positive_total() -> None:
    with pytest.raises(ValueError):
        assign_variant("x", "m:1", (("control", 0), ("b", 0)))


# --- definitions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"key": "A"}, "key"),
        ({"key": "has space"}, "key"),
        ({"key": "x" * 65}, "key"),
        ({"name": "  "}, "name"),
        ({"screen": "LANDING"}, "screen"),
        ({"variants": (("control", 100),)}, "variants"),
        ({"variants": tuple((f"v{i}", 1) for i in range(6))}, "variants"),
        ({"variants": (("control", 50), ("control", 50))}, "variants[1].key"),
        ({"variants": (("control", 50), ("B!", 50))}, "variants[1].key"),
        ({"variants": (("control", 50), ("b", -1))}, "variants[1].weight"),
        ({"variants": (("control", 0), ("b", 0))}, "variants"),
    ],
)
def test_invalid_definitions_name_the_field(changes: dict[str, Any], field: str) -> None:
    assert [f for f, _ in problems_of(replace(definition("ok-key"), **changes))] == [field]


def test_a_valid_definition_has_no_problems() -> None:
    assert problems_of(definition("ok_key-2", screen="CAMPAIGN")) == []
    assert problems_of(definition("ok", variants=(("control", 0), ("b", 1), ("c", 0)))) == []


@pytest.mark.usefixtures("_db")
async def test_the_lifecycle_is_draft_running_stopped_and_variants_freeze() -> None:
    key = new_key()
    created = await experiments.create(definition(key), "ops")
    assert (created.status, created.created_by, created.started_at) == ("DRAFT", "ops", None)
    edited = await experiments.update_draft(definition(key, variants=(("control", 10), ("b", 90))))
    assert experiments.variants_of(edited) == [("control", 10), ("b", 90)]

    started = await experiments.start(key)
    assert started.status == "RUNNING" and started.started_at is not None
    with pytest.raises(BusinessError) as frozen:
        await experiments.update_draft(definition(key, variants=(("control", 50), ("b", 50))))
    assert (frozen.value.code, frozen.value.field) == ("INVALID_STATE", "key")
    assert experiments.variants_of(await Experiment.get(key=key)) == [("control", 10), ("b", 90)]
    with pytest.raises(BusinessError) as again:
        await experiments.start(key)
    assert again.value.code == "INVALID_STATE"

    stopped = await experiments.stop(key)
    assert stopped.status == "STOPPED" and stopped.stopped_at is not None
    for action in (experiments.start, experiments.stop):
        with pytest.raises(BusinessError) as refused:
            await action(key)
        assert refused.value.code == "INVALID_STATE"


@pytest.mark.usefixtures("_db")
async def test_refusals_change_nothing() -> None:
    key = new_key()
    with pytest.raises(InvalidExperiment) as invalid:
        await experiments.create(definition(key, screen="NOWHERE", variants=(("c", 1),)), "ops")
    assert [f for f, _ in invalid.value.problems] == ["screen", "variants"]
    assert not await Experiment.exists(key=key)

    await experiments.create(definition(key), "ops")
    with pytest.raises(BusinessError) as duplicate:
        await experiments.create(definition(key, name="另一个"), "ops")
    assert (duplicate.value.code, duplicate.value.field) == ("DUPLICATE", "key")
    assert (await Experiment.get(key=key)).name == "首页横幅"

    with pytest.raises(BusinessError) as stop_draft:
        await experiments.stop(key)
    assert stop_draft.value.code == "INVALID_STATE"
    assert (await Experiment.get(key=key)).status == "DRAFT"
    for action in (experiments.start, experiments.stop):
        with pytest.raises(BusinessError) as missing:
            await action(new_key())
        assert missing.value.code == "NOT_FOUND"


@pytest.mark.usefixtures("_db")
async def test_only_a_running_experiment_splits_people() -> None:
    key = new_key()
    row = await experiments.create(definition(key, variants=(("control", 0), ("b", 1))), "ops")
    assert experiments.served_variant(row, "m:1") == "control"  # a draft shows the control
    row = await experiments.start(key)
    assert experiments.served_variant(row, "m:1") == "b"
    row = await experiments.stop(key)
    assert experiments.served_variant(row, "m:1") == "control"


# --- results ------------------------------------------------------------------------------------------


def test_a_range_is_inclusive_shop_days() -> None:
    start, end = experiment_results.shop_window(date(2031, 5, 10), date(2031, 5, 12))
    assert start == datetime(2031, 5, 9, 16, tzinfo=UTC)  # 00:00 in UTC+8
    assert end == datetime(2031, 5, 12, 16, tzinfo=UTC)
    with pytest.raises(BusinessError):
        experiment_results.shop_window(date(2031, 5, 12), date(2031, 5, 10))


@pytest.mark.usefixtures("_db")
async def test_results_at_scale_reproduce_the_z_test_and_call_it_significant() -> None:
    # 1000 visitors per arm; 200 control members and 250 "b" members each paid one order after exposure.
    key = new_key()
    row = await experiments.create(definition(key), "ops")
    base = random.Random(key).randrange(1_000_000_000, 2_000_000_000)
    exposed = datetime(2031, 8, 1, 4, tzinfo=UTC)
    visitors, orders = [], []
    for arm, converted, offset in (("control", 200, 0), ("b", 250, 1000)):
        for i in range(1000):
            member_id = base + offset + i
            visitors.append(
                ExperimentVisitor(
                    experiment_key=key,
                    variant=arm,
                    visitor_key=f"m:{member_id}",
                    member_id=member_id,
                    first_exposed_at=exposed,
                )
            )
            if i < converted:
                orders.append(
                    Order(
                        order_no=f"X{uuid.uuid4().hex[:20]}",
                        member_id=member_id,
                        status="PAID",
                        payable_fen=1000 + i,
                        paid_at=exposed + timedelta(hours=1),
                    )
                )
    await ExperimentVisitor.bulk_create(visitors)
    await Order.bulk_create(orders)

    control, b = (await experiment_results.results(row)).variants
    assert (control.arm.visitors, control.arm.conversions, b.arm.visitors, b.arm.conversions) == (
        1000,
        200,
        1000,
        250,
    )
    assert b.p_value == pytest.approx(0.00742, abs=1e-5)
    assert b.uplift_vs_control == pytest.approx(0.25)
    assert b.minimum_sample_reached and b.significant and not control.significant
    # Orders of 1000..1199 fen vs 1000..1249 fen: means 1099.5 vs 1124.5.
    assert control.arm.average_order_value_fen == 1100 and b.arm.average_order_value_fen == 1125
    assert b.aov_p_value is not None and b.aov_p_value < 0.05
