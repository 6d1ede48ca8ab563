"""Session fixtures: one fresh migrated database (SQLite by default, PostgreSQL when DATABASE_URL is set)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bff.seed import SeedSummary, seed_demo
from tests.support.database import fresh_database

# Hundreds of sign-ins from one loopback address would trip the per-IP limits; the tests of the
# limits themselves (tests/security) turn them on for their own app.
os.environ.setdefault("BFF_RATE_LIMITS", "off")


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The URL of this session's migrated, Tortoise-initialised database."""
    async with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
async def first_seed(database_url: str) -> SeedSummary:
    """What the session's one real seed wrote (every later call is a no-op)."""
    return await seed_demo()


@pytest.fixture(scope="session")
async def seeded(database_url: str, first_seed: SeedSummary) -> str:
    """The session database with the default demo seed."""
    return database_url
