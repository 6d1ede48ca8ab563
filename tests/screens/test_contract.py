"""The project's copy of the contract: identical to shared/, and every built screen validates."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import parse, validate

from bff.documents import SCREENS_DIR, screen_documents
from schema.build import build_schema

SHARED = Path(__file__).resolve().parents[3] / "shared" / "contract" / "screens"
BUILT_SCREENS = ("home", "category", "search", "product", "cart", "login", "member", "checkout", "orders")


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared/contract beside this checkout")
def test_the_copy_matches_the_shared_contract() -> None:
    shared = {p.name: p.read_text(encoding="utf-8") for p in SHARED.glob("*.graphql")}
    ours = {p.name: p.read_text(encoding="utf-8") for p in SCREENS_DIR.glob("*.graphql")}
    assert ours == shared


@pytest.mark.parametrize("screen", BUILT_SCREENS)
def test_every_operation_of_the_screen_validates_against_the_schema(screen: str) -> None:
    schema = build_schema()._schema
    errors = validate(schema, parse(screen_documents()[screen]))
    assert errors == []
