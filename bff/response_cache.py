"""Whole-response cache for queries (BFF_RESPONSE_CACHE=1, benchmark G2).

Who may share an entry: anonymous visitors share per (document, operation, variables); signed-in
members share per member level, and only for documents whose root fields are all in
LEVEL_PRICED_ROOTS — catalog reads whose only viewer dependence is the level's member price. Any
other member document (viewer, cart, orders, coupons, points…) and every operator request is never
cached. Only answers without errors are stored.

Freshness: each entry carries the catalog generation it was computed under; the catalog
invalidations (ERP webhooks, order stock changes, operator edits) bump it, so the next read misses.
What changes without an invalidation (a new group-buy team, a review) is stale for at most the TTL.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
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
from bff.cache import Cache, bump_generation
from bff.models.member import Member

log = logging.getLogger("bff.response_cache")

GENERATION = "catalog"
_GENERATION_KEY = f"gen:{GENERATION}"  # bff.cache.generation's key, read here in the same round trip

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


class ResponseCache:
    """Looks responses up before execution and stores them after, in the shared Cache."""

    def __init__(self, cache: Cache, ttl: float) -> None:
        self.cache = cache
        self.ttl = ttl

    async def lookup(
        self,
        text: str,
        sha256: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        principal: Principal | None,
    ) -> Lookup | None:
        """None when this request must not be cached; else its Lookup (body set on a hit)."""
        shape = shape_of(text, operation_name)
        if shape is None or not shape.is_query or shape.root_fields is None:
            return None
        if principal is None:
            scope = "anon"
        elif principal.role is Role.MEMBER and principal.member_id is not None:
            if not shape.root_fields <= LEVEL_PRICED_ROOTS:
                return None
            level = await self._level_of(principal.member_id)
            if level is None:
                return None
            scope = f"level:{level}"
        else:
            return None
        canonical = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
        material = b"\0".join((sha256.encode(), (operation_name or "").encode(), canonical, scope.encode()))
        key = "resp:" + hashlib.sha256(material).hexdigest()
        raw_generation, raw_entry = await self.cache.get_many([_GENERATION_KEY, key])
        generation = int(raw_generation) if raw_generation is not None else 0
        return Lookup(key, generation, _body_if_current(raw_entry, generation))

    async def store(self, lookup: Lookup, body: bytes) -> None:
        """Keep body under the lookup's key, tagged with the generation read before executing."""
        await self.cache.set(lookup.key, b"%d:" % lookup.generation + body, self.ttl)

    async def _level_of(self, member_id: int) -> str | None:
        # The member's level, cached for one TTL: a level change shows in member prices within it.
        key = f"resp:level:{member_id}"
        raw = await self.cache.get(key)
        if raw is not None:
            return raw.decode()
        rows = await Member.filter(id=member_id).values_list("level_id", flat=True)
        if not rows:
            return None
        level = str(rows[0]) if rows[0] is not None else "none"
        await self.cache.set(key, level.encode(), self.ttl)
        return level


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
