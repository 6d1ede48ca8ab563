"""GraphQL abuse: cost budget, token limit, rate limits per caller, production hides the schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from bff.documents import operations
from tests.support.sql_counter import count_sql
from tests.support.variants import Variant, variant

COSTLY = (
    "{ products(first: 100) { edges { node { id relatedProducts(first: 100) { id title "
    "relatedProducts(first: 100) { id } } } } } }"
)


@pytest.fixture(scope="module")
async def guarded(app: Starlette) -> AsyncIterator[Variant]:
    async with variant(app.state.services.settings, rate_limits=True) as running:
        yield running


@pytest.fixture(scope="module")
async def production(app: Starlette) -> AsyncIterator[Variant]:
    async with variant(app.state.services.settings, introspection=False, graphiql=False) as running:
        yield running


async def test_a_document_over_the_cost_budget_is_refused_before_it_runs(guarded: Variant) -> None:
    with count_sql() as sql:
        response = await guarded.client.post("/graphql", json={"query": COSTLY})
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["cost"] > error["extensions"]["budget"]
    assert "data" not in response.json() or response.json()["data"] is None
    assert sql.count == 0  # refused before a single query ran


async def test_graphql_response_media_type_answers_a_refused_document_with_400(guarded: Variant) -> None:
    response = await guarded.client.post(
        "/graphql", json={"query": COSTLY}, headers={"Accept": "application/graphql-response+json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


async def test_a_document_with_too_many_tokens_is_refused(guarded: Variant) -> None:
    huge = "{ " + " ".join(f"a{i}: __typename" for i in range(3000)) + " }"
    response = await guarded.client.post("/graphql", json={"query": huge})
    body = response.json()
    assert "errors" in body and "token" in body["errors"][0]["message"].lower()


async def test_sign_ins_from_one_address_are_limited_with_429_and_retry_after(guarded: Variant) -> None:
    login = operations()["Login"]
    statuses = []
    for _ in range(22):
        code = f"sim_rl{uuid.uuid4().hex[:10]}"
        response = await guarded.client.post(
            "/graphql", json={"query": login, "operationName": "Login", "variables": {"code": code}}
        )
        statuses.append(response.status_code)
    assert statuses[:20] == [200] * 20
    assert statuses[20] == 429
    refused = await guarded.client.post(
        "/graphql", json={"query": login, "operationName": "Login", "variables": {"code": "sim_late"}}
    )
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_production_hides_the_schema_from_strangers(production: Variant) -> None:
    response = await production.client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
    assert "errors" in response.json() and "introspection" in response.text.lower()
    typo = await production.client.post("/graphql", json={"query": "{ prodcts { totalCount } }"})
    message = typo.json()["errors"][0]["message"]
    assert "Did you mean" not in message and "products" not in message
    page = await production.client.get("/graphql", headers={"Accept": "text/html"})
    assert "graphiql" not in page.text.lower()
