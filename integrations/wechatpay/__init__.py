"""WeChat Pay API v3: a signed, verifying client for JSAPI payments, refunds and notifications.

Written on `cryptography` rather than the `wechatpayv3` SDK: that SDK hardcodes its gateway URL,
opens its own HTTP client (no injected `httpx.AsyncClient`, timeouts or simulator), is untyped,
raises bare `Exception`s and does not bound the age of a notification.
"""

from integrations.wechatpay.client import (
    Notification,
    PayParams,
    RefundResult,
    Transaction,
    WeChatPayAuth,
    WeChatPayClient,
    rfc3339,
)
from integrations.wechatpay.errors import (
    NotificationRejected,
    WeChatPayError,
    WeChatPayNotFound,
    WeChatPayOrderClosed,
    WeChatPayOrderPaid,
    WeChatPaySignatureInvalid,
)

__all__ = [
    "Notification",
    "NotificationRejected",
    "PayParams",
    "RefundResult",
    "Transaction",
    "WeChatPayAuth",
    "WeChatPayClient",
    "WeChatPayError",
    "WeChatPayNotFound",
    "WeChatPayOrderClosed",
    "WeChatPayOrderPaid",
    "WeChatPaySignatureInvalid",
    "rfc3339",
]
