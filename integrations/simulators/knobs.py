"""Shared simulator plumbing: fault knobs (latency, error rate, outage, clock), admin routes, helpers.

Every simulator answers `/_sim/config`, `/_sim/state` and `/_sim/reset` without auth; the knobs
apply to every other path. The error-rate dice come from a seedable `random.Random`, so a test or a
load run can replay the same sequence of failures.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_sim/"


class BadRequest(Exception):
    """A request body the simulator refuses with 400."""


@dataclass
class Knobs:
    """Fault injection settings of one simulator, changed at runtime through `POST /_sim/config`."""

    latency: float = 0.0
    error_rate: float = 0.0
    down: bool = False
    seed: int | None = None
    clock_offset: float = 0.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def now(self) -> float:
        """The simulator's clock: wall time shifted by `clock_offset` (to test expiries)."""
        return time.time() + self.clock_offset

    def roll_error(self) -> bool:
        """True when this request should fail, with probability `error_rate`."""
        return self.error_rate > 0 and self.rng.random() < self.error_rate

    def update(self, body: dict[str, Any]) -> None:
        """Apply a partial config; raises `BadRequest` on unknown keys or bad values."""
        unknown = set(body) - {"latency", "error_rate", "down", "seed", "clock_offset"}
        if unknown:
            raise BadRequest(f"unknown knobs: {sorted(unknown)}")
        if "latency" in body:
            self.latency = _number(body["latency"], "latency", 0.0, 600.0)
        if "error_rate" in body:
            self.error_rate = _number(body["error_rate"], "error_rate", 0.0, 1.0)
        if "down" in body:
            if not isinstance(body["down"], bool):
                raise BadRequest("down must be a boolean")
            self.down = body["down"]
        if "clock_offset" in body:
            self.clock_offset = _number(body["clock_offset"], "clock_offset", -1e9, 1e9)
        if "seed" in body:
            seed = body["seed"]
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise BadRequest("seed must be an integer or null")
            self.seed = seed
            self.rng.seed(seed)

    def reset(self) -> None:
        """Back to a healthy, instant, unshifted simulator."""
        self.latency, self.error_rate, self.down, self.clock_offset = 0.0, 0.0, False, 0.0
        self.seed = None
        self.rng.seed(None)

    def as_json(self) -> dict[str, Any]:
        """The knobs as `/_sim/config` and `/_sim/state` show them."""
        return {
            "latency": self.latency,
            "error_rate": self.error_rate,
            "down": self.down,
            "seed": self.seed,
            "clock_offset": self.clock_offset,
        }


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{name} must be a number in [{low}, {high}]")
    return float(value)


class KnobsMiddleware:
    """Applies the knobs to every non-admin request: outage (503), latency, random faults."""

    def __init__(self, app: ASGIApp, knobs: Knobs, fault: Callable[[], Response]) -> None:
        self.app = app
        self.knobs = knobs
        self.fault = fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request through the knobs, then the app."""
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.knobs.down:
            await JSONResponse({"error": "service unavailable"}, status_code=503)(scope, receive, send)
            return
        if self.knobs.latency > 0:
            replay = await _delay(self.knobs.latency, receive)
            if replay is None:
                return  # the client gave up while we were "slow": nothing left to answer
            receive = replay
        if self.knobs.roll_error():
            await self.fault()(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _delay(seconds: float, receive: Receive) -> Receive | None:
    """Sleep, but stop early if the client disconnects; returns a `receive` replaying the body."""
    # The body is read first so that a further receive() can only mean "disconnected".
    buffered: list[Message] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        buffered.append(message)
        if not message.get("more_body", False):
            break
    watcher = asyncio.ensure_future(receive())
    try:
        await asyncio.wait_for(asyncio.shield(watcher), timeout=seconds)
    except TimeoutError:
        pass
    else:
        return None  # receive() returned before the delay ended: the client is gone

    async def replay() -> Message:
        if buffered:
            return buffered.pop(0)
        return await watcher

    return replay


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object body; raises `BadRequest` otherwise."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def bad_request(exc: BadRequest) -> JSONResponse:
    """The 400 answer for a refused body."""
    return JSONResponse({"error": "bad_request", "message": str(exc)}, status_code=400)


def unauthorized() -> JSONResponse:
    """The 401 answer for a missing or wrong bearer token."""
    return JSONResponse({"error": "unauthorized"}, status_code=401)


def server_error() -> JSONResponse:
    """The 500 answer of an injected fault (ERP, CRM)."""
    return JSONResponse({"error": "internal_error"}, status_code=500)


Handler = Callable[[Request], Awaitable[Response]]


def json_endpoint(handler: Handler) -> Handler:
    """Wrap a handler so `BadRequest` becomes a 400 answer."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as exc:
            return bad_request(exc)

    return endpoint


def bearer_endpoint(api_token: str, handler: Handler) -> Handler:
    """Like `json_endpoint`, and answer 401 unless `Authorization: Bearer <api_token>` is sent."""
    expected = f"Bearer {api_token}"

    async def endpoint(request: Request) -> Response:
        if request.headers.get("authorization", "") != expected:
            return unauthorized()
        return await handler(request)

    return json_endpoint(endpoint)


def require(body: dict[str, Any], *keys: str) -> None:
    """Raise `BadRequest` unless every key is present."""
    missing = [k for k in keys if k not in body]
    if missing:
        raise BadRequest(f"missing fields: {missing}")


def str_list(body: dict[str, Any], key: str) -> list[str]:
    """The body's list of strings under `key`, or `BadRequest`."""
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{key} must be a list of strings")
    return value


def int_field(body: dict[str, Any], key: str, default: int | None = None) -> int:
    """The body's integer under `key` (or `default` when absent), or `BadRequest`."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be an integer")
    return value


def admin_routes(
    knobs: Knobs, state: Callable[[], MutableMapping[str, Any]], reset: Callable[[], None]
) -> list[Route]:
    """`/_sim/config`, `/_sim/state` and `/_sim/reset`, shared by every simulator."""

    async def config(request: Request) -> Response:
        if request.method == "POST":
            knobs.update(await read_json(request))
        return JSONResponse(knobs.as_json())

    async def show_state(request: Request) -> Response:
        return JSONResponse({"knobs": knobs.as_json(), **state()})

    async def do_reset(request: Request) -> Response:
        knobs.reset()
        reset()
        return JSONResponse({"reset": True})

    return [
        Route("/_sim/config", json_endpoint(config), methods=["GET", "POST"]),
        Route("/_sim/state", show_state, methods=["GET"]),
        Route("/_sim/reset", do_reset, methods=["POST"]),
    ]
