"""GraphQL over HTTP: methods, content types, status codes, GraphiQL, health, error masking, limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bff.context import Services

QUERY = "query { categories { id } }"
RESPONSE_JSON = "application/graphql-response+json"


async def test_post_json_answers_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": QUERY})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["data"]["categories"]


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (RESPONSE_JSON, RESPONSE_JSON),
        (f"{RESPONSE_JSON}, application/json;q=0.9", RESPONSE_JSON),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("application/json;q=0.5, application/graphql-response+json", RESPONSE_JSON),
    ],
)
async def test_accept_header_picks_the_media_type(client: httpx.AsyncClient, accept: str, media: str) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers={"accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media}; charset=utf-8"


async def test_unacceptable_accept_is_406(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers={"accept": "text/xml"})
    assert response.status_code == 406


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'{"variables": {}}', "application/json", 400),
        (b'{"query": 1}', "application/json", 400),
        (b'{"query": "{ categories { id } }", "variables": []}', "application/json", 400),
        (b'{"query": "{ categories { id } }", "operationName": 3}', "application/json", 400),
        (b"query=%7Bcategories%7Bid%7D%7D", "application/x-www-form-urlencoded", 415),
        (b'{"query": "{ categories { id } }"}', "text/plain", 415),
    ],
)
async def test_malformed_requests_are_4xx(
    client: httpx.AsyncClient, body: bytes, content_type: str, status: int
) -> None:
    response = await client.post("/graphql", content=body, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.json()["errors"][0]["message"]


async def test_validation_errors_are_200_as_json_and_400_as_graphql_response(
    client: httpx.AsyncClient,
) -> None:
    bad = {"query": "{ categories { nope } }"}
    as_json = await client.post("/graphql", json=bad)
    assert as_json.status_code == 200 and "data" not in as_json.json()
    as_graphql = await client.post("/graphql", json=bad, headers={"accept": RESPONSE_JSON})
    assert as_graphql.status_code == 400 and "data" not in as_graphql.json()
    parse = await client.post(
        "/graphql", json={"query": "{ categories { "}, headers={"accept": RESPONSE_JSON}
    )
    assert parse.status_code == 400


async def test_get_runs_queries_but_never_mutations(client: httpx.AsyncClient) -> None:
    ok = await client.get("/graphql", params={"query": QUERY})
    assert ok.status_code == 200 and ok.json()["data"]["categories"]
    mutation = await client.get("/graphql", params={"query": 'mutation { login(code: "sim_x") { token } }'})
    assert mutation.status_code == 405
    assert mutation.headers["allow"] == "POST"


async def test_get_with_variables(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql",
        params={"query": "query($n: Int) { hotKeywords(first: $n) }", "variables": '{"n": 2}'},
    )
    assert response.status_code == 200 and len(response.json()["data"]["hotKeywords"]) <= 2
    broken = await client.get("/graphql", params={"query": QUERY, "variables": "{"})
    assert broken.status_code == 400


async def test_browsers_get_graphiql(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "cache": "ok"}


async def test_query_depth_is_limited(client: httpx.AsyncClient) -> None:
    deep = "{ categories { " + "children { " * 15 + "id" + " }" * 15 + " } }"
    response = await client.post("/graphql", json={"query": deep})
    assert "depth" in response.json()["errors"][0]["message"]


async def test_unexpected_errors_are_masked_with_a_request_id(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any) -> None:
        raise RuntimeError("secret database detail")

    monkeypatch.setattr("loaders.marketing.load_active_flash_sale", broken)
    response = await client.post("/graphql", json={"query": "{ activeFlashSale { id } }"})
    error = response.json()["errors"][0]
    assert "secret" not in response.text
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] in error["message"]


async def test_debug_mode_shows_the_real_error(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    async def broken(*_: Any) -> None:
        raise RuntimeError("visible in debug")

    monkeypatch.setattr("loaders.marketing.load_active_flash_sale", broken)
    monkeypatch.setattr(services, "settings", replace(services.settings, debug=True))
    response = await client.post("/graphql", json={"query": "{ activeFlashSale { id } }"})
    assert "visible in debug" in response.json()["errors"][0]["message"]
