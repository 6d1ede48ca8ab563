"""Which document a request runs: Apollo's automatic persisted queries, or only trusted documents.

Modes (BFF_PERSISTED_QUERIES): `off` takes only full text; `apq` (the default) also takes
`extensions.persistedQuery {version: 1, sha256Hash}` — a hash it has seen is run, an unknown one
answers PersistedQueryNotFound so the client resends it with the text, which is then stored in the
shared cache for every process; `trusted` runs only the documents the mini-program ships (by hash or
by a text that hashes to one), which were validated against the schema at startup.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bff.cache import Cache

STORE_TTL = 7 * 24 * 3600  # a stored text outlives any client session; the client resends it if lost
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Like Apollo Server: a miss must not be cached anywhere, since the client is about to fill it.
_NO_CACHE = {"Cache-Control": "private, no-cache, must-revalidate"}


class PersistedQueryError(Exception):
    """A request whose document cannot be run: answered with status and one error carrying code."""

    def __init__(self, status: int, message: str, code: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def sha256_hex(text: str) -> str:
    """The lowercase hex SHA-256 of text's UTF-8 bytes (the hash APQ clients send)."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Document:
    """The text to run, its hash, whether the client sent only the hash, and whether to store it."""

    text: str
    sha256: str
    by_hash: bool = False
    register: bool = False


def _not_trusted() -> PersistedQueryError:
    return PersistedQueryError(400, "only trusted documents are accepted", "PERSISTED_QUERY_NOT_IN_LIST")


class PersistedQueries:
    """Resolves a request's `query` and `extensions` to the Document to run, per the mode."""

    def __init__(self, mode: str, cache: Cache, shipped: Iterable[str]) -> None:
        if mode not in ("off", "apq", "trusted"):
            raise ValueError(f"unknown persisted-query mode {mode!r}")
        self.mode = mode
        self.cache = cache
        # The shipped documents are always known by hash, even when the shared store was flushed.
        self.shipped = {sha256_hex(text): text for text in shipped}

    async def resolve(self, query: str | None, extensions: Mapping[str, Any] | None) -> Document:
        """The document to run; raises PersistedQueryError when there is none the mode allows."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if query is None:
                raise PersistedQueryError(400, "`query` must be a non-empty string", "BAD_REQUEST")
            digest = sha256_hex(query)
            if self.mode == "trusted" and digest not in self.shipped:
                raise _not_trusted()
            return Document(query, digest)
        if self.mode == "off":
            raise PersistedQueryError(
                200, "PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED", _NO_CACHE
            )
        digest = _requested_hash(persisted)
        if query is None:
            return Document(await self._known(digest), digest, by_hash=True)
        if sha256_hex(query) != digest:
            raise PersistedQueryError(400, "provided sha does not match query", "BAD_REQUEST")
        if self.mode == "trusted" and digest not in self.shipped:
            raise _not_trusted()
        return Document(query, digest, by_hash=True, register=digest not in self.shipped)

    async def remember(self, document: Document) -> None:
        """Store a text sent with its hash, once it parsed and validated, for every process."""
        if document.register and self.mode == "apq":
            await self.cache.set(_key(document.sha256), document.text.encode(), STORE_TTL)

    async def _known(self, digest: str) -> str:
        text = self.shipped.get(digest)
        if text is not None:
            return text
        if self.mode == "trusted":
            raise _not_trusted()
        raw = await self.cache.get(_key(digest))
        if raw is None:
            raise PersistedQueryError(200, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND", _NO_CACHE)
        return raw.decode()


def _requested_hash(persisted: Any) -> str:
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError(400, "Unsupported persisted query version", "BAD_REQUEST")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise PersistedQueryError(400, "`persistedQuery.sha256Hash` must be a hex SHA-256", "BAD_REQUEST")
    return digest.lower()


def _key(digest: str) -> str:
    return f"apq:{digest}"
