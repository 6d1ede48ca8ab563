"""A fake WeChat server API speaking contract/wechat.md: code2session, stable_token, subscribe send.

Like WeChat, errors are HTTP 200 with a non-zero `errcode`; an injected fault answers -1 (busy).
Admin (no auth): `POST /_sim/unsubscribed` `{"openids": [...]}` makes sends to them answer 43101;
`POST /_sim/login-errors` `{"codes": {"<js_code>": errcode}}` scripts a login answer (45011,
40226, -1, …) for one code; plus the shared `/_sim/config|state|reset`.

WeChat Pay API v3 (`integrations.simulators.wechatpay`) is served under `/v3` on the same port,
sharing the knobs; its state shows under `"pay"` in `/_sim/state`.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from integrations.simulators.knobs import (
    BadRequest,
    Knobs,
    KnobsMiddleware,
    admin_routes,
    json_endpoint,
    read_json,
    str_list,
)
from integrations.simulators.wechatpay import WeChatPaySimConfig, WeChatPaySimulator

LOGIN_CODE = re.compile(r"sim_([A-Za-z0-9_-]+)")
TOKEN_TTL = 7200
# WeChat rotates the stable token during the last 5 minutes; the old one stays valid until it expires.
TOKEN_ROTATE_WINDOW = 300
_ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40226: "high risk user",
    41008: "missing code",
    42001: "access_token expired",
    43101: "user refuse to accept the msg",
    45011: "api minute-quota reach limit mustslower retry next minute",
    47001: "data format error",
    47003: "argument invalid! data.value invalid",
}


def wechat_error(errcode: int) -> JSONResponse:
    """A WeChat-style error: HTTP 200 with errcode and errmsg."""
    return JSONResponse({"errcode": errcode, "errmsg": _ERRMSG.get(errcode, "error")})


def busy() -> JSONResponse:
    """The answer of an injected fault: WeChat's "system busy"."""
    return wechat_error(-1)


@dataclass
class WeChatState:
    """Everything the fake WeChat holds and has received."""

    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (appid, expires_at)
    current_token: dict[str, str] = field(default_factory=dict)  # appid -> newest token
    tokens_issued: int = 0
    logins: list[dict[str, str]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    unsubscribed: set[str] = field(default_factory=set)
    login_errors: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The state as `GET /_sim/state` shows it (tokens counted, never listed)."""
        return {
            "tokens_issued": self.tokens_issued,
            "logins": self.logins,
            "messages": self.messages,
            "unsubscribed": sorted(self.unsubscribed),
            "login_errors": self.login_errors,
        }

    def clear(self) -> None:
        """Forget everything (`POST /_sim/reset`)."""
        self.tokens.clear()
        self.current_token.clear()
        self.tokens_issued = 0
        self.logins.clear()
        self.messages.clear()
        self.unsubscribed.clear()
        self.login_errors.clear()


def _credentials_error(appid: Any, secret: Any, expected: tuple[str | None, str | None]) -> int | None:
    if not appid or (expected[0] is not None and appid != expected[0]):
        return 40013
    if not secret or (expected[1] is not None and secret != expected[1]):
        return 40125
    return None


def create_wechat_app(
    appid: str | None = None, secret: str | None = None, *, pay: WeChatPaySimConfig | None = None
) -> Starlette:
    """The fake WeChat (and WeChat Pay under `/v3`); with `appid`/`secret`, other credentials are refused."""
    knobs = Knobs()
    state = WeChatState()
    expected = (appid, secret)
    wechat_pay = WeChatPaySimulator(knobs, pay)

    async def code2session(request: Request) -> Response:
        params = request.query_params
        failed = _credentials_error(params.get("appid"), params.get("secret"), expected)
        if failed:
            return wechat_error(failed)
        if params.get("grant_type") != "authorization_code":
            return wechat_error(40002)
        code = params.get("js_code", "")
        if not code:
            return wechat_error(41008)
        if code in state.login_errors:
            return wechat_error(state.login_errors[code])
        match = LOGIN_CODE.fullmatch(code)
        if match is None:
            return wechat_error(40029)
        name = match.group(1)
        state.logins.append({"js_code": code, "openid": f"o_{name}"})
        session_key = base64.b64encode(secrets.token_bytes(16)).decode()
        return JSONResponse({"openid": f"o_{name}", "session_key": session_key, "unionid": f"u_{name}"})

    async def stable_token(request: Request) -> Response:
        try:
            body = await read_json(request)
        except BadRequest:
            return wechat_error(47001)
        failed = _credentials_error(body.get("appid"), body.get("secret"), expected)
        if failed:
            return wechat_error(failed)
        if body.get("grant_type") != "client_credential":
            return wechat_error(40002)
        app, now = str(body["appid"]), knobs.now()
        current = state.current_token.get(app)
        if body.get("force_refresh") is True:
            # A forced refresh revokes every earlier token of the app at once, as WeChat does.
            for token in [t for t, (owner, _) in state.tokens.items() if owner == app]:
                del state.tokens[token]
        elif current in state.tokens and state.tokens[current][1] - now > TOKEN_ROTATE_WINDOW:
            return JSONResponse({"access_token": current, "expires_in": int(state.tokens[current][1] - now)})
        token = secrets.token_urlsafe(32)
        state.tokens[token] = (app, now + TOKEN_TTL)
        state.current_token[app] = token
        state.tokens_issued += 1
        return JSONResponse({"access_token": token, "expires_in": TOKEN_TTL})

    async def send_message(request: Request) -> Response:
        token = state.tokens.get(request.query_params.get("access_token", ""))
        if token is None:
            return wechat_error(40001)
        if token[1] <= knobs.now():
            return wechat_error(42001)
        try:
            body = await read_json(request)
        except BadRequest:
            return wechat_error(47001)
        if not body.get("touser"):
            return wechat_error(40003)
        if not body.get("template_id"):
            return wechat_error(40037)
        data = body.get("data")
        if not isinstance(data, dict) or not all(isinstance(v, dict) and "value" in v for v in data.values()):
            return wechat_error(47003)
        if body["touser"] in state.unsubscribed:
            return wechat_error(43101)
        state.messages.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def unsubscribe(request: Request) -> Response:
        state.unsubscribed.update(str_list(await read_json(request), "openids"))
        return JSONResponse({"unsubscribed": sorted(state.unsubscribed)})

    async def script_login_errors(request: Request) -> Response:
        codes = (await read_json(request)).get("codes")
        if not isinstance(codes, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in codes.values()
        ):
            raise BadRequest("codes must map js_code to an integer errcode")
        state.login_errors.update(codes)
        return JSONResponse({"login_errors": state.login_errors})

    def show_state() -> dict[str, Any]:
        return {**state.as_json(), "pay": wechat_pay.state.as_json()}

    def reset() -> None:
        state.clear()
        wechat_pay.state.clear()

    api = [
        Route("/sns/jscode2session", code2session, methods=["GET"]),
        Route("/cgi-bin/stable_token", stable_token, methods=["POST"]),
        Route("/cgi-bin/message/subscribe/send", send_message, methods=["POST"]),
    ]
    routes: list[BaseRoute] = [
        Route("/_sim/unsubscribed", json_endpoint(unsubscribe), methods=["POST"]),
        Route("/_sim/login-errors", json_endpoint(script_login_errors), methods=["POST"]),
        *admin_routes(knobs, show_state, reset),
        *wechat_pay.admin_routes(),
        # Each API applies the shared knobs itself, so an injected fault takes its own API's shape:
        # errcode -1 for the mini-program API, HTTP 500 SYSTEM_ERROR for WeChat Pay.
        Mount("/v3", app=wechat_pay.api_app()),
        Mount(
            "", app=Starlette(routes=api, middleware=[Middleware(KnobsMiddleware, knobs=knobs, fault=busy)])
        ),
    ]
    return Starlette(routes=routes)
