"""Bearer tokens verified once per process: the response cache's fast path cannot afford HMAC per hit.

Verifying a token (HMAC, base64, JSON) costs ~80 µs, more than a whole cached answer. A token string
that verified under this process's key ring stays valid until its `exp`, so the result is kept until
then. Only the signature is remembered: revocation (bff/sessions.py) is still checked on every request.
"""

from __future__ import annotations

import time

import jwt

from bff.auth import InvalidToken, Principal, SigningKeys, verify_token

MAX_TOKENS = 10_000


class VerifiedTokens:
    """`verify_token` remembered per token string until the token expires (bounded, oldest dropped)."""

    def __init__(self, keys: SigningKeys, max_tokens: int = MAX_TOKENS) -> None:
        self.keys = keys
        self.max_tokens = max_tokens
        self._seen: dict[str, tuple[Principal, float]] = {}

    def principal(self, token: str) -> Principal | None:
        """The principal the token names, or None when it is malformed, forged or expired."""
        seen = self._seen.get(token)
        if seen is not None:
            principal, expires_at = seen
            if time.time() < expires_at:  # PyJWT's rule: expired once `exp` is reached
                return principal
            del self._seen[token]
            return None
        try:
            principal = verify_token(token, self.keys)
        except InvalidToken:
            return None  # junk tokens are not kept: they cannot fill the memory
        claims = jwt.decode(token, options={"verify_signature": False})
        if len(self._seen) >= self.max_tokens:
            del self._seen[next(iter(self._seen))]
        self._seen[token] = (principal, float(claims["exp"]))
        return principal
