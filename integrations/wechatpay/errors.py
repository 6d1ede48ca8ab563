"""Typed WeChat Pay failures, built on the shared ones in `integrations.errors`.

Timeouts, 5xx and 429 stay plain `UpstreamUnavailable` (retry later); a 4xx answer carries WeChat
Pay's string `code` ("PARAM_ERROR", "ORDERPAID", …) on a `WeChatPayError` subclass.
"""

from __future__ import annotations

from integrations.errors import UpstreamConflict, UpstreamError, UpstreamNotFound

UPSTREAM = "wechatpay"


class WeChatPayError(UpstreamError):
    """WeChat Pay refused the request (4xx with `{"code", "message"}`); `code` holds the string code."""


class WeChatPayNotFound(WeChatPayError, UpstreamNotFound):
    """ORDER_NOT_EXIST / RESOURCE_NOT_EXISTS: WeChat Pay has no such order or refund."""


class WeChatPayOrderPaid(WeChatPayError, UpstreamConflict):
    """ORDERPAID: the order is already paid (so it can be neither prepaid again nor closed)."""


class WeChatPayOrderClosed(WeChatPayError, UpstreamConflict):
    """ORDER_CLOSED: the order was closed; a new payment needs a new out_trade_no."""


class WeChatPaySignatureInvalid(UpstreamError):
    """An answer did not carry a valid WeChat Pay signature: never trust its content."""


class NotificationRejected(UpstreamError):
    """An inbound notification failed verification or decryption; answer it with a 4xx, act on nothing.

    `code` names the reason: MISSING_HEADERS, SERIAL, SIGNATURE_TYPE, STALE, SIGNATURE, MALFORMED,
    DECRYPT.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(UPSTREAM, message, code=reason)

    @property
    def reason(self) -> str:
        """Why the notification was rejected (see the class docstring)."""
        return str(self.code)


ERROR_CODES: dict[str, type[WeChatPayError]] = {
    "ORDER_NOT_EXIST": WeChatPayNotFound,
    "ORDERNOTEXIST": WeChatPayNotFound,
    "RESOURCE_NOT_EXISTS": WeChatPayNotFound,
    "ORDERPAID": WeChatPayOrderPaid,
    "ORDER_CLOSED": WeChatPayOrderClosed,
}


def pay_error(status: int, code: str, message: str) -> WeChatPayError:
    """The typed error for a 4xx answer: by WeChat Pay's code first, then by HTTP status."""
    cls = ERROR_CODES.get(code) or (WeChatPayNotFound if status == 404 else WeChatPayError)
    return cls(UPSTREAM, f"{code or f'HTTP {status}'}: {message}", status=status, code=code or None)
