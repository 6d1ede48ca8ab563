"""Query cost: fields weighted by the page sizes they are fetched for, computed before execution."""

from __future__ import annotations

import pytest
from graphql import GraphQLSchema, parse

from bff.documents import operations
from bff.query_cost import CostError, document_cost
from schema.build import build_schema


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema()._schema


def cost(schema: GraphQLSchema, text: str, variables: dict[str, object] | None = None) -> int:
    return document_cost(schema, parse(text), None, variables)


def test_a_connection_multiplies_its_nodes_by_the_page_size(schema: GraphQLSchema) -> None:
    one = cost(schema, "{ products(first: 1) { edges { node { id title } } } }")
    ten = cost(schema, "{ products(first: 10) { edges { node { id title } } } }")
    # products (1) + first × (edges (1) + node (1) + id + title) — edges is the page, not a second list.
    assert one == 1 + 1 * (1 + 1 * (1 + 2))
    assert ten == 1 + 10 * (1 + 1 * (1 + 2))


def test_variables_and_defaults_set_the_page_size(schema: GraphQLSchema) -> None:
    text = "query P($n: Int = 5) { products(first: $n) { edges { node { id } } } }"
    assert cost(schema, text) == 1 + 5 * 3
    assert cost(schema, text, {"n": 50}) == 1 + 50 * 3
    assert cost(schema, text, {"n": 5000}) == 1 + 100 * 3  # the resolvers' cap
    assert cost(schema, "{ products { edges { node { id } } } }") == 1 + 20 * 3  # their default


def test_nested_pages_multiply(schema: GraphQLSchema) -> None:
    nested = cost(
        schema,
        "{ products(first: 100) { edges { node { relatedProducts(first: 100) { id title } } } } }",
    )
    # products + 100 × (edges + node + (relatedProducts + 100 × (id + title)))
    assert nested == 1 + 100 * (1 + 1 + (1 + 100 * 2))


def test_fragments_count_like_inline_selections(schema: GraphQLSchema) -> None:
    inline = cost(schema, "{ products(first: 3) { edges { node { id title } } } }")
    spread = cost(
        schema, "{ products(first: 3) { edges { node { ...F } } } } fragment F on Product { id title }"
    )
    assert inline == spread


def test_every_shipped_screen_fits_the_default_budget(schema: GraphQLSchema) -> None:
    from bff.settings import Settings

    budget = Settings().max_query_cost
    for name, text in operations().items():
        assert document_cost(schema, parse(text), name, {}) <= budget, name


def test_an_unknown_operation_cannot_be_costed(schema: GraphQLSchema) -> None:
    with pytest.raises(CostError):
        document_cost(schema, parse("query A { __typename } query B { __typename }"), None, {})


def test_the_worst_case_counts_every_variable_page_as_the_largest(schema: GraphQLSchema) -> None:
    text = "query P($n: Int = 5) { products(first: $n) { edges { node { id } } } }"
    assert document_cost(schema, parse(text), None, {"n": 3}, worst_case=True) == 1 + 100 * 3
    literal = "{ products(first: 7) { edges { node { id } } } }"
    assert document_cost(schema, parse(literal), None, {}, worst_case=True) == 1 + 7 * 3


def test_every_shipped_screen_fits_the_budget_even_at_its_largest_pages(schema: GraphQLSchema) -> None:
    from bff.settings import Settings

    budget = Settings().max_query_cost
    for name, text in operations().items():
        assert document_cost(schema, parse(text), name, {}, worst_case=True) <= budget, name
