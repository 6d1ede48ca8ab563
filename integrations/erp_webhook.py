"""`POST /webhooks/erp`: verify the Standard Webhooks signature, validate the batch, store it, apply it.

The answer `200 {"accepted", "duplicates", "stale"}` is sent only once the whole batch is committed;
the events are then applied in a background task, with the outbox message queued at receipt and the
worker's sweep as fallbacks when the process dies first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bff.cache import Cache
from bff.context import Services
from bff.services.erp_events import (
    INVENTORY_CHANGED,
    ORDER_DELIVERED,
    PRICE_CHANGED,
    PRODUCT_UPSERTED,
    SHIPMENT_CREATED,
    SHIPMENT_TRACKING,
    ErpEvent,
    apply_events,
    store_events,
)
from bff.settings import Settings

log = logging.getLogger("bff.erp_webhook")

MAX_EVENTS = 1000
MAX_BODY_BYTES = 32 * 1024 * 1024  # 1000 product upserts with their SKUs fit comfortably
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1


class InvalidBatch(ValueError):
    """The body is not a valid batch; the message names the offending event and field."""


# --- validation ----------------------------------------------------------------------------------


def _str(obj: dict[str, Any], key: str, where: str, *, max_length: int, optional: bool = False) -> str:
    value = obj.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or (not optional and not value.strip()):
        raise InvalidBatch(f"{where}.{key}: must be a non-empty string")
    if len(value) > max_length:
        raise InvalidBatch(f"{where}.{key}: at most {max_length} characters")
    return value


def _int(obj: dict[str, Any], key: str, where: str, *, low: int, high: int) -> int:
    value = obj.get(key)
    # bool is an int in Python but never a valid quantity or version on the wire.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidBatch(f"{where}.{key}: must be an integer from {low} to {high}")
    return value


def _time(obj: dict[str, Any], key: str, where: str) -> datetime:
    value = obj.get(key)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidBatch(f"{where}.{key}: must be an ISO-8601 date-time")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidBatch(f"{where}: must be an object")
    return value


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise InvalidBatch(f"{where}.{key}: must be a list")
    return value


def _sku_fields(data: dict[str, Any], where: str) -> None:
    _str(data, "sku_code", where, max_length=64)


def _price_fields(data: dict[str, Any], where: str) -> None:
    _int(data, "price_fen", where, low=0, high=_INT32)
    _int(data, "market_price_fen", where, low=0, high=_INT32)


def _inventory_changed(data: dict[str, Any], where: str) -> None:
    _sku_fields(data, where)
    _int(data, "available", where, low=-_INT32, high=_INT32)


def _price_changed(data: dict[str, Any], where: str) -> None:
    _sku_fields(data, where)
    _price_fields(data, where)


def _product_upserted(data: dict[str, Any], where: str) -> None:
    _str(data, "spu_code", where, max_length=64)
    _str(data, "title", where, max_length=200)
    _str(data, "subtitle", where, max_length=300, optional=True)
    _str(data, "category_code", where, max_length=64)
    _str(data, "brand", where, max_length=64, optional=True)
    for i, image in enumerate(_list(data, "images", where)):
        if not isinstance(image, str) or not image or len(image) > 512:
            raise InvalidBatch(f"{where}.images[{i}]: must be a URL of 1 to 512 characters")
    if data.get("status") not in ("on_shelf", "off_shelf"):
        raise InvalidBatch(f"{where}.status: must be on_shelf or off_shelf")
    seen: set[str] = set()
    for i, raw in enumerate(_list(data, "skus", where)):
        at = f"{where}.skus[{i}]"
        sku = _object(raw, at)
        _sku_fields(sku, at)
        if sku["sku_code"] in seen:
            raise InvalidBatch(f"{at}.sku_code: {sku['sku_code']!r} is listed twice")
        seen.add(sku["sku_code"])
        specs = _object(sku.get("specs"), f"{at}.specs")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in specs.items()):
            raise InvalidBatch(f"{at}.specs: names and values must be strings")
        _price_fields(sku, at)
        _int(sku, "available", at, low=-_INT32, high=_INT32)


def _shipment_created(data: dict[str, Any], where: str) -> None:
    _str(data, "order_no", where, max_length=32)
    _str(data, "carrier", where, max_length=64)
    _str(data, "tracking_no", where, max_length=64)
    _time(data, "shipped_at", where)


def _shipment_tracking(data: dict[str, Any], where: str) -> None:
    _str(data, "tracking_no", where, max_length=64)
    for i, raw in enumerate(_list(data, "events", where)):
        at = f"{where}.events[{i}]"
        item = _object(raw, at)
        _time(item, "at", at)
        _str(item, "description", at, max_length=512)
        _str(item, "location", at, max_length=128, optional=True)


def _order_delivered(data: dict[str, Any], where: str) -> None:
    _str(data, "order_no", where, max_length=32)
    _time(data, "delivered_at", where)


_VALIDATORS = {
    INVENTORY_CHANGED: _inventory_changed,
    PRICE_CHANGED: _price_changed,
    PRODUCT_UPSERTED: _product_upserted,
    SHIPMENT_CREATED: _shipment_created,
    SHIPMENT_TRACKING: _shipment_tracking,
    ORDER_DELIVERED: _order_delivered,
}


def parse_batch(body: object) -> list[ErpEvent]:
    """The events of a webhook body `{"events": [...]}`; raises InvalidBatch naming the bad event."""
    events = _list(_object(body, "body"), "events", "body")
    if not 1 <= len(events) <= MAX_EVENTS:
        raise InvalidBatch(f"body.events: must hold 1 to {MAX_EVENTS} events, got {len(events)}")
    parsed: list[ErpEvent] = []
    for index, raw in enumerate(events):
        where = f"events[{index}]"
        event = _object(raw, where)
        event_id = _str(event, "id", where, max_length=128)
        kind = event.get("type")
        validate = _VALIDATORS.get(kind) if isinstance(kind, str) else None
        if validate is None or not isinstance(kind, str):
            raise InvalidBatch(f"{where}.type: unknown event type {kind!r}")
        occurred_at = _time(event, "occurred_at", where)
        version = _int(event, "version", where, low=0, high=_INT64)
        data = _object(event.get("data"), f"{where}.data")
        validate(data, f"{where}.data")
        parsed.append(ErpEvent(event_id, kind, occurred_at, version, data))
    return parsed


# --- endpoint ------------------------------------------------------------------------------------


def _refuse(status_code: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status_code)


def _verify(secret: str, body: bytes, headers: dict[str, str]) -> str | None:
    """None when a signature over the body is valid and fresh, else why not."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError as exc:
        return str(exc)
    except ValueError as exc:  # a malformed signature list, bad base64 or a non-UTF-8 body
        return f"malformed webhook headers or body: {type(exc).__name__}"
    return None


async def _apply_after_response(cache: Cache, settings: Settings, event_ids: Sequence[int]) -> None:
    try:
        await apply_events(cache, event_ids, settings=settings)
    except Exception:  # stored already: the outbox message and the sweep apply them later
        log.exception("applying ERP events %s..%s failed after receipt", event_ids[0], event_ids[-1])


async def erp_webhook(request: Request) -> Response:
    """Receive a signed batch of ERP events (contract: external/erp.md)."""
    services: Services = request.app.state.services
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _refuse(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _refuse(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    problem = _verify(services.settings.erp_webhook_secret, body, dict(request.headers))
    if problem is not None:
        log.warning("ERP webhook refused (%s): %s", request.headers.get("webhook-id", "-"), problem)
        return _refuse(401, "invalid_signature", problem)
    try:
        events = parse_batch(orjson.loads(body))
    except orjson.JSONDecodeError:
        return _refuse(400, "invalid_batch", "body is not valid JSON")
    except InvalidBatch as exc:
        return _refuse(400, "invalid_batch", str(exc))
    result = await store_events(events)
    log.info(
        "ERP webhook %s: %d accepted, %d duplicates, %d stale",
        request.headers.get("webhook-id"),
        result.accepted,
        result.duplicates,
        result.stale,
    )
    background = (
        BackgroundTask(_apply_after_response, services.cache, services.settings, result.pending_ids)
        if result.pending_ids
        else None
    )
    return JSONResponse(
        {"accepted": result.accepted, "duplicates": result.duplicates, "stale": result.stale},
        background=background,
    )
