"""ERP client: live stock at checkout, order push / cancel, returns (wire format: contract/erp.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from integrations.errors import (
    OrderAlreadyShipped,
    UpstreamConflict,
    check_status,
    decoding,
    json_object,
    translating,
)
from integrations.resilience import CircuitBreaker, with_retries

UPSTREAM = "erp"
INVENTORY_BATCH = 200  # the ERP refuses larger queries with 400


@dataclass(frozen=True, slots=True)
class InventoryItem:
    """Stock the ERP can sell now; `version` orders updates of the same SKU."""

    sku_code: str
    available: int
    version: int


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of an order pushed to the ERP."""

    sku_code: str
    quantity: int
    unit_price_fen: int


@dataclass(frozen=True, slots=True)
class ErpOrder:
    """A paid order as pushed to the ERP; `address` is the order's address snapshot as-is."""

    order_no: str
    member_ref: str
    lines: Sequence[OrderLine]
    address: Mapping[str, Any]
    payable_fen: int
    paid_at: datetime

    def to_wire(self) -> dict[str, Any]:
        """The JSON body of `POST /api/v1/orders`."""
        return {
            "order_no": self.order_no,
            "member_ref": self.member_ref,
            "lines": [
                {"sku_code": x.sku_code, "quantity": x.quantity, "unit_price_fen": x.unit_price_fen}
                for x in self.lines
            ],
            "address": dict(self.address),
            "payable_fen": self.payable_fen,
            "paid_at": self.paid_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ReturnLine:
    """One returned SKU and quantity."""

    sku_code: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ErpReturn:
    """An after-sale (REFUND_ONLY, RETURN_AND_REFUND, EXCHANGE) as announced to the ERP."""

    order_no: str
    after_sale_id: str
    type: str
    lines: Sequence[ReturnLine] = field(default_factory=tuple)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body of `POST /api/v1/returns`."""
        return {
            "order_no": self.order_no,
            "after_sale_id": self.after_sale_id,
            "type": self.type,
            "lines": [{"sku_code": x.sku_code, "quantity": x.quantity} for x in self.lines],
        }


@dataclass(frozen=True, slots=True)
class PushResult:
    """The ERP's id for the order; `created` is False when it already had it (a safe re-push)."""

    erp_order_id: str
    created: bool


class ErpClient:
    """Typed calls to `ERP_BASE_URL` over an injected `httpx.AsyncClient`."""

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, api_token: str, *, timeout: float = 3.0
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_token}"}
        self._timeout = httpx.Timeout(timeout)
        self.breaker = CircuitBreaker(UPSTREAM)

    async def query_inventory(
        self, sku_codes: Iterable[str], *, http_timeout: float | None = None
    ) -> dict[str, InventoryItem]:
        """Live stock by SKU code; codes the ERP does not know are absent. Chunks of 200 per call.

        `http_timeout` (seconds per call) overrides the client's: checkout waits only briefly.
        """
        codes = list(dict.fromkeys(sku_codes))
        result: dict[str, InventoryItem] = {}
        # Sequential on purpose: bounded load on a slow ERP, and the first failure stays typed.
        for start in range(0, len(codes), INVENTORY_BATCH):
            chunk = codes[start : start + INVENTORY_BATCH]
            body = {"sku_codes": chunk}
            call = partial(self._post, "/api/v1/inventory/query", body, http_timeout=http_timeout)
            _, data = await with_retries(call)
            with decoding(UPSTREAM):
                for item in data["items"]:
                    row = InventoryItem(str(item["sku_code"]), int(item["available"]), int(item["version"]))
                    result[row.sku_code] = row
        return result

    async def push_order(self, order: ErpOrder) -> PushResult:
        """Push a paid order; idempotent on `order_no` (a re-push answers the same id)."""
        status, data = await self._post("/api/v1/orders", order.to_wire())
        with decoding(UPSTREAM):
            return PushResult(erp_order_id=str(data["erp_order_id"]), created=status == 201)

    async def cancel_order(self, order_no: str, reason: str) -> None:
        """Cancel an order in the ERP; raises `OrderAlreadyShipped` (409) or `UpstreamNotFound` (404)."""
        try:
            await self._post(f"/api/v1/orders/{quote(order_no, safe='')}/cancel", {"reason": reason})
        except UpstreamConflict as exc:
            raise OrderAlreadyShipped(UPSTREAM, f"order {order_no} already shipped", status=409) from exc

    async def create_return(self, request: ErpReturn) -> str:
        """Announce an after-sale to the ERP; returns its `erp_return_id`."""
        _, data = await self._post("/api/v1/returns", request.to_wire())
        with decoding(UPSTREAM):
            return str(data["erp_return_id"])

    async def _post(
        self, path: str, body: dict[str, Any], *, http_timeout: float | None = None
    ) -> tuple[int, dict[str, Any]]:
        limit = self._timeout if http_timeout is None else httpx.Timeout(http_timeout)
        async with self.breaker.guard():
            with translating(UPSTREAM):
                response = await self._http.post(
                    self._base_url + path, json=body, headers=self._headers, timeout=limit
                )
            check_status(response, UPSTREAM)
            return response.status_code, json_object(response, UPSTREAM)
