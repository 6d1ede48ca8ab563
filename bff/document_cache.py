"""Parsed and validated documents by their text: each distinct text is parsed and validated once.

It replaces strawberry's ParserCache + ValidationCache: those key validation by the document's AST,
whose frozen-dataclass hash walks the whole tree on every request; the text's hash is cached by
Python. The shipped documents are pinned at startup (validated once against the schema, never
evicted), so a trusted document is never validated while serving.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse, specified_rules
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document


@dataclass(frozen=True, slots=True)
class Prepared:
    """A parsed document and, once known, its validation errors (empty: valid)."""

    document: DocumentNode
    errors: list[GraphQLError] | None = None


class InvalidShippedDocument(RuntimeError):
    """A document the mini-program ships does not validate against the schema."""


class DocumentCache:
    """An LRU of prepared documents by text, plus pinned documents that are never evicted."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._lru: OrderedDict[str, Prepared] = OrderedDict()
        self._pinned: dict[str, Prepared] = {}

    def get(self, text: str) -> Prepared | None:
        """The prepared document for text, or None when it was never seen (or was evicted)."""
        found = self._pinned.get(text)
        if found is not None:
            return found
        found = self._lru.get(text)
        if found is not None:
            self._lru.move_to_end(text)
        return found

    def put(self, text: str, prepared: Prepared) -> None:
        """Remember prepared under text, evicting the least recently used entry when full."""
        if text in self._pinned:
            return
        self._lru[text] = prepared
        self._lru.move_to_end(text)
        while len(self._lru) > self.maxsize:
            self._lru.popitem(last=False)

    def is_pinned(self, text: str) -> bool:
        """True when text is one of the documents validated at startup."""
        return text in self._pinned

    def pin(
        self, schema: GraphQLSchema, rules: Sequence[type[ASTValidationRule]], texts: Iterable[str]
    ) -> None:
        """Parse and validate texts with the standard rules plus rules; raise when one is invalid."""
        all_rules = (*specified_rules, *rules)
        for text in texts:
            document = parse(text)
            errors = validate_document(schema, document, all_rules)
            if errors:
                raise InvalidShippedDocument(f"a shipped document does not validate: {errors[0].message}")
            self._pinned[text] = Prepared(document, [])


class CachedDocuments(SchemaExtension):
    """Serves parse and validation from a DocumentCache; pass as a factory bound to one cache."""

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        text = context.query
        if text is not None and context.graphql_document is None:
            prepared = self.cache.get(text)
            if prepared is None:
                # A syntax error raises here, exactly as strawberry's own parse step would.
                prepared = Prepared(parse(text, **context.parse_options))
                self.cache.put(text, prepared)
            context.graphql_document = prepared.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        text = context.query
        document = context.graphql_document
        if text is not None and document is not None and context.pre_execution_errors is None:
            prepared = self.cache.get(text)
            if prepared is None or prepared.document is not document:
                prepared = Prepared(document)
            if prepared.errors is None:
                errors = validate_document(context.schema._schema, document, context.validation_rules)
                prepared = Prepared(document, errors)
                self.cache.put(text, prepared)
            context.pre_execution_errors = prepared.errors
        yield
