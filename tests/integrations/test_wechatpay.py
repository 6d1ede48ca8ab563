"""WeChatPayClient against the WeChat Pay simulator, and its notifications, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from integrations.errors import UpstreamConflict, UpstreamNotFound, UpstreamUnavailable
from integrations.simulators.wechat import create_wechat_app
from integrations.simulators.wechatpay import KEYS_DIR, WeChatPaySimConfig
from integrations.wechatpay import (
    NotificationRejected,
    WeChatPayClient,
    WeChatPayError,
    WeChatPayNotFound,
    WeChatPayOrderClosed,
    WeChatPayOrderPaid,
    WeChatPaySignatureInvalid,
)
from tests.support.servers import serve_asgi

APPID = "wx_pay_test_appid"
MCHID = "1900000001"
MERCHANT_SERIAL = "DEVMERCHANTSERIAL0001"
PUBLIC_KEY_ID = "PUB_KEY_ID_DEV0001"
APIV3_KEY = b"dev-only-apiv3-key-0123456789abc"
OPENID = "o_alice"
TOTAL = 12_345


@dataclass
class Receiver:
    """A stand-in for the BFF's `/webhooks/wechatpay`: records each notification, answers `status`."""

    url: str = ""
    status: int = 204
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(3.0):
            while len(self.received) < count:
                # No await between the check and clear(), so no arrival can slip in unseen.
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture(scope="module")
async def pay_url() -> AsyncIterator[str]:
    async with serve_asgi(create_wechat_app(pay=WeChatPaySimConfig(appid=APPID))) as url:
        yield url


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    box = Receiver()

    async def notify(request: Request) -> Response:
        box.received.append((dict(request.headers), await request.body()))
        box.arrived.set()
        return Response(status_code=box.status)

    async with serve_asgi(Starlette(routes=[Route("/webhooks/wechatpay", notify, methods=["POST"])])) as url:
        box.url = f"{url}/webhooks/wechatpay"
        yield box


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    """A key pair neither side trusts, for forgeries."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def http(pay_url: str, receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        (await client.post(f"{pay_url}/_sim/reset")).raise_for_status()
        receiver.received.clear()
        receiver.status = 204
        yield client


def make_client(http: httpx.AsyncClient, url: str, **overrides: Any) -> WeChatPayClient:
    """A client with the development merchant's files and identifiers, as the settings default to."""
    options: dict[str, Any] = {
        "mchid": MCHID,
        "appid": APPID,
        "merchant_serial": MERCHANT_SERIAL,
        "private_key_path": KEYS_DIR / "merchant_private_key.pem",
        "wechatpay_public_key_path": KEYS_DIR / "wechatpay_public_key.pem",
        "public_key_id": PUBLIC_KEY_ID,
        "apiv3_key": APIV3_KEY.decode(),
        "timeout": 2.0,
    }
    return WeChatPayClient.from_files(http, url, **{**options, **overrides})


@pytest.fixture
def pay(http: httpx.AsyncClient, pay_url: str) -> WeChatPayClient:
    return make_client(http, pay_url)


def trade_no() -> str:
    return f"T{secrets.token_hex(8)}"


def in_minutes(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


async def prepay(pay: WeChatPayClient, receiver: Receiver, out_trade_no: str, total: int = TOTAL) -> str:
    deadline = in_minutes(30)
    return await pay.create_jsapi_prepay(out_trade_no, "测试订单", total, OPENID, receiver.url, deadline)


async def sim(http: httpx.AsyncClient, url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call an admin endpoint of the simulator: POST with a body, else GET."""
    response = await (http.post(url + path, json=body) if body is not None else http.get(url + path))
    response.raise_for_status()
    return response.json()


def pem_public(name: str) -> rsa.RSAPublicKey:
    key = load_pem_public_key((KEYS_DIR / name).read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def rsa_sha256(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, PKCS1v15(), SHA256())).decode()


# --- prepay and paySign ---------------------------------------------------------------------------


async def test_prepay_then_pay_sign_verifies_over_the_exact_string(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = trade_no()
    prepay_id = await prepay(pay, receiver, out_trade_no)
    params = pay.request_payment_params(prepay_id)

    assert prepay_id.startswith("wx")
    assert (params.app_id, params.package, params.sign_type) == (APPID, f"prepay_id={prepay_id}", "RSA")
    message = f"{APPID}\n{params.time_stamp}\n{params.nonce_str}\nprepay_id={prepay_id}\n".encode()
    pem_public("merchant_public_key.pem").verify(
        base64.b64decode(params.pay_sign), message, PKCS1v15(), SHA256()
    )
    assert abs(int(params.time_stamp) - time.time()) < 5 and len(params.nonce_str) == 32
    assert params.for_request_payment() == {
        "timeStamp": params.time_stamp,
        "nonceStr": params.nonce_str,
        "package": params.package,
        "signType": "RSA",
        "paySign": params.pay_sign,
    }
    stored = (await sim(http, pay_url, "/_sim/state"))["pay"]["transactions"][out_trade_no]
    assert stored["trade_state"] == "NOTPAY" and stored["amount"]["total"] == TOTAL


async def test_the_same_order_again_gets_the_same_prepay_id(pay: WeChatPayClient, receiver: Receiver) -> None:
    out_trade_no = trade_no()
    first = await prepay(pay, receiver, out_trade_no)

    assert await prepay(pay, receiver, out_trade_no) == first
    with pytest.raises(WeChatPayError) as caught:
        await prepay(pay, receiver, out_trade_no, total=TOTAL + 1)
    assert caught.value.code == "OUT_TRADE_NO_USED" and caught.value.status == 403


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount_fen": 0}, "amount.total"),
        ({"amount_fen": -100}, "amount.total"),
        ({"out_trade_no": "abc12"}, "out_trade_no"),
        ({"out_trade_no": "x" * 33}, "out_trade_no"),
        ({"out_trade_no": "bad trade no"}, "out_trade_no"),
        ({"payer_openid": ""}, "payer.openid"),
        ({"description": ""}, "description"),
        ({"notify_url": "http://127.0.0.1/notify?order=1"}, "notify_url"),
        ({"time_expire": datetime.now(UTC) - timedelta(minutes=1)}, "time_expire"),
    ],
)
async def test_invalid_orders_are_refused_like_wechat_pay(
    pay: WeChatPayClient, receiver: Receiver, changes: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {
        "out_trade_no": trade_no(),
        "description": "测试订单",
        "amount_fen": TOTAL,
        "payer_openid": OPENID,
        "notify_url": receiver.url,
        "time_expire": in_minutes(30),
    }
    with pytest.raises(WeChatPayError) as caught:
        await pay.create_jsapi_prepay(**{**args, **changes})

    error = caught.value
    assert (error.status, error.code, error.retryable) == (400, "PARAM_ERROR", False)
    assert field in error.message or field.split(".")[-1] in error.message


async def test_a_naive_time_expire_is_a_programming_error(pay: WeChatPayClient, receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await pay.create_jsapi_prepay(trade_no(), "测试", TOTAL, OPENID, receiver.url, datetime.now())


# --- request and answer signatures ----------------------------------------------------------------


def signed_request(
    key: rsa.RSAPrivateKey,
    method: str,
    target: str,
    body: bytes,
    *,
    serial: str = MERCHANT_SERIAL,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers of a request signed by hand, straight from the v3 specification."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    signature = rsa_sha256(key, f"{method}\n{target}\n{stamp}\n{nonce}\n".encode() + body + b"\n")
    authorization = (
        f'WECHATPAY2-SHA256-RSA2048 mchid="{MCHID}",nonce_str="{nonce}",'
        f'signature="{signature}",timestamp="{stamp}",serial_no="{serial}"'
    )
    return {"Authorization": authorization, "Content-Type": "application/json", "Accept": "application/json"}


def merchant_key() -> rsa.RSAPrivateKey:
    key = load_pem_private_key((KEYS_DIR / "merchant_private_key.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def jsapi_body(receiver: Receiver) -> bytes:
    return json.dumps(
        {
            "appid": APPID,
            "mchid": MCHID,
            "description": "手工签名",
            "out_trade_no": trade_no(),
            "notify_url": receiver.url,
            "amount": {"total": 100},
            "payer": {"openid": OPENID},
        }
    ).encode()


async def test_a_request_signed_to_the_spec_is_accepted_and_answered_signed(
    http: httpx.AsyncClient, pay_url: str, receiver: Receiver
) -> None:
    body = jsapi_body(receiver)
    headers = signed_request(merchant_key(), "POST", "/v3/pay/transactions/jsapi", body)

    answer = await http.post(f"{pay_url}/v3/pay/transactions/jsapi", content=body, headers=headers)

    assert answer.status_code == 200 and answer.json()["prepay_id"].startswith("wx")
    stamp, nonce = answer.headers["Wechatpay-Timestamp"], answer.headers["Wechatpay-Nonce"]
    assert answer.headers["Wechatpay-Serial"] == PUBLIC_KEY_ID
    pem_public("wechatpay_public_key.pem").verify(
        base64.b64decode(answer.headers["Wechatpay-Signature"]),
        f"{stamp}\n{nonce}\n".encode() + answer.content + b"\n",
        PKCS1v15(),
        SHA256(),
    )


FORGERIES = ["missing", "other_key", "body_changed", "serial", "stale", "path", "replay"]


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_the_simulator_rejects_a_bad_authorization(
    http: httpx.AsyncClient, pay_url: str, receiver: Receiver, other_key: rsa.RSAPrivateKey, forgery: str
) -> None:
    body, path, key = jsapi_body(receiver), "/v3/pay/transactions/jsapi", merchant_key()
    headers = {
        "missing": lambda: {"Content-Type": "application/json"},
        "other_key": lambda: signed_request(other_key, "POST", path, body),
        "body_changed": lambda: signed_request(key, "POST", path, body.replace(b"100", b"1")),
        "serial": lambda: signed_request(key, "POST", path, body, serial="SOMEONE_ELSE"),
        "stale": lambda: signed_request(key, "POST", path, body, timestamp=int(time.time()) - 301),
        "path": lambda: signed_request(key, "POST", path + "?x=1", body),
        "replay": lambda: signed_request(key, "POST", path, body, nonce="SAME-NONCE-TWICE"),
    }[forgery]()
    if forgery == "replay":
        first = await http.post(pay_url + path, content=body, headers=headers)
        assert first.status_code == 200

    answer = await http.post(pay_url + path, content=body, headers=headers)

    assert answer.status_code == 401 and answer.json()["code"] == "SIGN_ERROR"


async def test_the_client_surfaces_a_rejected_signature(
    http: httpx.AsyncClient, pay_url: str, receiver: Receiver, tmp_path: Any, other_key: rsa.RSAPrivateKey
) -> None:
    foreign = tmp_path / "foreign_key.pem"
    foreign.write_bytes(other_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    client = make_client(http, pay_url, private_key_path=foreign)

    with pytest.raises(WeChatPayError) as caught:
        await prepay(client, receiver, trade_no())

    assert (caught.value.status, caught.value.code) == (401, "SIGN_ERROR")


async def test_an_answer_not_signed_by_wechat_pay_is_refused(
    http: httpx.AsyncClient, pay_url: str, receiver: Receiver, tmp_path: Any, other_key: rsa.RSAPrivateKey
) -> None:
    impostor = tmp_path / "impostor_public_key.pem"
    impostor.write_bytes(other_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    client = make_client(http, pay_url, wechatpay_public_key_path=impostor)

    with pytest.raises(WeChatPaySignatureInvalid) as caught:
        await prepay(client, receiver, trade_no())

    assert caught.value.code == "SIGNATURE" and not caught.value.retryable


async def test_a_wrong_public_key_id_is_refused(
    http: httpx.AsyncClient, pay_url: str, receiver: Receiver
) -> None:
    client = make_client(http, pay_url, public_key_id="PUB_KEY_ID_OTHER")

    with pytest.raises(WeChatPayError) as caught:
        await prepay(client, receiver, trade_no())

    assert caught.value.code == "PARAM_ERROR"


# --- query, close, payment notifications ----------------------------------------------------------


async def test_query_follows_the_order_from_notpay_to_success(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = trade_no()
    await prepay(pay, receiver, out_trade_no)
    unpaid = await pay.query_by_out_trade_no(out_trade_no)

    paid_now = await sim(http, pay_url, f"/_sim/pay/{out_trade_no}", {})
    paid = await pay.query_by_out_trade_no(out_trade_no)

    assert (unpaid.trade_state, unpaid.paid, unpaid.transaction_id) == ("NOTPAY", False, None)
    assert (paid.trade_state, paid.paid) == ("SUCCESS", True)
    assert (paid.total_fen, paid.payer_total_fen) == (TOTAL, TOTAL)
    assert paid.transaction_id == paid_now["transaction"]["transaction_id"]
    assert paid.transaction_id is not None and len(paid.transaction_id) == 28
    assert paid.payer_openid == OPENID and paid.success_time is not None
    assert abs(paid.success_time.timestamp() - time.time()) < 5


async def test_close_makes_an_order_unpayable_and_a_paid_order_cannot_close(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    unpaid, paid = trade_no(), trade_no()
    await prepay(pay, receiver, unpaid)
    await prepay(pay, receiver, paid)
    await sim(http, pay_url, f"/_sim/pay/{paid}", {"deliver": False})

    await pay.close(unpaid)
    await pay.close(unpaid)  # closing again is fine, as on WeChat Pay

    assert (await pay.query_by_out_trade_no(unpaid)).trade_state == "CLOSED"
    with pytest.raises(WeChatPayOrderClosed):
        await prepay(pay, receiver, unpaid)
    assert (await http.post(f"{pay_url}/_sim/pay/{unpaid}", json={})).status_code == 409
    with pytest.raises(WeChatPayOrderPaid) as caught:
        await pay.close(paid)
    assert isinstance(caught.value, UpstreamConflict)
    with pytest.raises(WeChatPayOrderPaid):
        await prepay(pay, receiver, paid)


async def test_an_unknown_order_is_not_found(pay: WeChatPayClient) -> None:
    with pytest.raises(WeChatPayNotFound) as caught:
        await pay.query_by_out_trade_no("NEVER-PLACED-1")
    assert isinstance(caught.value, UpstreamNotFound) and caught.value.code == "ORDER_NOT_EXIST"


async def test_the_payment_notification_reaches_the_receiver_and_decrypts(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = trade_no()
    await prepay(pay, receiver, out_trade_no)

    answer = await sim(http, pay_url, f"/_sim/pay/{out_trade_no}", {})

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    notification = pay.parse_notification(headers, body)
    resource = notification.resource
    assert notification.event_type == "TRANSACTION.SUCCESS" and notification.id.startswith("EV-")
    assert notification.summary == "支付成功" and notification.create_time
    assert resource["out_trade_no"] == out_trade_no and resource["trade_state"] == "SUCCESS"
    assert resource["transaction_id"] == answer["transaction"]["transaction_id"]
    assert resource["amount"] == {
        "total": TOTAL,
        "payer_total": TOTAL,
        "currency": "CNY",
        "payer_currency": "CNY",
    }
    assert resource["payer"] == {"openid": OPENID}
    assert (resource["mchid"], resource["appid"]) == (MCHID, APPID)
    assert datetime.fromisoformat(resource["success_time"]).utcoffset() == timedelta(hours=8)
    # The envelope itself never carries the payment in clear.
    assert out_trade_no not in body.decode()
    sent = (await sim(http, pay_url, "/_sim/state"))["pay"]["notifications"]
    assert [(n["event_type"], n["status"], n["acknowledged"]) for n in sent] == [
        ("TRANSACTION.SUCCESS", 204, True)
    ]


async def test_the_bffs_answer_is_recorded_even_when_it_refuses(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = trade_no()
    await prepay(pay, receiver, out_trade_no)
    receiver.status = 500

    answer = await sim(http, pay_url, f"/_sim/pay/{out_trade_no}", {})

    assert answer["deliveries"][0]["status"] == 500 and not answer["deliveries"][0]["acknowledged"]


async def test_repeat_delivers_the_same_notification_n_times(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = trade_no()
    await prepay(pay, receiver, out_trade_no)

    await sim(http, pay_url, f"/_sim/pay/{out_trade_no}", {"repeat": 3})

    parsed = [pay.parse_notification(headers, body) for headers, body in receiver.received]
    assert len(parsed) == 3 and len({n.id for n in parsed}) == 1
    assert len({n.resource["transaction_id"] for n in parsed}) == 1


async def test_a_tampered_amount_is_validly_signed_so_the_bff_must_compare_it(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = trade_no()
    await prepay(pay, receiver, out_trade_no)

    await sim(http, pay_url, f"/_sim/pay/{out_trade_no}", {"amount": 1})

    notification = pay.parse_notification(*receiver.received[0])
    assert notification.resource["amount"]["total"] == 1
    assert (await pay.query_by_out_trade_no(out_trade_no)).total_fen == TOTAL


# --- notification verification --------------------------------------------------------------------


async def undelivered(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> tuple[dict[str, str], bytes]:
    """A genuine TRANSACTION.SUCCESS notification, handed to the test instead of being sent."""
    out_trade_no = trade_no()
    await prepay(pay, receiver, out_trade_no)
    answer = await sim(http, pay_url, f"/_sim/pay/{out_trade_no}", {"deliver": False})
    assert answer["deliveries"] == [] and receiver.received == []
    notification = answer["notification"]
    return notification["headers"], notification["body"].encode()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("body", "SIGNATURE"),
        ("forged_signature", "SIGNATURE"),
        ("serial", "SERIAL"),
        ("missing_signature", "MISSING_HEADERS"),
        ("signature_type", "SIGNATURE_TYPE"),
        ("too_old", "STALE"),
        ("too_new", "STALE"),
    ],
)
async def test_a_doctored_notification_is_rejected(
    pay: WeChatPayClient,
    receiver: Receiver,
    http: httpx.AsyncClient,
    pay_url: str,
    other_key: rsa.RSAPrivateKey,
    tamper: str,
    reason: str,
) -> None:
    headers, body = await undelivered(pay, receiver, http, pay_url)
    stamp, nonce = int(headers["Wechatpay-Timestamp"]), headers["Wechatpay-Nonce"]
    now: float | None = None
    if tamper == "body":
        body = body.replace(b'"TRANSACTION.SUCCESS"', b'"REFUND.SUCCESS"')
    elif tamper == "forged_signature":
        headers["Wechatpay-Signature"] = rsa_sha256(other_key, f"{stamp}\n{nonce}\n".encode() + body + b"\n")
    elif tamper == "serial":
        headers["Wechatpay-Serial"] = "PUB_KEY_ID_SOMEONE_ELSE"
    elif tamper == "missing_signature":
        del headers["Wechatpay-Signature"]
    elif tamper == "signature_type":
        headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    elif tamper == "too_old":
        now = stamp + 301
    else:
        now = stamp - 301

    with pytest.raises(NotificationRejected) as caught:
        pay.parse_notification(headers, body, now=now)

    assert caught.value.reason == reason and not caught.value.retryable


async def test_a_notification_within_the_window_is_accepted(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    headers, body = await undelivered(pay, receiver, http, pay_url)
    stamp = int(headers["Wechatpay-Timestamp"])

    assert pay.parse_notification(headers, body, now=stamp + 299).event_type == "TRANSACTION.SUCCESS"
    assert pay.parse_notification(headers, body, now=stamp - 299).event_type == "TRANSACTION.SUCCESS"


async def test_a_notification_from_a_skewed_clock_is_stale(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = trade_no()
    await prepay(pay, receiver, out_trade_no)
    await sim(http, pay_url, "/_sim/config", {"clock_offset": -3600})

    await sim(http, pay_url, f"/_sim/pay/{out_trade_no}", {})

    with pytest.raises(NotificationRejected) as caught:
        pay.parse_notification(*receiver.received[0])
    assert caught.value.reason == "STALE"


async def test_a_wrong_key_on_our_side_is_rejected(
    http: httpx.AsyncClient,
    pay_url: str,
    pay: WeChatPayClient,
    receiver: Receiver,
    tmp_path: Any,
    other_key: rsa.RSAPrivateKey,
) -> None:
    headers, body = await undelivered(pay, receiver, http, pay_url)
    impostor = tmp_path / "impostor_public_key.pem"
    impostor.write_bytes(other_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    wrong_public_key = make_client(http, pay_url, wechatpay_public_key_path=impostor)
    wrong_apiv3_key = make_client(http, pay_url, apiv3_key=b"another-apiv3-key-0123456789abcd")

    with pytest.raises(NotificationRejected) as signature:
        wrong_public_key.parse_notification(headers, body)
    with pytest.raises(NotificationRejected) as decryption:
        wrong_apiv3_key.parse_notification(headers, body)

    assert (signature.value.reason, decryption.value.reason) == ("SIGNATURE", "DECRYPT")


# --- refunds --------------------------------------------------------------------------------------


async def paid_order(pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str) -> str:
    out_trade_no = trade_no()
    await prepay(pay, receiver, out_trade_no)
    await sim(http, pay_url, f"/_sim/pay/{out_trade_no}", {"deliver": False})
    return out_trade_no


async def test_refunds_are_idempotent_by_out_refund_no(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = await paid_order(pay, receiver, http, pay_url)
    await sim(http, pay_url, "/_sim/refund-mode", {"auto": False})
    out_refund_no = f"R{out_trade_no}"

    first = await pay.create_refund(out_trade_no, out_refund_no, 300, TOTAL, "不想要了", receiver.url)
    again = await pay.create_refund(out_trade_no, out_refund_no, 300, TOTAL, "不想要了", receiver.url)

    assert first == again and first.status == "PROCESSING" and first.refund_fen == 300
    assert first.out_refund_no == out_refund_no and len(first.refund_id) == 29
    state = (await sim(http, pay_url, "/_sim/state"))["pay"]
    assert list(state["refunds"]) == [out_refund_no] and state["notifications"] == []
    assert (await pay.query_by_out_trade_no(out_trade_no)).trade_state == "REFUND"
    with pytest.raises(WeChatPayError) as changed:
        await pay.create_refund(out_trade_no, out_refund_no, 301, TOTAL, "不想要了", receiver.url)
    assert changed.value.code == "INVALID_REQUEST"
    with pytest.raises(WeChatPayError) as too_much:
        await pay.create_refund(out_trade_no, f"{out_refund_no}-2", TOTAL - 299, TOTAL, "", receiver.url)
    assert too_much.value.code == "INVALID_REQUEST"


async def test_a_settled_refund_notifies_and_stays_the_same_refund(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = await paid_order(pay, receiver, http, pay_url)
    await sim(http, pay_url, "/_sim/refund-mode", {"auto": False})
    out_refund_no = f"R{out_trade_no}"
    created = await pay.create_refund(out_trade_no, out_refund_no, TOTAL, TOTAL, "整单退款", receiver.url)

    await sim(http, pay_url, f"/_sim/refund/{out_refund_no}/succeed", {})

    notification = pay.parse_notification(*receiver.received[0])
    assert notification.event_type == "REFUND.SUCCESS"
    resource = notification.resource
    assert (resource["out_trade_no"], resource["out_refund_no"]) == (out_trade_no, out_refund_no)
    assert (resource["refund_id"], resource["refund_status"]) == (created.refund_id, "SUCCESS")
    assert resource["amount"]["refund"] == TOTAL and resource["amount"]["total"] == TOTAL
    retried = await pay.create_refund(out_trade_no, out_refund_no, TOTAL, TOTAL, "整单退款", receiver.url)
    assert (retried.refund_id, retried.status) == (created.refund_id, "SUCCESS")
    assert (await pay.query_refund(out_refund_no)).status == "SUCCESS"


async def test_auto_mode_settles_a_refund_right_after_answering(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = await paid_order(pay, receiver, http, pay_url)

    created = await pay.create_refund(out_trade_no, f"R{out_trade_no}", 100, TOTAL, "", receiver.url)

    assert created.status == "PROCESSING"
    await receiver.wait_for(1)
    assert pay.parse_notification(*receiver.received[0]).resource["refund_id"] == created.refund_id


async def test_abnormal_refunds_notify_refund_abnormal(
    pay: WeChatPayClient, receiver: Receiver, http: httpx.AsyncClient, pay_url: str
) -> None:
    out_trade_no = await paid_order(pay, receiver, http, pay_url)
    await sim(http, pay_url, "/_sim/refund-mode", {"auto": False})
    await pay.create_refund(out_trade_no, f"R{out_trade_no}", 100, TOTAL, "", receiver.url)

    await sim(http, pay_url, f"/_sim/refund/R{out_trade_no}/abnormal", {})

    notification = pay.parse_notification(*receiver.received[0])
    assert notification.event_type == "REFUND.ABNORMAL"
    assert notification.resource["refund_status"] == "ABNORMAL"


async def test_refunds_need_a_paid_order(pay: WeChatPayClient, receiver: Receiver) -> None:
    unpaid = trade_no()
    await prepay(pay, receiver, unpaid)

    with pytest.raises(WeChatPayError) as not_paid:
        await pay.create_refund(unpaid, "R-unpaid", 100, TOTAL, "", receiver.url)
    with pytest.raises(WeChatPayNotFound):
        await pay.create_refund("NEVER-PLACED-1", "R-unknown", 100, TOTAL, "", receiver.url)
    with pytest.raises(WeChatPayNotFound):
        await pay.query_refund("R-unknown")

    assert not_paid.value.code == "INVALID_REQUEST"


# --- knobs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "status"), [({"down": True}, 503), ({"error_rate": 1.0}, 500), ({"latency": 1.0}, None)]
)
async def test_knobs_make_wechat_pay_unavailable(
    http: httpx.AsyncClient, pay_url: str, receiver: Receiver, knobs: dict[str, Any], status: int | None
) -> None:
    client = make_client(http, pay_url, timeout=0.3)
    await sim(http, pay_url, "/_sim/config", knobs)

    with pytest.raises(UpstreamUnavailable) as caught:
        await prepay(client, receiver, trade_no())

    assert caught.value.status == status and caught.value.retryable


async def test_a_fault_takes_each_apis_own_shape(http: httpx.AsyncClient, pay_url: str) -> None:
    await sim(http, pay_url, "/_sim/config", {"error_rate": 1.0})

    login = await http.get(f"{pay_url}/sns/jscode2session", params={"appid": "a", "js_code": "sim_x"})
    pay = await http.post(f"{pay_url}/v3/pay/transactions/jsapi", content=b"{}")

    assert (login.status_code, login.json()["errcode"]) == (200, -1)
    assert (pay.status_code, pay.json()["code"]) == (500, "SYSTEM_ERROR")
