"""Member sessions that can be revoked: a token is good while its `tv` equals the member's token_version.

Signing out everywhere (and deleting the account) raises `member.token_version`; every token issued
before carries the older version and is refused from then on. The version is read through the cache
for `SESSION_TTL` seconds so a request costs no query; the change itself rewrites the cached value, so
with a shared (Redis) cache revocation is immediate everywhere, and with in-process caches in several
processes it takes at most `SESSION_TTL` seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise.expressions import F

from bff.auth import InvalidToken, Principal, Role, verify_token
from bff.cache import Cache
from bff.models.member import Member

if TYPE_CHECKING:
    from bff.context import Services

SESSION_TTL = 30.0
_GONE = b"-"  # no such member, or an account that was deleted


def session_key(member_id: int) -> str:
    """The cache key of a member's current token version."""
    return f"session:tv:{member_id}"


async def token_version_of(member_id: int) -> int | None:
    """The member's token version from the database; None when there is no such member or it was deleted."""
    rows = await Member.filter(id=member_id).values_list("token_version", "deleted_at")
    if not rows or rows[0][1] is not None:
        return None
    return int(rows[0][0])


async def _remember(cache: Cache, member_id: int, version: int | None) -> None:
    await cache.set(session_key(member_id), _GONE if version is None else b"%d" % version, SESSION_TTL)


async def current_version(member_id: int, cache: Cache, *, fresh: bool = False) -> int | None:
    """The member's token version (None: no such member or deleted), cached for SESSION_TTL seconds."""
    if not fresh:
        raw = await cache.get(session_key(member_id))
        if raw is not None:
            return None if raw == _GONE else int(raw)
    version = await token_version_of(member_id)
    await _remember(cache, member_id, version)
    return version


async def check_session(principal: Principal, cache: Cache) -> bool:
    """True unless `principal` is a member whose token version was revoked or whose account is gone."""
    if principal.role is not Role.MEMBER or principal.member_id is None:
        return True
    version = await current_version(principal.member_id, cache)
    if version is not None and principal.token_version > version:
        # A token newer than the cached version: the cache is behind a change, so ask the database.
        version = await current_version(principal.member_id, cache, fresh=True)
    return version is not None and principal.token_version == version


async def authenticate(token: str | None, services: Services) -> Principal | None:
    """The caller of a bearer token (None without one); InvalidToken when expired, forged or revoked."""
    if token is None:
        return None
    principal = verify_token(token, services.settings.signing_keys)
    if not await check_session(principal, services.cache):
        raise InvalidToken("session revoked: sign in again")
    return principal


async def remember_session(member: Member, cache: Cache) -> None:
    """Cache the version of a member row just read (at login), so their next request costs no query."""
    await _remember(cache, member.id, None if member.deleted_at is not None else member.token_version)


async def revoke_sessions(member_id: int, cache: Cache) -> int | None:
    """Refuse every token the member holds; returns the new version (None: no such member, or deleted)."""
    updated = await Member.filter(id=member_id, deleted_at=None).update(token_version=F("token_version") + 1)
    if not updated:
        return None
    version = await token_version_of(member_id)
    await _remember(cache, member_id, version)
    return version


async def forget_session(member_id: int, cache: Cache) -> None:
    """Drop the cached version after changing `token_version` or `deleted_at` some other way."""
    await cache.delete(session_key(member_id))
