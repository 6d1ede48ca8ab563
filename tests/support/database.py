"""A fresh, migrated database for one test session: a temp SQLite file, or a new PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bff.db import close_db, init_db, is_postgres, migrate


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _asyncpg_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


@asynccontextmanager
async def fresh_database(tmp_dir: Path) -> AsyncIterator[str]:
    """Yield the URL of an empty, migrated database, initialised for Tortoise; drop it afterwards."""
    base = os.environ.get("DATABASE_URL", "")
    if base and is_postgres(base):
        name = f"bff_test_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(_asyncpg_dsn(_with_database(base, "postgres")))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = _with_database(base, name)
    else:
        name = ""
        url = f"sqlite://{tmp_dir / 'test.sqlite3'}"
    await migrate(url)
    await init_db(url)
    try:
        yield url
    finally:
        await close_db()
        if name:
            admin = await asyncpg.connect(_asyncpg_dsn(_with_database(base, "postgres")))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
