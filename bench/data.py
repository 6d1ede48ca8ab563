"""The benchmark's data: fresh databases seeded by `bff seed`, and the fixtures the screens need."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from bff.auth import Principal, Role, issue_token
from bff.settings import load_settings

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


async def _product_count(url: str) -> int | None:
    try:
        conn = await asyncpg.connect(url)
    except (asyncpg.InvalidCatalogNameError, OSError):
        return None
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM product"))
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def seed(admin_url: str, name: str, products: int, log: Path, reuse: bool) -> str:
    """A database `name` holding the demo seed with `products` products; returns its URL."""
    url = database_url(admin_url, name)
    steps = [["migrate"], ["seed", "--demo", "--products", str(products)]]
    if reuse and await _product_count(url) == products:
        steps = steps[:1]  # the schema may have moved on since it was seeded
    else:
        await _recreate(admin_url, name)
    env = {**os.environ, "DATABASE_URL": url}
    bff = [sys.executable, "-m", "bff.cli"]
    with log.open("ab") as out:
        for args in steps:
            process = await asyncio.create_subprocess_exec(*bff, *args, env=env, stdout=out, stderr=out)
            if await process.wait() != 0:
                raise RuntimeError(f"bff {' '.join(args)} failed on {name}: see {log}")
    return url


async def migrated(admin_url: str, name: str, log: Path) -> str:
    """A fresh, migrated, empty database `name` (for the benchmarks that bring their own data)."""
    url = database_url(admin_url, name)
    await _recreate(admin_url, name)
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bff.cli",
            "migrate",
            env={**os.environ, "DATABASE_URL": url},
            stdout=out,
            stderr=out,
        )
        if await process.wait() != 0:
            raise RuntimeError(f"bff migrate failed on {name}: see {log}")
    return url


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
