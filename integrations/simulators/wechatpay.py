"""A fake WeChat Pay API v3 (direct merchant, public-key mode), mounted into the WeChat simulator.

Like WeChat Pay it verifies each request's `Authorization` signature with the merchant public key
(401 SIGN_ERROR otherwise), refuses bad bodies with 400 `{"code", "message"}`, signs every answer with
the WeChat Pay private key and delivers signed notifications whose resource is AES-256-GCM encrypted
under the APIv3 key. Injected faults answer 500 SYSTEM_ERROR.

Admin (no auth, JSON bodies optional):
- `POST /_sim/pay/{out_trade_no}` `{"amount"?, "deliver"?, "repeat"?}`: the payer pays; a
  TRANSACTION.SUCCESS notification goes to the order's notify_url (`amount` claims another total,
  `"deliver": false` only returns it, `"repeat": n` sends it n times).
- `POST /_sim/refund/{out_refund_no}/succeed` (or `/abnormal`), same options: settle a refund.
- `POST /_sim/refund-mode` `{"auto": bool}`: auto (default) settles each new refund right after
  answering it; manual waits for the call above.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from integrations.simulators.knobs import BadRequest, Knobs, KnobsMiddleware, json_endpoint, read_json
from integrations.wechatpay import crypto
from integrations.wechatpay.client import CHINA_TZ

KEYS_DIR = Path(__file__).resolve().parent / "keys"
# The development merchant; these mirror the defaults in bff/settings.py.
DEV_MCHID = "1900000001"
DEV_MERCHANT_SERIAL = "DEVMERCHANTSERIAL0001"
DEV_PUBLIC_KEY_ID = "PUB_KEY_ID_DEV0001"
DEV_APIV3_KEY = b"dev-only-apiv3-key-0123456789abc"
# WeChat Pay gives up on a notification answer after 5 seconds.
NOTIFY_TIMEOUT = 5.0
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")


class PayError(Exception):
    """A refusal answered as WeChat Pay does: HTTP status and `{"code", "message"[, "detail"]}`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _param_error(field: str, message: str) -> PayError:
    return PayError(400, "PARAM_ERROR", message, field)


@dataclass(frozen=True)
class WeChatPaySimConfig:
    """Who the fake WeChat Pay serves: one merchant, its key halves, and the WeChat Pay key pair."""

    mchid: str = DEV_MCHID
    merchant_serial: str = DEV_MERCHANT_SERIAL
    public_key_id: str = DEV_PUBLIC_KEY_ID
    apiv3_key: bytes = DEV_APIV3_KEY
    appid: str | None = None  # None: any appid is bound to the merchant
    merchant_public_key_pem: bytes = field(
        default_factory=lambda: (KEYS_DIR / "merchant_public_key.pem").read_bytes(), repr=False
    )
    wechatpay_private_key_pem: bytes = field(
        default_factory=lambda: (KEYS_DIR / "wechatpay_private_key.pem").read_bytes(), repr=False
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WeChatPaySimConfig:
        """The dev merchant, overridden by the BFF's own WECHAT_PAY_* variables so both sides agree."""
        env = os.environ if environ is None else environ
        return cls(
            mchid=env.get("WECHAT_PAY_MCHID") or DEV_MCHID,
            merchant_serial=env.get("WECHAT_PAY_MERCHANT_SERIAL") or DEV_MERCHANT_SERIAL,
            public_key_id=env.get("WECHAT_PAY_PUBLIC_KEY_ID") or DEV_PUBLIC_KEY_ID,
            apiv3_key=(env.get("WECHAT_PAY_APIV3_KEY") or DEV_APIV3_KEY.decode()).encode(),
        )


@dataclass
class SimTransaction:
    """One JSAPI order: NOTPAY, then SUCCESS (REFUND once refunded) or CLOSED."""

    out_trade_no: str
    appid: str
    mchid: str
    description: str
    total: int
    openid: str
    notify_url: str
    time_expire: float | None
    prepay_id: str
    attach: str = ""
    trade_state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The order as `GET /v3/pay/transactions/out-trade-no/{no}` answers it."""
        answer: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": self.out_trade_no,
            "trade_type": "JSAPI",
            "trade_state": self.trade_state,
            "trade_state_desc": _TRADE_STATE_DESC[self.trade_state],
            "attach": self.attach,
            "amount": {"total": self.total, "currency": "CNY", "payer_currency": "CNY"},
        }
        if self.transaction_id is not None:
            answer["transaction_id"] = self.transaction_id
            answer["bank_type"] = "OTHERS"
            answer["success_time"] = self.success_time
            answer["payer"] = {"openid": self.openid}
            answer["amount"]["payer_total"] = self.total
        return answer


_TRADE_STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "订单已关闭",
}


@dataclass
class SimRefund:
    """One refund: PROCESSING, then SUCCESS or ABNORMAL."""

    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    reason: str
    notify_url: str
    create_time: str
    status: str = "PROCESSING"
    success_time: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The refund as `POST /v3/refund/domestic/refunds` answers it."""
        answer: dict[str, Any] = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": self.create_time,
            "status": self.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
                "settlement_total": self.total,
                "settlement_refund": self.refund,
                "discount_refund": 0,
                "currency": "CNY",
            },
            "promotion_detail": [],
        }
        if self.success_time is not None:
            answer["success_time"] = self.success_time
        return answer


@dataclass
class WeChatPayState:
    """Everything the fake WeChat Pay holds and has sent."""

    transactions: dict[str, SimTransaction] = field(default_factory=dict)
    refunds: dict[str, SimRefund] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    # Oldest first, so pruning stops at the first nonce still inside the replay window.
    seen_nonces: OrderedDict[str, float] = field(default_factory=OrderedDict)
    auto_refund: bool = True

    def as_json(self) -> dict[str, Any]:
        """The state as `GET /_sim/state` shows it under `"pay"`."""
        return {
            "transactions": {no: t.as_json() for no, t in self.transactions.items()},
            "refunds": {no: r.as_json() for no, r in self.refunds.items()},
            "notifications": self.notifications,
            "auto_refund": self.auto_refund,
        }

    def clear(self) -> None:
        """Forget everything (`POST /_sim/reset`)."""
        self.transactions.clear()
        self.refunds.clear()
        self.notifications.clear()
        self.seen_nonces.clear()
        self.auto_refund = True


def system_error() -> JSONResponse:
    """The answer of an injected fault: WeChat Pay's 500 SYSTEM_ERROR."""
    return JSONResponse({"code": "SYSTEM_ERROR", "message": "系统错误"}, status_code=500)


# A handler gets the request and the mchid its signature proved; it answers (status, JSON or None).
PayHandler = Callable[[Request, str], Awaitable[tuple[int, dict[str, Any] | None]]]


class WeChatPaySimulator:
    """The fake WeChat Pay: `api_app()` to mount at `/v3`, `admin_routes()` for `/_sim/…`."""

    def __init__(self, knobs: Knobs, config: WeChatPaySimConfig | None = None) -> None:
        self.knobs = knobs
        self.config = config or WeChatPaySimConfig()
        self.state = WeChatPayState()
        self._merchant_key = crypto.load_public_key(self.config.merchant_public_key_pem)
        self._signing_key = crypto.load_private_key(self.config.wechatpay_private_key_pem)

    # --- the API -------------------------------------------------------------------------------

    def api_app(self) -> Starlette:
        """The `/v3` API as an app to mount at `/v3`; it applies the shared knobs itself."""
        routes = [
            Route("/pay/transactions/jsapi", self._endpoint(self._jsapi), methods=["POST"]),
            Route(
                "/pay/transactions/out-trade-no/{out_trade_no}",
                self._endpoint(self._query),
                methods=["GET"],
            ),
            Route(
                "/pay/transactions/out-trade-no/{out_trade_no}/close",
                self._endpoint(self._close),
                methods=["POST"],
            ),
            Route("/refund/domestic/refunds", self._endpoint(self._create_refund), methods=["POST"]),
            Route(
                "/refund/domestic/refunds/{out_refund_no}",
                self._endpoint(self._query_refund),
                methods=["GET"],
            ),
        ]
        return Starlette(
            routes=routes, middleware=[Middleware(KnobsMiddleware, knobs=self.knobs, fault=system_error)]
        )

    def _endpoint(self, handler: PayHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            try:
                mchid = self._authenticate(request, body)
                status, payload = await handler(request, mchid)
            except PayError as exc:
                error: dict[str, Any] = {"code": exc.code, "message": exc.message}
                if exc.field is not None:
                    error["detail"] = {"field": exc.field, "location": "body"}
                return self.signed(exc.status, error)
            response = self.signed(status, payload)
            refund_no = getattr(request.state, "settle_refund", None)
            if isinstance(refund_no, str):
                # Like WeChat Pay, the notification follows the answer rather than preceding it.
                response.background = BackgroundTask(self._auto_settle, refund_no)
            return response

        return endpoint

    def signed(self, status: int, payload: dict[str, Any] | None) -> Response:
        """An answer signed as WeChat Pay signs them: `Wechatpay-*` headers over ts, nonce, body."""
        body = b"" if payload is None else _json_bytes(payload)
        headers = self.signature_headers(body)
        headers["Request-ID"] = secrets.token_hex(16)
        media_type = None if payload is None else "application/json"
        return Response(body, status_code=status, headers=headers, media_type=media_type)

    def signature_headers(self, body: bytes) -> dict[str, str]:
        """`Wechatpay-Timestamp/-Nonce/-Signature/-Serial` for `body`, on the simulator's clock."""
        timestamp, nonce = str(int(self.knobs.now())), crypto.new_nonce()
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": crypto.sign(self._signing_key, crypto.lines(timestamp, nonce, body)),
            "Wechatpay-Serial": self.config.public_key_id,
            "Wechatpay-Signature-Type": crypto.SCHEME,
        }

    def _authenticate(self, request: Request, body: bytes) -> str:
        """Verify `Authorization` like WeChat Pay; the merchant's mchid, or `PayError` 401."""
        params = crypto.parse_authorization(request.headers.get("authorization", ""))
        if params is None:
            raise PayError(401, "SIGN_ERROR", "Authorization 缺失或格式错误")
        missing = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - params.keys()
        if missing:
            raise PayError(401, "SIGN_ERROR", f"Authorization 缺少 {sorted(missing)}")
        if params["mchid"] != self.config.mchid:
            raise PayError(401, "SIGN_ERROR", "商户号不存在或与证书不匹配")
        if params["serial_no"] != self.config.merchant_serial:
            raise PayError(401, "SIGN_ERROR", "商户证书序列号有误")
        now = self.knobs.now()
        timestamp = params["timestamp"]
        if not timestamp.isdigit() or abs(now - int(timestamp)) > crypto.MAX_CLOCK_SKEW:
            raise PayError(401, "SIGN_ERROR", "timestamp 与系统时间相差超过 5 分钟")
        path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        target = path + b"?" + query if query else path
        message = crypto.request_message(request.method, target, timestamp, params["nonce_str"], body)
        if not crypto.verify(self._merchant_key, message, params["signature"]):
            raise PayError(401, "SIGN_ERROR", "错误的签名，验签失败")
        # A captured request replayed within the time window reuses its nonce.
        self._prune_nonces(now)
        if params["nonce_str"] in self.state.seen_nonces:
            raise PayError(401, "SIGN_ERROR", "nonce_str 重复")
        self.state.seen_nonces[params["nonce_str"]] = now
        serial = request.headers.get("wechatpay-serial")
        if serial is not None and serial != self.config.public_key_id:
            raise PayError(400, "PARAM_ERROR", "Wechatpay-Serial 与微信支付公钥ID不一致")
        return params["mchid"]

    def _prune_nonces(self, now: float) -> None:
        horizon = now - 2 * crypto.MAX_CLOCK_SKEW
        nonces = self.state.seen_nonces
        while nonces and next(iter(nonces.values())) < horizon:
            nonces.popitem(last=False)

    async def _jsapi(self, request: Request, mchid: str) -> tuple[int, dict[str, Any] | None]:
        body = _json_object(await request.body())
        order = self._validate_jsapi(body, mchid)
        existing = self.state.transactions.get(order.out_trade_no)
        if existing is not None:
            if existing.trade_state in ("SUCCESS", "REFUND"):
                raise PayError(403, "ORDERPAID", "该订单已支付")
            if existing.trade_state == "CLOSED":
                raise PayError(400, "ORDER_CLOSED", "订单已关闭")
            if _order_terms(existing) != _order_terms(order):
                raise PayError(403, "OUT_TRADE_NO_USED", "商户订单号重复，且请求参数与原单不一致")
            # The same order placed again (a retry) gets the same prepay_id, as WeChat Pay does.
            return 200, {"prepay_id": existing.prepay_id}
        self.state.transactions[order.out_trade_no] = order
        return 200, {"prepay_id": order.prepay_id}

    def _validate_jsapi(self, body: dict[str, Any], mchid: str) -> SimTransaction:
        appid = _string(body, "appid", 1, 32)
        if self.config.appid is not None and appid != self.config.appid:
            raise PayError(400, "APPID_MCHID_NOT_MATCH", "appid 和 mchid 不匹配")
        if _string(body, "mchid", 1, 32) != mchid:
            raise PayError(400, "INVALID_REQUEST", "请求中的 mchid 与 Authorization 中的商户号不一致")
        out_trade_no = _string(body, "out_trade_no", 6, 32)
        if not OUT_TRADE_NO.fullmatch(out_trade_no):
            raise _param_error("out_trade_no", "out_trade_no 只能是数字、大小写字母_-|*")
        notify_url = _string(body, "notify_url", 1, 255)
        if not re.fullmatch(r"https?://[^\s?#]+", notify_url):
            # WeChat Pay also demands https on a public host; the simulator accepts loopback http.
            raise _param_error("notify_url", "notify_url 格式错误，且不能携带参数")
        time_expire = None
        if "time_expire" in body:
            time_expire = _time(body, "time_expire")
            if time_expire <= self.knobs.now():
                raise _param_error("time_expire", "time_expire 时间过短")
        amount = _object(body, "amount")
        total = _fen(amount, "total")
        if amount.get("currency", "CNY") != "CNY":
            raise _param_error("amount.currency", "amount.currency 只支持 CNY")
        openid = _string(_object(body, "payer"), "openid", 1, 128, "payer.openid")
        return SimTransaction(
            out_trade_no=out_trade_no,
            appid=appid,
            mchid=mchid,
            description=_string(body, "description", 1, 127),
            total=total,
            openid=openid,
            notify_url=notify_url,
            time_expire=time_expire,
            prepay_id=_prepay_id(self.knobs.now()),
            attach=_string(body, "attach", 0, 128) if "attach" in body else "",
        )

    async def _query(self, request: Request, mchid: str) -> tuple[int, dict[str, Any] | None]:
        if request.query_params.get("mchid") != mchid:
            raise _param_error("mchid", "mchid 与请求的商户号不一致")
        return 200, self._transaction(request.path_params["out_trade_no"]).as_json()

    async def _close(self, request: Request, mchid: str) -> tuple[int, dict[str, Any] | None]:
        body = _json_object(await request.body())
        if body.get("mchid") != mchid:
            raise _param_error("mchid", "mchid 与请求的商户号不一致")
        order = self._transaction(request.path_params["out_trade_no"])
        if order.trade_state in ("SUCCESS", "REFUND"):
            raise PayError(400, "ORDERPAID", "订单已支付，不能关闭")
        order.trade_state = "CLOSED"  # closing a closed order again succeeds, as on WeChat Pay
        return 204, None

    async def _create_refund(self, request: Request, mchid: str) -> tuple[int, dict[str, Any] | None]:
        body = _json_object(await request.body())
        out_refund_no = _string(body, "out_refund_no", 1, 64)
        if not OUT_REFUND_NO.fullmatch(out_refund_no):
            raise _param_error("out_refund_no", "out_refund_no 只能是数字、大小写字母_-|*@")
        out_trade_no = _string(body, "out_trade_no", 6, 32)
        notify_url = _string(body, "notify_url", 1, 255) if "notify_url" in body else ""
        reason = _string(body, "reason", 0, 80) if "reason" in body else ""
        amount = _object(body, "amount")
        refund, total = _fen(amount, "refund"), _fen(amount, "total")
        if amount.get("currency", "CNY") != "CNY":
            raise _param_error("amount.currency", "amount.currency 只支持 CNY")
        existing = self.state.refunds.get(out_refund_no)
        if existing is not None:
            # Idempotent by out_refund_no: a retry answers the refund already made.
            if (existing.out_trade_no, existing.refund, existing.total) != (out_trade_no, refund, total):
                raise PayError(400, "INVALID_REQUEST", "同一退款单号的订单号或金额与之前请求不一致")
            return 200, existing.as_json()
        order = self.state.transactions.get(out_trade_no)
        if order is None:
            raise PayError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if order.trade_state not in ("SUCCESS", "REFUND") or order.transaction_id is None:
            raise PayError(400, "INVALID_REQUEST", "订单未支付，不能退款")
        if total != order.total:
            raise _param_error("amount.total", "amount.total 与订单金额不一致")
        refunded = sum(
            r.refund
            for r in self.state.refunds.values()
            if r.out_trade_no == out_trade_no and r.status != "ABNORMAL"
        )
        if refund > order.total - refunded:
            raise PayError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        record = SimRefund(
            out_refund_no=out_refund_no,
            refund_id=_digits("50", 29),
            out_trade_no=out_trade_no,
            transaction_id=order.transaction_id,
            refund=refund,
            total=total,
            reason=reason,
            notify_url=notify_url,
            create_time=self._rfc3339(),
        )
        self.state.refunds[out_refund_no] = record
        order.trade_state = "REFUND"
        if self.state.auto_refund:
            request.state.settle_refund = out_refund_no
        return 200, record.as_json()

    async def _query_refund(self, request: Request, mchid: str) -> tuple[int, dict[str, Any] | None]:
        refund = self.state.refunds.get(request.path_params["out_refund_no"])
        if refund is None:
            raise PayError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return 200, refund.as_json()

    def _transaction(self, out_trade_no: str) -> SimTransaction:
        order = self.state.transactions.get(out_trade_no)
        if order is None:
            raise PayError(404, "ORDER_NOT_EXIST", "订单不存在")
        return order

    def _rfc3339(self) -> str:
        return datetime.fromtimestamp(self.knobs.now(), CHINA_TZ).isoformat(timespec="seconds")

    # --- admin and notifications ---------------------------------------------------------------

    def admin_routes(self) -> list[BaseRoute]:
        """The admin routes: pay an order, settle a refund, choose the refund mode."""
        return [
            Route("/_sim/pay/{out_trade_no}", json_endpoint(self._admin_pay), methods=["POST"]),
            Route(
                "/_sim/refund/{out_refund_no}/{outcome:str}",
                json_endpoint(self._admin_refund),
                methods=["POST"],
            ),
            Route("/_sim/refund-mode", json_endpoint(self._admin_refund_mode), methods=["POST"]),
        ]

    async def _admin_pay(self, request: Request) -> Response:
        options = await _options(request)
        order = self.state.transactions.get(request.path_params["out_trade_no"])
        if order is None:
            return JSONResponse({"error": "not_found", "message": "no such out_trade_no"}, status_code=404)
        if order.trade_state != "NOTPAY":
            return JSONResponse({"error": "conflict", "message": f"order is {order.trade_state}"}, 409)
        if order.time_expire is not None and order.time_expire <= self.knobs.now():
            return JSONResponse({"error": "conflict", "message": "time_expire has passed"}, 409)
        order.trade_state = "SUCCESS"
        order.transaction_id = _digits("4200", 28)
        order.success_time = self._rfc3339()
        claimed = options["amount"] if options["amount"] is not None else order.total
        resource = {
            **{k: v for k, v in order.as_json().items() if k != "amount"},
            "amount": {"total": claimed, "payer_total": claimed, "currency": "CNY", "payer_currency": "CNY"},
        }
        sent = await self._notify(order.notify_url, "TRANSACTION.SUCCESS", "支付成功", resource, options)
        return JSONResponse({"transaction": order.as_json(), **sent})

    async def _admin_refund(self, request: Request) -> Response:
        outcome = request.path_params["outcome"]
        if outcome not in ("succeed", "abnormal"):
            raise BadRequest("outcome must be succeed or abnormal")
        options = await _options(request)
        refund = self.state.refunds.get(request.path_params["out_refund_no"])
        if refund is None:
            return JSONResponse({"error": "not_found", "message": "no such out_refund_no"}, status_code=404)
        if refund.status != "PROCESSING":
            return JSONResponse({"error": "conflict", "message": f"refund is {refund.status}"}, 409)
        sent = await self._settle(refund, outcome == "succeed", options)
        return JSONResponse({"refund": refund.as_json(), **sent})

    async def _admin_refund_mode(self, request: Request) -> Response:
        auto = (await read_json(request)).get("auto")
        if not isinstance(auto, bool):
            raise BadRequest("auto must be a boolean")
        self.state.auto_refund = auto
        return JSONResponse({"auto_refund": auto})

    async def _auto_settle(self, out_refund_no: str) -> None:
        refund = self.state.refunds.get(out_refund_no)
        if refund is not None and refund.status == "PROCESSING":
            await self._settle(refund, True, {"amount": None, "deliver": True, "repeat": 1})

    async def _settle(self, refund: SimRefund, success: bool, options: dict[str, Any]) -> dict[str, Any]:
        refund.status = "SUCCESS" if success else "ABNORMAL"
        if success:
            refund.success_time = self._rfc3339()
        resource = {
            "mchid": self.config.mchid,
            "out_trade_no": refund.out_trade_no,
            "transaction_id": refund.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": refund.status,
            "success_time": refund.success_time,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": refund.total,
                "refund": refund.refund,
                "payer_total": refund.total,
                "payer_refund": refund.refund,
            },
        }
        event, summary = ("REFUND.SUCCESS", "退款成功") if success else ("REFUND.ABNORMAL", "退款异常")
        return await self._notify(refund.notify_url, event, summary, resource, options)

    def notification(self, event_type: str, summary: str, resource: dict[str, Any]) -> bytes:
        """The body of a v3 notification whose `resource` is encrypted under the APIv3 key."""
        original_type = "transaction" if event_type.startswith("TRANSACTION.") else "refund"
        nonce = crypto.new_nonce(12)  # AES-GCM's 96-bit nonce, as 12 ASCII characters
        envelope = {
            "id": f"EV-{secrets.token_hex(10).upper()}",
            "create_time": self._rfc3339(),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": original_type,
                "algorithm": crypto.ENCRYPTION,
                "ciphertext": crypto.encrypt(
                    self.config.apiv3_key, nonce, _json_bytes(resource), original_type
                ),
                "associated_data": original_type,
                "nonce": nonce,
            },
        }
        return _json_bytes(envelope)

    async def _notify(
        self, url: str, event_type: str, summary: str, resource: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        body = self.notification(event_type, summary, resource)
        headers = {"Content-Type": "application/json", **self.signature_headers(body)}
        shown = {"url": url, "event_type": event_type, "headers": headers, "body": body.decode()}
        if not options["deliver"] or not url:
            return {"notification": shown, "deliveries": []}
        deliveries = []
        async with httpx.AsyncClient(trust_env=False, timeout=NOTIFY_TIMEOUT) as http:
            for attempt in range(options["repeat"]):
                # Each retry is signed afresh (new timestamp and nonce) over the same body, as WeChat's are.
                sent_headers = headers if attempt == 0 else {**headers, **self.signature_headers(body)}
                deliveries.append(await self._deliver(http, url, sent_headers, body, event_type, resource))
        return {"notification": shown, "deliveries": deliveries}

    async def _deliver(
        self,
        http: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        body: bytes,
        event_type: str,
        resource: dict[str, Any],
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": json.loads(body)["id"],
            "event_type": event_type,
            "url": url,
            "resource": resource,
            "sent_at": time.time(),
        }
        try:
            answer = await http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            record.update(status=None, answer=None, error=f"{type(exc).__name__}: {exc}")
        else:
            record.update(status=answer.status_code, answer=answer.text[:500], error=None)
        # WeChat Pay counts 200 or 204 as acknowledged; anything else would be retried.
        record["acknowledged"] = record["status"] in (200, 204)
        self.state.notifications.append(record)
        return record


async def _options(request: Request) -> dict[str, Any]:
    raw = await request.body()
    body = await read_json(request) if raw.strip() else {}
    unknown = set(body) - {"amount", "deliver", "repeat"}
    if unknown:
        raise BadRequest(f"unknown options: {sorted(unknown)}")
    amount, deliver, repeat = body.get("amount"), body.get("deliver", True), body.get("repeat", 1)
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise BadRequest("amount must be an integer (fen)")
    if not isinstance(deliver, bool):
        raise BadRequest("deliver must be a boolean")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 20:
        raise BadRequest("repeat must be an integer in [1, 20]")
    return {"amount": amount, "deliver": deliver, "repeat": repeat}


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise PayError(400, "PARAM_ERROR", "请求体不是合法的 JSON") from None
    if not isinstance(body, dict):
        raise PayError(400, "PARAM_ERROR", "请求体必须是 JSON 对象")
    return body


def _string(body: dict[str, Any], key: str, low: int, high: int, name: str | None = None) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise _param_error(name or key, f"{name or key} 必须是长度 {low}-{high} 的字符串")
    return value


def _fen(amount: dict[str, Any], key: str) -> int:
    value = amount.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _param_error(f"amount.{key}", f"amount.{key} 必须为大于 0 的整数（单位：分）")
    return value


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise _param_error(key, f"{key} 必须是对象")
    return value


def _time(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    # RFC 3339 with an explicit offset, e.g. 2018-06-08T10:34:56+08:00.
    if not isinstance(value, str) or not re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d)", value
    ):
        raise _param_error(key, f"{key} 格式应为 yyyy-MM-DDTHH:mm:ss+TIMEZONE")
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise _param_error(key, f"{key} 不是合法时间") from None


def _order_terms(order: SimTransaction) -> tuple[Any, ...]:
    return (order.appid, order.description, order.total, order.openid, order.notify_url)


def _prepay_id(now: float) -> str:
    stamp = datetime.fromtimestamp(now, CHINA_TZ).strftime("%d%H%M%S%f")[:12]
    return f"wx{stamp}{secrets.token_hex(11)}"


def _digits(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice("0123456789") for _ in range(length - len(prefix)))
