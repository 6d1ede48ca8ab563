"""The response cache (BFF_RESPONSE_CACHE=1): hits, invalidation by catalog writes, who shares an entry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bff.documents import operations
from bff.ids import encode_id
from bff.models.catalog import Sku
from bff.models.member import Member
from bff.services.catalog import refresh_product_aggregates
from bff.sessions import forget_session, revoke_sessions
from bff.settings import Settings
from tests.support.factories import make_product
from tests.support.sql_counter import count_sql
from tests.support.variants import Variant, variant


@pytest.fixture(scope="module")
async def cached(app: Starlette) -> AsyncIterator[Variant]:
    async with variant(app.state.services.settings, response_cache=True, response_cache_ttl=60) as running:
        yield running


async def _run(
    cached: Variant, name: str, variables: dict[str, Any], token: str | None = None
) -> httpx.Response:
    response = await cached.api.post(operations()[name], variables, token=token, operation_name=name)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response


async def test_a_hit_returns_the_same_bytes(cached: Variant) -> None:
    product, _ = await make_product([(12_900, 10)])
    variables = {"id": encode_id("Product", product.id)}
    miss = await _run(cached, "ProductDetail", variables)
    hit = await _run(cached, "ProductDetail", variables)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    assert hit.headers["content-type"] == miss.headers["content-type"]
    # Other variables are another entry.
    other, _ = await make_product([(5_000, 1)])
    assert (await _run(cached, "ProductDetail", {"id": encode_id("Product", other.id)})).headers[
        "x-cache"
    ] == "MISS"


async def test_a_price_and_stock_change_is_a_miss_with_fresh_data(cached: Variant) -> None:
    product, (sku,) = await make_product([(12_900, 10)])
    variables = {"id": encode_id("Product", product.id)}
    await _run(cached, "ProductDetail", variables)
    assert (await _run(cached, "ProductDetail", variables)).headers["x-cache"] == "HIT"
    # What the ERP price/inventory events do once applied: write the SKU, refresh, invalidate.
    await Sku.filter(id=sku.id).update(price_fen=9_900, stock=0)
    await refresh_product_aggregates(cached.services.cache, [product.id])
    fresh = await _run(cached, "ProductDetail", variables)
    assert fresh.headers["x-cache"] == "MISS"
    data = fresh.json()["data"]["product"]
    assert data["price"]["amount"] == 9_900 and data["inStock"] is False
    assert data["skus"][0]["stock"] == 0
    assert (await _run(cached, "ProductDetail", variables)).headers["x-cache"] == "HIT"


async def _level_of(token_name: str) -> int | None:
    member = await Member.get(openid=f"o_{token_name}")
    return member.level_id


async def test_members_of_different_levels_never_share_an_entry(cached: Variant) -> None:
    product, _ = await make_product([(20_000, 10)])
    variables = {"id": encode_id("Product", product.id)}
    names = ["alice", "bob", "carol", "dave"]
    tokens = {name: await cached.api.login(name) for name in names}
    levels = {name: await _level_of(name) for name in names}
    assert len(set(levels.values())) > 1
    anonymous = await _run(cached, "ProductDetail", variables)
    assert anonymous.json()["data"]["product"]["memberPrice"] is None
    seen: dict[int | None, bytes] = {}
    for name in names:
        response = await _run(cached, "ProductDetail", variables, tokens[name])
        level = levels[name]
        # The first member of a level misses; a later one of the same level shares that entry.
        assert response.headers["x-cache"] == ("HIT" if level in seen else "MISS")
        if level in seen:
            assert response.content == seen[level]
        seen[level] = response.content
        assert response.json()["data"]["product"]["memberPrice"] is not None
        assert response.headers["cache-control"] == "private, no-store"
    assert len(set(seen.values())) == len(seen)  # each level its own member prices


async def test_same_level_members_share_the_catalog_but_never_a_cart(cached: Variant) -> None:
    first = await cached.api.login(f"rc{uuid.uuid4().hex[:10]}")
    second = await cached.api.login(f"rc{uuid.uuid4().hex[:10]}")
    product, (sku,) = await make_product([(3_300, 10)])
    variables = {"id": encode_id("Product", product.id)}
    assert (await _run(cached, "ProductDetail", variables, first)).headers["x-cache"] == "MISS"
    assert (await _run(cached, "ProductDetail", variables, second)).headers["x-cache"] == "HIT"

    await cached.api.op("AddToCart", {"skuId": encode_id("Sku", sku.id), "quantity": 1}, token=first)
    carts = [await _run(cached, "Cart", {}, token) for token in (first, first, second)]
    assert [c.headers["x-cache"] for c in carts] == ["BYPASS"] * 3
    assert carts[0].json()["data"]["cart"]["items"] and not carts[2].json()["data"]["cart"]["items"]
    # Home reads the viewer (points, cart count): never cached for members, shared by anonymous visitors.
    home = [await _run(cached, "Home", {}, token) for token in (first, second)]
    assert [h.headers["x-cache"] for h in home] == ["BYPASS", "BYPASS"]
    assert home[0].json()["data"]["viewer"]["cartItemCount"] == 1
    assert home[1].json()["data"]["viewer"]["cartItemCount"] == 0
    anonymous = [await _run(cached, "Home", {}) for _ in range(2)]
    assert [a.headers["x-cache"] for a in anonymous][1] == "HIT"


async def test_mutations_and_errors_are_never_cached(cached: Variant) -> None:
    missing = {"id": encode_id("Product", 987_654_321)}
    bad = {"query": "{ categories { nope } }"}
    for _ in range(2):
        response = await cached.client.post("/graphql", json=bad)
        assert response.headers["x-cache"] == "MISS" and "errors" in response.json()
        product = await _run(cached, "ProductDetail", missing)
        assert product.json()["data"]["product"] is None
    login = await cached.client.post(
        "/graphql",
        json={
            "query": operations()["Login"],
            "operationName": "Login",
            "variables": {"code": "sim_rc_login"},
        },
    )
    assert login.headers["x-cache"] == "BYPASS"


async def test_operator_edits_invalidate_cached_responses(cached: Variant) -> None:
    from bff.auth import Principal, Role, issue_token

    settings: Settings = cached.services.settings
    operator = issue_token(Principal(role=Role.OPERATOR, name="rc-test"), settings.jwt_secret, 600).token
    await _run(cached, "Home", {})
    assert (await _run(cached, "Home", {})).headers["x-cache"] == "HIT"
    # Any successful operator mutation (here: a flash-sale edit) orphans every cached response.
    response = await cached.client.post(
        "/graphql",
        headers={"Authorization": f"Bearer {operator}"},
        json={
            "query": "mutation($input: FlashSaleInput!) "
            "{ saveFlashSale(input: $input) { userErrors { code } } }",
            "variables": {
                "input": {
                    "title": "rc-test",
                    "startsAt": "2031-03-01T00:00:00+00:00",
                    "endsAt": "2031-03-02T00:00:00+00:00",
                }
            },
        },
    )
    assert response.json()["data"]["saveFlashSale"]["userErrors"] == [], response.text
    assert (await _run(cached, "Home", {})).headers["x-cache"] == "MISS"


async def test_a_hit_runs_no_sql_no_authentication_and_no_graphql(
    cached: Variant, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bff.graphql_http as endpoint_module

    member = await cached.api.login(f"rc{uuid.uuid4().hex[:10]}")
    product, _ = await make_product([(7_700, 3)])
    variables = {"id": encode_id("Product", product.id)}
    for token in (None, member):
        assert (await _run(cached, "ProductDetail", variables, token)).headers["x-cache"] == "MISS"
    # Whatever builds an execution context or authenticates against the session store is counted.
    calls: list[str] = []
    real_context, real_authenticate = endpoint_module.Context, endpoint_module.authenticate

    def counting_context(*args: Any, **kwargs: Any) -> Any:
        calls.append("context")
        return real_context(*args, **kwargs)

    async def counting_authenticate(*args: Any, **kwargs: Any) -> Any:
        calls.append("authenticate")
        return await real_authenticate(*args, **kwargs)

    monkeypatch.setattr(endpoint_module, "Context", counting_context)
    monkeypatch.setattr(endpoint_module, "authenticate", counting_authenticate)
    with count_sql() as sql:
        hits = [await _run(cached, "ProductDetail", variables, token) for token in (None, member, member)]
    assert [h.headers["x-cache"] for h in hits] == ["HIT"] * 3
    assert sql.statements == [] and calls == []
    assert hits[0].json()["data"]["product"]["memberPrice"] is None
    assert hits[1].json()["data"]["product"]["memberPrice"] is not None
    assert "cache-control" not in hits[0].headers
    assert hits[1].headers["cache-control"] == "private, no-store"
    # A miss still executes (so the request guard's cost and rate limits still apply to it).
    other, _ = await make_product([(7_800, 3)])
    miss = await _run(cached, "ProductDetail", {"id": encode_id("Product", other.id)})
    assert miss.headers["x-cache"] == "MISS" and calls[-1] == "context"


async def test_a_revoked_token_never_gets_a_hit(cached: Variant) -> None:
    name = f"rc{uuid.uuid4().hex[:10]}"
    token = await cached.api.login(name)
    member = await Member.get(openid=f"o_{name}")
    product, _ = await make_product([(8_800, 3)])
    variables = {"id": encode_id("Product", product.id)}
    assert (await _run(cached, "ProductDetail", variables, token)).headers["x-cache"] == "MISS"
    assert (await _run(cached, "ProductDetail", variables, token)).headers["x-cache"] == "HIT"

    assert await revoke_sessions(member.id, cached.services.cache) is not None
    refused = await cached.api.post(
        operations()["ProductDetail"], variables, token=token, operation_name="ProductDetail"
    )
    assert refused.status_code == 401 and "x-cache" not in refused.headers
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Also when the cached version is gone (changed some other way): the database decides, not the entry.
    fresh = await cached.api.login(name)
    assert (await _run(cached, "ProductDetail", variables, fresh)).headers["x-cache"] == "HIT"
    await Member.filter(id=member.id).update(token_version=member.token_version + 5)
    await forget_session(member.id, cached.services.cache)
    refused = await cached.api.post(
        operations()["ProductDetail"], variables, token=fresh, operation_name="ProductDetail"
    )
    assert refused.status_code == 401


async def test_the_cost_guard_still_refuses_a_miss(app: Starlette) -> None:
    product, _ = await make_product([(6_600, 3)])
    variables = {"id": encode_id("Product", product.id)}
    settings = app.state.services.settings
    async with variant(settings, response_cache=True, max_query_cost=5) as tight:
        for _ in range(2):  # refused answers are never stored, so the second is refused again
            response = await tight.api.post(
                operations()["ProductDetail"], variables, operation_name="ProductDetail"
            )
            assert response.headers["x-cache"] == "MISS"
            assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
