"""Flash-sale burst: many members try to buy a small stock at once; count attempts/s and oversell."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import orjson

from bench.data import copy_rows
from bench.loadgen import wrk
from bff.auth import Principal, Role, issue_token
from bff.documents import operations
from bff.ids import encode_id
from bff.settings import load_settings

MEMBERS = 300
CONNECTIONS = 32
STOCK = 100
LIMIT = 2


@dataclass(frozen=True)
class FlashResult:
    attempts: int
    attempts_per_second: float
    orders: int
    rejected: int
    failures: int
    sold: int
    stock: int
    purchased_units: int
    max_per_member: int
    orders_in_db: int

    @property
    def oversold(self) -> bool:
        """More sold than stocked, or the purchase records disagree with the counter or the orders."""
        return (
            self.sold > self.stock
            or self.purchased_units != self.sold
            or self.max_per_member > LIMIT
            or self.orders_in_db != self.orders
        )


async def _setup(url: str) -> tuple[int, list[tuple[int, int]]]:
    """A running flash sale of STOCK units, and MEMBERS fresh members with an address each."""
    conn = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        sku = await conn.fetchrow(
            "SELECT s.id, s.product_id FROM sku s JOIN product p ON p.id = s.product_id WHERE p.on_shelf"
            " AND s.stock - s.reserved > 1000 ORDER BY p.id DESC LIMIT 1"
        )
        if sku is None:
            sku = await conn.fetchrow(
                "SELECT s.id, s.product_id FROM sku s JOIN product p ON p.id = s.product_id WHERE p.on_shelf"
                " ORDER BY s.stock - s.reserved DESC LIMIT 1"
            )
            await conn.execute("UPDATE sku SET stock = stock + 100000 WHERE id = $1", sku["id"])
        # Ends after every other sale, so the home screen's "ends first" sale stays the seeded one.
        sale_id = await conn.fetchval(
            "INSERT INTO flash_sale (title, starts_at, ends_at) VALUES ('压测秒杀', $1, $2) RETURNING id",
            now - timedelta(minutes=1),
            now + timedelta(days=400),
        )
        item_id = await conn.fetchval(
            "INSERT INTO flash_sale_item (flash_sale_id, sku_id, product_id, flash_price_fen, stock_total,"
            " sold,"
            " per_member_limit, sort_order) VALUES ($1, $2, $3, 990, $4, 0, $5, 0) RETURNING id",
            sale_id,
            sku["id"],
            sku["product_id"],
            STOCK,
            LIMIT,
        )
        # Copies of a demo member and address, so columns other features add keep their values.
        template = await conn.fetchval("SELECT member_id FROM address ORDER BY id LIMIT 1")
        run = f"o_flash{now.timestamp():.0f}_"
        await copy_rows(
            conn,
            "member",
            f"member.id = {template}",
            {"openid": f"'{run}' || g", "unionid": "NULL", "nickname": "'抢购' || g"},
            source=f"member, generate_series(1, {MEMBERS}) g",
        )
        members = [
            int(r["id"])
            for r in await conn.fetch("SELECT id FROM member WHERE openid LIKE $1 ORDER BY id", run + "%")
        ]
        await copy_rows(
            conn,
            "address",
            f"address.id = (SELECT MIN(id) FROM address WHERE member_id = {template})",
            {"member_id": "m.id", "is_default": "TRUE"},
            source=f"address, (SELECT id FROM member WHERE openid LIKE '{run}%') m",
        )
        rows = await conn.fetch("SELECT member_id, id FROM address WHERE member_id = ANY($1::int[])", members)
        shoppers = [(int(r["member_id"]), int(r["id"])) for r in rows]
        return item_id, shoppers
    finally:
        await conn.close()


def _files(workdir: Path, item_id: int, sku_id: int, shoppers: list[tuple[int, int]]) -> tuple[Path, Path]:
    settings = load_settings()
    rng = random.Random(20240618)
    bodies, tokens = [], []
    for member_id, address_id in shoppers:
        order_input = {
            "source": "BUY_NOW",
            "lines": [{"skuId": encode_id("Sku", sku_id), "quantity": rng.choice((1, 2))}],
            "addressId": encode_id("Address", address_id),
            "campaign": {"flashSaleItemId": encode_id("FlashSaleItem", item_id)},
        }
        body = {
            "query": operations()["PlaceOrder"],
            "operationName": "PlaceOrder",
            "variables": {"input": order_input},
        }
        bodies.append(orjson.dumps(body).decode())
        principal = Principal(role=Role.MEMBER, member_id=member_id)
        tokens.append(issue_token(principal, settings.jwt_secret, 3600).token)
    bodies_file, tokens_file = workdir / "flash_bodies.txt", workdir / "flash_tokens.txt"
    bodies_file.write_text("\n".join(bodies) + "\n")
    tokens_file.write_text("\n".join(tokens) + "\n")
    return bodies_file, tokens_file


async def prepare(url: str, workdir: Path) -> tuple[int, Path, Path]:
    """Create the sale and its shoppers; the wrk input files."""
    item_id, shoppers = await _setup(url)
    conn = await asyncpg.connect(url)
    try:
        sku_id = int(await conn.fetchval("SELECT sku_id FROM flash_sale_item WHERE id = $1", item_id))
    finally:
        await conn.close()
    bodies, tokens = _files(workdir, item_id, sku_id, shoppers)
    return item_id, bodies, tokens


def _warm_up_request(bodies: Path, tokens: Path) -> tuple[Path, str]:
    """The first shopper's CheckoutPreview of the same purchase (no side effects) and their token."""
    preview = orjson.loads(bodies.read_text().splitlines()[0])
    preview.update(query=operations()["CheckoutPreview"], operationName="CheckoutPreview")
    warm = bodies.with_name("flash_preview.json")
    warm.write_bytes(orjson.dumps(preview))
    return warm, tokens.read_text().splitlines()[0]


async def burst(
    graphql_url: str, db_url: str, item_id: int, bodies: Path, tokens: Path, seconds: float
) -> FlashResult:
    """PlaceOrder attempts from every shopper in turn over 32 connections; then what the database holds."""
    # Warm every worker up (imports, pools, the sale's caches) on the side-effect-free preview of the
    # same purchase, so the burst measures serving rather than start-up.
    warm, token = _warm_up_request(bodies, tokens)
    await wrk(graphql_url, "post.lua", [str(warm), token], 1, CONNECTIONS)
    load = await wrk(graphql_url, "rotate.lua", [str(bodies), str(tokens)], seconds, CONNECTIONS)
    conn = await asyncpg.connect(db_url)
    try:
        item = await conn.fetchrow("SELECT stock_total, sold FROM flash_sale_item WHERE id = $1", item_id)
        held = await conn.fetch(
            "SELECT member_id, SUM(quantity) AS units FROM flash_sale_purchase WHERE item_id = $1"
            " AND status <> 'RELEASED' GROUP BY member_id",
            item_id,
        )
        orders = await conn.fetchval(
            "SELECT COUNT(*) FROM orders WHERE campaign_kind = 'FLASH_SALE' AND campaign_ref = $1", item_id
        )
    finally:
        await conn.close()
    return FlashResult(
        attempts=load.requests,
        attempts_per_second=load.rps,
        orders=load.counters.get("orders", 0),
        rejected=load.counters.get("rejected", 0),
        failures=load.failures,
        sold=int(item["sold"]),
        stock=int(item["stock_total"]),
        purchased_units=sum(int(h["units"]) for h in held),
        max_per_member=max((int(h["units"]) for h in held), default=0),
        orders_in_db=int(orders),
    )
