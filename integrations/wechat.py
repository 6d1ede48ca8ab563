"""WeChat mini-program server API client: login (code2session), access token, subscribe messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from integrations.errors import (
    WeChatNotSubscribed,
    WeChatTokenInvalid,
    check_status,
    decoding,
    json_object,
    translating,
    wechat_error,
)
from integrations.resilience import CircuitBreaker

UPSTREAM = "wechat"
# WeChat hands out a new stable token during the last 5 minutes of the old one; stop serving the
# cached token by then so every instance moves to the new one while the old is still accepted.
TOKEN_REFRESH_MARGIN = 300.0

MiniprogramState = Literal["formal", "trial", "developer"]


class TokenCache(Protocol):
    """The slice of `bff.cache.Cache` the client needs; shared so all instances use one token."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...


class _LocalTokenCache:
    """In-process fallback when no shared cache is injected (tests, single-process embedded mode)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[bytes, float]] = {}

    async def get(self, key: str) -> bytes | None:
        """The value, unless absent or expired."""
        item = self._items.get(key)
        return item[0] if item and item[1] > time.monotonic() else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store the value for `ttl` seconds."""
        self._items[key] = (value, time.monotonic() + ttl)


@dataclass(frozen=True, slots=True)
class WeChatSession:
    """What code2session returns; `session_key` must never leave the server."""

    openid: str
    session_key: str
    unionid: str | None


def token_cache_ttl(expires_in: float) -> float:
    """How long to cache a token that WeChat says lives `expires_in` seconds."""
    if expires_in > 2 * TOKEN_REFRESH_MARGIN:
        return expires_in - TOKEN_REFRESH_MARGIN
    return max(expires_in / 2, 1.0)


class WeChatClient:
    """Typed calls to `WECHAT_API_BASE_URL` over an injected `httpx.AsyncClient`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        appid: str,
        secret: str,
        *,
        token_cache: TokenCache | None = None,
        timeout: float = 3.0,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._appid = appid
        self._secret = secret
        # `is None`, not `or`: an empty cache object may well be falsy.
        self._token_cache: TokenCache = _LocalTokenCache() if token_cache is None else token_cache
        self._timeout = httpx.Timeout(timeout)
        # Single-flight per process: concurrent misses wait for one fetch instead of each fetching.
        self._token_lock = asyncio.Lock()
        self.breaker = CircuitBreaker(UPSTREAM)

    @property
    def token_cache_key(self) -> str:
        """The cache key of this app's access token."""
        return f"wechat:access_token:{self._appid}"

    async def code2session(self, code: str) -> WeChatSession:
        """Exchange a wx.login code; raises `InvalidLoginCode`, `WeChatRateLimited`, `WeChatBusy`, …"""
        params = {
            "appid": self._appid,
            "secret": self._secret,
            "js_code": code,
            "grant_type": "authorization_code",
        }
        data = await self._call("GET", "/sns/jscode2session", params=params)
        with decoding(UPSTREAM):
            unionid = data.get("unionid")
            return WeChatSession(
                openid=str(data["openid"]),
                session_key=str(data["session_key"]),
                unionid=str(unionid) if unionid else None,
            )

    async def access_token(self, cache: TokenCache | None = None) -> str:
        """The app's access token from the shared cache, fetched (and cached) when missing."""
        cache = self._token_cache if cache is None else cache
        cached = await cache.get(self.token_cache_key)
        if cached:
            return cached.decode()
        async with self._token_lock:
            cached = await cache.get(self.token_cache_key)
            if cached:
                return cached.decode()
            return await self._refresh_token(cache, force=False)

    async def send_subscribe_message(
        self,
        touser: str,
        template_id: str,
        page: str,
        data: Mapping[str, str],
        *,
        miniprogram_state: MiniprogramState = "formal",
    ) -> bool:
        """Send one subscribe message; False when the member has not subscribed (43101), else True."""
        body = {
            "touser": touser,
            "template_id": template_id,
            "page": page,
            "data": {key: {"value": value} for key, value in data.items()},
            "miniprogram_state": miniprogram_state,
        }
        token = await self.access_token()
        try:
            try:
                await self._post_message(token, body)
            except WeChatTokenInvalid:
                # Revoked or expired early (e.g. another process forced a refresh): renew, retry once.
                token = await self._replace_token(token)
                await self._post_message(token, body)
        except WeChatNotSubscribed:
            return False
        return True

    async def _post_message(self, token: str, body: dict[str, Any]) -> None:
        path = "/cgi-bin/message/subscribe/send"
        await self._call("POST", path, params={"access_token": token}, json=body)

    async def _replace_token(self, rejected: str) -> str:
        async with self._token_lock:
            cached = await self._token_cache.get(self.token_cache_key)
            if cached and cached.decode() != rejected:
                return cached.decode()
            token = await self._refresh_token(self._token_cache, force=False)
            if token == rejected:
                token = await self._refresh_token(self._token_cache, force=True)
            return token

    async def _refresh_token(self, cache: TokenCache, *, force: bool) -> str:
        body = {
            "grant_type": "client_credential",
            "appid": self._appid,
            "secret": self._secret,
            "force_refresh": force,
        }
        data = await self._call("POST", "/cgi-bin/stable_token", json=body)
        with decoding(UPSTREAM):
            token = str(data["access_token"])
            expires_in = float(data["expires_in"])
        await cache.set(self.token_cache_key, token.encode(), token_cache_ttl(expires_in))
        return token

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        async with self.breaker.guard():
            with translating(UPSTREAM):
                response = await self._http.request(
                    method, self._base_url + path, params=params, json=json, timeout=self._timeout
                )
            check_status(response, UPSTREAM)
            data = json_object(response, UPSTREAM)
            errcode = data.get("errcode", 0)
            if errcode:
                with decoding(UPSTREAM):
                    code = int(errcode)
                raise wechat_error(code, str(data.get("errmsg", "")))
            return data
