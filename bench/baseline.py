"""The benchmark's baselines, as Starlette apps served by uvicorn in their own process.

B0 answers each known request body with precomputed bytes (the HTTP ceiling of this stack).
B1 answers the screen documents with hand-written SQL over asyncpg and orjson (the floor of this stack).

    python -m bench.baseline b0 --port 8601 --responses /tmp/responses.json
    python -m bench.baseline b1 --port 8602   # DATABASE_URL, JWT_SECRET as the BFF reads them
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.b1_member import SCREENS as MEMBER_SCREENS
from bench.b1_screens import Db, home, product_list, search
from bff.auth import InvalidToken, bearer_token, verify_token
from bff.settings import load_settings

JSON = "application/json"
Screen = Callable[[Db, int | None, dict[str, Any]], Awaitable[dict[str, Any]]]
SCREENS: dict[str, Screen] = {"Home": home, "ProductList": product_list, "Search": search, **MEMBER_SCREENS}


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def create_b0(responses: Path) -> Starlette:
    """B0: the request body picks a precomputed response; nothing else happens."""
    table = {body.encode(): answer.encode() for body, answer in orjson.loads(responses.read_bytes())}

    async def graphql(request: Request) -> Response:
        answer = table.get(await request.body())
        if answer is None:
            return _json({"errors": [{"message": "B0 knows no such request"}]}, 400)
        return Response(answer, media_type=JSON)

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("jsonb", "json"):
        await conn.set_type_codec(
            kind, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


def create_b1() -> Starlette:
    """B1: one pooled connection per request, one handler per screen document."""
    settings = load_settings()
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            settings.database_url, min_size=2, max_size=10, init=_init_connection
        )
        state["pool"] = pool
        try:
            yield
        finally:
            await pool.close()

    async def graphql(request: Request) -> Response:
        body = orjson.loads(await request.body())
        screen = SCREENS.get(str(body.get("operationName")))
        if screen is None:
            return _json({"errors": [{"message": "B1 implements the benchmark's screens only"}]}, 400)
        member_id: int | None = None
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            try:
                member_id = verify_token(token, settings.jwt_secret).member_id
            except InvalidToken:
                return _json({"errors": [{"message": "token expired or invalid"}]}, 401)
        async with state["pool"].acquire() as conn:
            data = await screen(Db(conn), member_id, body.get("variables") or {})
        return _json({"data": data})

    async def statements(_: Request) -> Response:
        return _json({"statements": Db.statements})

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["POST"]),
            Route("/_bench/sql", statements, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    """Serve B0 or B1 on 127.0.0.1."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("variant", choices=["b0", "b1"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--responses", type=Path, help="B0: JSON list of [request body, response body]")
    args = parser.parse_args()
    if args.variant == "b0":
        if args.responses is None:
            parser.error("b0 needs --responses")
        app = create_b0(args.responses)
    else:
        app = create_b1()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
