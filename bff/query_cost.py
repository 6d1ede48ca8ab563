"""What a GraphQL document costs before it runs: every field counts once per item it can be fetched for.

A list field multiplies the cost of what it selects by its page size (`first` / `last`, capped the
way resolvers cap it, its schema default when omitted); a list without paging arguments by a fixed
estimate. The lists directly inside a paged field (a connection's `edges` / `nodes`) are that page,
not another multiplication.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_variable_values,
    value_from_ast,
)
from graphql.type.definition import GraphQLOutputType

PAGE_ARGUMENTS = ("first", "last")
DEFAULT_PAGE = 20  # the resolvers' page when none is asked for (see schema.common.page_size)
MAX_PAGE = 100  # the resolvers' cap
UNPAGED_LIST_ESTIMATE = 10  # a list without paging arguments (a product's SKUs, a cart's lines)


class CostError(Exception):
    """The document cannot be costed (it names an unknown operation); validation reports the details."""


def _is_list(type_: GraphQLOutputType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


class _Coster:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        worst_case: bool = False,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.worst_case = worst_case

    def page_size(self, field: GraphQLField, node: FieldNode) -> int | None:
        """The page size a field asks for, or None when it takes no paging argument."""
        names = [name for name in PAGE_ARGUMENTS if name in field.args]
        if not names:
            return None
        for name in names:
            given = next((a for a in node.arguments or () if a.name.value == name), None)
            if self.worst_case and given is not None and isinstance(given.value, VariableNode):
                return MAX_PAGE  # whatever a request will send, it cannot ask for more
            argument = field.args[name]
            value: Any = (
                argument.default_value
                if given is None
                else value_from_ast(given.value, argument.type, dict(self.variables))
            )
            if isinstance(value, int) and value > 0:
                return min(value, MAX_PAGE)
        return DEFAULT_PAGE  # absent or null: the resolvers serve their default page

    def selection_cost(
        self, parent: GraphQLObjectType | GraphQLInterfaceType, selection_set: SelectionSetNode, paged: bool
    ) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field_cost(parent, selection, paged)
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    named = self.schema.get_type(selection.type_condition.name.value)
                    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                        target = named
                total += self.selection_cost(target, selection.selection_set, paged)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    continue
                named = self.schema.get_type(fragment.type_condition.name.value)
                target = named if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) else parent
                total += self.selection_cost(target, fragment.selection_set, paged)
        return total

    def field_cost(
        self, parent: GraphQLObjectType | GraphQLInterfaceType, node: FieldNode, paged: bool
    ) -> int:
        field = parent.fields.get(node.name.value)
        if field is None:  # __typename, introspection meta fields, or unknown (validation says)
            return 1
        page = self.page_size(field, node)
        if page is not None:
            multiplier, children_paged = page, True
        elif _is_list(field.type):
            multiplier, children_paged = (1 if paged else UNPAGED_LIST_ESTIMATE), False
        else:
            multiplier, children_paged = 1, False
        inner = 0
        named = get_named_type(field.type)
        if node.selection_set is not None and isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            inner = self.selection_cost(named, node.selection_set, children_paged)
        elif node.selection_set is not None:  # a union: cost every member's selections (worst case)
            inner = sum(
                self.selection_cost(member, node.selection_set, children_paged)
                for member in getattr(named, "types", ())
            )
        return 1 + multiplier * inner


def document_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
    *,
    worst_case: bool = False,
) -> int:
    """The cost of the operation the request runs: fields weighted by the pages they are fetched for.

    With `worst_case`, every page size a variable sets counts as the largest page: the most any
    request with this document can cost.
    """
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if operation_name is None:
        operation = operations[0] if len(operations) == 1 else None
    else:
        operation = next((o for o in operations if o.name and o.name.value == operation_name), None)
    if operation is None:
        raise CostError("the operation to run is ambiguous or unknown")
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    if root is None:
        raise CostError(f"the schema has no {operation.operation.value} type")
    coerced = get_variable_values(schema, operation.variable_definitions or (), dict(variables or {}))
    # Invalid variables fail execution with their own errors; cost them as given meanwhile.
    values = dict(variables or {}) if isinstance(coerced, list) else coerced.coerced
    coster = _Coster(schema, fragments, values, worst_case)
    return coster.selection_cost(root, operation.selection_set, False)
