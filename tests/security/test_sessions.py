"""Sessions that can be revoked and signing keys that rotate: over HTTP and the websocket, and unit-level."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import jwt
import orjson
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bff.app import create_app
from bff.auth import InvalidToken, Principal, Role, SigningKeys, issue_token, verify_token
from bff.cache import MemoryCache
from bff.crypto import DEFAULT_PII_KEYS
from bff.models.member import Member, MemberLevel
from bff.sessions import check_session, forget_session, session_key
from bff.settings import DEFAULT_JWT_SECRET, Settings, SettingsError, load_settings
from integrations.simulators.wechat import create_wechat_app
from tests.support.api import Api
from tests.support.servers import serve_asgi

OLD = ("k1", "old-secret-0123456789abcdef0123456789")
NEW = ("k2", "new-secret-0123456789abcdef0123456789")
PROTOCOL = Subprotocol("graphql-transport-ws")
LEGACY = "legacy-secret-0123456789abcdef012345"
VIEWER = "query { viewer { id } }"

AppFactory = Callable[..., Awaitable[tuple[Api, Starlette]]]


@pytest.fixture(scope="module")
async def wechat_url() -> AsyncIterator[str]:
    async with serve_asgi(create_wechat_app()) as url:
        yield url


@pytest.fixture(scope="module")
async def make_app(seeded: str, wechat_url: str) -> AsyncIterator[AppFactory]:
    """Start apps over the session database with changed settings (a key ring); all stop at the end."""
    async with AsyncExitStack() as stack:

        async def make(**changes: object) -> tuple[Api, Starlette]:
            settings = replace(
                load_settings(),
                database_url=seeded,
                redis_url=os.environ.get("REDIS_URL") or None,
                cache_prefix=f"bff-sessions-{uuid.uuid4().hex[:8]}:",
                wechat_api_base_url=wechat_url,
                **changes,  # type: ignore[arg-type]
            )
            application = create_app(settings, manage_database=False)
            await stack.enter_async_context(application.router.lifespan_context(application))
            stack.push_async_callback(application.state.services.cache.clear)
            transport = httpx.ASGITransport(app=application)
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://bff.test")
            )
            return Api(http), application

        yield make


@pytest.fixture(scope="module")
async def plain(make_app: AppFactory) -> tuple[Api, Starlette]:
    """An app with the default settings (JWT_SECRET as the key `default`)."""
    return await make_app()


async def _status(api: Api, token: str) -> int:
    return (await api.post(VIEWER, token=token)).status_code


# --- sign out everywhere -----------------------------------------------------------------------------


async def test_sign_out_everywhere_revokes_every_token_and_a_new_login_works(
    plain: tuple[Api, Starlette],
) -> None:
    api, _ = plain
    name = f"so{uuid.uuid4().hex[:10]}"
    phone, laptop = await api.login(name), await api.login(name)
    assert await _status(api, phone) == 200 and await _status(api, laptop) == 200
    member = await Member.get(openid=f"o_{name}")
    # Login cached the version, so the requests above cost no session query.
    cache = plain[1].state.services.cache
    assert await cache.get(session_key(member.id)) == b"%d" % member.token_version

    signed_out = (await api.op("SignOutEverywhere", token=phone))["signOutEverywhere"]

    assert signed_out == {"signedOut": True, "userErrors": []}
    assert (await Member.get(id=member.id)).token_version == member.token_version + 1
    for token in (phone, laptop):
        response = await api.post(VIEWER, token=token)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    fresh = await api.login(name)
    viewer = (await api.op("Home", {"recommendFirst": 1}, token=fresh))["viewer"]
    assert viewer is not None and await _status(api, phone) == 401


async def test_sign_out_needs_a_member(plain: tuple[Api, Starlette]) -> None:
    api, application = plain
    anonymous = (await api.op("SignOutEverywhere"))["signOutEverywhere"]
    assert anonymous["signedOut"] is False and anonymous["userErrors"][0]["code"] == "UNAUTHENTICATED"
    keys = application.state.services.settings.signing_keys
    operator = issue_token(Principal(role=Role.OPERATOR, name="ops-so"), keys, 600).token
    refused = (await api.op("SignOutEverywhere", token=operator))["signOutEverywhere"]
    assert refused["userErrors"][0]["code"] == "UNAUTHENTICATED"


async def test_a_revoked_token_cannot_open_a_subscription(plain: tuple[Api, Starlette]) -> None:
    api, application = plain
    token = await api.login(f"ws{uuid.uuid4().hex[:10]}")
    await api.op("SignOutEverywhere", token=token)
    async with serve_asgi(application, lifespan="off") as url:
        ws = await connect(
            url.replace("http://", "ws://") + "/graphql", subprotocols=[PROTOCOL], open_timeout=5
        )
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(orjson.dumps(init).decode())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_deleted_account_and_an_unknown_member_are_refused(plain: tuple[Api, Starlette]) -> None:
    api, application = plain
    services = application.state.services
    name = f"del{uuid.uuid4().hex[:10]}"
    token = await api.login(name)
    assert await _status(api, token) == 200
    member = await Member.get(openid=f"o_{name}")
    await Member.filter(id=member.id).update(deleted_at=datetime.now(UTC))
    await forget_session(member.id, services.cache)
    assert await _status(api, token) == 401
    nobody = Principal(role=Role.MEMBER, member_id=2_000_000_000)
    assert await _status(api, issue_token(nobody, services.settings.signing_keys, 600).token) == 401


# --- key rotation ------------------------------------------------------------------------------------


async def test_a_token_of_an_old_key_works_while_the_key_is_listed_and_not_after(
    make_app: AppFactory,
) -> None:
    rotating, _ = await make_app(jwt_secrets=SigningKeys((NEW, OLD)))
    name = f"rot{uuid.uuid4().hex[:10]}"
    renewed = await rotating.login(name)
    member = await Member.get(openid=f"o_{name}")
    # Issued before the rotation, when k1 alone signed.
    principal = Principal(role=Role.MEMBER, member_id=member.id, token_version=member.token_version)
    token = issue_token(principal, SigningKeys((OLD,)), 600).token
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    assert await _status(rotating, token) == 200
    assert jwt.get_unverified_header(renewed)["kid"] == "k2"

    after, _ = await make_app(jwt_secrets=SigningKeys((NEW,)))
    assert await _status(after, token) == 401
    assert await _status(after, renewed) == 200


async def test_an_expired_token_is_401(plain: tuple[Api, Starlette]) -> None:
    api, application = plain
    principal = Principal(role=Role.MEMBER, member_id=1)
    expired = issue_token(principal, application.state.services.settings.signing_keys, 60, now=1_000_000)
    response = await api.post(VIEWER, token=expired.token)
    assert (
        response.status_code == 401
        and response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    )


def test_verification_picks_the_key_by_kid_and_refuses_unknown_ones() -> None:
    member = Principal(role=Role.MEMBER, member_id=7, token_version=3)
    ring = SigningKeys((NEW, OLD))
    old_token = issue_token(member, SigningKeys((OLD,)), 600).token
    assert verify_token(old_token, ring) == member
    assert verify_token(old_token, ring).token_version == 3
    with pytest.raises(InvalidToken):
        verify_token(old_token, SigningKeys((NEW,)))
    # A kid the ring never held, even over a secret it does hold, is refused.
    unknown = jwt.encode(
        {"sub": "member:7", "role": "member", "iss": "bff", "exp": 4_000_000_000},
        NEW[1],
        algorithm="HS256",
        headers={"kid": "k9"},
    )
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verify_token(unknown, ring)
    unsigned = jwt.encode(
        {"sub": "member:7", "role": "member", "iss": "bff", "exp": 4_000_000_000}, "", "none"
    )
    with pytest.raises(InvalidToken):
        verify_token(unsigned, ring)


def test_tokens_from_before_key_ids_belong_to_the_default_key_at_version_0() -> None:
    legacy = jwt.encode(
        {"sub": "member:7", "role": "member", "iss": "bff", "exp": 4_000_000_000}, LEGACY, algorithm="HS256"
    )
    assert verify_token(legacy, LEGACY) == Principal(role=Role.MEMBER, member_id=7)
    assert verify_token(legacy, SigningKeys((NEW, ("default", LEGACY)))).token_version == 0
    with pytest.raises(InvalidToken):
        verify_token(legacy, SigningKeys((NEW,)))


def test_jwt_secrets_parse_and_fall_back_to_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "single-secret")
    monkeypatch.delenv("JWT_SECRETS", raising=False)
    assert load_settings().signing_keys == SigningKeys((("default", "single-secret"),))
    monkeypatch.setenv("JWT_SECRETS", " k2:new:with:colons , k1:old ")
    assert load_settings().signing_keys.keys == (("k2", "new:with:colons"), ("k1", "old"))
    for bad in ("no-colon", "k1:a,k1:b", ":secret", "k1:"):
        monkeypatch.setenv("JWT_SECRETS", bad)
        with pytest.raises(SettingsError, match="JWT_SECRETS"):
            load_settings()


# --- the cached version ------------------------------------------------------------------------------


async def test_the_session_check_reads_through_the_cache_and_catches_up(seeded: str) -> None:
    cache = MemoryCache(prefix="sessions-unit:")
    level = await MemberLevel.filter(rank=0).first()
    assert level is not None
    member = await Member.create(openid=f"o_unit{uuid.uuid4().hex[:10]}", level_id=level.id)
    current = Principal(role=Role.MEMBER, member_id=member.id, token_version=0)
    assert await check_session(current, cache)
    assert await cache.get(session_key(member.id)) == b"0"
    # Another process revoked and the member signed in again: a newer token than the cached version.
    await Member.filter(id=member.id).update(token_version=1)
    newer = replace(current, token_version=1)
    assert await check_session(newer, cache)
    assert not await check_session(current, cache)
    operator = Principal(role=Role.OPERATOR, name="ops")
    assert await check_session(operator, cache)


# --- production refuses default secrets -------------------------------------------------------------

_SAFE = Settings(
    env="production",
    jwt_secret="j" * 40,
    erp_webhook_secret="whsec_" + "e" * 40,
    wechat_secret="w" * 32,
    wechat_pay_apiv3_key="a" * 32,
    pii_keys="p1:" + "A" * 43 + "=",
)


def test_production_starts_only_without_default_secrets() -> None:
    _SAFE.check()
    cases = (
        ("JWT_SECRET", replace(_SAFE, jwt_secret=DEFAULT_JWT_SECRET)),
        ("JWT_SECRETS", replace(_SAFE, jwt_secrets=SigningKeys((NEW, ("old", DEFAULT_JWT_SECRET))))),
        ("PII_KEYS", replace(_SAFE, pii_keys=None)),
        ("PII_KEYS", replace(_SAFE, pii_keys=DEFAULT_PII_KEYS)),
        ("PII_KEYS", replace(_SAFE, pii_keys=f"p1:{'A' * 43}=,{DEFAULT_PII_KEYS}")),
    )
    for name, settings in cases:
        with pytest.raises(SettingsError, match=name):
            settings.check()
        with pytest.raises(SettingsError):
            create_app(settings)
    replace(_SAFE, env="development", jwt_secret=DEFAULT_JWT_SECRET, pii_keys=None).check()
