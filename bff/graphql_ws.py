"""GraphQL subscriptions on /graphql (graphql-transport-ws), and the progress events they follow.

A campaign change publishes a topic (`group-buy-team:12`); each subscriber then re-reads the state
and sends it when it changed. Events fan out in-process and, when REDIS_URL is set, through one Redis
pub/sub channel, so subscribers of every process hear the events of every process (web or worker).
An event carries no state, only "look again": a lost, late or repeated one costs a re-read, never a
wrong answer, and subscribers re-read on a timer too in case Redis was away.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar, cast

import orjson
import strawberry
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from bff.auth import InvalidToken, bearer_token
from bff.context import Context, Services
from bff.errors import PublicError
from bff.sessions import authenticate
from bff.settings import Settings
from loaders.registry import Loaders

log = logging.getLogger("bff.graphql_ws")

T = TypeVar("T")

REFRESH_SECONDS = 15.0  # a subscriber re-reads this often even without events (Redis may have been away)
_PUBLISH_TIMEOUT = 1.0  # a slow Redis must not hold up the mutation that published
_READY_TIMEOUT = 2.0
_RECONNECT_SECONDS = 1.0
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)
_UNSEEN = object()


class ProgressHub:
    """Topic wake-ups for subscribers: in-process, plus one Redis channel shared by every process."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.redis_url = redis_url
        self.channel = f"{prefix}progress"
        self._origin = uuid.uuid4().hex  # our own events come back from Redis: skip them
        self._listeners: dict[str, set[asyncio.Event]] = {}
        self._redis: Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def _client(self) -> Redis:
        if self._redis is None:
            assert self.redis_url is not None
            self._redis = Redis.from_url(self.redis_url)
        return self._redis

    async def publish(self, topic: str) -> None:
        """Wake the subscribers of `topic` here and, through Redis, in every other process."""
        self._wake(topic)
        if self.redis_url is None:
            return
        message = orjson.dumps({"origin": self._origin, "topic": topic})
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT):
                await self._client().publish(self.channel, message)
        except _REDIS_FAILURES as exc:
            # Subscribers elsewhere catch up on their refresh timer; the change itself is committed.
            log.warning("progress publish of %s through Redis failed: %s", topic, exc)

    def _wake(self, topic: str) -> None:
        for event in self._listeners.get(topic, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._listeners.values():
            for event in events:
                event.set()

    @asynccontextmanager
    async def listen(self, topic: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever `topic` is published (clear it before re-reading)."""
        event = asyncio.Event()
        self._listeners.setdefault(topic, set()).add(event)
        try:
            if self.redis_url is not None:
                await self._start_reader()
            yield event
        finally:
            listeners = self._listeners.get(topic)
            if listeners is not None:
                listeners.discard(event)
                if not listeners:
                    del self._listeners[topic]
            if not self._listeners:
                self._stop_reader()

    async def _start_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._ready = asyncio.Event()
            self._reader = asyncio.create_task(self._read(self._ready), name=f"progress-hub:{self.channel}")
        # Wait until Redis confirmed the subscription, so no event published after we return is missed;
        # a Redis that is down must not block the subscriber (it falls back to its refresh timer).
        with suppress(TimeoutError):
            async with asyncio.timeout(_READY_TIMEOUT):
                await self._ready.wait()

    def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None

    async def _read(self, ready: asyncio.Event) -> None:
        while True:
            pubsub = self._client().pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message.get("type") == "subscribe":
                        ready.set()
                        self._wake_all()  # anything published while we were not subscribed
                    elif message.get("type") == "message":
                        self._dispatch(message.get("data"))
            except asyncio.CancelledError:
                raise
            except _REDIS_FAILURES as exc:
                log.warning("progress hub lost Redis (%s); reconnecting", exc)
            finally:
                with suppress(*_REDIS_FAILURES):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(_RECONNECT_SECONDS)

    def _dispatch(self, data: object) -> None:
        try:
            decoded = orjson.loads(data if isinstance(data, bytes | str) else b"")
        except orjson.JSONDecodeError:
            return
        if not isinstance(decoded, dict) or decoded.get("origin") == self._origin:
            return
        topic = decoded.get("topic")
        if isinstance(topic, str):
            self._wake(topic)

    async def close(self) -> None:
        """Stop listening and close the Redis connections."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with suppress(asyncio.CancelledError, *_REDIS_FAILURES):
                await reader
        if self._redis is not None:
            with suppress(*_REDIS_FAILURES):
                await self._redis.aclose()
            self._redis = None


_HUBS: dict[tuple[str | None, str], ProgressHub] = {}


def progress_hub(settings: Settings) -> ProgressHub:
    """This process's hub for `settings` (one per Redis URL and key prefix)."""
    key = (settings.redis_url, settings.cache_prefix)
    hub = _HUBS.get(key)
    if hub is None:
        hub = _HUBS[key] = ProgressHub(settings.redis_url, settings.cache_prefix)
    return hub


async def close_progress_hubs(settings: Settings | None = None) -> None:
    """Close the hub of `settings` (default: every hub of this process), at shutdown."""
    keys = list(_HUBS) if settings is None else [(settings.redis_url, settings.cache_prefix)]
    for key in keys:
        hub = _HUBS.pop(key, None)
        if hub is not None:
            await hub.close()


async def watch(
    hub: ProgressHub,
    topic: str,
    read: Callable[[], Awaitable[T]],
    final: Callable[[T], bool],
    *,
    refresh: float = REFRESH_SECONDS,
) -> AsyncGenerator[T, None]:
    """Yield `read()` now and after each event on `topic` when it changed, until a final state.

    Iterate it inside `contextlib.aclosing`, so leaving early stops listening at once.
    """
    async with hub.listen(topic) as woken:
        # Listening starts before the first read, so a change between the two is not missed.
        last: object = _UNSEEN
        while True:
            woken.clear()
            state = await read()
            if state != last:
                last = state
                yield state
                if final(state):
                    return
            with suppress(TimeoutError):
                async with asyncio.timeout(refresh):
                    await woken.wait()


# --- the websocket endpoint ----------------------------------------------------------------------


@dataclass
class WsContext(Context):
    """The context of one websocket connection; `connection_params` is the connection_init payload."""

    connection_params: dict[str, object] | None = None

    def fresh_loaders(self) -> None:
        """New loaders for the next event: like an HTTP request, each event reads current data."""
        self.loaders = Loaders(self.services.cache, self.settings.catalog_cache_ttl, self.services.crm)


class GraphQLWebSocket(GraphQL[WsContext, None]):
    """graphql-transport-ws on /graphql; signs in with `{"Authorization": "Bearer …"}` in connection_init."""

    def __init__(self, schema: strawberry.Schema) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=20,
            # The Origin check protects cookie sessions from other sites' pages; we sign in with a token
            # the client sends in connection_init, which no other page can send for it.
            allowed_origins=("*",),
        )

    async def get_context(self, request: object, response: object) -> WsContext:
        assert isinstance(request, WebSocket)
        services: Services = request.app.state.services
        return WsContext(
            services=services,
            principal=None,
            loaders=Loaders(services.cache, services.settings.catalog_cache_ttl, services.crm),
            client_ip=request.client.host if request.client else "",
        )

    async def on_ws_connect(self, context: WsContext) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if authorization is None:
            return cast(
                UnsetType, UNSET
            )  # anonymous: progress of teams and sessions is what their share pages show
        token = bearer_token(authorization) if isinstance(authorization, str) else None
        if token is None:
            raise ConnectionRejectionError({"message": "Authorization must be 'Bearer <token>'"})
        try:
            # Signature, expiry, key id and session version: a revoked session cannot subscribe either.
            context.principal = await authenticate(token, context.services)
        except InvalidToken as exc:
            raise ConnectionRejectionError({"message": "token expired or invalid: sign in again"}) from exc
        return cast(UnsetType, UNSET)


class _Progress(Protocol):
    @property
    def final(self) -> bool: ...


P = TypeVar("P", bound=_Progress)


async def progress_views(
    context: Context, topic: str, read: Callable[[], Awaitable[P | None]], missing: str
) -> AsyncGenerator[P, None]:
    """Each state of a watched entity until it is final; NOT_FOUND when it never existed."""
    seen = False
    events = watch(progress_hub(context.settings), topic, read, lambda view: view is None or view.final)
    async with aclosing(events):
        async for view in events:
            if view is None:
                if not seen:
                    raise PublicError(missing, "NOT_FOUND")
                return
            seen = True
            if isinstance(context, WsContext):
                context.fresh_loaders()  # each pushed state must read fresh rows, not the last push's
            yield view
