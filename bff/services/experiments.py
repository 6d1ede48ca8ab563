"""A/B tests: deterministic variant assignment."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def assign_variant(experiment_key: str, identity: str, variants: Sequence[tuple[str, int]]) -> str:
    """The variant an identity (visitor key) gets: a stable hash of key and identity, split by weight."""
    total = sum(weight for _, weight in variants)
    if total <= 0:
        raise ValueError("an experiment needs a variant with a positive weight")
    digest = hashlib.sha256(f"{experiment_key}:{identity}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for name, weight in variants:
        if point < weight:
            return name
        point -= weight
    raise AssertionError("unreachable: point < total")
