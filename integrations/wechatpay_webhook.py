"""POST /webhooks/wechatpay: WeChat Pay's signed, encrypted payment and refund notifications."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bff.context import Services
from bff.services.payments import PaymentRejected, record_payment, record_refund
from integrations.wechatpay import NotificationRejected

log = logging.getLogger("bff.wechatpay")


def _fail(status: int, message: str) -> JSONResponse:
    # WeChat Pay reads {"code": "FAIL", "message"} on a non-2xx answer and redelivers later.
    return JSONResponse({"code": "FAIL", "message": message}, status_code=status)


async def wechatpay_webhook(request: Request) -> Response:
    """Verify, decrypt and apply one notification; 204 once applied (or already applied)."""
    services: Services = request.app.state.services
    body = await request.body()
    try:
        notification = services.wechat_pay.parse_notification(request.headers, body)
    except NotificationRejected as exc:
        log.warning("rejected WeChat Pay notification: %s", exc)
        return _fail(401, "signature verification failed")
    try:
        if notification.event_type == "TRANSACTION.SUCCESS":
            outcome = await record_payment(notification.resource, services.cache)
        elif notification.event_type.startswith("REFUND."):
            outcome = await record_refund(notification.resource)
        else:
            log.info("ignored WeChat Pay notification %s", notification.event_type)
            return Response(status_code=204)
    except PaymentRejected as exc:
        log.error("WeChat Pay notification %s not applied: %s", notification.id, exc)
        return _fail(400, str(exc))
    log.info("WeChat Pay %s → %s (order %s)", notification.event_type, outcome.result, outcome.order_id)
    return Response(status_code=204)
