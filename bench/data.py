"""The benchmark's data: fresh databases seeded by `bff seed`, and the fixtures the screens need."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from bff.auth import Principal, Role, issue_token
from bff.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
BENCH_MEMBER = "o_alice"  # the demo member whose cart holds a sold-out and an off-shelf line
CART_LINES = 10
ORDERS = 12  # more than the order list's first page of 10


@dataclass(frozen=True)
class Fixtures:
    """What the request bodies refer to."""

    member_id: int
    token: str
    address_id: int
    category_id: int
    product_id: int
    keyword: str
    product_ids: list[int]  # on-shelf products, for the response cache's miss run


def database_url(base: str, name: str) -> str:
    """`base` (a postgres:// URL) pointing at database `name`."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _recreate(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


SEED_FORMAT = 1  # bump when the bench's seeded data must change for reasons the hashes below miss
SEED_MAX_AGE = timedelta(hours=12)  # the demo seed dates campaigns and group-buy teams from "now"
_FINGERPRINT = re.compile(r"^bff-bench (?P<identity>.+) head=(?P<head>\S+) at=(?P<at>\S+)$")


def seed_identity(products: int) -> str:
    """What the seeded rows depend on: format, catalog size and the seed code's content hash."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted((ROOT / "bff" / "seed").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"v{SEED_FORMAT} products={products} seed={digest.hexdigest()[:12]}"


def migration_head() -> str:
    """The newest migration's module name: a database at this head needs no `bff migrate`."""
    return max(p.stem for p in (ROOT / "bff" / "migrations").glob("[0-9]*.py"))


async def _fingerprint(admin_url: str, name: str) -> re.Match[str] | None:
    conn = await asyncpg.connect(admin_url)
    try:
        comment = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", name
        )
    finally:
        await conn.close()
    return _FINGERPRINT.match(comment or "")


async def _stamp(admin_url: str, name: str, identity: str, at: datetime) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        text = f"bff-bench {identity} head={migration_head()} at={at.isoformat(timespec='seconds')}"
        await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{text}'")
    finally:
        await conn.close()


async def _bff(url: str, args: list[str], log: Path, name: str) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bff.cli", *args, env=env, stdout=out, stderr=out
        )
        if await process.wait() != 0:
            raise RuntimeError(f"bff {' '.join(args)} failed on {name}: see {log}")


async def ensure(
    admin_url: str, name: str, identity: str, log: Path, fresh: bool, seed_args: list[str]
) -> str:
    """Database `name` seeded as `identity` says, reused when its fingerprint matches.

    Returns "reused", "migrated" (same seed, newer migrations applied) or "seeded".
    """
    url = database_url(admin_url, name)
    found = None if fresh else await _fingerprint(admin_url, name)
    now = datetime.now(UTC)
    if (
        found is not None
        and found["identity"] == identity
        and now - datetime.fromisoformat(found["at"]) < SEED_MAX_AGE
    ):
        if found["head"] == migration_head():
            return "reused"
        # Same seed, newer schema: migrate it as production would rather than seed again.
        await _bff(url, ["migrate"], log, name)
        await _stamp(admin_url, name, identity, datetime.fromisoformat(found["at"]))
        return "migrated"
    await _recreate(admin_url, name)
    await _bff(url, ["migrate"], log, name)
    if seed_args:
        await _bff(url, seed_args, log, name)
    await _stamp(admin_url, name, identity, now)
    return "seeded"


async def seed(admin_url: str, name: str, products: int, log: Path, fresh: bool) -> tuple[str, str]:
    """A database `name` holding the demo seed with `products` products: its URL and what was done."""
    outcome = await ensure(
        admin_url, name, seed_identity(products), log, fresh, ["seed", "--demo", "--products", str(products)]
    )
    return database_url(admin_url, name), outcome


async def migrated(admin_url: str, name: str, log: Path, fresh: bool = False) -> str:
    """A migrated database `name` for the benchmarks that bring their own data (kept between runs)."""
    await ensure(admin_url, name, f"v{SEED_FORMAT} aux", log, fresh, [])
    return database_url(admin_url, name)


async def copy_rows(
    conn: asyncpg.Connection, table: str, where: str, overrides: dict[str, str], source: str = ""
) -> None:
    """INSERT copies of the rows `where` selects, with column expressions overridden (new ids)."""
    columns = [
        r["column_name"]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND column_name <> 'id'"
            " ORDER BY ordinal_position",
            table,
        )
    ]
    # Qualified by the table: `source` may join other relations with clashing column names.
    select = ", ".join(overrides.get(c, f"{table}.{c}") for c in columns)
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} FROM {source or table} WHERE {where}"
    )


async def prepare(url: str) -> Fixtures:
    """Give the bench member 10 cart lines and 12 orders; pick the category, product and keyword."""
    conn = await asyncpg.connect(url)
    try:
        member_id = int(await conn.fetchval("SELECT id FROM member WHERE openid = $1", BENCH_MEMBER))
        lines = int(await conn.fetchval("SELECT COUNT(*) FROM cart_item WHERE member_id = $1", member_id))
        if lines < CART_LINES:
            now = datetime.now(UTC)
            skus = await conn.fetch(
                "SELECT s.id FROM sku s JOIN product p ON p.id = s.product_id WHERE p.on_shelf"
                " AND s.stock - s.reserved >= 5"
                " AND s.id NOT IN (SELECT sku_id FROM cart_item WHERE member_id = $1)"
                " ORDER BY p.sales_count DESC, s.id LIMIT $2",
                member_id,
                CART_LINES - lines,
            )
            await conn.executemany(
                "INSERT INTO cart_item (member_id, sku_id, quantity, selected, created_at, updated_at)"
                " VALUES ($1, $2, $3, TRUE, $4, $4)",
                [(member_id, s["id"], 1 + i % 2, now - timedelta(minutes=i)) for i, s in enumerate(skus)],
            )
        orders = await conn.fetch("SELECT id FROM orders WHERE member_id = $1 ORDER BY id", member_id)
        for i in range(max(0, ORDERS - len(orders))):
            source = orders[i % len(orders)]["id"]
            await copy_rows(
                conn,
                "orders",
                f"id = {source}",
                {"order_no": f"order_no || '-b{i}'", "idempotency_key": "NULL"},
            )
            copy = await conn.fetchval("SELECT MAX(id) FROM orders")
            await copy_rows(conn, "order_line", f"order_id = {source}", {"order_id": str(copy)})
        address_id = int(
            await conn.fetchval(
                "SELECT id FROM address WHERE member_id = $1 ORDER BY is_default DESC, id DESC LIMIT 1",
                member_id,
            )
        )
        category_id = int(
            await conn.fetchval(
                "SELECT id FROM category WHERE parent_id IS NULL ORDER BY sort_order, id LIMIT 1"
            )
        )
        # The group-buy's product shows every campaign block the detail screen has.
        product_id = await conn.fetchval(
            "SELECT g.product_id FROM group_buy_campaign g JOIN product p ON p.id = g.product_id"
            " WHERE p.on_shelf ORDER BY g.id LIMIT 1"
        )
        if product_id is None:
            product_id = await conn.fetchval(
                "SELECT id FROM product WHERE on_shelf ORDER BY sales_count DESC LIMIT 1"
            )
        keyword = str(
            await conn.fetchval(
                "SELECT keyword FROM search_keyword_daily WHERE last_result_count > 0"
                " GROUP BY keyword ORDER BY SUM(search_count) DESC, keyword LIMIT 1"
            )
        )
        # Fresh bulk loads have no planner statistics yet; a production database has them.
        await conn.execute("ANALYZE")
        product_ids = [
            int(r["id"])
            for r in await conn.fetch("SELECT id FROM product WHERE on_shelf ORDER BY id LIMIT 20000")
        ]
    finally:
        await conn.close()
    settings = load_settings()
    token = issue_token(Principal(role=Role.MEMBER, member_id=member_id), settings.jwt_secret, 6 * 3600).token
    return Fixtures(member_id, token, address_id, category_id, int(product_id), keyword, product_ids)


def git_commit(root: Path) -> str:
    """The short commit, with "+uncommitted changes" when the tree is dirty."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{commit} + uncommitted changes" if dirty else commit
