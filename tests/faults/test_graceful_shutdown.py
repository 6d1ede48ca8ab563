"""SIGTERM to `bff serve --worker` with a slow request and an outbox delivery in flight: the request is
answered, new connections are refused, the worker finishes its message, and the process exits 0."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bff.documents import operations
from bff.models.member import Member, MemberLevel
from bff.models.order import PAID, Order, OrderLine
from bff.models.outbox import OutboxMessage
from bff.services.outbox import enqueue
from integrations.simulators.erp import create_erp_app
from integrations.simulators.wechat import create_wechat_app
from tests.faults.support import Bff, accepts, child_env, free_port, wait_http
from tests.support.servers import serve_asgi

ERP_TOKEN = "faults-shutdown-erp-token"
SLOW_LOGIN_SECONDS = 2.0  # the WeChat simulator's latency: the request in flight at SIGTERM
SLOW_PUSH_SECONDS = 3.0  # the ERP simulator's latency: the outbox delivery in flight at SIGTERM
ADDRESS = {"name": "张三", "phone": "13800000000", "province": "上海", "city": "上海", "detail": "某路 1 号"}


async def _paid_order() -> Order:
    level = await MemberLevel.get(rank=0)
    member = await Member.create(
        openid=f"o_term_{uuid.uuid4().hex[:16]}", nickname="停机测试", level_id=level.id
    )
    order = await Order.create(
        order_no=f"G{uuid.uuid4().hex[:20]}", member_id=member.id, status=PAID, items_total_fen=990,
        payable_fen=990, address_snapshot=ADDRESS, paid_at=datetime(2031, 6, 1, tzinfo=UTC),
    )  # fmt: skip
    await OrderLine.create(
        order_id=order.id, sku_id=101, sku_code="SKU-TERM", product_id=1, product_title="测试商品",
        quantity=1, unit_price_fen=990, line_total_fen=990,
    )  # fmt: skip
    return order


async def _until(check: object, seconds: float, what: str, bff: Bff) -> None:
    deadline = time.monotonic() + seconds
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not reached:\n{bff.output()[-3000:]}"
        await asyncio.sleep(0.05)


async def test_sigterm_drains_the_request_and_the_batch_then_exits_0(seeded: str, tmp_path: Path) -> None:
    async with (
        serve_asgi(create_wechat_app()) as wechat_url,
        serve_asgi(create_erp_app(ERP_TOKEN)) as erp_url,
        httpx.AsyncClient(timeout=30, trust_env=False) as http,
    ):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = child_env(
            DATABASE_URL=seeded, WECHAT_API_BASE_URL=wechat_url, ERP_BASE_URL=erp_url,
            ERP_API_TOKEN=ERP_TOKEN, HTTP_TIMEOUT_SECONDS="10", BFF_RATE_LIMITS="off",
        )  # fmt: skip
        bff = Bff(["serve", "--port", str(port), "--worker", "--no-access-log"], env, tmp_path / "bff.log")
        try:
            await wait_http(f"{url}/healthz", bff)
            await http.post(f"{wechat_url}/_sim/config", json={"latency": SLOW_LOGIN_SECONDS})
            await http.post(f"{erp_url}/_sim/config", json={"latency": SLOW_PUSH_SECONDS})

            order = await _paid_order()
            dedupe = f"erp-push:{order.id}"
            await enqueue("erp.push_order", {"order_id": order.id}, dedupe_key=dedupe)

            async def claimed() -> bool:
                return (await OutboxMessage.get(dedupe_key=dedupe)).attempts >= 1

            await _until(claimed, 30, "the worker's claim", bff)
            body = {"query": operations()["Login"], "variables": {"code": f"sim_term{uuid.uuid4().hex[:8]}"}}
            login = asyncio.create_task(http.post(f"{url}/graphql", json=body))
            await asyncio.sleep(0.5)  # the login now waits on WeChat
            bff.signal(signal.SIGTERM)

            async def refused() -> bool:
                return not await asyncio.to_thread(accepts, port)

            await _until(refused, 2, "refusing new connections", bff)
            assert not login.done()  # still draining while new connections are refused

            answer = await login
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["login"]["token"]
            assert await asyncio.to_thread(bff.wait, 30) == 0, bff.output()[-3000:]
        finally:
            bff.close()

        row = await OutboxMessage.get(dedupe_key=dedupe)
        assert (row.status, row.attempts) == ("DONE", 1), (row.last_error, bff.output()[-3000:])
        state = (await http.get(f"{erp_url}/_sim/state")).json()
        [pushed] = [o for o in state["orders"] if o["received"]["order_no"] == order.order_no]
        assert (await Order.get(id=order.id)).erp_order_id == pushed["erp_order_id"]
