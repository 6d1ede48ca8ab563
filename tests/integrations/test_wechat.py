"""WeChatClient against the WeChat simulator over real HTTP on loopback."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from integrations.errors import (
    InvalidLoginCode,
    UpstreamUnavailable,
    WeChatBusy,
    WeChatError,
    WeChatHighRiskUser,
    WeChatRateLimited,
)
from integrations.simulators import create_wechat_app
from integrations.wechat import TOKEN_REFRESH_MARGIN, WeChatClient, WeChatSession
from tests.support.servers import serve_asgi

APPID = "wx_test_appid"
SECRET = "test-secret"
TEMPLATE = "TPL-ORDER-SHIPPED"


class RecordingCache:
    """A cache that keeps values forever and remembers every TTL it was asked for."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.ttls: list[float] = []

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self.values[key] = value
        self.ttls.append(ttl)


@pytest.fixture(scope="module")
async def wechat_url() -> AsyncIterator[str]:
    async with serve_asgi(create_wechat_app(APPID, SECRET)) as url:
        yield url


@pytest.fixture
async def http(wechat_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        (await client.post(f"{wechat_url}/_sim/reset")).raise_for_status()
        yield client


@pytest.fixture
def cache() -> RecordingCache:
    return RecordingCache()


@pytest.fixture
def wechat(http: httpx.AsyncClient, wechat_url: str, cache: RecordingCache) -> WeChatClient:
    return WeChatClient(http, wechat_url, APPID, SECRET, token_cache=cache, timeout=2.0)


async def sim(http: httpx.AsyncClient, url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call an admin endpoint of the simulator: POST with a body, else GET."""
    response = await (http.post(url + path, json=body) if body is not None else http.get(url + path))
    response.raise_for_status()
    return response.json()


async def test_sim_code_signs_in_the_same_member_with_a_fresh_session_key(wechat: WeChatClient) -> None:
    first = await wechat.code2session("sim_alice-01")
    again = await wechat.code2session("sim_alice-01")

    assert (first.openid, first.unionid) == ("o_alice-01", "u_alice-01")
    assert again.openid == first.openid and again.session_key != first.session_key
    assert len(base64.b64decode(first.session_key)) == 16
    assert isinstance(first, WeChatSession)


@pytest.mark.parametrize("code", ["bogus", "sim_", "sim_bad name", "SIM_x"])
async def test_other_codes_are_invalid(wechat: WeChatClient, code: str) -> None:
    with pytest.raises(InvalidLoginCode) as caught:
        await wechat.code2session(code)
    assert caught.value.errcode == 40029 and not caught.value.retryable


@pytest.mark.parametrize(
    ("errcode", "error"),
    [(45011, WeChatRateLimited), (40226, WeChatHighRiskUser), (-1, WeChatBusy)],
)
async def test_login_errcodes_map_to_typed_errors(
    wechat: WeChatClient, http: httpx.AsyncClient, wechat_url: str, errcode: int, error: type[Exception]
) -> None:
    await sim(http, wechat_url, "/_sim/login-errors", {"codes": {"sim_bob": errcode}})

    with pytest.raises(error):
        await wechat.code2session("sim_bob")


async def test_busy_is_unavailable_and_retryable(
    wechat: WeChatClient, http: httpx.AsyncClient, wechat_url: str
) -> None:
    await sim(http, wechat_url, "/_sim/config", {"error_rate": 1.0})

    with pytest.raises(UpstreamUnavailable) as caught:
        await wechat.code2session("sim_alice")

    assert isinstance(caught.value, WeChatBusy) and caught.value.retryable


async def test_wrong_credentials_are_refused(http: httpx.AsyncClient, wechat_url: str) -> None:
    client = WeChatClient(http, wechat_url, "wx_other", SECRET)
    with pytest.raises(WeChatError) as caught:
        await client.code2session("sim_alice")
    assert caught.value.errcode == 40013

    missing_secret = await http.get(
        f"{wechat_url}/sns/jscode2session",
        params={"appid": APPID, "js_code": "sim_a", "grant_type": "authorization_code"},
    )
    assert missing_secret.status_code == 200 and missing_secret.json()["errcode"] == 40125


async def test_access_token_is_cached_until_shortly_before_expiry(
    wechat: WeChatClient, cache: RecordingCache, http: httpx.AsyncClient, wechat_url: str
) -> None:
    token = await wechat.access_token()
    assert await wechat.access_token() == token
    # Another instance sharing the cache does not fetch a token of its own.
    other = WeChatClient(http, wechat_url, APPID, SECRET)
    assert await other.access_token(cache) == token

    assert cache.ttls == [7200 - TOKEN_REFRESH_MARGIN]
    assert (await sim(http, wechat_url, "/_sim/state"))["tokens_issued"] == 1


async def test_send_subscribe_message(wechat: WeChatClient, http: httpx.AsyncClient, wechat_url: str) -> None:
    sent = await wechat.send_subscribe_message(
        "o_alice", TEMPLATE, "pages/order/detail?id=1", {"thing1": "已发货", "character_string2": "O-1"}
    )

    assert sent is True
    [message] = (await sim(http, wechat_url, "/_sim/state"))["messages"]
    assert message == {
        "touser": "o_alice",
        "template_id": TEMPLATE,
        "page": "pages/order/detail?id=1",
        "data": {"thing1": {"value": "已发货"}, "character_string2": {"value": "O-1"}},
        "miniprogram_state": "formal",
    }


async def test_unsubscribed_member_is_not_an_error(
    wechat: WeChatClient, http: httpx.AsyncClient, wechat_url: str
) -> None:
    await sim(http, wechat_url, "/_sim/unsubscribed", {"openids": ["o_carol"]})

    assert await wechat.send_subscribe_message("o_carol", TEMPLATE, "pages/index", {"thing1": "x"}) is False
    assert (await sim(http, wechat_url, "/_sim/state"))["messages"] == []


async def test_other_send_errors_raise(wechat: WeChatClient) -> None:
    with pytest.raises(WeChatError) as caught:
        await wechat.send_subscribe_message("o_alice", "", "pages/index", {"thing1": "x"})
    assert caught.value.errcode == 40037


async def test_expired_token_is_renewed_and_the_send_retried(
    wechat: WeChatClient, cache: RecordingCache, http: httpx.AsyncClient, wechat_url: str
) -> None:
    old = await wechat.access_token()
    # Our cache keeps the token forever, but WeChat's clock has moved past its expiry.
    await sim(http, wechat_url, "/_sim/config", {"clock_offset": 7300})

    assert await wechat.send_subscribe_message("o_alice", TEMPLATE, "pages/index", {"thing1": "x"})

    assert await wechat.access_token() != old
    assert len((await sim(http, wechat_url, "/_sim/state"))["messages"]) == 1


async def test_token_revoked_by_a_forced_refresh_elsewhere_is_renewed(
    wechat: WeChatClient, http: httpx.AsyncClient, wechat_url: str
) -> None:
    old = await wechat.access_token()
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": True}
    newer = (await http.post(f"{wechat_url}/cgi-bin/stable_token", json=body)).json()["access_token"]

    assert await wechat.send_subscribe_message("o_alice", TEMPLATE, "pages/index", {"thing1": "x"})

    assert await wechat.access_token() == newer != old
    assert (await sim(http, wechat_url, "/_sim/state"))["tokens_issued"] == 2


async def test_bad_token_on_the_wire_answers_40001(http: httpx.AsyncClient, wechat_url: str) -> None:
    response = await http.post(
        f"{wechat_url}/cgi-bin/message/subscribe/send",
        params={"access_token": "forged"},
        json={"touser": "o_a", "template_id": TEMPLATE, "data": {}},
    )
    assert response.json()["errcode"] == 40001


async def test_down_is_unavailable(wechat: WeChatClient, http: httpx.AsyncClient, wechat_url: str) -> None:
    await sim(http, wechat_url, "/_sim/config", {"down": True})

    with pytest.raises(UpstreamUnavailable) as caught:
        await wechat.code2session("sim_alice")

    assert caught.value.status == 503


async def test_latency_beyond_timeout_is_unavailable_quickly(
    http: httpx.AsyncClient, wechat_url: str
) -> None:
    await sim(http, wechat_url, "/_sim/config", {"latency": 30})

    with pytest.raises(UpstreamUnavailable, match="Timeout"):
        await WeChatClient(http, wechat_url, APPID, SECRET, timeout=0.2).code2session("sim_alice")
