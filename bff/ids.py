"""Opaque GraphQL IDs: base64url of "Type:pk", so clients never build or parse them."""

from __future__ import annotations

import base64
import binascii


def encode_id(type_name: str, pk: int) -> str:
    """The opaque ID of row `pk` of `type_name`."""
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode_id(opaque: str, type_name: str) -> int | None:
    """The pk inside an opaque ID of `type_name`, or None when it is malformed or of another type."""
    if not opaque or len(opaque) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(opaque + "=" * (-len(opaque) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, pk = raw.partition(":")
    if prefix != type_name or not pk.isdigit() or len(pk) > 12:
        return None
    return int(pk)


def decode_ids(opaques: list[str], type_name: str) -> list[int] | None:
    """Decode every ID, or None when any of them is not a valid ID of `type_name`."""
    pks = [decode_id(o, type_name) for o in opaques]
    if any(pk is None for pk in pks):
        return None
    return [pk for pk in pks if pk is not None]
