"""Whole-response cache for queries (BFF_RESPONSE_CACHE=1, benchmark G2).

Who may share an entry: anonymous visitors share per (document, operation, variables); signed-in
members share per member level, and only for documents whose root fields are all in
LEVEL_PRICED_ROOTS — catalog reads whose only viewer dependence is the level's member price. Any
other member document (viewer, cart, orders, coupons, points…) and every operator request is never
cached. Only answers without errors are stored.

Freshness: each entry carries the catalog generation it was computed under; the catalog
invalidations (ERP webhooks, order stock changes, operator edits) bump it, so the next read misses.
What changes without an invalidation (a new group-buy team, a review) is stale for at most the TTL.

Cost of a hit (`fast_lookup`, called before authentication and before any GraphQL work): the
generation and the entry — and for a member their session version — are read in one MGET, and the
MGETs of requests that arrive together are merged into one (`BatchedReads`), each still sent after
its requests arrived, so an invalidation that completed before a request is always seen by it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
)
from redis.exceptions import RedisError

from bff.auth import Principal, Role
from bff.cache import Cache, MemoryCache, bump_generation
from bff.models.member import Member
from bff.sessions import session_key

log = logging.getLogger("bff.response_cache")

GENERATION = "catalog"
_GENERATION_KEY = f"gen:{GENERATION}"  # bff.cache.generation's key, read here in the same round trip
# How long this process trusts a member's level without asking the shared cache again.
LOCAL_LEVEL_TTL = 5.0
_MAX_LOCAL_LEVELS = 50_000
_MAX_BATCH_KEYS = 512

# Root fields whose answers depend on the viewer only through the member level (member prices).
# Adding one here asserts that nothing below it reads who the member is.
LEVEL_PRICED_ROOTS = frozenset(
    {
        "__typename",
        "product",
        "products",
        "category",
        "categories",
        "banners",
        "activeFlashSale",
        "hotKeywords",
        "searchSuggestions",
    }
)


@dataclass(frozen=True, slots=True)
class Shape:
    """What the cache needs to know about one operation of a document."""

    is_query: bool
    root_fields: frozenset[str] | None  # None: unknown (a fragment that is not defined)


def shape_of(text: str, operation_name: str | None) -> Shape | None:
    """The shape of the operation a request runs, or None when the text does not parse or lacks it."""
    shapes = _shapes(text)
    return shapes.get(operation_name) if shapes is not None else None


@lru_cache(maxsize=1024)
def _shapes(text: str) -> dict[str | None, Shape] | None:
    try:
        document = parse(text)
    except GraphQLError:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    shapes: dict[str | None, Shape] = {}
    for op in operations:
        shape = Shape(op.operation is OperationType.QUERY, _root_fields(op.selection_set, fragments, set()))
        shapes[op.name.value if op.name else None] = shape
        if len(operations) == 1:
            shapes[None] = shape  # a single operation runs without operationName
    return shapes


def _root_fields(
    selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set[str]
) -> frozenset[str] | None:
    names: set[str] = set()
    for node in selections.selections:
        if isinstance(node, FieldNode):
            names.add(node.name.value)
            continue
        if isinstance(node, InlineFragmentNode):
            inner = _root_fields(node.selection_set, fragments, seen)
        elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments:
            if node.name.value in seen:
                continue
            seen.add(node.name.value)
            inner = _root_fields(fragments[node.name.value].selection_set, fragments, seen)
        else:
            return None
        if inner is None:
            return None
        names |= inner
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cacheable request: its key, the generation read before executing, the body on a hit."""

    key: str
    generation: int
    body: bytes | None


class BatchedReads:
    """MGETs of concurrent requests merged into one; each caller's keys are read after it asked."""

    def __init__(self, cache: Cache, max_keys: int = _MAX_BATCH_KEYS) -> None:
        self.cache = cache
        self.max_keys = max_keys
        # An in-process cache answers without a round trip: nothing to merge.
        self.direct = isinstance(cache, MemoryCache)
        self._open: list[tuple[Sequence[str], asyncio.Future[list[bytes | None]]]] | None = None
        self._open_keys = 0
        self._flushes: set[asyncio.Task[None]] = set()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of keys, like Cache.get_many, read in the batch of whoever asks in this loop turn."""
        if self.direct:
            return await self.cache.get_many(keys)
        loop = asyncio.get_running_loop()
        if self._open is None or self._open_keys + len(keys) > self.max_keys:
            # The flush task starts on the next loop turn: every request handled in this turn joins it.
            self._open, self._open_keys = [], 0
            flush = loop.create_task(self._flush(self._open))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        future: asyncio.Future[list[bytes | None]] = loop.create_future()
        self._open.append((keys, future))
        self._open_keys += len(keys)
        return await future

    async def _flush(self, batch: list[tuple[Sequence[str], asyncio.Future[list[bytes | None]]]]) -> None:
        if self._open is batch:
            self._open = None  # closed before reading: a later caller's read must be sent after it asked
        unique = list(dict.fromkeys(key for keys, _ in batch for key in keys))
        try:
            values = dict(zip(unique, await self.cache.get_many(unique), strict=True))
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # whatever the backend raised, every waiter hears it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for keys, future in batch:
            if not future.done():  # its request may have been cancelled meanwhile
                future.set_result([values[key] for key in keys])


class ResponseCache:
    """Looks responses up before execution and stores them after, in the shared Cache."""

    def __init__(self, cache: Cache, ttl: float) -> None:
        self.cache = cache
        self.ttl = ttl
        self.reads = BatchedReads(cache)
        self._levels: dict[int, tuple[str, float]] = {}  # member id -> (level, monotonic expiry)

    async def lookup(
        self,
        text: str,
        sha256: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        principal: Principal | None,
    ) -> Lookup | None:
        """None when this request must not be cached; else its Lookup (body set on a hit)."""
        root_fields = _cacheable(text, operation_name)
        if root_fields is None:
            return None
        if principal is None:
            scope = "anon"
        elif principal.role is Role.MEMBER and principal.member_id is not None:
            if not root_fields <= LEVEL_PRICED_ROOTS:
                return None
            level = await self._level_of(principal.member_id)
            if level is None:
                return None
            scope = f"level:{level}"
        else:
            return None
        key = _key(sha256, operation_name, variables, scope)
        raw_generation, raw_entry = await self.reads.get_many([_GENERATION_KEY, key])
        generation = int(raw_generation) if raw_generation is not None else 0
        return Lookup(key, generation, _body_if_current(raw_entry, generation))

    async def fast_lookup(
        self,
        text: str,
        sha256: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        member: Principal | None,
        keys: dict[str, str] | None = None,
    ) -> Lookup | None:
        """The lookup of an anonymous request, or of a signed (not yet session-checked) member's.

        `keys` memoises the request's key per scope for callers that see the same request again.

        For a member it is None unless this process knows their level and the shared cache holds
        their session version equal to the token's (read in the same MGET); anything else — a
        revoked, unknown or uncached session — takes the full path, which authenticates.
        """
        root_fields = _cacheable(text, operation_name)
        if root_fields is None:
            return None
        keys = {} if keys is None else keys
        if member is None:
            key = keys.get("anon") or keys.setdefault("anon", _key(sha256, operation_name, variables, "anon"))
            raw_generation, raw_entry = await self.reads.get_many([_GENERATION_KEY, key])
        else:
            if member.member_id is None or not root_fields <= LEVEL_PRICED_ROOTS:
                return None
            level = self._local_level(member.member_id)
            if level is None:
                return None
            scope = f"level:{level}"
            key = keys.get(scope) or keys.setdefault(scope, _key(sha256, operation_name, variables, scope))
            raw_generation, raw_entry, raw_version = await self.reads.get_many(
                [_GENERATION_KEY, key, session_key(member.member_id)]
            )
            # bff/sessions.py caches the version as decimal bytes; only an exact match is current.
            if raw_version != b"%d" % member.token_version:
                return None
        generation = int(raw_generation) if raw_generation is not None else 0
        return Lookup(key, generation, _body_if_current(raw_entry, generation))

    async def store(self, lookup: Lookup, body: bytes) -> None:
        """Keep body under the lookup's key, tagged with the generation read before executing."""
        await self.cache.set(lookup.key, b"%d:" % lookup.generation + body, self.ttl)

    def _local_level(self, member_id: int) -> str | None:
        known = self._levels.get(member_id)
        if known is None or known[1] <= time.monotonic():
            return None
        return known[0]

    async def _level_of(self, member_id: int) -> str | None:
        # The member's level, cached for one TTL: a level change shows in member prices within it
        # (plus LOCAL_LEVEL_TTL, the copy this process keeps for the fast path).
        key = f"resp:level:{member_id}"
        raw = await self.cache.get(key)
        if raw is not None:
            level = raw.decode()
        else:
            rows = await Member.filter(id=member_id).values_list("level_id", flat=True)
            if not rows:
                return None
            level = str(rows[0]) if rows[0] is not None else "none"
            await self.cache.set(key, level.encode(), self.ttl)
        if len(self._levels) >= _MAX_LOCAL_LEVELS:
            self._levels.clear()  # a crude bound: the fast path refills what it still needs
        self._levels[member_id] = (level, time.monotonic() + min(LOCAL_LEVEL_TTL, self.ttl))
        return level


def cacheable(text: str, operation_name: str | None) -> bool:
    """Whether a request running this operation may ever be answered from the cache."""
    return _cacheable(text, operation_name) is not None


def _cacheable(text: str, operation_name: str | None) -> frozenset[str] | None:
    # The root fields of a query whose shape is fully known; None for anything never cached.
    shape = shape_of(text, operation_name)
    if shape is None or not shape.is_query:
        return None
    return shape.root_fields


def _key(sha256: str, operation_name: str | None, variables: Mapping[str, Any] | None, scope: str) -> str:
    canonical = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    material = b"\0".join((sha256.encode(), (operation_name or "").encode(), canonical, scope.encode()))
    return "resp:" + hashlib.sha256(material).hexdigest()


def _body_if_current(entry: bytes | None, generation: int) -> bytes | None:
    if entry is None:
        return None
    tag, _, body = entry.partition(b":")
    # An entry computed under an older generation predates an invalidation: a miss.
    return body if tag == b"%d" % generation else None


async def invalidate_responses(cache: Cache) -> None:
    """Orphan every cached response; a cache failure is logged (entries then expire by TTL)."""
    try:
        await bump_generation(cache, GENERATION)
    except (RedisError, OSError) as exc:
        log.warning("could not bump the response generation, cached responses expire by TTL: %s", exc)
