"""Bearer tokens: HS256 JWTs for members and operators."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

_ALGORITHM = "HS256"
_ISSUER = "bff"


class Role(enum.Enum):
    MEMBER = "member"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a member (member_id set) or an operator (name set)."""

    role: Role
    member_id: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class InvalidToken(Exception):
    """The bearer token is malformed, forged or expired."""


def issue_token(principal: Principal, secret: str, ttl_seconds: int, now: float | None = None) -> IssuedToken:
    """Sign a token for `principal` that expires after `ttl_seconds`."""
    issued = int(now if now is not None else time.time())
    expires = issued + ttl_seconds
    subject = (
        f"member:{principal.member_id}" if principal.role is Role.MEMBER else f"operator:{principal.name}"
    )
    claims = {"sub": subject, "role": principal.role.value, "iat": issued, "exp": expires, "iss": _ISSUER}
    token = jwt.encode(claims, secret, algorithm=_ALGORITHM)
    return IssuedToken(token=token, expires_at=datetime.fromtimestamp(expires, tz=UTC))


def verify_token(token: str, secret: str) -> Principal:
    """The principal a valid token names; raises InvalidToken otherwise."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], issuer=_ISSUER, options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    kind, _, ident = str(claims.get("sub", "")).partition(":")
    if kind == "member" and claims.get("role") == Role.MEMBER.value and ident.isdigit():
        return Principal(role=Role.MEMBER, member_id=int(ident))
    if kind == "operator" and claims.get("role") == Role.OPERATOR.value and ident:
        return Principal(role=Role.OPERATOR, name=ident)
    raise InvalidToken("unknown subject")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, if any."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
