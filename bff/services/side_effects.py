"""Outbox handlers that talk to the ERP, the CRM and WeChat.

Payloads carry ids only; each handler loads the current rows, so a message that waited in the
queue acts on today's data. Every handler is idempotent (delivery is at least once): the ERP dedupes
orders on `order_no` and returns on `after_sale_id`, the CRM upsert is an upsert, and ids the
upstream hands back are stored with a conditional UPDATE, never a full-row save.

Errors: `UpstreamUnavailable` and other retryable errors propagate and the outbox retries; a
non-retryable `UpstreamError` dead-letters (its `retryable` is False).
"""

from __future__ import annotations

import logging
from typing import Any

from bff.models.member import Member
from bff.models.order import CANCELLED, CLOSED, AfterSale, Order, OrderLine
from bff.pii_mask import mask_phone
from bff.services.outbox import HandlerContext, PermanentFailure, handler
from integrations.crm import CrmMember
from integrations.erp import ErpOrder, ErpReturn, ReturnLine
from integrations.erp import OrderLine as ErpOrderLine
from integrations.errors import OrderAlreadyShipped, UpstreamNotFound

log = logging.getLogger("bff.side_effects")


class NotInErpYet(Exception):
    """The order has not reached the ERP yet (its push is queued or in flight): retry later."""


def member_ref(member_id: int) -> str:
    """The id the ERP and the CRM know a member by."""
    return f"m_{member_id}"


def _id(payload: dict[str, Any], key: str) -> int:
    try:
        return int(payload[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"payload needs an integer {key!r}: {payload!r}") from exc


async def _order(order_id: int) -> Order:
    order = await Order.get_or_none(id=order_id)
    if order is None:
        raise PermanentFailure(f"order {order_id} does not exist")
    return order


@handler("erp.push_order")
async def push_order(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Push a paid order to the ERP and remember its `erp_order_id`."""
    order = await _order(_id(payload, "order_id"))
    if order.erp_order_id:
        return  # pushed already (a redelivery after the id was stored)
    if order.status in (CANCELLED, CLOSED):
        log.info("order %s ended as %s before its ERP push: not pushed", order.order_no, order.status)
        return
    if order.paid_at is None:
        raise PermanentFailure(f"order {order.order_no} is not paid: nothing to fulfil")
    lines = await OrderLine.filter(order_id=order.id).order_by("id")
    result = await ctx.services.erp.push_order(
        ErpOrder(
            order_no=order.order_no,
            member_ref=member_ref(order.member_id),
            lines=[ErpOrderLine(x.sku_code, x.quantity, x.unit_price_fen) for x in lines],
            address=order.address_snapshot,
            payable_fen=order.payable_fen,
            paid_at=order.paid_at,
        )
    )
    await Order.filter(id=order.id, erp_order_id__isnull=True).update(erp_order_id=result.erp_order_id)


@handler("erp.cancel_order")
async def cancel_order(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Cancel an order in the ERP; one that has shipped already dead-letters with the reason."""
    order = await _order(_id(payload, "order_id"))
    reason = str(payload.get("reason") or "")
    try:
        await ctx.services.erp.cancel_order(order.order_no, reason)
    except OrderAlreadyShipped as exc:
        raise PermanentFailure(
            f"ERP refused to cancel order {order.order_no}: already shipped (needs a return instead)"
        ) from exc
    except UpstreamNotFound as exc:
        if order.erp_order_id is None:
            # The cancel overtook the push (both queued): wait for the push instead of losing the cancel.
            raise NotInErpYet(f"order {order.order_no} is not in the ERP yet") from exc
        raise


@handler("erp.create_return")
async def create_return(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Announce an after-sale to the ERP and remember its `erp_return_id`."""
    after_sale_id = _id(payload, "after_sale_id")
    after_sale = await AfterSale.get_or_none(id=after_sale_id)
    if after_sale is None:
        raise PermanentFailure(f"after-sale {after_sale_id} does not exist")
    if after_sale.erp_return_id:
        return
    order = await _order(after_sale.order_id)
    line_ids = [int(x["order_line_id"]) for x in after_sale.lines]
    sku_codes = dict(await OrderLine.filter(id__in=line_ids, order_id=order.id).values_list("id", "sku_code"))
    missing = [i for i in line_ids if i not in sku_codes]
    if missing:
        raise PermanentFailure(
            f"after-sale {after_sale_id} names lines {missing} not in order {order.order_no}"
        )
    request = ErpReturn(
        order_no=order.order_no,
        after_sale_id=str(after_sale.id),
        type=after_sale.type,
        lines=[
            ReturnLine(str(sku_codes[int(x["order_line_id"])]), int(x["quantity"])) for x in after_sale.lines
        ],
    )
    try:
        erp_return_id = await ctx.services.erp.create_return(request)
    except UpstreamNotFound as exc:
        if order.erp_order_id is None:
            raise NotInErpYet(f"order {order.order_no} is not in the ERP yet") from exc
        raise
    await AfterSale.filter(id=after_sale.id, erp_return_id__isnull=True).update(erp_return_id=erp_return_id)


@handler("crm.upsert_member")
async def upsert_member(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Send the member's current profile to the CRM."""
    member_id = _id(payload, "member_id")
    member = await Member.get_or_none(id=member_id).select_related("level")
    if member is None:
        # Deleted since (account closure): there is no profile left to sync; deletion is not an upsert.
        log.warning("member %s no longer exists: CRM upsert skipped", member_id)
        return
    await ctx.services.crm.upsert_member(
        CrmMember(
            member_ref=member_ref(member.id),
            openid=member.openid,
            nickname=member.nickname,
            phone_masked=mask_phone(member.phone),
            level=member.level.name,
            registered_at=member.created_at,
        )
    )


@handler("wechat.subscribe_message")
async def subscribe_message(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Send a subscribe message; a member who has not subscribed is done (nothing to retry)."""
    member_id = _id(payload, "member_id")
    member = await Member.get_or_none(id=member_id)
    if member is None:
        # Deleted since (account closure): nobody to notify, like a member who did not subscribe.
        log.warning("member %s no longer exists: subscribe message dropped", member_id)
        return
    template_id = str(payload.get("template_id") or "")
    if not template_id:
        raise PermanentFailure(f"payload needs a template_id: {payload!r}")
    data = payload.get("data") or {}
    if not isinstance(data, dict):
        raise PermanentFailure(f"payload data must be an object: {payload!r}")
    sent = await ctx.services.wechat.send_subscribe_message(
        member.openid,
        template_id,
        str(payload.get("page") or ""),
        {str(k): str(v) for k, v in data.items()},
    )
    if not sent:
        log.info("member %s has not subscribed to %s: message dropped", member_id, template_id)
