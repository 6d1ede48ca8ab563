"""A/B tests over HTTP: operators' lifecycle and permissions, shoppers' stable assignment, exact results."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

import bff.documents
from bff.auth import Principal, Role, issue_token
from bff.models.analytics import ExperimentVisitor
from bff.models.experiment import Experiment
from bff.models.member import Member
from bff.models.order import Order
from bff.services.experiments import assign_variant
from bff.services.shop_time import SHOP_TZ
from tests.support.api import Api
from tests.support.sql_counter import count_sql

DOCUMENT = (Path(bff.documents.__file__).parent / "screens_extra" / "experiments.graphql").read_text(
    encoding="utf-8"
)
OPERATOR_OPERATIONS: dict[str, dict[str, Any]] = {
    "Experiments": {},
    "CreateExperiment": {"input": {"key": "perm-check", "name": "x", "screen": "HOME", "variants": []}},
    "UpdateExperiment": {"input": {"key": "perm-check", "name": "x", "screen": "HOME", "variants": []}},
    "StartExperiment": {"key": "perm-check"},
    "StopExperiment": {"key": "perm-check"},
    "ExperimentResults": {"key": "perm-check"},
}


class Experiments(Api):
    """Sends this document's operations by name."""

    async def body(self, name: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        response = await self.post(DOCUMENT, variables, token=token, operation_name=name)
        assert response.status_code == 200, response.text
        return response.json()

    async def run(self, name: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        body = await self.body(name, variables, token)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture
def ab(api: Api) -> Experiments:
    return Experiments(api.client)


@pytest.fixture(scope="module")
def operator(app: Starlette) -> str:
    secret = app.state.services.settings.jwt_secret
    return issue_token(Principal(role=Role.OPERATOR, name="ops-ab"), secret, 3600).token


def new_key() -> str:
    return f"ab-{uuid.uuid4().hex[:12]}"


def experiment_input(key: str, variants: list[tuple[str, int]], **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "key": key,
            "name": "首页横幅文案",
            "screen": "HOME",
            "variants": [{"key": k, "weight": w} for k, w in variants],
            **extra,
        }
    }


async def created(ab: Experiments, operator: str, variants: list[tuple[str, int]]) -> str:
    key = new_key()
    data = await ab.run("CreateExperiment", experiment_input(key, variants), operator)
    assert data["createExperiment"]["userErrors"] == []
    return key


async def variant(
    ab: Experiments, key: str, token: str | None = None, anonymous_id: str | None = None
) -> Any:
    data = await ab.run("Experiment", {"key": key, "anonymousId": anonymous_id}, token)
    return data["experiment"]["variant"] if data["experiment"] else None


async def test_an_operator_creates_starts_and_stops_an_experiment(ab: Experiments, operator: str) -> None:
    key = new_key()
    made = (await ab.run("CreateExperiment", experiment_input(key, [("control", 1), ("b", 3)]), operator))[
        "createExperiment"
    ]
    assert made["userErrors"] == []
    assert made["experiment"]["status"] == "DRAFT" and made["experiment"]["createdBy"] == "ops-ab"
    assert made["experiment"]["variants"] == [
        {"key": "control", "weight": 1, "isControl": True},
        {"key": "b", "weight": 3, "isControl": False},
    ]
    edited = (
        await ab.run(
            "UpdateExperiment", experiment_input(key, [("control", 1), ("b", 1)], screen="CART"), operator
        )
    )["updateExperiment"]
    assert edited["userErrors"] == [] and edited["experiment"]["screen"] == "CART"

    started = (await ab.run("StartExperiment", {"key": key}, operator))["startExperiment"]
    assert started["experiment"]["status"] == "RUNNING" and started["experiment"]["startedAt"]
    drafts = (await ab.run("Experiments", {"status": "RUNNING", "first": 100}, operator))["experiments"]
    assert key in [e["node"]["key"] for e in drafts["edges"]]

    frozen = (
        await ab.run(
            "UpdateExperiment", experiment_input(key, [("control", 9), ("b", 1)], screen="CART"), operator
        )
    )["updateExperiment"]
    assert frozen["experiment"] is None
    assert [(e["code"], e["field"]) for e in frozen["userErrors"]] == [("INVALID_STATE", "key")]
    assert (await Experiment.get(key=key)).variants == [
        {"key": "control", "weight": 1},
        {"key": "b", "weight": 1},
    ]

    stopped = (await ab.run("StopExperiment", {"key": key}, operator))["stopExperiment"]
    assert stopped["experiment"]["status"] == "STOPPED" and stopped["experiment"]["stoppedAt"]
    restart = (await ab.run("StartExperiment", {"key": key}, operator))["startExperiment"]
    assert [e["code"] for e in restart["userErrors"]] == ["INVALID_STATE"]
    missing = (await ab.run("StopExperiment", {"key": new_key()}, operator))["stopExperiment"]
    assert [e["code"] for e in missing["userErrors"]] == ["NOT_FOUND"]


async def test_invalid_definitions_are_user_errors_and_change_nothing(ab: Experiments, operator: str) -> None:
    key = new_key()
    bad = experiment_input(key, [("control", 50), ("control", -1), ("B", 0)], name=" ")
    errors = (await ab.run("CreateExperiment", bad, operator))["createExperiment"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [
        ("INVALID_INPUT", "name"),
        ("INVALID_INPUT", "variants[1].key"),
        ("INVALID_INPUT", "variants[1].weight"),
        ("INVALID_INPUT", "variants[2].key"),
    ]
    assert not await Experiment.exists(key=key)
    bad_key = experiment_input("No Spaces", [("control", 1), ("b", 1)])
    errors = (await ab.run("CreateExperiment", bad_key, operator))["createExperiment"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("INVALID_INPUT", "key")]

    await created(ab, operator, [("control", 1), ("b", 1)])
    taken = await created(ab, operator, [("control", 1), ("b", 1)])
    again = experiment_input(taken, [("only", 1), ("two", 1)], name="重名")
    errors = (await ab.run("CreateExperiment", again, operator))["createExperiment"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("DUPLICATE", "key")]
    assert (await Experiment.get(key=taken)).name == "首页横幅文案"


async def test_operator_operations_need_an_operator(ab: Experiments, shopper: str) -> None:
    for name, variables in OPERATOR_OPERATIONS.items():
        as_member = await ab.body(name, variables, shopper)
        assert as_member["errors"][0]["extensions"]["code"] == "FORBIDDEN", name
        anonymous = await ab.body(name, variables)
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", name
    assert not await Experiment.exists(key="perm-check")


async def test_a_member_keeps_the_variant_across_logins_and_devices(
    ab: Experiments, api: Api, app: Starlette, operator: str
) -> None:
    key = await created(ab, operator, [("control", 50), ("b", 50)])
    await ab.run("StartExperiment", {"key": key}, operator)
    name = f"ab{uuid.uuid4().hex[:10]}"
    first = await api.login(name)
    member = await Member.get(openid=f"o_{name}")
    # Yesterday's session on another phone: another token for the same member.
    second = issue_token(
        Principal(role=Role.MEMBER, member_id=member.id),
        app.state.services.settings.jwt_secret,
        7 * 86400,
        now=time.time() - 86400,
    ).token
    assert first != second
    expected = assign_variant(key, f"m:{member.id}", [("control", 50), ("b", 50)])
    seen = {
        await variant(ab, key, first),
        await variant(ab, key, second),
        await variant(ab, key, second, "device-1"),  # the token wins over an anonymous id
        await variant(ab, key, first, "device-2"),
    }
    assert seen == {expected}
    assignment = (await ab.run("Experiment", {"key": key}, first))["experiment"]
    assert assignment == {"key": key, "variant": expected, "screen": "HOME"}


async def test_anonymous_visitors_are_split_by_their_anonymous_id(ab: Experiments, operator: str) -> None:
    key = await created(ab, operator, [("control", 50), ("b", 50)])
    devices = [f"dev-{uuid.uuid4().hex}" for _ in range(24)]
    assert {await variant(ab, key, anonymous_id=d) for d in devices} == {"control"}  # a draft

    await ab.run("StartExperiment", {"key": key}, operator)
    with count_sql() as sql:
        got = [await variant(ab, key, anonymous_id=d) for d in devices]
    assert sql.count == len(devices)  # one lookup by key per request
    assert got == [assign_variant(key, f"a:{d}", [("control", 50), ("b", 50)]) for d in devices]
    assert got == [await variant(ab, key, anonymous_id=d) for d in devices]
    assert set(got) == {"control", "b"}

    await ab.run("StopExperiment", {"key": key}, operator)
    assert {await variant(ab, key, anonymous_id=d) for d in devices} == {"control"}

    everyone_b = await created(ab, operator, [("control", 0), ("b", 100)])
    await ab.run("StartExperiment", {"key": everyone_b}, operator)
    assert {await variant(ab, everyone_b, anonymous_id=d) for d in devices} == {"b"}

    assert await variant(ab, new_key(), anonymous_id=devices[0]) is None
    missing_id = await ab.body("Experiment", {"key": key})
    assert missing_id["data"]["experiment"] is None
    assert "anonymousId" in missing_id["errors"][0]["message"]


def shop(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of May 2031 in the shop's calendar (UTC+8)."""
    return datetime(2031, 5, day, hour, minute, tzinfo=SHOP_TZ)


async def results_fixture(key: str) -> None:
    """Hand-made exposures and orders; member ids are fakes no other test uses."""
    base = 2_000_000_000 + uuid.uuid4().int % 100_000_000
    m = {name: base + i for i, name in enumerate(["m1", "m2", "m3", "m4", "m5", "m6", "other"])}
    visitors = [
        # control
        ("control", "m1", shop(10, 0, 30)),  # the UTC day is still May 9th: counted by shop day
        ("control", "m2", shop(11, 9)),
        ("control", None, shop(11, 10)),  # anonymous
        ("control", "m3", shop(9, 23, 30)),  # before the range
        # b
        ("b", "m4", shop(10, 9)),
        ("b", "m5", shop(12, 23, 59)),
        ("b", "m6", shop(11, 12)),
        ("b", None, shop(12, 8)),
    ]
    await ExperimentVisitor.bulk_create(
        ExperimentVisitor(
            experiment_key=key,
            variant=arm,
            visitor_key=f"m:{m[who]}" if who else f"a:{uuid.uuid4().hex}",
            member_id=m[who] if who else None,
            first_exposed_at=at.astimezone(UTC),
        )
        for arm, who, at in visitors
    )
    # The same member in another experiment is not counted in this one.
    await ExperimentVisitor.create(
        experiment_key=f"{key}-other",
        variant="b",
        visitor_key=f"m:{m['other']}",
        member_id=m["other"],
        first_exposed_at=shop(10, 1).astimezone(UTC),
    )
    orders = [
        ("m1", 10_000, shop(10, 12)),
        ("m1", 5_000, shop(11, 9)),
        ("m2", 7_000, shop(10, 8)),  # paid before m2's first exposure
        ("m3", 9_999, shop(10, 12)),  # m3 was exposed before the range
        ("m4", 3_001, shop(10, 10)),
        ("m4", 8_888, shop(13, 0, 10)),  # after the range
        ("m4", 4_000, None),  # never paid
        ("m5", 2_000, shop(12, 23, 59) + timedelta(seconds=30)),
        ("other", 6_000, shop(10, 12)),
    ]
    await Order.bulk_create(
        Order(
            order_no=f"AB{uuid.uuid4().hex[:20]}",
            member_id=m[who],
            status="PAID" if paid else "PENDING_PAYMENT",
            payable_fen=fen,
            paid_at=paid.astimezone(UTC) if paid else None,
        )
        for who, fen, paid in orders
    )


def numbers(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["visitors"],
        row["conversions"],
        row["orders"],
        row["revenue"]["amount"],
        row["averageOrderValue"]["amount"],
    )


async def test_results_on_a_hand_made_fixture(ab: Experiments, operator: str) -> None:
    key = await created(ab, operator, [("control", 50), ("b", 50)])
    await ab.run("StartExperiment", {"key": key}, operator)
    await results_fixture(key)

    with count_sql() as sql:
        data = (
            await ab.run(
                "ExperimentResults",
                {"key": key, "range": {"from": "2031-05-10", "to": "2031-05-12"}},
                operator,
            )
        )["experimentResults"]
    assert sql.count == 2  # the experiment, then one GROUP BY over exposures and orders
    assert (data["from"], data["to"]) == ("2031-05-10", "2031-05-12")
    control, b = data["variants"]
    # control: m1, m2 and an anonymous visitor; m1 converted with 10000 + 5000 (m2 paid before exposure).
    assert numbers(control) == (3, 1, 2, 15_000, 7_500)
    assert control["isControl"] and control["pValue"] is None and control["upliftVsControl"] is None
    # b: m4, m5, m6 and an anonymous visitor; m4 paid 3001 in range, m5 2000 → AOV 2500.5 → 2501.
    assert numbers(b) == (4, 2, 2, 5_001, 2_501)
    assert control["conversionRate"] == pytest.approx(1 / 3) and b["conversionRate"] == 0.5
    assert b["upliftVsControl"] == pytest.approx(0.5)  # (1/2 − 1/3) / (1/3)
    # Pooled p = 3/7, se = sqrt(3/7 · 4/7 · (1/3 + 1/4)) = sqrt(1/7) = 0.37796, z = (1/3 − 1/2)/se = −0.44096,
    # p = 2·(1 − Φ(0.44096)) = 0.65924.
    assert b["pValue"] == pytest.approx(0.65924, abs=1e-5)
    # Order values 10000, 5000 (s² 12 500 000) vs 3001, 2000 (s² 501 000.5):
    # se = sqrt(12 500 000/2 + 501 000.5/2) = 2549.608, z = 4999.5 / 2549.608 = 1.96089, p = 0.04989.
    assert b["aovPValue"] == pytest.approx(0.04989, abs=1e-5)
    assert (b["minimumSampleReached"], b["significant"]) == (False, False)

    everything = (await ab.run("ExperimentResults", {"key": key}, operator))["experimentResults"]
    control, b = everything["variants"]
    assert (everything["from"], everything["to"]) == (None, None)
    assert numbers(control) == (4, 2, 3, 24_999, 8_333)  # + m3 and their 9999
    assert numbers(b) == (4, 2, 3, 13_889, 4_630)  # + m4's 8888


async def test_results_of_an_unknown_key_or_a_backwards_range(ab: Experiments, operator: str) -> None:
    assert (await ab.run("ExperimentResults", {"key": new_key()}, operator))["experimentResults"] is None
    key = await created(ab, operator, [("control", 1), ("b", 1)])
    empty = (await ab.run("ExperimentResults", {"key": key}, operator))["experimentResults"]
    assert [numbers(v) for v in empty["variants"]] == [(0, 0, 0, 0, 0)] * 2
    assert empty["variants"][1]["pValue"] is None
    backwards = await ab.body(
        "ExperimentResults", {"key": key, "range": {"from": "2031-05-12", "to": "2031-05-10"}}, operator
    )
    assert backwards["data"]["experimentResults"] is None
    assert backwards["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
