"""Automatic persisted queries (Apollo's protocol), hashed GETs a CDN can cache, trusted documents."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from bff.cache import Cache
from bff.context import Services
from bff.documents import operations
from bff.ids import encode_id
from bff.models.catalog import Product
from bff.persisted_queries import sha256_hex
from bff.settings import Settings
from tests.support.variants import Variant, variant


def _pq(digest: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


def _fresh_query() -> str:
    # A text no other test (or earlier run sharing Redis) has registered.
    return f"query Fresh{uuid.uuid4().hex[:10]} {{ categories {{ id name }} }}"


@pytest.fixture(scope="module")
async def product_id(app: Starlette) -> str:
    product = await Product.filter(on_shelf=True).order_by("id").first()
    assert product is not None
    return encode_id("Product", product.id)


async def test_unknown_hash_is_persisted_query_not_found(client: httpx.AsyncClient) -> None:
    query = _fresh_query()
    response = await client.post("/graphql", json={"extensions": _pq(sha256_hex(query))})
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"] == "PersistedQueryNotFound"
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert "no-cache" in response.headers["cache-control"]


async def test_a_registered_hash_runs_without_its_text(client: httpx.AsyncClient, cache: Cache) -> None:
    query = _fresh_query()
    digest = sha256_hex(query)
    registered = await client.post("/graphql", json={"query": query, "extensions": _pq(digest)})
    assert registered.status_code == 200 and registered.json()["data"]["categories"]
    # Stored in the shared cache, so every process (and Redis-sharing replica) knows it.
    assert await cache.get(f"apq:{digest}") == query.encode()
    by_hash = await client.post("/graphql", json={"extensions": _pq(digest)})
    assert by_hash.json() == registered.json()


async def test_a_hash_that_does_not_match_the_text_is_400(client: httpx.AsyncClient, cache: Cache) -> None:
    query = _fresh_query()
    wrong = sha256_hex(query + " ")
    response = await client.post("/graphql", json={"query": query, "extensions": _pq(wrong)})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "provided sha does not match query"
    assert await cache.get(f"apq:{wrong}") is None


@pytest.mark.parametrize("extensions", [_pq("0" * 64, version=2), {"persistedQuery": {"version": 1}}])
async def test_unsupported_versions_and_bad_hashes_are_400(
    client: httpx.AsyncClient, extensions: dict[str, Any]
) -> None:
    response = await client.post("/graphql", json={"extensions": extensions})
    assert response.status_code == 400 and response.json()["errors"][0]["message"]


async def test_invalid_documents_are_not_stored(client: httpx.AsyncClient, cache: Cache) -> None:
    query = f"query Bad{uuid.uuid4().hex[:8]} {{ categories {{ nope }} }}"
    digest = sha256_hex(query)
    response = await client.post("/graphql", json={"query": query, "extensions": _pq(digest)})
    assert "errors" in response.json() and "data" not in response.json()
    assert await cache.get(f"apq:{digest}") is None


async def test_shipped_documents_are_known_by_hash(client: httpx.AsyncClient, product_id: str) -> None:
    text = operations()["ProductDetail"]
    direct = await client.post(
        "/graphql", json={"query": text, "operationName": "ProductDetail", "variables": {"id": product_id}}
    )
    by_hash = await client.post(
        "/graphql",
        json={
            "extensions": _pq(sha256_hex(text)),
            "operationName": "ProductDetail",
            "variables": {"id": product_id},
        },
    )
    assert by_hash.status_code == 200 and by_hash.json() == direct.json()
    assert by_hash.json()["data"]["product"]["id"] == product_id


def _hashed_get(name: str, variables: dict[str, Any]) -> dict[str, str]:
    return {
        "operationName": name,
        "variables": orjson.dumps(variables).decode(),
        "extensions": orjson.dumps(_pq(sha256_hex(operations()[name]))).decode(),
    }


async def test_anonymous_hashed_gets_are_public_and_member_ones_private(
    client: httpx.AsyncClient, services: Services, alice: str, product_id: str
) -> None:
    params = _hashed_get("ProductDetail", {"id": product_id})
    anonymous = await client.get("/graphql", params=params)
    assert anonymous.status_code == 200 and anonymous.json()["data"]["product"]["id"] == product_id
    assert anonymous.headers["cache-control"] == f"public, max-age={services.settings.cdn_max_age}"
    assert "Authorization" in anonymous.headers["vary"]
    member = await client.get("/graphql", params=params, headers={"Authorization": f"Bearer {alice}"})
    assert member.status_code == 200 and member.json()["data"]["product"]["memberPrice"] is not None
    assert member.headers["cache-control"] == "private, no-store"
    # A GET that is not by hash (or that failed) gets no public caching.
    plain = await client.get("/graphql", params={"query": "{ categories { id } }"})
    assert "public" not in plain.headers.get("cache-control", "")


async def test_mutations_never_run_over_get_even_by_hash(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params=_hashed_get("Login", {"code": "sim_pq_get"}))
    assert response.status_code == 405


@pytest.fixture(scope="module")
def base_settings(app: Starlette) -> Settings:
    settings: Settings = app.state.services.settings
    return settings


@pytest.fixture(scope="module")
async def trusted(base_settings: Settings) -> AsyncIterator[Variant]:
    async with variant(base_settings, persisted_queries="trusted") as running:
        yield running


async def test_trusted_mode_runs_shipped_documents_by_text_or_hash(trusted: Variant, product_id: str) -> None:
    data = await trusted.api.op("ProductDetail", {"id": product_id})
    assert data["product"]["id"] == product_id
    by_hash = await trusted.client.post(
        "/graphql",
        json={
            "extensions": _pq(sha256_hex(operations()["ProductDetail"])),
            "operationName": "ProductDetail",
            "variables": {"id": product_id},
        },
    )
    assert by_hash.status_code == 200 and by_hash.json()["data"] == data


async def test_trusted_mode_refuses_anything_else(trusted: Variant) -> None:
    query = _fresh_query()
    for body in (
        {"query": query},
        {"query": query, "extensions": _pq(sha256_hex(query))},
        {"extensions": _pq(sha256_hex(query))},
    ):
        response = await trusted.client.post("/graphql", json=body)
        assert response.status_code == 400, body
        error = response.json()["errors"][0]
        assert error["message"] == "only trusted documents are accepted"
        assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
        assert "data" not in response.json()


async def test_trusted_documents_are_not_validated_per_request(
    trusted: Variant, product_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []

    def counting(*args: Any) -> list[Any]:
        calls.append(args)
        return []

    monkeypatch.setattr("bff.document_cache.validate_document", counting)
    await trusted.api.op("ProductDetail", {"id": product_id})
    assert calls == []  # validated once, at startup


async def test_new_documents_are_validated_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bff import document_cache

    calls: list[object] = []
    real = document_cache.validate_document

    def counting(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr("bff.document_cache.validate_document", counting)
    query = _fresh_query()
    for _ in range(3):
        assert (await client.post("/graphql", json={"query": query})).json()["data"]["categories"]
    assert len(calls) == 1


async def test_off_mode_answers_persisted_query_not_supported(base_settings: Settings) -> None:
    async with variant(base_settings, persisted_queries="off") as off:
        digest = sha256_hex(operations()["ProductDetail"])
        response = await off.client.post("/graphql", json={"extensions": _pq(digest)})
        assert response.status_code == 200
        assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_SUPPORTED"
        assert (await off.client.post("/graphql", json={"query": "{ categories { id } }"})).status_code == 200
