"""ERP, CRM and WeChat outbox handlers over real HTTP against the simulators, on the session database.

Messages go through `run_due` (or the `bff worker` process) exactly as in production. Runs are
limited to the handler's topic; other tests' leftover messages of that topic may be handled too
(pushed to these simulators), so assertions look at this test's own order numbers and message ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tortoise.transactions import in_transaction

from bff.context import Services
from bff.models.member import Member, MemberLevel
from bff.models.order import PAID, AfterSale, Order, OrderLine
from bff.models.outbox import OutboxMessage
from bff.runtime import build_services
from bff.services.outbox import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    LEASE,
    dead_letters,
    enqueue,
    retry_dead,
    run_due,
)
from bff.settings import Settings, load_settings
from bff.worker import Worker
from integrations.crm import CrmClient
from integrations.erp import ErpClient, ErpOrder, PushResult
from integrations.simulators import create_crm_app, create_erp_app, create_wechat_app
from tests.support.servers import serve_asgi

ERP_TOKEN = "test-erp-token"
CRM_TOKEN = "test-crm-token"
MAX_ATTEMPTS = 3
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Crash(BaseException):
    """The worker process dies right after the ERP accepted the order."""


@pytest.fixture(scope="module")
async def sims() -> AsyncIterator[dict[str, str]]:
    async with (
        serve_asgi(create_erp_app(ERP_TOKEN)) as erp,
        serve_asgi(create_crm_app(CRM_TOKEN)) as crm,
        serve_asgi(create_wechat_app()) as wechat,
    ):
        yield {"erp": erp, "crm": crm, "wechat": wechat}


@pytest.fixture(scope="module")
def settings(database_url: str, sims: dict[str, str]) -> Settings:
    return replace(
        load_settings(),
        database_url=database_url,
        redis_url=None,
        erp_base_url=sims["erp"],
        erp_api_token=ERP_TOKEN,
        crm_base_url=sims["crm"],
        crm_api_token=CRM_TOKEN,
        wechat_api_base_url=sims["wechat"],
        outbox_max_attempts=MAX_ATTEMPTS,
        http_timeout_seconds=2.0,
    )


@pytest.fixture(scope="module")
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with AsyncExitStack() as stack:
        yield await build_services(settings, stack)


@pytest.fixture(scope="module")
async def level(seeded: str) -> MemberLevel:
    # The demo seed owns the member levels (other tests assert exactly its four): use its entry level.
    return await MemberLevel.get(rank=0)


class Requests:
    """Every request the handlers' ERP and CRM clients send, as (path, JSON body)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.sent.append((request.url.path, json.loads(request.content or b"{}")))

    def pushes(self, order_no: str) -> int:
        """How many times the order was pushed to the ERP."""
        return sum(
            1 for path, body in self.sent if path == "/api/v1/orders" and body.get("order_no") == order_no
        )


@pytest.fixture
async def requests() -> Requests:
    return Requests()


@pytest.fixture
async def http(requests: Requests) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, event_hooks={"request": [requests]}) as client:
        yield client


@pytest.fixture
def erp(http: httpx.AsyncClient, sims: dict[str, str]) -> ErpClient:
    return ErpClient(http, sims["erp"], ERP_TOKEN, timeout=2.0)


@pytest.fixture
def worker(services: Services, erp: ErpClient, http: httpx.AsyncClient, sims: dict[str, str]) -> Worker:
    # The handlers' ERP and CRM clients record their requests (see `Requests`).
    crm = CrmClient(http, sims["crm"], CRM_TOKEN, timeout=2.0)
    return Worker(replace(services, erp=erp, crm=crm), worker_id="test")


@pytest.fixture(autouse=True)
async def reset_simulators(sims: dict[str, str]) -> AsyncIterator[None]:
    async with httpx.AsyncClient(trust_env=False) as client:
        for url in sims.values():
            (await client.post(f"{url}/_sim/reset")).raise_for_status()
        yield
        for url in sims.values():  # a test that took an upstream down must not leave it down
            (await client.post(f"{url}/_sim/reset")).raise_for_status()


async def sim(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await (client.post(url + path, json=body) if body is not None else client.get(url + path))
        response.raise_for_status()
        return response.json()


async def erp_orders(sims: dict[str, str], order_no: str) -> list[dict[str, Any]]:
    state = await sim(sims["erp"], "/_sim/state")
    return [o for o in state["orders"] if o["received"]["order_no"] == order_no]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:20]}"


async def make_member(level: MemberLevel, phone: str = "13812348000") -> Member:
    return await Member.create(
        openid=unique("o_test_"), nickname="测试会员", phone=phone, level_id=level.id, growth_value=0
    )


PAID_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ADDRESS = {"name": "张三", "phone": "13800000000", "province": "上海", "city": "上海", "detail": "某路 1 号"}


async def make_paid_order(member: Member) -> tuple[Order, list[OrderLine]]:
    order = await Order.create(
        order_no=unique("T"),
        member_id=member.id,
        status=PAID,
        items_total_fen=4480,
        payable_fen=4480,
        address_snapshot=ADDRESS,
        paid_at=PAID_AT,
    )
    lines = [
        await OrderLine.create(
            order_id=order.id,
            sku_id=sku_id,
            sku_code=code,
            product_id=1,
            product_title="测试商品",
            quantity=quantity,
            unit_price_fen=price,
            line_total_fen=price * quantity,
        )
        for sku_id, code, quantity, price in ((101, "SKU-A", 2, 1990), (102, "SKU-B", 1, 500))
    ]
    return order, lines


async def run(worker: Worker, topic: str, now: datetime | None = None) -> int:
    """Run the topic's due messages until none is left (other tests' sign-ins queue CRM upserts too)."""
    total = 0
    while True:
        handled = await run_due(
            worker.context, now=now, worker_id=worker.worker_id, topics=[topic], limit=500
        )
        total += handled
        if handled < 500:
            return total


async def msg(dedupe_key: str) -> OutboxMessage:
    return await OutboxMessage.get(dedupe_key=dedupe_key)


# --- erp.push_order -------------------------------------------------------------------------------


async def test_a_paid_order_is_pushed_to_the_erp_once(
    worker: Worker, level: MemberLevel, sims: dict[str, str], requests: Requests
) -> None:
    member = await make_member(level)
    order, _ = await make_paid_order(member)
    dedupe = f"erp-push:{order.id}"
    async with in_transaction():
        await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe)
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe)  # enqueued twice: one message

    await run(worker, "erp.push_order")
    await run(worker, "erp.push_order")

    [pushed] = await erp_orders(sims, order.order_no)
    assert pushed["received"] == {
        "order_no": order.order_no,
        "member_ref": f"m_{member.id}",
        "lines": [
            {"sku_code": "SKU-A", "quantity": 2, "unit_price_fen": 1990},
            {"sku_code": "SKU-B", "quantity": 1, "unit_price_fen": 500},
        ],
        "address": ADDRESS,
        "payable_fen": 4480,
        "paid_at": PAID_AT.isoformat(),
    }
    assert (await Order.get(id=order.id)).erp_order_id == pushed["erp_order_id"]
    row = await msg(dedupe)
    assert (row.status, row.attempts) == ("DONE", 1)
    assert await OutboxMessage.filter(dedupe_key=dedupe).count() == 1
    assert requests.pushes(order.order_no) == 1


async def test_erp_down_is_retried_with_backoff_then_delivered(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    order, _ = await make_paid_order(await make_member(level))
    dedupe = f"erp-push:{order.id}"
    now = datetime.now(UTC)
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe, run_at=now)
    await sim(sims["erp"], "/_sim/config", {"down": True})

    await run(worker, "erp.push_order", now=now)
    row = await msg(dedupe)
    assert (row.status, row.attempts) == ("PENDING", 1)
    assert row.last_error.startswith("UpstreamUnavailable: erp: HTTP 503")
    assert now < row.run_at <= now + timedelta(seconds=BACKOFF_BASE_SECONDS)
    assert (await Order.get(id=order.id)).erp_order_id is None

    await sim(sims["erp"], "/_sim/config", {"down": False})
    await run(worker, "erp.push_order", now=now)  # not due yet: untouched
    assert (await msg(dedupe)).attempts == 1

    await run(worker, "erp.push_order", now=row.run_at)
    row = await msg(dedupe)
    assert (row.status, row.attempts, row.last_error) == ("DONE", 2, "")
    [pushed] = await erp_orders(sims, order.order_no)
    assert (await Order.get(id=order.id)).erp_order_id == pushed["erp_order_id"]


async def test_erp_down_past_max_attempts_dead_letters_and_retry_dead_redelivers(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    order, _ = await make_paid_order(await make_member(level))
    dedupe = f"erp-push:{order.id}"
    now = datetime.now(UTC)
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe, run_at=now)
    await sim(sims["erp"], "/_sim/config", {"down": True})

    for _ in range(MAX_ATTEMPTS):
        await run(worker, "erp.push_order", now=now)
        now += timedelta(seconds=BACKOFF_CAP_SECONDS)
    row = await msg(dedupe)
    assert (row.status, row.attempts) == ("DEAD", MAX_ATTEMPTS)
    assert row.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts: UpstreamUnavailable")
    dead = {m.id: m for m in await dead_letters(limit=1000)}
    assert dead[row.id].topic == "erp.push_order"

    await sim(sims["erp"], "/_sim/config", {"down": False})
    assert await retry_dead(row.id, now=now)
    await run(worker, "erp.push_order", now=now)
    assert (await msg(dedupe)).status == "DONE"
    assert len(await erp_orders(sims, order.order_no)) == 1


async def test_a_crash_after_the_push_repeats_it_and_the_erp_keeps_one_order(
    services: Services, worker: Worker, level: MemberLevel, sims: dict[str, str], requests: Requests
) -> None:
    class CrashingErp(ErpClient):
        async def push_order(self, order: ErpOrder) -> PushResult:
            await super().push_order(order)
            raise Crash  # the process dies before the erp_order_id is stored

    http = httpx.AsyncClient(trust_env=False, event_hooks={"request": [requests]})
    crashing = Worker(replace(services, erp=CrashingErp(http, sims["erp"], ERP_TOKEN)), worker_id="doomed")
    order, _ = await make_paid_order(await make_member(level))
    dedupe = f"erp-push:{order.id}"
    now = datetime.now(UTC)
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe, run_at=now)

    try:
        with pytest.raises(Crash):
            await run(crashing, "erp.push_order", now=now)
    finally:
        await http.aclose()
    assert (await Order.get(id=order.id)).erp_order_id is None
    row = await msg(dedupe)
    assert (row.status, row.attempts, row.locked_until) == ("PENDING", 1, now + LEASE)

    await run(worker, "erp.push_order", now=now + LEASE - timedelta(seconds=1))  # still leased
    assert (await msg(dedupe)).attempts == 1
    await run(worker, "erp.push_order", now=now + LEASE + timedelta(seconds=1))

    row = await msg(dedupe)
    assert (row.status, row.attempts) == ("DONE", 2)
    assert requests.pushes(order.order_no) == 2
    [pushed] = await erp_orders(sims, order.order_no)  # pushed twice, one order in the ERP
    assert (await Order.get(id=order.id)).erp_order_id == pushed["erp_order_id"]


async def test_an_order_already_pushed_is_not_pushed_again(
    worker: Worker, level: MemberLevel, requests: Requests
) -> None:
    order, _ = await make_paid_order(await make_member(level))
    await Order.filter(id=order.id).update(erp_order_id="ERP-O-EXISTING")
    dedupe = unique("push-again:")
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe)

    await run(worker, "erp.push_order")

    assert (await msg(dedupe)).status == "DONE"
    assert (await Order.get(id=order.id)).erp_order_id == "ERP-O-EXISTING"
    assert requests.pushes(order.order_no) == 0


async def test_an_unpaid_order_or_a_missing_one_dead_letters(worker: Worker, level: MemberLevel) -> None:
    order, _ = await make_paid_order(await make_member(level))
    await Order.filter(id=order.id).update(paid_at=None, status="PENDING_PAYMENT")
    unpaid, missing = unique("unpaid:"), unique("missing:")
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=unpaid)
    await enqueue("erp.push_order", {"order_id": 2_000_000_000}, dedupe_key=missing)

    await run(worker, "erp.push_order")

    row = await msg(unpaid)
    assert (row.status, row.last_error) == (
        "DEAD",
        f"PermanentFailure: order {order.order_no} is not paid: nothing to fulfil",
    )
    row = await msg(missing)
    assert (row.status, row.last_error) == ("DEAD", "PermanentFailure: order 2000000000 does not exist")


# --- erp.cancel_order -----------------------------------------------------------------------------


async def push(worker: Worker, order: Order) -> None:
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=f"erp-push:{order.id}")
    await run(worker, "erp.push_order")
    assert (await msg(f"erp-push:{order.id}")).status == "DONE"


async def test_cancel_order_cancels_it_in_the_erp(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    order, _ = await make_paid_order(await make_member(level))
    await push(worker, order)
    dedupe = unique("cancel:")
    await enqueue("erp.cancel_order", {"order_id": order.id, "reason": "买家取消"}, dedupe_key=dedupe)

    await run(worker, "erp.cancel_order")

    assert (await msg(dedupe)).status == "DONE"
    state = await sim(sims["erp"], "/_sim/state")
    assert {"order_no": order.order_no, "reason": "买家取消"} in state["cancellations"]
    [erp_order] = await erp_orders(sims, order.order_no)
    assert erp_order["status"] == "cancelled"


async def test_cancelling_a_shipped_order_dead_letters_with_the_reason(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    order, _ = await make_paid_order(await make_member(level))
    await push(worker, order)
    await sim(sims["erp"], f"/_sim/orders/{order.order_no}/ship", {})
    dedupe = unique("cancel:")
    await enqueue("erp.cancel_order", {"order_id": order.id, "reason": "买家取消"}, dedupe_key=dedupe)

    await run(worker, "erp.cancel_order")

    row = await msg(dedupe)
    assert (row.status, row.attempts) == ("DEAD", 1)
    assert row.last_error == (
        f"PermanentFailure: ERP refused to cancel order {order.order_no}: "
        "already shipped (needs a return instead)"
    )


async def test_a_cancel_that_overtakes_its_push_waits_for_it(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    order, _ = await make_paid_order(await make_member(level))
    dedupe = unique("cancel:")
    now = datetime.now(UTC)
    await enqueue("erp.cancel_order", {"order_id": order.id, "reason": "r"}, dedupe_key=dedupe, run_at=now)

    await run(worker, "erp.cancel_order", now=now)
    row = await msg(dedupe)
    assert (row.status, row.attempts) == ("PENDING", 1)
    assert row.last_error == f"NotInErpYet: order {order.order_no} is not in the ERP yet"

    await push(worker, order)
    await run(worker, "erp.cancel_order", now=row.run_at)
    assert (await msg(dedupe)).status == "DONE"
    [erp_order] = await erp_orders(sims, order.order_no)
    assert erp_order["status"] == "cancelled"


# --- erp.create_return ----------------------------------------------------------------------------


async def test_create_return_announces_the_after_sale_and_stores_the_erp_id(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    member = await make_member(level)
    order, lines = await make_paid_order(member)
    after_sale = await AfterSale.create(
        order_id=order.id,
        member_id=member.id,
        type="RETURN_AND_REFUND",
        amount_fen=1990,
        lines=[{"order_line_id": lines[0].id, "sku_id": lines[0].sku_id, "quantity": 1, "amount_fen": 1990}],
        reason="不想要了",
    )
    dedupe = f"return:{after_sale.id}"
    now = datetime.now(UTC)
    await enqueue("erp.create_return", {"after_sale_id": after_sale.id}, dedupe_key=dedupe, run_at=now)

    await run(worker, "erp.create_return", now=now)  # the order is not in the ERP yet: retried
    row = await msg(dedupe)
    assert (row.status, row.last_error) == (
        "PENDING",
        f"NotInErpYet: order {order.order_no} is not in the ERP yet",
    )

    await push(worker, order)
    await run(worker, "erp.create_return", now=row.run_at)
    await run(worker, "erp.create_return", now=row.run_at)

    assert (await msg(dedupe)).status == "DONE"
    returns = [
        r
        for r in (await sim(sims["erp"], "/_sim/state"))["returns"]
        if r["received"]["order_no"] == order.order_no
    ]
    assert [r["received"] for r in returns] == [
        {
            "order_no": order.order_no,
            "after_sale_id": str(after_sale.id),
            "type": "RETURN_AND_REFUND",
            "lines": [{"sku_code": "SKU-A", "quantity": 1}],
        }
    ]
    assert (await AfterSale.get(id=after_sale.id)).erp_return_id == returns[0]["erp_return_id"]


# --- crm.upsert_member ----------------------------------------------------------------------------


async def test_upsert_member_sends_the_current_profile_with_a_masked_phone(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    member = await make_member(level, phone="13812348000")
    no_phone = await make_member(level, phone="")
    await Member.filter(id=member.id).update(nickname="改过的昵称")  # the handler reads today's row
    keys = [unique("crm:"), unique("crm:")]
    await enqueue("crm.upsert_member", {"member_id": member.id}, dedupe_key=keys[0])
    await enqueue("crm.upsert_member", {"member_id": no_phone.id}, dedupe_key=keys[1])

    await run(worker, "crm.upsert_member")

    assert [(await msg(k)).status for k in keys] == ["DONE", "DONE"]
    upserts = {u["member_ref"]: u for u in (await sim(sims["crm"], "/_sim/state"))["upserts"]}
    assert upserts[f"m_{member.id}"] == {
        "member_ref": f"m_{member.id}",
        "openid": member.openid,
        "nickname": "改过的昵称",
        "phone_masked": "138****8000",
        "level": level.name,
        "registered_at": member.created_at.isoformat(),
    }
    assert upserts[f"m_{no_phone.id}"]["phone_masked"] == ""


async def test_a_crm_refusal_dead_letters_at_once(
    services: Services, level: MemberLevel, http: httpx.AsyncClient, sims: dict[str, str]
) -> None:
    wrong_token = Worker(
        replace(services, crm=CrmClient(http, sims["crm"], "wrong-token")), worker_id="misconfigured"
    )
    member = await make_member(level)
    dedupe = unique("crm:")
    await enqueue("crm.upsert_member", {"member_id": member.id}, dedupe_key=dedupe)

    await run(wrong_token, "crm.upsert_member")

    row = await msg(dedupe)
    assert (row.status, row.attempts) == ("DEAD", 1)
    assert row.last_error.startswith("UpstreamError: crm: HTTP 401")


# --- wechat.subscribe_message ---------------------------------------------------------------------


async def test_subscribe_message_is_sent_to_the_member(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    member = await make_member(level)
    dedupe = unique("msg:")
    payload = {
        "member_id": member.id,
        "template_id": "payment",
        "page": "pages/order/detail?id=1",
        "data": {"character_string1": "T123", "amount2": "44.80元"},
    }
    await enqueue("wechat.subscribe_message", payload, dedupe_key=dedupe)

    await run(worker, "wechat.subscribe_message")

    assert (await msg(dedupe)).status == "DONE"
    sent = [m for m in (await sim(sims["wechat"], "/_sim/state"))["messages"] if m["touser"] == member.openid]
    assert [(m["template_id"], m["page"], m["data"]) for m in sent] == [
        (
            "payment",
            "pages/order/detail?id=1",
            {"character_string1": {"value": "T123"}, "amount2": {"value": "44.80元"}},
        )
    ]


async def test_a_member_who_did_not_subscribe_is_done_without_a_retry(
    worker: Worker, level: MemberLevel, sims: dict[str, str]
) -> None:
    member = await make_member(level)
    await sim(sims["wechat"], "/_sim/unsubscribed", {"openids": [member.openid]})
    dedupe = unique("msg:")
    payload = {"member_id": member.id, "template_id": "payment", "page": "", "data": {"thing1": "x"}}
    await enqueue("wechat.subscribe_message", payload, dedupe_key=dedupe)

    await run(worker, "wechat.subscribe_message")

    row = await msg(dedupe)
    assert (row.status, row.attempts) == ("DONE", 1)
    messages = (await sim(sims["wechat"], "/_sim/state"))["messages"]
    assert not [m for m in messages if m["touser"] == member.openid]


async def test_messages_for_a_member_deleted_since_are_done_without_a_call(
    worker: Worker, sims: dict[str, str]
) -> None:
    gone = 2_000_000_000
    keys = [unique("msg:"), unique("crm:")]
    payload = {"member_id": gone, "template_id": "payment", "page": "", "data": {"thing1": "x"}}
    await enqueue("wechat.subscribe_message", payload, dedupe_key=keys[0])
    await enqueue("crm.upsert_member", {"member_id": gone}, dedupe_key=keys[1])

    await run(worker, "wechat.subscribe_message")
    await run(worker, "crm.upsert_member")

    assert [(await msg(k)).status for k in keys] == ["DONE", "DONE"]
    assert not [
        u for u in (await sim(sims["crm"], "/_sim/state"))["upserts"] if u["member_ref"] == f"m_{gone}"
    ]


# --- the `bff worker` process ---------------------------------------------------------------------


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DATABASE_URL=settings.database_url,
        ERP_BASE_URL=settings.erp_base_url,
        ERP_API_TOKEN=ERP_TOKEN,
        CRM_BASE_URL=settings.crm_base_url,
        CRM_API_TOKEN=CRM_TOKEN,
        WECHAT_API_BASE_URL=settings.wechat_api_base_url,
    )
    return env


async def start_worker(settings: Settings, *args: str) -> asyncio.subprocess.Process:
    code = "import asyncio, sys; from bff.worker import main; sys.exit(asyncio.run(main(sys.argv[1:])))"
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        cwd=REPO,
        env=worker_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_the_worker_process_delivers_and_exits_on_sigterm(
    settings: Settings, level: MemberLevel, sims: dict[str, str]
) -> None:
    order, _ = await make_paid_order(await make_member(level))
    dedupe = f"erp-push:{order.id}"
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe)

    process = await start_worker(settings, "--topic", "erp.push_order", "--poll-interval", "0.05")
    try:
        for _ in range(400):
            if (await msg(dedupe)).status != "PENDING":
                break
            await asyncio.sleep(0.05)
        assert (await msg(dedupe)).status == "DONE"
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode()
    assert "stopped" in output.decode()
    [pushed] = await erp_orders(sims, order.order_no)
    assert (await Order.get(id=order.id)).erp_order_id == pushed["erp_order_id"]


async def test_the_worker_process_once_runs_one_batch(
    settings: Settings, level: MemberLevel, sims: dict[str, str]
) -> None:
    member = await make_member(level)
    dedupe = unique("crm:")
    await enqueue("crm.upsert_member", {"member_id": member.id}, dedupe_key=dedupe)

    process = await start_worker(settings, "--once", "--topic", "crm.upsert_member")
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 0, output.decode()
    assert (await msg(dedupe)).status == "DONE"
    refs = [u["member_ref"] for u in (await sim(sims["crm"], "/_sim/state"))["upserts"]]
    assert f"m_{member.id}" in refs


async def test_two_worker_processes_never_handle_a_message_twice(
    settings: Settings, level: MemberLevel, sims: dict[str, str]
) -> None:
    members = [await make_member(level) for _ in range(30)]
    async with in_transaction():
        for member in members:
            await enqueue("crm.upsert_member", {"member_id": member.id}, dedupe_key=unique("crm:"))

    await sim(sims["crm"], "/_sim/config", {"latency": 0.3})  # slow enough for the two to overlap
    args = ("--once", "--batch", "200", "--topic", "crm.upsert_member")
    processes = [await start_worker(settings, *args) for _ in range(2)]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), timeout=60)

    logs = [out.decode() for out, _ in outputs]
    assert [p.returncode for p in processes] == [0, 0], logs
    handled = [int(m) for log in logs for m in re.findall(r"handled (\d+) messages", log)]
    assert len(handled) == 2 and sum(handled) >= 30, logs  # >=: leftovers of other tests count too
    refs = [u["member_ref"] for u in (await sim(sims["crm"], "/_sim/state"))["upserts"]]
    assert sorted(r for r in refs if r in {f"m_{m.id}" for m in members}) == sorted(
        f"m_{m.id}" for m in members
    )
