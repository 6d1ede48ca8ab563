"""WeChat Pay API v3 client (direct merchant, JSAPI / mini-program, "WeChat Pay public key" mode)."""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from integrations.errors import UpstreamError, UpstreamUnavailable, decoding, translating
from integrations.wechatpay import crypto
from integrations.wechatpay.errors import (
    UPSTREAM,
    NotificationRejected,
    WeChatPaySignatureInvalid,
    pay_error,
)

# WeChat Pay expects RFC 3339 times; Beijing time is what its own examples and answers use.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


class WeChatPayAuth(httpx.Auth):
    """Signs each request: `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,signature=…`."""

    # The body is part of the signed message, so httpx must have it in memory before auth_flow runs.
    requires_request_body = True

    def __init__(self, mchid: str, serial_no: str, private_key: RSAPrivateKey, public_key_id: str) -> None:
        self._mchid = mchid
        self._serial_no = serial_no
        self._key = private_key
        self._public_key_id = public_key_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the Authorization and Wechatpay-Serial headers, then send."""
        timestamp, nonce = str(int(time.time())), crypto.new_nonce()
        # raw_path is the path and query exactly as they go on the wire, which is what WeChat checks.
        message = crypto.request_message(
            request.method, request.url.raw_path, timestamp, nonce, request.content
        )
        signature = crypto.sign(self._key, message)
        request.headers["Authorization"] = crypto.authorization(
            self._mchid, self._serial_no, nonce, timestamp, signature
        )
        # In public-key mode this tells WeChat Pay to sign its answer with the key we hold.
        request.headers["Wechatpay-Serial"] = self._public_key_id
        yield request


@dataclass(frozen=True, slots=True)
class PayParams:
    """The arguments of `wx.requestPayment`, signed with the merchant key."""

    app_id: str
    time_stamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str

    def for_request_payment(self) -> dict[str, str]:
        """The object the mini-program passes to `wx.requestPayment` (its own key names)."""
        return {
            "timeStamp": self.time_stamp,
            "nonceStr": self.nonce_str,
            "package": self.package,
            "signType": self.sign_type,
            "paySign": self.pay_sign,
        }


@dataclass(frozen=True, slots=True)
class Transaction:
    """A JSAPI order as WeChat Pay reports it; `trade_state` is SUCCESS, REFUND, NOTPAY, CLOSED, …"""

    out_trade_no: str
    trade_state: str
    trade_state_desc: str = ""
    transaction_id: str | None = None
    total_fen: int | None = None
    payer_total_fen: int | None = None
    payer_openid: str | None = None
    success_time: datetime | None = None

    @property
    def paid(self) -> bool:
        """True once the payer paid (a later refund turns SUCCESS into REFUND)."""
        return self.trade_state in ("SUCCESS", "REFUND")


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A refund as WeChat Pay reports it; `status` is PROCESSING, SUCCESS, CLOSED or ABNORMAL."""

    refund_id: str
    status: str
    out_refund_no: str = ""
    refund_fen: int | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified, decrypted notification; `event_type` is TRANSACTION.SUCCESS, REFUND.SUCCESS, …"""

    id: str
    event_type: str
    resource: dict[str, Any]
    create_time: str = ""
    summary: str = ""


def rfc3339(moment: datetime) -> str:
    """`moment` as WeChat Pay writes times: `2024-05-01T10:30:00+08:00`; naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("WeChat Pay times must be timezone-aware")
    return moment.astimezone(CHINA_TZ).isoformat(timespec="seconds")


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    # Compact UTF-8: these exact bytes are signed and sent.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class WeChatPayClient:
    """Typed calls to `WECHAT_PAY_BASE_URL` (api.mch.weixin.qq.com or the simulator)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        mchid: str,
        appid: str,
        merchant_serial: str,
        private_key_pem: bytes,
        wechatpay_public_key_pem: bytes,
        public_key_id: str,
        apiv3_key: bytes,
        timeout: float = 3.0,
    ) -> None:
        if len(apiv3_key) != crypto.APIV3_KEY_LENGTH:
            raise ValueError(f"the APIv3 key must be {crypto.APIV3_KEY_LENGTH} bytes")
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._mchid = mchid
        self._appid = appid
        self._private_key = crypto.load_private_key(private_key_pem)
        self._public_key = crypto.load_public_key(wechatpay_public_key_pem)
        self._public_key_id = public_key_id
        self._apiv3_key = apiv3_key
        self._timeout = httpx.Timeout(timeout)
        self._auth = WeChatPayAuth(mchid, merchant_serial, self._private_key, public_key_id)

    @classmethod
    def from_files(
        cls,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        mchid: str,
        appid: str,
        merchant_serial: str,
        private_key_path: str | Path,
        wechatpay_public_key_path: str | Path,
        public_key_id: str,
        apiv3_key: str | bytes,
        timeout: float = 3.0,
    ) -> WeChatPayClient:
        """Build a client from the PEM files named in the settings."""
        return cls(
            http,
            base_url,
            mchid,
            appid,
            merchant_serial,
            Path(private_key_path).read_bytes(),
            Path(wechatpay_public_key_path).read_bytes(),
            public_key_id,
            apiv3_key.encode() if isinstance(apiv3_key, str) else apiv3_key,
            timeout=timeout,
        )

    async def create_jsapi_prepay(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str,
        notify_url: str,
        time_expire: datetime,
    ) -> str:
        """Place a JSAPI order (`POST /v3/pay/transactions/jsapi`) and return its prepay_id."""
        body = {
            "appid": self._appid,
            "mchid": self._mchid,
            "description": description,
            "out_trade_no": out_trade_no,
            "time_expire": rfc3339(time_expire),
            "notify_url": notify_url,
            "amount": {"total": amount_fen, "currency": "CNY"},
            "payer": {"openid": payer_openid},
        }
        data = await self._json("POST", "/v3/pay/transactions/jsapi", body=body)
        with decoding(UPSTREAM):
            return str(data["prepay_id"])

    def request_payment_params(self, prepay_id: str) -> PayParams:
        """Sign `appId\\ntimeStamp\\nnonceStr\\nprepay_id=…\\n` for `wx.requestPayment` (signType RSA)."""
        time_stamp, nonce_str, package = str(int(time.time())), crypto.new_nonce(), f"prepay_id={prepay_id}"
        pay_sign = crypto.sign(self._private_key, crypto.lines(self._appid, time_stamp, nonce_str, package))
        return PayParams(self._appid, time_stamp, nonce_str, package, "RSA", pay_sign)

    async def query_by_out_trade_no(self, out_trade_no: str) -> Transaction:
        """The order's current state; raises `WeChatPayNotFound` when WeChat Pay never saw it."""
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}"
        data = await self._json("GET", path, params={"mchid": self._mchid})
        with decoding(UPSTREAM):
            amount = data.get("amount") or {}
            payer = data.get("payer") or {}
            success_time = data.get("success_time")
            return Transaction(
                out_trade_no=str(data["out_trade_no"]),
                trade_state=str(data["trade_state"]),
                trade_state_desc=str(data.get("trade_state_desc", "")),
                transaction_id=str(data["transaction_id"]) if data.get("transaction_id") else None,
                total_fen=_optional_int(amount.get("total")),
                payer_total_fen=_optional_int(amount.get("payer_total")),
                payer_openid=str(payer["openid"]) if payer.get("openid") else None,
                success_time=datetime.fromisoformat(success_time) if success_time else None,
            )

    async def close(self, out_trade_no: str) -> None:
        """Close an unpaid order so it can no longer be paid; raises `WeChatPayOrderPaid` if it was."""
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close"
        await self._call("POST", path, body={"mchid": self._mchid})

    async def create_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str,
        notify_url: str,
    ) -> RefundResult:
        """Request a refund; WeChat Pay answers the same refund again for the same out_refund_no."""
        body: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "notify_url": notify_url,
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        if reason:
            body["reason"] = reason
        return _refund(await self._json("POST", "/v3/refund/domestic/refunds", body=body))

    async def query_refund(self, out_refund_no: str) -> RefundResult:
        """A refund's current state (to reconcile one whose notification never arrived)."""
        path = f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}"
        return _refund(await self._json("GET", path))

    def parse_notification(
        self, headers: Mapping[str, str], body: bytes, now: float | None = None
    ) -> Notification:
        """Verify signature, serial and freshness, then decrypt the resource; else `NotificationRejected`."""
        problem = self._signature_problem(headers, body, now)
        if problem is not None:
            raise NotificationRejected(*problem)
        try:
            envelope = json.loads(body)
            resource = envelope["resource"]
            if resource.get("algorithm") != crypto.ENCRYPTION:
                raise NotificationRejected(
                    "MALFORMED", f"unsupported algorithm {resource.get('algorithm')!r}"
                )
            ciphertext, nonce = str(resource["ciphertext"]), str(resource["nonce"])
            associated_data = str(resource.get("associated_data") or "")
            event_id, event_type = str(envelope["id"]), str(envelope["event_type"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NotificationRejected("MALFORMED", f"not a WeChat Pay notification: {exc!r}") from exc
        try:
            plaintext = crypto.decrypt(self._apiv3_key, nonce, ciphertext, associated_data)
            decrypted = json.loads(plaintext)
        except (InvalidTag, ValueError) as exc:
            # A valid signature with undecryptable content means a wrong APIv3 key on our side.
            raise NotificationRejected("DECRYPT", "resource does not decrypt with our APIv3 key") from exc
        if not isinstance(decrypted, dict):
            raise NotificationRejected("MALFORMED", "decrypted resource is not a JSON object")
        return Notification(
            id=event_id,
            event_type=event_type,
            resource=decrypted,
            create_time=str(envelope.get("create_time", "")),
            summary=str(envelope.get("summary", "")),
        )

    def _signature_problem(
        self, headers: Mapping[str, str], body: bytes, now: float | None
    ) -> tuple[str, str] | None:
        """Why `Wechatpay-*` headers do not vouch for `timestamp\\nnonce\\nbody\\n`, or None if they do."""
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp = lowered.get("wechatpay-timestamp", "")
        nonce = lowered.get("wechatpay-nonce", "")
        signature = lowered.get("wechatpay-signature", "")
        serial = lowered.get("wechatpay-serial", "")
        if not (timestamp and nonce and signature and serial):
            return "MISSING_HEADERS", "Wechatpay-Timestamp/-Nonce/-Signature/-Serial required"
        if serial != self._public_key_id:
            return "SERIAL", f"signed with {serial!r}, we hold {self._public_key_id!r}"
        signature_type = lowered.get("wechatpay-signature-type")
        if signature_type is not None and signature_type != crypto.SCHEME:
            return "SIGNATURE_TYPE", f"unsupported signature type {signature_type!r}"
        if not timestamp.isdigit():
            return "STALE", f"timestamp {timestamp!r} is not an integer"
        # Bounds replays of a captured message to the same window WeChat Pay applies to us.
        if abs((time.time() if now is None else now) - int(timestamp)) > crypto.MAX_CLOCK_SKEW:
            return "STALE", f"timestamp {timestamp} is more than {crypto.MAX_CLOCK_SKEW}s off"
        if not crypto.verify(self._public_key, crypto.lines(timestamp, nonce, body), signature):
            return "SIGNATURE", "signature does not verify with the WeChat Pay public key"
        return None

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        response = await self._call(method, path, params=params, body=body)
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise UpstreamError(UPSTREAM, "answer is not JSON", status=response.status_code) from exc
        if not isinstance(data, dict):
            raise UpstreamError(UPSTREAM, "answer is not a JSON object", status=response.status_code)
        return data

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = _json_bytes(body)
        with translating(UPSTREAM):
            response = await self._http.request(
                method,
                self._base_url + path,
                params=params,
                content=content,
                headers=headers,
                auth=self._auth,
                timeout=self._timeout,
            )
        _raise_for_status(response)
        # Like the official SDKs, only successful answers are verified: an unsigned 4xx is still an error.
        problem = self._signature_problem(response.headers, response.content, None)
        if problem is not None:
            reason, message = problem
            raise WeChatPaySignatureInvalid(
                UPSTREAM, f"answer rejected, {reason}: {message}", status=response.status_code, code=reason
            )
        return response


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 300:
        return
    code, message = "", response.text[:200]
    try:
        data = response.json()
        if isinstance(data, dict):
            code, message = str(data.get("code") or ""), str(data.get("message") or message)
    except ValueError:
        pass
    if status >= 500 or status == 429:
        raise UpstreamUnavailable(UPSTREAM, f"HTTP {status} {code} {message}".strip(), status=status)
    raise pay_error(status, code, message)


def _refund(data: dict[str, Any]) -> RefundResult:
    with decoding(UPSTREAM):
        amount = data.get("amount") or {}
        return RefundResult(
            refund_id=str(data["refund_id"]),
            status=str(data["status"]),
            out_refund_no=str(data.get("out_refund_no", "")),
            refund_fen=_optional_int(amount.get("refund")),
        )


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer amount, got {value!r}")
    return value
