"""Model fields whose values are encrypted in the database and plain in Python (see bff/crypto.py).

Ciphertext is random per write, so these columns can be read and written but never filtered on.
"""

from __future__ import annotations

from typing import Any

import orjson
from tortoise import fields
from tortoise.models import Model

from bff.crypto import PREFIX, cipher


class EncryptedCharField(fields.CharField):  # type: ignore[type-arg]
    """A string stored as AES-GCM ciphertext; `max_length` is the column's, sized for ciphertext."""

    def to_db_value(self, value: Any, instance: type[Model] | Model) -> str | None:
        value = super().to_db_value(value, instance)
        return None if value is None else cipher().encrypt(str(value))

    def to_python_value(self, value: Any) -> str | None:
        value = super().to_python_value(value)
        return None if value is None else cipher().decrypt(str(value))


class EncryptedJSONField(fields.JSONField):  # type: ignore[type-arg]
    """A JSON value stored as one encrypted JSON string (the column stays JSON)."""

    def to_db_value(self, value: Any, instance: type[Model] | Model) -> Any:
        if value is None:
            return super().to_db_value(value, instance)
        if isinstance(value, str | bytes):
            value = orjson.loads(value)
        sealed = cipher().encrypt(orjson.dumps(value).decode())
        # A str handed to JSONField is taken as JSON text already, so the ciphertext goes in quoted.
        return super().to_db_value(orjson.dumps(sealed).decode(), instance)

    def to_python_value(self, value: Any) -> Any:
        data = super().to_python_value(value)
        if isinstance(data, str) and data.startswith(PREFIX):
            return orjson.loads(cipher().decrypt(data))
        return data
