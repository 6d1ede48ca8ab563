"""CrmClient against the CRM simulator over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from integrations.crm import CareTaskResult, CrmClient, CrmMember, CrmProfile
from integrations.errors import UpstreamError, UpstreamUnavailable
from integrations.simulators import create_crm_app
from tests.support.servers import serve_asgi

TOKEN = "test-crm-token"
EIGHT_DAYS = 8 * 24 * 3600


@pytest.fixture(scope="module")
async def crm_url() -> AsyncIterator[str]:
    async with serve_asgi(create_crm_app(TOKEN)) as url:
        yield url


@pytest.fixture
async def http(crm_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        (await client.post(f"{crm_url}/_sim/reset")).raise_for_status()
        yield client


@pytest.fixture
def crm(http: httpx.AsyncClient, crm_url: str) -> CrmClient:
    return CrmClient(http, crm_url, TOKEN, timeout=2.0)


async def sim(http: httpx.AsyncClient, url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call an admin endpoint of the simulator: POST with a body, else GET."""
    response = await (http.post(url + path, json=body) if body is not None else http.get(url + path))
    response.raise_for_status()
    return response.json()


def member(ref: str = "m_1") -> CrmMember:
    return CrmMember(
        member_ref=ref,
        openid=f"o_{ref}",
        nickname="小明",
        phone_masked="138****0000",
        level="GOLD",
        registered_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


async def test_batch_get_answers_seeded_profiles_and_omits_unknown(
    crm: CrmClient, http: httpx.AsyncClient, crm_url: str
) -> None:
    seeded = {"member_ref": "m_1", "tags": ["vip"], "lifetime_value_fen": 123456, "segment": "vip"}
    await sim(http, crm_url, "/_sim/members", {"members": [seeded, {"member_ref": "m_2"}]})

    profiles = await crm.batch_get(["m_1", "m_2", "m_unknown"])

    assert set(profiles) == {"m_1", "m_2"}
    assert profiles["m_1"].tags == ("vip",)
    assert profiles["m_1"].lifetime_value_fen == 123456 and profiles["m_1"].segment == "vip"
    assert isinstance(profiles["m_1"].preferred_category_codes, tuple)  # generated, since not seeded
    assert profiles["m_2"].segment  # a generated profile is complete


async def test_prefix_seeding_generates_deterministic_profiles(
    crm: CrmClient, http: httpx.AsyncClient, crm_url: str
) -> None:
    await sim(http, crm_url, "/_sim/members", {"prefixes": ["load_"]})

    first = await crm.batch_get(["load_1", "load_2", "other"])
    again = await crm.batch_get(["load_1"])

    assert set(first) == {"load_1", "load_2"}
    assert again["load_1"] == first["load_1"]


async def test_batch_get_chunks_by_100(crm: CrmClient, http: httpx.AsyncClient, crm_url: str) -> None:
    await sim(http, crm_url, "/_sim/members", {"prefixes": ["m_"]})
    refs = [f"m_{i}" for i in range(250)]

    profiles = await crm.batch_get([*refs, "m_0"])

    assert len(profiles) == 250
    batches = (await sim(http, crm_url, "/_sim/state"))["batch_gets"]
    assert [len(b) for b in batches] == [100, 100, 50]


async def test_simulator_refuses_more_than_100_refs(http: httpx.AsyncClient, crm_url: str) -> None:
    response = await http.post(
        f"{crm_url}/api/v1/members/batch-get",
        json={"member_refs": [f"m_{i}" for i in range(101)]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 400


async def test_upsert_member_then_profile_exists(
    crm: CrmClient, http: httpx.AsyncClient, crm_url: str
) -> None:
    crm_id = await crm.upsert_member(member("m_9"))
    same_id = await crm.upsert_member(member("m_9"))

    assert crm_id and same_id == crm_id
    assert await crm.batch_get(["m_9"]) == {
        "m_9": CrmProfile("m_9", tags=(), lifetime_value_fen=0, segment="new", preferred_category_codes=())
    }
    upserts = (await sim(http, crm_url, "/_sim/state"))["upserts"]
    assert upserts[0] == member("m_9").to_wire()
    assert upserts[0]["registered_at"] == "2024-01-02T03:04:05+00:00"


async def test_care_task_is_deduplicated_for_seven_days(
    crm: CrmClient, http: httpx.AsyncClient, crm_url: str
) -> None:
    first = await crm.create_care_task("m_1", "churn_risk", "no order in 60 days", "CPN-BACK-10")
    again = await crm.create_care_task("m_1", "churn_risk", "still no order")
    other_kind = await crm.create_care_task("m_1", "birthday", "birthday next week")

    assert first.created and again == CareTaskResult(first.task_id, created=False)
    assert other_kind.created and other_kind.task_id != first.task_id

    await sim(http, crm_url, "/_sim/config", {"clock_offset": EIGHT_DAYS})
    later = await crm.create_care_task("m_1", "churn_risk", "a week later")

    assert later.created and later.task_id != first.task_id
    tasks = (await sim(http, crm_url, "/_sim/state"))["tasks"]
    assert tasks[0]["suggested_coupon_template"] == "CPN-BACK-10"
    assert len(tasks) == 3


async def test_wrong_token_is_a_non_retryable_error(http: httpx.AsyncClient, crm_url: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        await CrmClient(http, crm_url, "wrong").batch_get(["m_1"])
    assert caught.value.status == 401 and not caught.value.retryable


async def test_down_and_faults_are_unavailable(crm: CrmClient, http: httpx.AsyncClient, crm_url: str) -> None:
    await sim(http, crm_url, "/_sim/config", {"down": True})
    with pytest.raises(UpstreamUnavailable):
        await crm.batch_get(["m_1"])

    await sim(http, crm_url, "/_sim/config", {"down": False, "error_rate": 1.0})
    with pytest.raises(UpstreamUnavailable) as caught:
        await crm.upsert_member(member())
    assert caught.value.status == 500


async def test_latency_beyond_timeout_is_unavailable_quickly(http: httpx.AsyncClient, crm_url: str) -> None:
    await sim(http, crm_url, "/_sim/config", {"latency": 30})

    with pytest.raises(UpstreamUnavailable, match="Timeout"):
        await CrmClient(http, crm_url, TOKEN, timeout=0.2).batch_get(["m_1"])


async def test_reset_restores_a_healthy_empty_simulator(
    crm: CrmClient, http: httpx.AsyncClient, crm_url: str
) -> None:
    await crm.upsert_member(member())
    await sim(http, crm_url, "/_sim/config", {"down": True, "latency": 1})

    await sim(http, crm_url, "/_sim/reset", {})

    state = await sim(http, crm_url, "/_sim/state")
    assert state["knobs"]["down"] is False and state["knobs"]["latency"] == 0
    assert state["upserts"] == [] and await crm.batch_get(["m_1"]) == {}
