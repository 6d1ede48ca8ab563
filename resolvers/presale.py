"""Presale entry points: the viewer's presale orders and the balance order."""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.ids import decode_id
from bff.pagination import decode_cursor, encode_cursor, page_size
from bff.services import presale
from bff.services.errors import BusinessError
from schema.common import Connection, connection, user_errors
from schema.order import Order
from schema.presale import PresaleBalanceInput, PresaleBalancePayload, PresaleOrder


@strawberry.type
class PresaleQuery:
    @strawberry.field(description="One of the viewer's presale orders; someone else's is null.")
    async def presale_order(self, info: Info, id: strawberry.ID) -> PresaleOrder | None:
        member_id = info.context.require_member()
        pk = decode_id(str(id), "PresaleOrder")
        view = await presale.member_view(member_id, pk) if pk is not None else None
        return PresaleOrder.from_view(view) if view is not None else None

    @strawberry.field(description="The viewer's presale orders, newest first.")
    async def my_presale_orders(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[PresaleOrder]:
        member_id = info.context.require_member()
        cursor = decode_cursor(after, 1)
        page, has_next = await presale.member_page(
            member_id, page_size(first), int(cursor[0]) if cursor is not None else None
        )

        async def count() -> int:
            return await presale.member_count(member_id)

        return connection(
            [PresaleOrder.from_view(v) for v in page],
            [encode_cursor([v.presale.id]) for v in page],
            has_next=has_next,
            count=count,
            has_previous=cursor is not None,
        )


@strawberry.type
class PresaleMutation:
    @strawberry.mutation(
        description="Create the balance order of a paid deposit (balance window); pay it with payOrder."
    )
    async def place_presale_balance_order(
        self, info: Info, input: PresaleBalanceInput
    ) -> PresaleBalancePayload:
        try:
            member_id = info.context.acting_member()
            pk = decode_id(str(input.presale_order_id), "PresaleOrder")
            if pk is None:
                raise BusinessError("NOT_FOUND", "预售订单不存在", "presaleOrderId")
            address_id = None
            if input.address_id is not None:
                address_id = decode_id(str(input.address_id), "Address")
                if address_id is None:
                    raise BusinessError("ADDRESS_REQUIRED", "收货地址不存在，请重新选择", "addressId")
            order = await presale.place_balance_order(member_id, pk, address_id, info.context.settings)
        except BusinessError as exc:
            return PresaleBalancePayload(presale_order=None, order=None, user_errors=user_errors(exc))
        view = await presale.member_view(member_id, pk)
        return PresaleBalancePayload(
            presale_order=PresaleOrder.from_view(view) if view is not None else None,
            order=Order.from_model(order),
            user_errors=[],
        )
