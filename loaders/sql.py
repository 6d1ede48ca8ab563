"""Hand-written SELECTs for hot loaders: Tortoise's query builder costs more CPU than the query.

Statements use `:name` parameters; a list value expands to one placeholder per item. Rows can be
turned into model instances without the builder (`as_models`), for callers that expect models.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any, TypeVar

import orjson
from tortoise import connections
from tortoise.models import Model

M = TypeVar("M", bound=Model)

_PARAM = re.compile(r":(\w+)")


async def fetch(sql: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of a SELECT written with :name parameters, on PostgreSQL or SQLite."""
    connection = connections.get("default")
    postgres = connection.capabilities.dialect == "postgres"
    values: list[Any] = []

    def place(match: re.Match[str]) -> str:
        value = params[match.group(1)]
        items = list(value) if isinstance(value, list | tuple) else [value]
        marks = []
        for item in items:
            values.append(item)
            marks.append(f"${len(values)}" if postgres else "?")
        # An empty list still needs a valid IN (): NULL matches nothing.
        return ", ".join(marks) or "NULL"

    rows: list[dict[str, Any]] = await connection.execute_query_dict(_PARAM.sub(place, sql), values)
    return rows


@cache
def columns(model: type[Model], alias: str = "") -> str:
    """The model's database columns as a select list (known once Tortoise is initialised)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{c}"' for c in model._meta.db_fields)


def as_models(model: type[M], rows: Iterable[dict[str, Any]]) -> list[M]:
    """Model instances from rows holding every one of the model's columns, as the ORM builds them."""
    fields = model._meta.db_fields
    return [model._init_from_db(**{c: row[c] for c in fields}) for row in rows]


def json_value(value: Any) -> Any:
    """A JSON column's value: drivers hand it back as text (asyncpg, SQLite) or already decoded."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value
