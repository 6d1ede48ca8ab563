"""A fake ERP speaking contract/erp.md: inventory query, order push / cancel, returns.

Admin (no auth): `POST /_sim/inventory` `{"items": [{"sku_code", "available", "version"?}]}` sets
stock (a missing version bumps the current one); `POST /_sim/orders/{order_no}/ship` marks an
order shipped so a cancel answers 409; plus the shared `/_sim/config|state|reset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations.simulators.knobs import (
    BadRequest,
    Knobs,
    KnobsMiddleware,
    admin_routes,
    bearer_endpoint,
    int_field,
    json_endpoint,
    read_json,
    require,
    server_error,
    str_list,
)

INVENTORY_QUERY_LIMIT = 200


@dataclass
class ErpState:
    """Everything the fake ERP holds and has received."""

    inventory: dict[str, tuple[int, int]] = field(default_factory=dict)  # sku_code -> (available, version)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # order_no -> record
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)  # after_sale_id -> record
    cancellations: list[dict[str, Any]] = field(default_factory=list)
    inventory_queries: list[list[str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The state as `GET /_sim/state` shows it."""
        return {
            "inventory": [
                {"sku_code": code, "available": available, "version": version}
                for code, (available, version) in self.inventory.items()
            ],
            "orders": list(self.orders.values()),
            "returns": list(self.returns.values()),
            "cancellations": self.cancellations,
            "inventory_queries": self.inventory_queries,
        }

    def clear(self) -> None:
        """Forget everything (`POST /_sim/reset`)."""
        self.inventory.clear()
        self.orders.clear()
        self.returns.clear()
        self.cancellations.clear()
        self.inventory_queries.clear()


def create_erp_app(api_token: str) -> Starlette:
    """The fake ERP as an ASGI app; every `/api/v1` call needs `Authorization: Bearer <api_token>`."""
    knobs = Knobs()
    state = ErpState()

    async def query_inventory(request: Request) -> Response:
        codes = str_list(await read_json(request), "sku_codes")
        if len(codes) > INVENTORY_QUERY_LIMIT:
            raise BadRequest(f"at most {INVENTORY_QUERY_LIMIT} sku_codes per query")
        state.inventory_queries.append(codes)
        items = [
            {"sku_code": code, "available": state.inventory[code][0], "version": state.inventory[code][1]}
            for code in dict.fromkeys(codes)
            if code in state.inventory
        ]
        return JSONResponse({"items": items})

    async def push_order(request: Request) -> Response:
        body = await read_json(request)
        require(body, "order_no", "member_ref", "lines", "address", "payable_fen", "paid_at")
        order_no = str(body["order_no"])
        if order_no in state.orders:
            return JSONResponse({"erp_order_id": state.orders[order_no]["erp_order_id"]}, status_code=200)
        erp_order_id = f"ERP-O-{len(state.orders) + 1:06d}"
        state.orders[order_no] = {"erp_order_id": erp_order_id, "status": "open", "received": body}
        return JSONResponse({"erp_order_id": erp_order_id}, status_code=201)

    async def cancel_order(request: Request) -> Response:
        body = await read_json(request)
        order = state.orders.get(request.path_params["order_no"])
        if order is None:
            return JSONResponse({"error": "order_not_found"}, status_code=404)
        if order["status"] == "shipped":
            return JSONResponse({"error": "already_shipped"}, status_code=409)
        order["status"] = "cancelled"
        state.cancellations.append(
            {"order_no": request.path_params["order_no"], "reason": body.get("reason")}
        )
        return JSONResponse({"status": "cancelled"})

    async def create_return(request: Request) -> Response:
        body = await read_json(request)
        require(body, "order_no", "after_sale_id", "type", "lines")
        if str(body["order_no"]) not in state.orders:
            return JSONResponse({"error": "order_not_found"}, status_code=404)
        key = str(body["after_sale_id"])
        if key in state.returns:  # a retried push must not open a second return
            return JSONResponse({"erp_return_id": state.returns[key]["erp_return_id"]}, status_code=200)
        erp_return_id = f"ERP-R-{len(state.returns) + 1:06d}"
        state.returns[key] = {"erp_return_id": erp_return_id, "received": body}
        return JSONResponse({"erp_return_id": erp_return_id}, status_code=201)

    async def set_inventory(request: Request) -> Response:
        items = (await read_json(request)).get("items")
        if not isinstance(items, list):
            raise BadRequest("items must be a list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("sku_code"), str):
                raise BadRequest("each item needs a sku_code")
            previous_version = state.inventory.get(item["sku_code"], (0, 0))[1]
            available = int_field(item, "available")
            state.inventory[item["sku_code"]] = (available, int_field(item, "version", previous_version + 1))
        return JSONResponse({"count": len(items)})

    async def ship_order(request: Request) -> Response:
        order = state.orders.get(request.path_params["order_no"])
        if order is None:
            return JSONResponse({"error": "order_not_found"}, status_code=404)
        order["status"] = "shipped"
        return JSONResponse({"status": "shipped"})

    routes = [
        Route("/api/v1/inventory/query", bearer_endpoint(api_token, query_inventory), methods=["POST"]),
        Route("/api/v1/orders", bearer_endpoint(api_token, push_order), methods=["POST"]),
        Route("/api/v1/orders/{order_no}/cancel", bearer_endpoint(api_token, cancel_order), methods=["POST"]),
        Route("/api/v1/returns", bearer_endpoint(api_token, create_return), methods=["POST"]),
        Route("/_sim/inventory", json_endpoint(set_inventory), methods=["POST"]),
        Route("/_sim/orders/{order_no}/ship", json_endpoint(ship_order), methods=["POST"]),
        *admin_routes(knobs, state.as_json, state.clear),
    ]
    return Starlette(routes=routes, middleware=[Middleware(KnobsMiddleware, knobs=knobs, fault=server_error)])
