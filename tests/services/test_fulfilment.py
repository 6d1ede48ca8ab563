"""Fulfilment transitions: ship, tracking, deliver, confirm receipt (by the member and automatically)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from bff.context import Services
from bff.models import order as status
from bff.models.member import Member, MemberLevel
from bff.models.order import Order, OrderEvent, OrderLine, Shipment
from bff.models.outbox import OutboxMessage
from bff.services.errors import BusinessError
from bff.services.fulfilment import auto_confirm, confirm_receipt, deliver, ship, update_tracking
from bff.services.outbox import HandlerContext

SHIPPED_AT = datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
DELIVERED_AT = datetime(2024, 5, 4, 15, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _db(seeded: None) -> None:
    """Every test here needs the seeded, initialised database."""


async def make_order(order_status: str = status.PAID) -> Order:
    """An order of the test's own (unique order_no) with one line, for a member of its own.

    A real member: the queued messages are sent by whatever worker drains this shared database.
    """
    level = await MemberLevel.all().order_by("rank").first()
    assert level is not None
    member = await Member.create(openid=f"o_f{uuid.uuid4().hex[:16]}", level_id=level.id)
    order = await Order.create(
        order_no=f"F{uuid.uuid4().hex[:20]}",
        member_id=member.id,
        status=order_status,
        items_total_fen=5000,
        payable_fen=5000,
        paid_at=datetime.now(UTC) if order_status != status.PENDING_PAYMENT else None,
    )
    await OrderLine.create(
        order_id=order.id,
        sku_id=0,
        product_id=0,
        product_title="测试商品",
        quantity=2,
        unit_price_fen=2500,
        line_total_fen=5000,
    )
    return order


def tracking_no() -> str:
    return f"YT{uuid.uuid4().hex[:14]}"


async def timeline(order: Order) -> list[str]:
    return [e.status for e in await OrderEvent.filter(order_id=order.id).order_by("id")]


async def messages(prefix: str) -> list[OutboxMessage]:
    return await OutboxMessage.filter(dedupe_key__startswith=prefix).order_by("id")


async def code_of(call: Any) -> str:
    with pytest.raises(BusinessError) as raised:
        await call
    return raised.value.code


# --- ship ----------------------------------------------------------------------------------------


async def test_ship_moves_a_paid_order_to_shipped_once_and_tells_the_member() -> None:
    order = await make_order()
    parcel = tracking_no()

    shipped = await ship(order.order_no, "圆通", parcel, SHIPPED_AT)
    again = await ship(order.order_no, "圆通", parcel, SHIPPED_AT)

    assert shipped.status == again.status == status.SHIPPED and shipped.shipped_at == SHIPPED_AT
    shipment = await Shipment.get(tracking_no=parcel)
    assert (shipment.order_id, shipment.carrier, shipment.shipped_at) == (order.id, "圆通", SHIPPED_AT)
    assert await timeline(order) == [status.SHIPPED]
    (message,) = await messages(f"msg:ship:{order.order_no}:")
    assert message.topic == "wechat.subscribe_message"
    assert message.payload == {
        "member_id": order.member_id,
        "template_id": "shipment",
        "page": f"pages/order/detail?id={order.id}",
        "data": {"thing1": "圆通", "character_string2": parcel},
    }


async def test_a_second_parcel_is_recorded_on_a_shipped_order() -> None:
    order = await make_order()
    await ship(order.order_no, "圆通", tracking_no(), SHIPPED_AT)

    await ship(order.order_no, "中通", second := tracking_no(), SHIPPED_AT + timedelta(hours=2))

    assert await Shipment.filter(order_id=order.id).count() == 2
    assert (await Order.get(id=order.id)).shipped_at == SHIPPED_AT
    assert await timeline(order) == [status.SHIPPED, status.SHIPPED]
    assert len(await messages(f"msg:ship:{order.order_no}:")) == 2
    assert await OutboxMessage.exists(dedupe_key=f"msg:ship:{order.order_no}:{second}")


async def test_ship_refuses_unknown_orders_unpaid_orders_and_someone_elses_parcel() -> None:
    assert await code_of(ship("NO-SUCH-ORDER", "圆通", tracking_no(), SHIPPED_AT)) == "NOT_FOUND"
    unpaid = await make_order(status.PENDING_PAYMENT)
    assert await code_of(ship(unpaid.order_no, "圆通", tracking_no(), SHIPPED_AT)) == "INVALID_STATE"
    assert (await Order.get(id=unpaid.id)).status == status.PENDING_PAYMENT
    first, other = await make_order(), await make_order()
    parcel = tracking_no()
    await ship(first.order_no, "圆通", parcel, SHIPPED_AT)
    assert await code_of(ship(other.order_no, "圆通", parcel, SHIPPED_AT)) == "INVALID_STATE"
    assert (await Order.get(id=other.id)).status == status.PAID


# --- tracking ------------------------------------------------------------------------------------


async def test_tracking_is_replaced_only_by_a_newer_version() -> None:
    order = await make_order()
    parcel = tracking_no()
    await ship(order.order_no, "圆通", parcel, SHIPPED_AT)
    newest_first = [
        {"at": "2024-05-03T09:00:00+08:00", "description": "运输中", "location": "杭州"},
        {"at": "2024-05-02T18:00:00+08:00", "description": "已揽收"},
    ]

    assert await update_tracking(parcel, newest_first, 4) is True
    assert await update_tracking(parcel, newest_first[:1], 4) is False
    assert await update_tracking(parcel, [], 2) is False

    shipment = await Shipment.get(tracking_no=parcel)
    assert shipment.events_version == 4
    assert shipment.events == [
        {"at": "2024-05-02T18:00:00+08:00", "description": "已揽收", "location": ""},
        {"at": "2024-05-03T09:00:00+08:00", "description": "运输中", "location": "杭州"},
    ]
    assert await code_of(update_tracking("NO-SUCH-PARCEL", [], 1)) == "NOT_FOUND"


# --- deliver -------------------------------------------------------------------------------------


async def test_deliver_marks_delivered_and_schedules_the_auto_confirmation_once() -> None:
    order = await make_order()
    await ship(order.order_no, "圆通", tracking_no(), SHIPPED_AT)

    delivered = await deliver(order.order_no, DELIVERED_AT, auto_confirm_days=7)
    await deliver(order.order_no, DELIVERED_AT + timedelta(hours=1), auto_confirm_days=7)

    assert delivered.status == status.DELIVERED and delivered.delivered_at == DELIVERED_AT
    assert await timeline(order) == [status.SHIPPED, status.DELIVERED]
    (message,) = await messages(f"auto-confirm:{order.id}")
    assert message.topic == "order.auto_confirm" and message.payload == {"order_id": order.id}
    assert message.run_at == DELIVERED_AT + timedelta(days=7)


async def test_a_delivery_reported_before_its_shipment_is_kept_and_the_shipment_recorded_after() -> None:
    order = await make_order()

    await deliver(order.order_no, DELIVERED_AT, auto_confirm_days=7)
    await ship(order.order_no, "圆通", parcel := tracking_no(), SHIPPED_AT)

    row = await Order.get(id=order.id)
    assert (row.status, row.shipped_at, row.delivered_at) == (status.DELIVERED, SHIPPED_AT, DELIVERED_AT)
    assert await Shipment.exists(tracking_no=parcel, order_id=order.id)
    # Goods already arrived: no "on its way" message.
    assert await messages(f"msg:ship:{order.order_no}:") == []


async def test_deliver_refuses_orders_that_were_never_paid_or_were_closed() -> None:
    for order_status in (status.PENDING_PAYMENT, status.CLOSED, status.CANCELLED):
        order = await make_order(order_status)
        assert await code_of(deliver(order.order_no, DELIVERED_AT, auto_confirm_days=7)) == "INVALID_STATE"
    assert await code_of(deliver("NO-SUCH-ORDER", DELIVERED_AT, auto_confirm_days=7)) == "NOT_FOUND"


# --- confirm receipt -----------------------------------------------------------------------------


async def test_the_member_confirms_receipt_of_their_own_shipped_order() -> None:
    order = await make_order()
    assert await code_of(confirm_receipt(order.id, member_id=order.member_id, auto=False)) == "INVALID_STATE"
    await ship(order.order_no, "圆通", tracking_no(), SHIPPED_AT)
    assert await code_of(confirm_receipt(order.id, member_id=order.member_id + 1, auto=False)) == "NOT_FOUND"
    assert await code_of(confirm_receipt(10**9, member_id=order.member_id, auto=False)) == "NOT_FOUND"

    done = await confirm_receipt(order.id, member_id=order.member_id, auto=False)

    assert done.status == status.COMPLETED and done.completed_at is not None
    assert await timeline(order) == [status.SHIPPED, status.COMPLETED]
    event = await OrderEvent.filter(order_id=order.id, status=status.COMPLETED).get()
    assert event.note == "已确认收货"
    assert await code_of(confirm_receipt(order.id, member_id=order.member_id, auto=False)) == "INVALID_STATE"
    # The scheduled automatic confirmation that fires later is a no-op.
    assert (await confirm_receipt(order.id, member_id=None, auto=True)).completed_at == done.completed_at
    assert await timeline(order) == [status.SHIPPED, status.COMPLETED]


async def test_auto_confirm_completes_a_delivered_order_and_leaves_a_closed_one_alone() -> None:
    ctx = HandlerContext(services=cast(Services, None), message_id=0, attempt=1)
    delivered = await make_order()
    await deliver(delivered.order_no, DELIVERED_AT, auto_confirm_days=7)
    closed = await make_order(status.CLOSED)

    await auto_confirm({"order_id": delivered.id}, ctx)
    await auto_confirm({"order_id": closed.id}, ctx)
    await auto_confirm({"order_id": delivered.id}, ctx)

    assert (await Order.get(id=delivered.id)).status == status.COMPLETED
    assert await timeline(delivered) == [status.DELIVERED, status.COMPLETED]
    assert (await OrderEvent.get(order_id=delivered.id, status=status.COMPLETED)).note == "系统自动确认收货"
    assert (await Order.get(id=closed.id)).status == status.CLOSED


async def test_concurrent_confirmations_complete_the_order_once() -> None:
    order = await make_order()
    await deliver(order.order_no, DELIVERED_AT, auto_confirm_days=7)

    outcomes = await asyncio.gather(
        confirm_receipt(order.id, member_id=order.member_id, auto=False),
        confirm_receipt(order.id, member_id=None, auto=True),
        return_exceptions=True,
    )

    assert all(isinstance(o, Order | BusinessError) for o in outcomes)
    assert (await Order.get(id=order.id)).status == status.COMPLETED
    assert await OrderEvent.filter(order_id=order.id, status=status.COMPLETED).count() == 1
