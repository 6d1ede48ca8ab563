"""POST/GET /graphql following the GraphQL-over-HTTP specification, and GraphiQL for browsers."""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from bff.auth import InvalidToken, Principal, Role, bearer_token
from bff.context import Context, Services
from bff.documents import operations
from bff.graphiql import graphiql_html
from bff.persisted_queries import Document, PersistedQueries, PersistedQueryError
from bff.response_cache import Lookup, ResponseCache, cacheable, invalidate_responses, shape_of
from bff.sessions import authenticate
from bff.verified_tokens import VerifiedTokens
from loaders.registry import Loaders, UnbatchedLoaders

log = logging.getLogger("bff.graphql")

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
MAX_BODY_BYTES = 1_000_000
# Request bodies the response cache's fast path remembers, already parsed and resolved: small ones only.
_KNOWN_BODY_BYTES = 16_384
_KNOWN_BODIES = 1_024


class RequestError(Exception):
    """The HTTP request is not a well-formed GraphQL request: answered with `status` and one error."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@lru_cache(maxsize=256)  # clients send a handful of distinct Accept headers, on every request
def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header, or None when we can produce nothing it accepts."""
    if not accept or not accept.strip():
        return JSON  # legacy clients that send no Accept expect JSON
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media == GRAPHQL_RESPONSE:
            chosen = GRAPHQL_RESPONSE
        elif media in (JSON, "application/*", "*/*"):
            chosen = JSON
        else:
            continue
        if quality <= 0:
            continue
        # Higher quality wins; on a tie the earlier entry wins, as the client listed its preference.
        candidate = (quality, -position, chosen)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best is not None else None


def _is_request_error(result: ExecutionResult) -> bool:
    # Parse, validation and variable-coercion failures never start execution: no data and no paths.
    if isinstance(result, PreExecutionError):
        return True
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors or [])


def _format_errors(errors: list[GraphQLError], debug: bool) -> list[dict[str, Any]]:
    formatted: list[dict[str, Any]] = []
    for error in errors:
        original = error.original_error
        if original is not None and not isinstance(original, GraphQLError) and not debug:
            # An unexpected exception: log it in full, show the client only where to find it.
            request_id = uuid.uuid4().hex[:16]
            log.error("unexpected error %s at %s", request_id, error.path, exc_info=original)
            formatted.append(
                {
                    "message": f"Internal server error (request id {request_id})",
                    "locations": [{"line": loc.line, "column": loc.column} for loc in error.locations or []],
                    "path": error.path,
                    "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                }
            )
        else:
            formatted.append(dict(error.formatted.items()))
    return formatted


def _json_response(
    payload: dict[str, Any], status: int, media_type: str, headers: dict[str, str]
) -> Response:
    return _bytes_response(orjson.dumps(payload), status, media_type, headers)


def _bytes_response(body: bytes, status: int, media_type: str, headers: dict[str, str]) -> Response:
    return Response(body, status_code=status, media_type=f"{media_type}; charset=utf-8", headers=headers)


def _stdlib_dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _error_payload(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


@dataclass(frozen=True, slots=True)
class _Probe:
    """What the response cache's fast path learned on a miss, so the full path does not redo it."""

    document: Document | None = None
    lookup: Lookup | None = None


_NOTHING = _Probe()


@dataclass(frozen=True, slots=True)
class _Known:
    """A request as the response cache sees it: its document, operation, variables and keys per scope."""

    document: Document
    operation_name: str | None
    variables: dict[str, Any] | None  # only for the cache key: execution gets freshly parsed ones
    keys: dict[str, str]


class GraphQLEndpoint:
    """The /graphql route: parses the request, builds the context, executes, answers per the spec."""

    def __init__(self, schema: strawberry.Schema) -> None:
        self.schema = schema
        self.graphiql_html = graphiql_html()
        self._services: Services | None = None
        self._documents: PersistedQueries | None = None
        self.responses: ResponseCache | None = None
        self.tokens: VerifiedTokens | None = None
        self._bodies: dict[bytes, _Known] = {}
        self.loaders_class: type[Loaders] = Loaders
        self.dumps: Callable[[Any], bytes] = orjson.dumps
        self.loads: Callable[[str | bytes], Any] = orjson.loads

    def attach(self, services: Services) -> None:
        """Hand over what the lifespan built; requests before that cannot be served."""
        self._services = services
        settings = services.settings
        self._documents = PersistedQueries(settings.persisted_queries, services.cache, operations().values())
        if settings.response_cache:
            self.responses = ResponseCache(services.cache, settings.response_cache_ttl)
            self.tokens = VerifiedTokens(settings.signing_keys)
        if settings.naive:
            # Benchmark G0: what the shipped optimisations save (loader batching, orjson).
            self.loaders_class = UnbatchedLoaders
            self.dumps, self.loads = _stdlib_dumps, json.loads

    @property
    def documents(self) -> PersistedQueries:
        assert self._documents is not None, "the app's lifespan has not started"
        return self._documents

    @property
    def services(self) -> Services:
        assert self._services is not None, "the app's lifespan has not started"
        return self._services

    async def handle(self, request: Request) -> Response:
        """Answer one /graphql request."""
        media_type = negotiate(request.headers.get("accept"))
        try:
            if request.method == "GET" and self._wants_graphiql(request):
                return HTMLResponse(self.graphiql_html)
            if media_type is None:
                raise RequestError(406, f"Accept {JSON} or {GRAPHQL_RESPONSE}")
            probe = _NOTHING
            if self.responses is not None:
                cached = await self._cached(request, media_type)
                if isinstance(cached, Response):
                    return cached
                probe = cached
            params = await self._params(request)
            principal = await self._principal(request)
            document = probe.document or await self.documents.resolve(params["query"], params["extensions"])
        except RequestError as exc:
            return _json_response(
                {"errors": [{"message": exc.message}]}, exc.status, media_type or JSON, exc.headers
            )
        except PersistedQueryError as exc:
            return _json_response(
                _error_payload(exc.message, exc.code), exc.status, media_type or JSON, exc.headers
            )
        except InvalidToken:
            return _json_response(
                {
                    "errors": [
                        {
                            "message": "token expired or invalid: sign in again",
                            "extensions": {"code": "UNAUTHENTICATED"},
                        }
                    ]
                },
                401,
                media_type or JSON,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return await self._execute(request, params, document, principal, media_type, probe.lookup)

    async def _cached(self, request: Request, media_type: str) -> Response | _Probe:
        """A HIT answered before authentication and before any GraphQL work, or what a miss learned.

        Anonymous callers need nothing more than the entry; a member needs a token that verifies and
        a current session version, read in the same round trip as the entry. Anything this path
        cannot decide (operators, bad or revoked tokens, unknown documents, uncached levels) goes the
        full way, which answers errors in the usual order. Hits skip the cost-based rate limit, as
        they always did; misses are executed, so the request guard still applies to them.
        """
        assert self.responses is not None and self.tokens is not None
        token = bearer_token(request.headers.get("authorization"))
        member: Principal | None = None
        if token is not None:
            member = self.tokens.principal(token)
            if member is None or member.role is not Role.MEMBER:
                return _NOTHING
        known = await self._known(request)
        if known is None:
            return _NOTHING
        document = known.document
        lookup = await self.responses.fast_lookup(
            document.text, document.sha256, known.operation_name, known.variables, member, known.keys
        )
        if lookup is None or lookup.body is None:
            return _Probe(document, lookup)
        headers = self._headers(request, document, member, True, "HIT")
        return _bytes_response(lookup.body, 200, media_type, headers)

    async def _known(self, request: Request) -> _Known | None:
        # Request errors raise here exactly as the full path would raise them (they come first there
        # too); a document that cannot be resolved is left to the full path, which authenticates first.
        body = b""
        if request.method == "POST":
            self._check_post(request)
            body = await request.body()
            known = self._bodies.get(body)
            if known is not None:
                return known  # the same bytes parse, validate and resolve the same way
        params = await self._params(request)
        try:
            document = await self.documents.resolve(params["query"], params["extensions"])
        except PersistedQueryError:
            return None
        known = _Known(document, params["operation_name"], params["variables"], {})
        # A hash-only document depends on the shared store, not on the bytes: never remembered.
        small = bool(body) and len(body) <= _KNOWN_BODY_BYTES
        if small and params["extensions"] is None and cacheable(document.text, known.operation_name):
            if len(self._bodies) >= _KNOWN_BODIES:
                del self._bodies[next(iter(self._bodies))]
            self._bodies[body] = known
        return known

    def _wants_graphiql(self, request: Request) -> bool:
        accept = request.headers.get("accept", "")
        return (
            self.services.settings.graphiql and "query" not in request.query_params and "text/html" in accept
        )

    async def _params(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            raw: dict[str, Any] = dict(request.query_params)
            for key in ("variables", "extensions"):
                if raw.get(key):
                    try:
                        raw[key] = self.loads(raw[key])
                    except ValueError as exc:  # both decoders' errors are ValueErrors
                        raise RequestError(400, f"`{key}` is not valid JSON") from exc
                else:
                    raw.pop(key, None)
        else:
            self._check_post(request)
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                raise RequestError(413, f"request body over {MAX_BODY_BYTES} bytes")
            try:
                raw = self.loads(body)
            except ValueError as exc:
                raise RequestError(400, "the request body is not valid JSON") from exc
            if not isinstance(raw, dict):
                raise RequestError(400, "the request body must be a JSON object")
        query = raw.get("query")
        # Without `query` the document may still come by hash (extensions.persistedQuery).
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise RequestError(400, "`query` must be a non-empty string")
        variables = raw.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise RequestError(400, "`variables` must be an object")
        operation_name = raw.get("operationName")
        if operation_name is not None and not isinstance(operation_name, str):
            raise RequestError(400, "`operationName` must be a string")
        extensions = raw.get("extensions")
        if extensions is not None and not isinstance(extensions, dict):
            raise RequestError(400, "`extensions` must be an object")
        return {
            "query": query,
            "variables": variables,
            "operation_name": operation_name or None,
            "extensions": extensions,
        }

    def _check_post(self, request: Request) -> None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON:
            raise RequestError(415, f"POST /graphql takes Content-Type: {JSON}")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise RequestError(413, f"request body over {MAX_BODY_BYTES} bytes")

    async def _principal(self, request: Request) -> Principal | None:
        # Signature, expiry and key id, then the member's session version (bff/sessions.py).
        return await authenticate(bearer_token(request.headers.get("authorization")), self.services)

    async def _execute(
        self,
        request: Request,
        params: dict[str, Any],
        document: Document,
        principal: Principal | None,
        media_type: str,
        lookup: Lookup | None = None,
    ) -> Response:
        settings = self.services.settings
        if self.responses is not None and lookup is None:
            lookup = await self.responses.lookup(
                document.text, document.sha256, params["operation_name"], params["variables"], principal
            )
            if lookup is not None and lookup.body is not None:
                return _bytes_response(
                    lookup.body, 200, media_type, self._headers(request, document, principal, True, "HIT")
                )
        context = Context(
            services=self.services,
            principal=principal,
            loaders=self.loaders_class(self.services.cache, settings.catalog_cache_ttl, self.services.crm),
            client_ip=request.client.host if request.client else "",
        )
        allowed = (
            {OperationType.QUERY}
            if request.method == "GET"
            else {
                OperationType.QUERY,
                OperationType.MUTATION,
            }
        )
        try:
            result = await self.schema.execute(
                document.text,
                variable_values=params["variables"],
                context_value=context,
                operation_name=params["operation_name"],
                allowed_operation_types=allowed,
            )
        except InvalidOperationTypeError:
            return _json_response(
                {"errors": [{"message": "mutations are only accepted over POST"}]},
                405,
                media_type,
                {"Allow": "POST"},
            )
        except CannotGetOperationTypeError as exc:
            return _json_response({"errors": [{"message": str(exc)}]}, 400, media_type, {})
        payload: dict[str, Any] = {}
        request_error = _is_request_error(result)
        if not request_error:
            payload["data"] = result.data
            await self.documents.remember(document)
        if result.errors:
            payload["errors"] = _format_errors(result.errors, settings.debug)
        if result.extensions:
            payload["extensions"] = result.extensions
        status = 400 if request_error and media_type == GRAPHQL_RESPONSE else 200
        headers: dict[str, str] = {}
        if context.retry_after is not None:
            # A rate limit refused the request before it ran: say so the way HTTP clients understand.
            status = 429
            headers["Retry-After"] = str(max(1, math.ceil(context.retry_after)))
        body = self.dumps(payload)
        complete = not request_error and not result.errors
        if complete and principal is not None and principal.role is Role.OPERATOR:
            await self._after_operator_write(document, params["operation_name"])
        if lookup is not None and complete and self.responses is not None:
            await self.responses.store(lookup, body)
        x_cache = None if self.responses is None else ("MISS" if lookup is not None else "BYPASS")
        headers.update(self._headers(request, document, principal, complete, x_cache))
        return _bytes_response(body, status, media_type, headers)

    async def _after_operator_write(self, document: Document, operation_name: str | None) -> None:
        # Operator edits (flash sales, campaigns, pages) change what shoppers see: drop cached responses.
        shape = shape_of(document.text, operation_name)
        if shape is not None and not shape.is_query:
            await invalidate_responses(self.services.cache)

    def _headers(
        self,
        request: Request,
        document: Document,
        principal: Principal | None,
        complete: bool,
        x_cache: str | None,
    ) -> dict[str, str]:
        headers: dict[str, str] = {} if x_cache is None else {"X-Cache": x_cache}
        if principal is not None:
            headers["Cache-Control"] = "private, no-store"
        elif request.method == "GET" and document.by_hash and complete:
            # A hashed GET is a short URL a CDN can cache; the same for every anonymous visitor.
            headers["Cache-Control"] = f"public, max-age={self.services.settings.cdn_max_age}"
            headers["Vary"] = "Accept, Authorization"
        return headers
