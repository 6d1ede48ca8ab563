"""Group-buy entry points: open or join a team (placing the order), the team's page and its live progress."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from bff.context import Info
from bff.errors import PublicError
from bff.graphql_ws import progress_views
from bff.ids import decode_id
from bff.services import group_buy, orders
from bff.services.campaign_checkout import GROUP_BUY_JOIN, GROUP_BUY_OPEN, CampaignRef
from bff.services.checkout import CheckoutRequest
from bff.services.errors import BusinessError
from schema.common import user_errors
from schema.group_buy import GroupBuyOrderPayload, GroupBuyTeamDetail, JoinGroupBuyInput, OpenGroupBuyInput
from schema.order import Order


def _request(
    member_id: int, ref: CampaignRef, data: OpenGroupBuyInput | JoinGroupBuyInput
) -> CheckoutRequest:
    address_id = decode_id(str(data.address_id), "Address") if data.address_id is not None else None
    if data.address_id is not None and address_id is None:
        raise BusinessError("ADDRESS_REQUIRED", "收货地址不存在，请重新选择", "addressId")
    return CheckoutRequest(
        member_id=member_id,
        source="BUY_NOW",
        address_id=address_id,
        remark=(data.remark or "").strip(),
        idempotency_key=data.idempotency_key,
        expected_payable_fen=data.expected_payable,
        campaign=ref,
    )


async def _place(
    info: Info, ref_of: tuple[str, str, strawberry.ID], data: OpenGroupBuyInput | JoinGroupBuyInput
) -> GroupBuyOrderPayload:
    kind, type_name, opaque = ref_of
    services = info.context.services
    try:
        member_id = info.context.acting_member()
        pk = decode_id(str(opaque), type_name)
        if pk is None:
            raise BusinessError("NOT_FOUND", "拼团不存在", "campaign")
        request = _request(member_id, CampaignRef(kind=kind, ref_id=pk), data)
        order = await orders.place_order(request, services.settings, services.cache, services.erp)
    except BusinessError as exc:
        return GroupBuyOrderPayload(order=None, team=None, user_errors=user_errors(exc))
    view = await group_buy.team_of_order(order.id)
    return GroupBuyOrderPayload(
        order=Order.from_model(order),
        team=GroupBuyTeamDetail.from_view(view, member_id) if view is not None else None,
        user_errors=[],
    )


@strawberry.type
class GroupBuyQuery:
    @strawberry.field(description="A group-buy team (its share page); null when there is no such team.")
    async def group_buy_team(self, info: Info, id: strawberry.ID) -> GroupBuyTeamDetail | None:
        pk = decode_id(str(id), "GroupBuyTeam")
        view = await group_buy.team_view(pk) if pk is not None else None
        return GroupBuyTeamDetail.from_view(view, info.context.member_id) if view is not None else None


@strawberry.type
class GroupBuyMutation:
    @strawberry.mutation(
        description="Open a team: places the leader's order (pay it with payOrder); the team opens once paid."
    )
    async def open_group_buy(self, info: Info, input: OpenGroupBuyInput) -> GroupBuyOrderPayload:
        return await _place(info, (GROUP_BUY_OPEN, "GroupBuyCampaign", input.campaign_id), input)

    @strawberry.mutation(
        description="Join a team from a share: places the order holding the seat until paid."
    )
    async def join_group_buy(self, info: Info, input: JoinGroupBuyInput) -> GroupBuyOrderPayload:
        return await _place(info, (GROUP_BUY_JOIN, "GroupBuyTeam", input.team_id), input)


@strawberry.type
class GroupBuySubscription:
    @strawberry.subscription(
        description="The team now, then again whenever it changes; ends once it completed or failed."
    )
    async def group_buy_team_progress(
        self, info: Info, team_id: strawberry.ID
    ) -> AsyncGenerator[GroupBuyTeamDetail, None]:
        pk = decode_id(str(team_id), "GroupBuyTeam")
        if pk is None:
            raise PublicError("no such group-buy team", "NOT_FOUND")
        views = progress_views(
            info.context, group_buy.team_topic(pk), lambda: group_buy.team_view(pk), "no such group-buy team"
        )
        async for view in views:
            yield GroupBuyTeamDetail.from_view(view, info.context.member_id)
