"""Fast bulk writes for the seed: binary COPY on PostgreSQL, executemany on SQLite, explicit ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from bff.models.encrypted import EncryptedCharField, EncryptedJSONField

_ENCRYPTED = (EncryptedCharField, EncryptedJSONField)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class BulkWriter:
    """Inserts rows with their ids inside the seed's transaction and tracks what it wrote."""

    def __init__(self, connection: BaseDBAsyncClient) -> None:
        self.connection = connection
        self.postgres = connection.capabilities.dialect == "postgres"
        self.counts: dict[str, int] = {}

    async def max_id(self, model: type[Model]) -> int:
        """The largest id in the model's table (0 when empty), so seeded ids never collide."""
        table = model._meta.db_table
        _, rows = await self.connection.execute_query(f'SELECT COALESCE(MAX(id), 0) AS m FROM "{table}"')  # nosec B608
        return int(rows[0]["m"])

    async def insert(self, model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows given as tuples in `columns` order; JSON columns may hold Python values."""
        meta = model._meta
        # Raw inserts skip the model's Python-side defaults: add them for the columns not given.
        defaults = {column: _default(model, column) for column in sorted(set(meta.db_fields) - set(columns))}
        columns = [*columns, *defaults]
        field_of = [meta.fields_map.get(meta.fields_db_projection_reverse.get(c, c)) for c in columns]
        # Encrypted columns go through their field (ciphertext); other JSON columns are dumped here.
        sealed = {
            i: f for i, f in enumerate(field_of) if isinstance(f, EncryptedCharField | EncryptedJSONField)
        }
        json_positions = [
            i for i, f in enumerate(field_of) if isinstance(f, fields.JSONField) and i not in sealed
        ]
        extra = tuple(defaults.values())
        records = [(*row, *extra) for row in rows] if extra else [tuple(row) for row in rows]
        if json_positions:
            records = [_encode(row, json_positions) for row in records]
        if sealed:
            records = [_seal(row, sealed, model) for row in records]
        if not records:
            return
        async with self.connection.acquire_connection() as raw:
            if self.postgres:
                await raw.copy_records_to_table(meta.db_table, records=records, columns=list(columns))
            else:
                names = ", ".join(f'"{column}"' for column in columns)
                marks = ", ".join("?" for _ in columns)
                await raw.executemany(f'INSERT INTO "{meta.db_table}" ({names}) VALUES ({marks})', records)  # nosec B608
        self.counts[meta.db_table] = self.counts.get(meta.db_table, 0) + len(records)

    async def insert_dicts(self, model: type[Model], rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows given as dicts keyed by column name."""
        if rows:
            columns = list(rows[0])
            await self.insert(model, columns, [[row[column] for column in columns] for row in rows])

    async def reset_sequences(self) -> None:
        """Move PostgreSQL id sequences past the explicit ids, so later inserts get fresh ids."""
        if not self.postgres:
            return  # SQLite picks MAX(rowid) + 1 itself
        for table in self.counts:
            await self.connection.execute_query(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "  # nosec B608
                f'(SELECT MAX(id) FROM "{table}"))'
            )


def _default(model: type[Model], column: str) -> Any:
    field = model._meta.fields_map[model._meta.fields_db_projection_reverse[column]]
    if field.default is not None:
        return field.default() if callable(field.default) else field.default
    if field.null:
        return None
    raise ValueError(f"{model._meta.db_table}.{column}: the seed gives no value and the model has no default")


def _seal(
    row: tuple[Any, ...], sealed: Mapping[int, fields.Field[Any]], model: type[Model]
) -> tuple[Any, ...]:
    values = list(row)
    for position, field in sealed.items():
        values[position] = field.to_db_value(values[position], model)
    return tuple(values)


def _encode(row: tuple[Any, ...], positions: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for position in positions:
        if not isinstance(values[position], str):
            values[position] = _dumps(values[position])
    return tuple(values)
