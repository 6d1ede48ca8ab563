"""Fuzzing /graphql: generated documents and variables, broken JSON, odd types and sizes — never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import hypothesis_graphql as hg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from schema.build import build_schema

SCHEMA_SDL = build_schema().as_str()
# Scalars beyond GraphQL's own: sensible values and junk alike (the server must refuse junk politely).
SCALARS = {
    "DateTime": (st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=20)).map(nodes.String),
    "Date": (st.dates().map(str) | st.text(max_size=12)).map(nodes.String),
    "JSON": st.text(max_size=20).map(nodes.String),
}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def assert_answered(response: httpx.Response) -> None:
    """A GraphQL answer or a request error with a JSON body: never a server error."""
    assert response.status_code < 500, response.text
    body = response.json()
    assert isinstance(body, dict) and ("data" in body or "errors" in body), body


@given(document=hg.queries(SCHEMA_SDL, custom_scalars=SCALARS))
@FUZZ
async def test_generated_queries_are_answered(client: httpx.AsyncClient, alice: str, document: str) -> None:
    response = await client.post(
        "/graphql", json={"query": document}, headers={"Authorization": f"Bearer {alice}"}
    )
    assert_answered(response)


@given(document=hg.mutations(SCHEMA_SDL, custom_scalars=SCALARS))
@FUZZ
async def test_generated_mutations_are_answered(
    client: httpx.AsyncClient, shopper: str, document: str
) -> None:
    response = await client.post(
        "/graphql", json={"query": document}, headers={"Authorization": f"Bearer {shopper}"}
    )
    assert_answered(response)


@given(
    variables=st.dictionaries(st.sampled_from(["first", "after", "filter", "sort", "id", "x"]), JSON_VALUES)
)
@FUZZ
async def test_arbitrary_variables_are_answered(client: httpx.AsyncClient, variables: dict[str, Any]) -> None:
    document = (
        "query ($first: Int, $after: String, $filter: ProductFilter, $sort: ProductSort, $id: ID!) "
        "{ products(first: $first, after: $after, filter: $filter, sort: $sort) { totalCount } "
        "product(id: $id) { id } }"
    )
    response = await client.post("/graphql", json={"query": document, "variables": variables})
    assert_answered(response)


@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@FUZZ
async def test_malformed_bodies_are_request_errors(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code < 500
    assert "errors" in response.json() or "data" in response.json()


@given(
    content_type=st.sampled_from(
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
    )
)
@FUZZ
async def test_non_json_posts_are_refused(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post(
        "/graphql", content=b'{"query":"{ __typename }"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 415


async def test_a_huge_body_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_deeply_nested_documents_are_refused_not_crashed(client: httpx.AsyncClient) -> None:
    deep = "{ a " * 5000 + "}" * 5000
    response = await client.post("/graphql", json={"query": deep})
    assert response.status_code in (200, 400)
    assert "errors" in response.json()
