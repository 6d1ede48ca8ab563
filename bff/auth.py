"""Bearer tokens: HS256 JWTs for members and operators, signed under rotatable key ids.

A key ring lists `(kid, secret)` pairs: the first signs, every one verifies, and each token names its
key in the `kid` header, so a key is rotated by putting a new one first and removing the old one once
its tokens have expired (or at once, to revoke them all). Member tokens also carry the member's
`token_version` (claim `tv`), which `bff.sessions` compares with the database to revoke sessions.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jwt

_ALGORITHM = "HS256"
_ISSUER = "bff"
DEFAULT_KID = "default"  # the key id of the single JWT_SECRET, and of tokens signed before key ids


class Role(enum.Enum):
    MEMBER = "member"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a member (member_id set) or an operator (name set).

    `token_version` is the member's session version the token was issued under (0 for operators).
    """

    role: Role
    member_id: int | None = None
    name: str | None = None
    token_version: int = field(default=0, compare=False)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class InvalidToken(Exception):
    """The bearer token is malformed, forged, expired, signed by an unknown key or revoked."""


class KeyRingError(ValueError):
    """JWT_SECRETS is malformed."""


@dataclass(frozen=True)
class SigningKeys:
    """The JWT key ring: `(kid, secret)` pairs; the first signs, every one verifies."""

    keys: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("the key ring holds no key")
        kids = [kid for kid, _ in self.keys]
        if len(set(kids)) != len(kids):
            raise KeyRingError("key ids must be unique")
        for kid, secret in self.keys:
            if not kid or ":" in kid or "," in kid or not secret:
                raise KeyRingError(f"JWT key {kid!r} must be `kid:secret` with a non-empty secret")

    @classmethod
    def single(cls, secret: str, kid: str = DEFAULT_KID) -> SigningKeys:
        """A ring of one key (the plain JWT_SECRET)."""
        return cls(((kid, secret),))

    @classmethod
    def parse(cls, spec: str) -> SigningKeys:
        """`kid:secret,kid:secret` → a ring; secrets may contain `:` but not `,`."""
        pairs: list[tuple[str, str]] = []
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            kid, sep, secret = part.partition(":")
            if not sep:
                raise KeyRingError(f"JWT_SECRETS entry {kid!r} must be `kid:secret`")
            pairs.append((kid.strip(), secret))
        return cls(tuple(pairs))

    @property
    def signing_kid(self) -> str:
        return self.keys[0][0]

    def secret_for(self, kid: str) -> str | None:
        """The secret of `kid`, or None when the ring no longer (or never) held it."""
        return next((secret for k, secret in self.keys if k == kid), None)


def _ring(keys: SigningKeys | str) -> SigningKeys:
    return keys if isinstance(keys, SigningKeys) else SigningKeys.single(keys)


def issue_token(
    principal: Principal, keys: SigningKeys | str, ttl_seconds: int, now: float | None = None
) -> IssuedToken:
    """Sign a token for `principal` with the ring's first key; it expires after `ttl_seconds`.

    A plain string is the single key `default` (the JWT_SECRET of a ring-less setup).
    """
    ring = _ring(keys)
    issued = int(now if now is not None else time.time())
    expires = issued + ttl_seconds
    claims: dict[str, object] = {"role": principal.role.value, "iat": issued, "exp": expires, "iss": _ISSUER}
    if principal.role is Role.MEMBER:
        claims["sub"] = f"member:{principal.member_id}"
        claims["tv"] = principal.token_version
    else:
        claims["sub"] = f"operator:{principal.name}"
    kid = ring.signing_kid
    token = jwt.encode(claims, ring.keys[0][1], algorithm=_ALGORITHM, headers={"kid": kid})
    return IssuedToken(token=token, expires_at=datetime.fromtimestamp(expires, tz=UTC))


def verify_token(token: str, keys: SigningKeys | str) -> Principal:
    """The principal a valid token names; raises InvalidToken otherwise (session checks are separate)."""
    ring = _ring(keys)
    try:
        kid = jwt.get_unverified_header(token).get("kid", DEFAULT_KID)
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    secret = ring.secret_for(kid) if isinstance(kid, str) else None
    if secret is None:
        # A removed key's tokens are refused: dropping a key revokes everything it signed.
        raise InvalidToken(f"unknown signing key {kid!r}")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], issuer=_ISSUER, options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    kind, _, ident = str(claims.get("sub", "")).partition(":")
    if kind == "member" and claims.get("role") == Role.MEMBER.value and ident.isdigit():
        # Tokens from before session versions carry no `tv`: they belong to version 0.
        version = claims.get("tv", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise InvalidToken("malformed token version")
        return Principal(role=Role.MEMBER, member_id=int(ident), token_version=version)
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
