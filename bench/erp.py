"""The ERP target's `placeOrder`: a member of its own with an address, and a request body to repeat."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson

from bench.data import BENCH_MEMBER, copy_rows
from bff.auth import Principal, Role, issue_token
from bff.documents import operations
from bff.ids import encode_id
from bff.settings import load_settings

KEY_PLACEHOLDER = "IDEMPOTENCY_KEY"  # bench/lua/order.lua puts a fresh key here per request


async def prepare(db_url: str, erp_url: str, workdir: Path) -> tuple[Path, str]:
    """A new member (so the bench member's order list does not grow) buying one unit of a well-stocked
    SKU the ERP simulator knows; the PlaceOrder body file and the member's token."""
    conn = await asyncpg.connect(db_url)
    try:
        sku = await conn.fetchrow(
            "SELECT s.id, s.code, s.stock, s.stock_version FROM sku s JOIN product p ON p.id = s.product_id"
            " WHERE p.on_shelf ORDER BY s.stock - s.reserved DESC, s.id LIMIT 1"
        )
        template = await conn.fetchval("SELECT id FROM member WHERE openid = $1", BENCH_MEMBER)
        openid = f"o_erp{datetime.now(UTC).timestamp():.0f}"
        await copy_rows(
            conn,
            "member",
            f"id = {template}",
            {"openid": f"'{openid}'", "unionid": "NULL", "nickname": "'ERP'"},
        )
        member_id = int(await conn.fetchval("SELECT id FROM member WHERE openid = $1", openid))
        await copy_rows(
            conn,
            "address",
            f"id = (SELECT MIN(id) FROM address WHERE member_id = {template})",
            {"member_id": str(member_id), "is_default": "TRUE"},
        )
        address_id = int(await conn.fetchval("SELECT id FROM address WHERE member_id = $1", member_id))
    finally:
        await conn.close()
    # The ERP knows the SKU, so a healthy answer takes the full path (compare, refresh the mirror).
    async with httpx.AsyncClient(trust_env=False) as client:
        item = {
            "sku_code": sku["code"],
            "available": int(sku["stock"]),
            "version": int(sku["stock_version"]) + 1,
        }
        (await client.post(f"{erp_url}/_sim/inventory", json={"items": [item]})).raise_for_status()
    order_input = {
        "source": "BUY_NOW",
        "lines": [{"skuId": encode_id("Sku", int(sku["id"])), "quantity": 1}],
        "addressId": encode_id("Address", address_id),
        "idempotencyKey": KEY_PLACEHOLDER,
    }
    body = {
        "query": operations()["PlaceOrder"],
        "operationName": "PlaceOrder",
        "variables": {"input": order_input},
    }
    path = workdir / "place_order.json"
    path.write_bytes(orjson.dumps(body))
    token = issue_token(
        Principal(role=Role.MEMBER, member_id=member_id), load_settings().jwt_secret, 3600
    ).token
    return path, token
