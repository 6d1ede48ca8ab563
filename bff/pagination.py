"""Cursor pagination: page sizes and opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from bff.errors import PublicError

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(first: int | None, default: int = DEFAULT_PAGE_SIZE) -> int:
    """Validate `first`: 0 to 100, defaulting to `default`; anything else is a clear error."""
    if first is None:
        return default
    if first < 0 or first > MAX_PAGE_SIZE:
        raise PublicError(f"`first` must be between 0 and {MAX_PAGE_SIZE}, got {first}")
    return first


def encode_cursor(values: list[Any]) -> str:
    """An opaque cursor holding the sort-key values of a row."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    """The sort-key values inside `cursor` (None for no cursor); a malformed one is a clear error."""
    if cursor is None:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, ValueError) as exc:
        raise PublicError("`after` is not a cursor this API returned") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise PublicError("`after` is not a cursor for this list and sort order")
    if not all(isinstance(v, int | str) and not isinstance(v, bool) for v in values):
        raise PublicError("`after` is not a cursor this API returned")
    return values
