"""`kill -9` of a real `bff worker` mid-delivery: a second worker delivers the message, and the ERP
ends up with the order once, whether the kill came before or after the ERP acted on the push."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.models.member import Member, MemberLevel
from bff.models.order import PAID, Order, OrderLine
from bff.models.outbox import OutboxMessage
from bff.services.outbox import enqueue
from integrations.simulators.erp import create_erp_app
from tests.faults.support import Bff, child_env
from tests.support.servers import serve_asgi

ERP_TOKEN = "faults-crash-erp-token"
DELIVERY_SECONDS = 30.0
ADDRESS = {"name": "张三", "phone": "13800000000", "province": "上海", "city": "上海", "detail": "某路 1 号"}


@dataclass
class PushWatch:
    """Wraps the ERP simulator: sees each push of `target` arrive and get processed; can hold the answer.

    With `hold` set, the answer to the first push (with the erp_order_id the worker would store) waits
    for `released`: the ERP has recorded the order, the worker never hears so.
    """

    app: ASGIApp
    target: str = ""
    hold: bool = False
    arrived: int = 0
    processed: int = 0
    arrival: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/v1/orders":
            await self.app(scope, receive, send)
            return
        body = [await receive()]
        while body[-1].get("more_body", False):
            body.append(await receive())
        raw = b"".join(m.get("body", b"") for m in body)
        ours = json.loads(raw or b"{}").get("order_no") == self.target

        async def replay() -> Message:
            return body.pop(0) if body else await receive()

        if ours:
            self.arrived += 1
            self.arrival.set()
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, replay, keep)
        if ours and any(m.get("status") in (200, 201) for m in answer):
            self.processed += 1
            self.done.set()
        if ours and self.hold:
            self.hold = False  # only the first answer is held
            await asyncio.wait_for(self.released.wait(), DELIVERY_SECONDS * 2)
        try:
            for message in answer:
                await send(message)
        except OSError:
            pass  # the worker is gone


@pytest.fixture
async def erp() -> AsyncIterator[tuple[PushWatch, str]]:
    watch = PushWatch(create_erp_app(ERP_TOKEN))
    async with serve_asgi(watch) as url:
        yield watch, url


async def _paid_order() -> Order:
    level = await MemberLevel.get(rank=0)
    member = await Member.create(
        openid=f"o_crash_{uuid.uuid4().hex[:16]}", nickname="崩溃测试", level_id=level.id
    )
    order = await Order.create(
        order_no=f"K{uuid.uuid4().hex[:20]}", member_id=member.id, status=PAID, items_total_fen=1990,
        payable_fen=1990, address_snapshot=ADDRESS, paid_at=datetime(2031, 5, 1, tzinfo=UTC),
    )  # fmt: skip
    await OrderLine.create(
        order_id=order.id, sku_id=101, sku_code="SKU-CRASH", product_id=1, product_title="测试商品",
        quantity=1, unit_price_fen=1990, line_total_fen=1990,
    )  # fmt: skip
    return order


def _worker(database_url: str, erp_url: str, log: Path) -> Bff:
    # A long HTTP timeout: the worker must still be waiting on the ERP when it is killed, not retrying.
    env = child_env(DATABASE_URL=database_url, ERP_BASE_URL=erp_url, ERP_API_TOKEN=ERP_TOKEN,
                    HTTP_TIMEOUT_SECONDS="60")  # fmt: skip
    return Bff(["worker", "--topic", "erp.push_order", "--poll-interval", "0.05"], env, log)


async def _message(dedupe: str) -> OutboxMessage:
    return await OutboxMessage.get(dedupe_key=dedupe)


async def _erp_orders(url: str, order_no: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(trust_env=False) as client:
        state = (await client.get(f"{url}/_sim/state")).json()
    return [o for o in state["orders"] if o["received"]["order_no"] == order_no]


async def _kill_and_redeliver(
    database_url: str, erp_url: str, tmp_path: Path, dedupe: str, in_flight: asyncio.Event
) -> None:
    """Start a worker, SIGKILL it once `in_flight` is set, expire its lease, and let a second one finish."""
    doomed = _worker(database_url, erp_url, tmp_path / "doomed.log")
    try:
        await asyncio.wait_for(in_flight.wait(), DELIVERY_SECONDS)
        doomed.signal(signal.SIGKILL)
        assert doomed.wait(10) == -signal.SIGKILL
    finally:
        doomed.close()
    row = await _message(dedupe)
    assert (row.status, row.attempts) == ("PENDING", 1), doomed.output()[-2000:]
    assert row.locked_until is not None and row.locked_until > datetime.now(UTC)
    # The lease (60 s) is what a second worker waits out; expire it rather than sleep through it.
    await OutboxMessage.filter(id=row.id).update(locked_until=datetime.now(UTC) - timedelta(seconds=1))

    second = _worker(database_url, erp_url, tmp_path / "second.log")
    try:
        for _ in range(int(DELIVERY_SECONDS / 0.05)):
            if (await _message(dedupe)).status != "PENDING":
                break
            await asyncio.sleep(0.05)
        row = await _message(dedupe)
        assert (row.status, row.attempts) == ("DONE", 2), (row.last_error, second.output()[-3000:])
        second.signal(signal.SIGTERM)
        assert second.wait(15) == 0, second.output()[-3000:]
    finally:
        second.close()


async def test_killed_after_the_erp_took_the_order_repeats_the_push_not_the_order(
    seeded: str, erp: tuple[PushWatch, str], tmp_path: Path
) -> None:
    watch, erp_url = erp
    watch.hold = True  # the ERP takes the order; its answer waits until the worker is dead
    order = await _paid_order()
    watch.target = order.order_no
    dedupe = f"erp-push:{order.id}"
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe)
    try:
        await _kill_and_redeliver(seeded, erp_url, tmp_path, dedupe, watch.done)
    finally:
        watch.released.set()

    # Pushed and processed twice (the first answer was lost with the worker), one order in the ERP.
    assert (watch.arrived, watch.processed) == (2, 2)
    [pushed] = await _erp_orders(erp_url, order.order_no)
    assert (await Order.get(id=order.id)).erp_order_id == pushed["erp_order_id"]


async def test_killed_while_the_push_is_on_the_wire_delivers_it_once(
    seeded: str, erp: tuple[PushWatch, str], tmp_path: Path
) -> None:
    watch, erp_url = erp
    async with httpx.AsyncClient(trust_env=False) as client:  # the ERP sits on the push before acting
        (await client.post(f"{erp_url}/_sim/config", json={"latency": 60})).raise_for_status()
    order = await _paid_order()
    watch.target = order.order_no
    dedupe = f"erp-push:{order.id}"
    await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe)
    in_flight = asyncio.Event()

    async def signal_in_flight() -> None:
        await watch.arrival.wait()
        await asyncio.sleep(0.2)  # the request now sits in the simulator's delay
        assert watch.processed == 0  # the ERP has not acted on it
        async with httpx.AsyncClient(trust_env=False) as client:
            (await client.post(f"{erp_url}/_sim/config", json={"latency": 0})).raise_for_status()
        in_flight.set()

    task = asyncio.create_task(signal_in_flight())
    await _kill_and_redeliver(seeded, erp_url, tmp_path, dedupe, in_flight)
    await task

    # Sent twice, acted on once: the killed worker's request died with its connection.
    assert (watch.arrived, watch.processed) == (2, 1)
    [pushed] = await _erp_orders(erp_url, order.order_no)
    assert (await Order.get(id=order.id)).erp_order_id == pushed["erp_order_id"]
