"""The GraphQL documents the mini-program ships (a copy of the contract's screens), by operation name."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from graphql import OperationDefinitionNode, parse

SCREENS_DIR = Path(__file__).parent / "screens"
EXTRA_DIR = Path(__file__).parent / "screens_extra"  # campaign screens beyond the shared contract


@cache
def screen_documents() -> dict[str, str]:
    """Each screen file's text, by file stem (home, cart, …)."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(SCREENS_DIR.glob("*.graphql"))}


@cache
def operations() -> dict[str, str]:
    """The full text of the file that defines each operation, by operation name."""
    found: dict[str, str] = {}
    texts = [*screen_documents().values()]
    texts += [path.read_text(encoding="utf-8") for path in sorted(EXTRA_DIR.glob("*.graphql"))]
    for text in texts:
        for definition in parse(text).definitions:
            if isinstance(definition, OperationDefinitionNode) and definition.name is not None:
                found[definition.name.value] = text
    return found
