"""Database setup: the Tortoise config, init/close, and the migration entry point."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.migrations.api import migrate as run_migrations

from bff.models import MODEL_MODULES


def _normalise_url(url: str) -> str:
    # Tortoise names PostgreSQL "postgres://"; accept the common "postgresql://" spelling too.
    for prefix in ("postgresql+asyncpg://", "postgresql://"):
        if url.startswith(prefix):
            return "postgres://" + url[len(prefix) :]
    return url


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config dict for one database URL."""
    return {
        "connections": {"default": _normalise_url(database_url)},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "bff.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(database_url: str) -> None:
    """Open the connection pool for the process."""
    # Tortoise 1.x keeps its state in a context variable; Starlette runs the lifespan in another
    # task than the requests, so the process-wide fallback is what makes the pool visible to them.
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def close_db() -> None:
    """Close every connection opened by init_db."""
    await Tortoise.close_connections()


async def migrate(database_url: str) -> None:
    """Apply the checked-in migrations."""
    await run_migrations(config=tortoise_config(database_url))
    await Tortoise.close_connections()


def is_postgres(database_url: str) -> bool:
    """True when the URL points at PostgreSQL."""
    return _normalise_url(database_url).startswith(("postgres://", "asyncpg://"))
