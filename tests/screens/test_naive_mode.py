"""BFF_NAIVE=1 (benchmark G0): the same answers without the optimisations, at a visibly higher cost."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette

from bff.documents import operations
from tests.support.api import Api
from tests.support.sql_counter import count_sql
from tests.support.variants import Variant, variant


@pytest.fixture(scope="module")
async def naive(app: Starlette) -> AsyncIterator[Variant]:
    async with variant(app.state.services.settings, naive=True) as running:
        yield running


async def _cold(api: Api, cache_owner: Any, name: str, variables: dict[str, Any]) -> tuple[int, bytes]:
    await cache_owner.cache.clear()  # both apps start cold: count what the database really does
    with count_sql() as counter:
        response = await api.post(operations()[name], variables, operation_name=name)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return counter.count, response.content


@pytest.mark.parametrize(
    # A list screen: naive mode loads per row what the shipped loaders batch per page.
    ("screen", "variables"),
    [("ProductList", {"first": 20}), ("ProductList", {"first": 60})],
)
async def test_naive_mode_costs_more_queries_for_the_same_data(
    naive: Variant, app: Starlette, api: Api, screen: str, variables: dict[str, Any]
) -> None:
    # Lists are where batching pays: one query per entity kind instead of one per row.
    shipped_count, shipped_body = await _cold(api, app.state.services, screen, variables)
    naive_count, naive_body = await _cold(naive.api, naive.services, screen, variables)
    assert naive_count > shipped_count
    assert json.loads(naive_body) == json.loads(shipped_body)
    # stdlib json writes "key": value with a space; orjson writes it compactly.
    assert b'": ' in naive_body and b'": ' not in shipped_body


async def test_naive_mode_validates_every_request(naive: Variant, monkeypatch: pytest.MonkeyPatch) -> None:
    from strawberry.schema import schema as strawberry_schema

    calls: list[object] = []
    real = strawberry_schema.validate_document

    def counting(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(strawberry_schema, "validate_document", counting)
    for _ in range(2):
        await naive.api.op("Home", {"recommendFirst": 4})
    assert len(calls) == 2
