"""ERP webhook events: store a batch durably (deduplicated, stale ones marked), then apply each once.

Receipt (`store_events`) writes every new event in one transaction, marking STALE those whose version
is not newer than the entity's current one. Application (`apply_events`, `apply_pending`, the
`erp.apply_events` outbox handler) claims each PENDING event with a conditional update in the same
transaction as its effect, so concurrent appliers never apply an event twice; every effect is a
conditional write on the entity's version, so a stale version never overwrites a newer one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bff.cache import Cache
from bff.models.catalog import Brand, Category, Product, Sku
from bff.models.order import Shipment
from bff.models.outbox import InboundEvent
from bff.services import fulfilment
from bff.services.catalog import refresh_product_aggregates
from bff.services.catalog_cache import invalidate_products, invalidate_taxonomy
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext, enqueue, handler
from bff.services.search_index import reindex_products
from bff.settings import Settings, load_settings

log = logging.getLogger("bff.erp_events")

SOURCE = "erp"
PENDING = "PENDING"
APPLIED = "APPLIED"
STALE = "STALE"
FAILED = "FAILED"

INVENTORY_CHANGED = "inventory.changed"
PRICE_CHANGED = "price.changed"
PRODUCT_UPSERTED = "product.upserted"
SHIPMENT_CREATED = "shipment.created"
SHIPMENT_TRACKING = "shipment.tracking"
ORDER_DELIVERED = "order.delivered"
EVENT_TYPES = frozenset(
    {INVENTORY_CHANGED, PRICE_CHANGED, PRODUCT_UPSERTED, SHIPMENT_CREATED, SHIPMENT_TRACKING, ORDER_DELIVERED}
)

APPLY_TOPIC = "erp.apply_events"
# The endpoint applies a batch right after answering; the outbox message is the fallback for a
# process that died first, so it waits long enough not to race the normal path.
APPLY_FALLBACK_DELAY = timedelta(seconds=60)
APPLY_CHUNK = 100  # events applied per transaction
_STORE_ATTEMPTS = 3
_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ErpEvent:
    """One validated event of a webhook batch; `data` is as received (checked for its type)."""

    event_id: str
    type: str
    occurred_at: datetime
    version: int
    data: dict[str, Any]


@dataclass(frozen=True)
class StoreResult:
    """What receipt did: new non-stale events, repeats of stored ones, stale ones; ids to apply."""

    accepted: int
    duplicates: int
    stale: int
    pending_ids: list[int]


class EventRejected(Exception):
    """The event cannot be applied (unknown SKU or category); it is marked FAILED with this message."""


# --- receipt -------------------------------------------------------------------------------------


def _entity(event: ErpEvent) -> tuple[str, str] | None:
    """The versioned entity an event writes, or None for events ordered by the order's state."""
    data = event.data
    if event.type == INVENTORY_CHANGED:
        return ("stock", data["sku_code"])
    if event.type == PRICE_CHANGED:
        return ("price", data["sku_code"])
    if event.type == PRODUCT_UPSERTED:
        return ("product", data["spu_code"])
    if event.type == SHIPMENT_TRACKING:
        return ("tracking", data["tracking_no"])
    return None


async def _held_versions(keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The versions the database holds now for these entities (absent: entity unknown)."""
    held: dict[tuple[str, str], int] = {}
    sku_codes = {key for kind, key in keys if kind in ("stock", "price")}
    if sku_codes:
        for row in await Sku.filter(code__in=sku_codes).values("code", "stock_version", "price_version"):
            held[("stock", row["code"])] = row["stock_version"]
            held[("price", row["code"])] = row["price_version"]
    spu_codes = {key for kind, key in keys if kind == "product"}
    if spu_codes:
        for row in await Product.filter(spu_code__in=spu_codes).values("spu_code", "version"):
            held[("product", row["spu_code"])] = row["version"]
    tracking_nos = {key for kind, key in keys if kind == "tracking"}
    if tracking_nos:
        for row in await Shipment.filter(tracking_no__in=tracking_nos).values(
            "tracking_no", "events_version"
        ):
            held[("tracking", row["tracking_no"])] = row["events_version"]
    return held


async def _stale_flags(events: Sequence[ErpEvent]) -> list[bool]:
    """Which events are stale: not newer than the stored version, or superseded within the batch."""
    entities = [_entity(e) for e in events]
    keys = {key for key in entities if key is not None}
    held = await _held_versions(keys)
    newest: dict[tuple[str, str], int] = {}
    for event, key in zip(events, entities, strict=True):
        if key is not None:
            newest[key] = max(newest.get(key, event.version), event.version)
    winners: set[tuple[str, str]] = set()
    flags: list[bool] = []
    for event, key in zip(events, entities, strict=True):
        if key is None:
            flags.append(False)
            continue
        # Only the newest version of an entity in the batch can end up visible; an older one (or a
        # second event with the same version) would be overwritten or ignored anyway.
        stale = event.version <= held.get(key, -1) or event.version < newest[key] or key in winners
        if not stale:
            winners.add(key)
        flags.append(stale)
    return flags


async def store_events(events: Sequence[ErpEvent]) -> StoreResult:
    """Store a validated batch in one transaction and queue its application; duplicates are skipped."""
    for attempt in range(1, _STORE_ATTEMPTS + 1):
        try:
            return await _store_once(events)
        except IntegrityError:
            # A concurrent delivery of the same events committed first: run again, and its rows now
            # count as duplicates (a plain insert keeps the counts exact, unlike ON CONFLICT DO NOTHING).
            if attempt == _STORE_ATTEMPTS:
                raise
            log.info("ERP batch raced a concurrent delivery of the same events; storing again")
    raise AssertionError("unreachable")


def _storable(event: ErpEvent) -> dict[str, Any]:
    """The event's data as stored: SKU specs become an ordered list of {name, value}.

    PostgreSQL's jsonb does not keep an object's key order, and the spec order is what the product
    screen shows.
    """
    if event.type != PRODUCT_UPSERTED:
        return event.data
    skus = [
        {**sku, "specs": [{"name": str(k), "value": str(v)} for k, v in sku["specs"].items()]}
        for sku in event.data["skus"]
    ]
    return {**event.data, "skus": skus}


async def _store_once(events: Sequence[ErpEvent]) -> StoreResult:
    async with in_transaction():
        ids = list(dict.fromkeys(e.event_id for e in events))
        rows_known = await InboundEvent.filter(source=SOURCE, event_id__in=ids).values("event_id")
        known = {str(row["event_id"]) for row in rows_known}
        fresh: list[ErpEvent] = []
        for event in events:
            if event.event_id not in known:
                known.add(event.event_id)  # the same id twice in one batch is a duplicate too
                fresh.append(event)
        duplicates = len(events) - len(fresh)
        flags = await _stale_flags(fresh)
        rows = [
            InboundEvent(
                source=SOURCE,
                event_id=e.event_id,
                type=e.type,
                version=e.version,
                occurred_at=e.occurred_at,
                payload=_storable(e),
                status=STALE if stale else PENDING,
            )
            for e, stale in zip(fresh, flags, strict=True)
        ]
        if rows:
            await InboundEvent.bulk_create(rows, batch_size=500)
        pending_event_ids = [e.event_id for e, stale in zip(fresh, flags, strict=True) if not stale]
        pending_ids: list[int] = []
        if pending_event_ids:
            stored = await InboundEvent.filter(source=SOURCE, event_id__in=pending_event_ids).values("id")
            pending_ids = sorted(int(row["id"]) for row in stored)
            await enqueue(
                APPLY_TOPIC,
                {"event_ids": pending_ids},
                run_at=datetime.now(UTC) + APPLY_FALLBACK_DELAY,
            )
    stale_count = sum(flags)
    return StoreResult(
        accepted=len(fresh) - stale_count,
        duplicates=duplicates,
        stale=stale_count,
        pending_ids=pending_ids,
    )


# --- application ---------------------------------------------------------------------------------


@dataclass
class _Effects:
    """Catalog work a group of applied events needs once, after their writes."""

    product_ids: set[int] = field(default_factory=set)  # aggregates to recompute, cache to drop
    reindex_ids: set[int] = field(default_factory=set)  # search text to rebuild
    brand_ids: set[int] = field(default_factory=set)  # brands created
    sku_codes: set[str] = field(default_factory=set)  # SKUs whose stock or price changed

    async def write(self, cache: Cache) -> None:
        """Database side, inside the transaction that applied the events."""
        if self.sku_codes:
            rows = await Sku.filter(code__in=self.sku_codes).values("product_id")
            self.product_ids.update(int(row["product_id"]) for row in rows)
        if self.reindex_ids:
            await reindex_products(sorted(self.reindex_ids))
        if self.product_ids:
            await refresh_product_aggregates(cache, self.product_ids)

    async def invalidate(self, cache: Cache) -> None:
        """Cache side, after commit: a reader between an earlier delete and the commit re-cached old rows."""
        if self.product_ids:
            await invalidate_products(cache, self.product_ids)
        if self.brand_ids:
            await invalidate_taxonomy(cache, self.brand_ids)


Applier = Callable[[InboundEvent, _Effects, Settings], Awaitable[str]]


async def _inventory_changed(event: InboundEvent, effects: _Effects, _: Settings) -> str:
    data = _data(event)
    code = str(data["sku_code"])
    # An oversold ERP may report a negative figure; the mirror shows it as none left.
    available = max(0, int(data["available"]))
    changed = await Sku.filter(code=code, stock_version__lt=event.version).update(
        stock=available, stock_version=event.version
    )
    return await _versioned_outcome(changed, code, effects)


async def _price_changed(event: InboundEvent, effects: _Effects, _: Settings) -> str:
    data = _data(event)
    code = str(data["sku_code"])
    changed = await Sku.filter(code=code, price_version__lt=event.version).update(
        price_fen=int(data["price_fen"]),
        market_price_fen=int(data["market_price_fen"]),
        price_version=event.version,
    )
    return await _versioned_outcome(changed, code, effects)


async def _versioned_outcome(changed: int, sku_code: str, effects: _Effects) -> str:
    if changed:
        effects.sku_codes.add(sku_code)
        return APPLIED
    if await Sku.exists(code=sku_code):
        return STALE  # a newer version was applied between receipt and now
    raise EventRejected(f"unknown sku {sku_code!r}")


async def _product_upserted(event: InboundEvent, effects: _Effects, _: Settings) -> str:
    data = _data(event)
    category = await Category.get_or_none(code=str(data["category_code"]))
    if category is None:
        raise EventRejected(f"unknown category {data['category_code']!r}")
    product = await Product.get_or_none(spu_code=str(data["spu_code"]))
    if product is not None and product.version >= event.version:
        return STALE
    async with in_transaction():  # a savepoint: a failure leaves no half-written product
        brand_id = await _brand_id(data.get("brand"), effects)
        values: dict[str, Any] = {
            "title": data["title"],
            "subtitle": data.get("subtitle") or "",
            "category_id": category.id,
            "brand_id": brand_id,
            "images": list(data["images"]),
            "on_shelf": data["status"] == "on_shelf",
            "version": event.version,
        }
        if product is None:
            product = await Product.create(spu_code=data["spu_code"], **values)
        else:
            changed = await Product.filter(id=product.id, version__lt=event.version).update(
                updated_at=datetime.now(UTC), **values
            )
            if not changed:
                return STALE  # a newer version won the race since the check above
        moved_from = await _upsert_skus(product.id, data["skus"])
    effects.product_ids.update({product.id, *moved_from})
    effects.reindex_ids.add(product.id)
    return APPLIED


async def _brand_id(name: object, effects: _Effects) -> int | None:
    """The brand the ERP names (by code, else by name), created when the shop does not know it yet."""
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.strip()[:64]
    matches = await Brand.filter(code=name).values("id") or await Brand.filter(name=name).values("id")
    if matches:
        return int(matches[0]["id"])
    brand = await Brand.create(code=name, name=name)
    effects.brand_ids.add(brand.id)
    return brand.id


async def _upsert_skus(product_id: int, skus: list[dict[str, Any]]) -> set[int]:
    """Create or update the listed SKUs; zero the stock of SKUs no longer listed (orders keep them).

    Returns the other products SKUs were moved from (their aggregates change too).
    """
    codes = [str(s["sku_code"]) for s in skus]
    existing = {sku.code: sku for sku in await Sku.filter(code__in=codes)}
    moved_from: set[int] = set()
    for order, item in enumerate(skus):
        spec_values = [{"name": str(s["name"]), "value": str(s["value"])} for s in item["specs"]]
        price = int(item["price_fen"])
        market = int(item["market_price_fen"])
        available = max(0, int(item["available"]))
        sku = existing.get(item["sku_code"])
        if sku is None:
            await Sku.create(
                code=item["sku_code"],
                product_id=product_id,
                spec_values=spec_values,
                price_fen=price,
                market_price_fen=market,
                stock=available,
                sort_order=order,
            )
            continue
        if sku.product_id != product_id:
            moved_from.add(sku.product_id)
        await Sku.filter(id=sku.id).update(product_id=product_id, spec_values=spec_values, sort_order=order)
        # Stock and price have versioned events of their own, unordered relative to product versions:
        # the upsert only seeds them on a SKU that has never had one.
        await Sku.filter(id=sku.id, price_version=0).update(price_fen=price, market_price_fen=market)
        await Sku.filter(id=sku.id, stock_version=0).update(stock=available)
    await Sku.filter(product_id=product_id).exclude(code__in=codes).update(stock=0)
    return moved_from


async def _shipment_created(event: InboundEvent, _: _Effects, __: Settings) -> str:
    data = _data(event)
    await fulfilment.ship(
        str(data["order_no"]), str(data["carrier"]), str(data["tracking_no"]), _parse_time(data["shipped_at"])
    )
    return APPLIED


async def _shipment_tracking(event: InboundEvent, _: _Effects, __: Settings) -> str:
    data = _data(event)
    updated = await fulfilment.update_tracking(str(data["tracking_no"]), list(data["events"]), event.version)
    return APPLIED if updated else STALE


async def _order_delivered(event: InboundEvent, _: _Effects, settings: Settings) -> str:
    data = _data(event)
    await fulfilment.deliver(
        str(data["order_no"]),
        _parse_time(data["delivered_at"]),
        auto_confirm_days=settings.order_auto_confirm_days,
    )
    return APPLIED


_APPLIERS: dict[str, Applier] = {
    INVENTORY_CHANGED: _inventory_changed,
    PRICE_CHANGED: _price_changed,
    PRODUCT_UPSERTED: _product_upserted,
    SHIPMENT_CREATED: _shipment_created,
    SHIPMENT_TRACKING: _shipment_tracking,
    ORDER_DELIVERED: _order_delivered,
}


def _data(event: InboundEvent) -> dict[str, Any]:
    # Validated at receipt against the event type's shape (integrations/erp_webhook.py).
    return cast(dict[str, Any], event.payload)


def _parse_time(value: object) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, BusinessError):
        return f"{exc.code}: {exc.message}"[:_MAX_ERROR_CHARS]
    return (str(exc) if isinstance(exc, EventRejected) else f"{type(exc).__name__}: {exc}")[:_MAX_ERROR_CHARS]


async def _apply_group(cache: Cache, settings: Settings, events: Sequence[InboundEvent]) -> int:
    """Apply events in one transaction; returns how many this call claimed (applied, stale or failed)."""
    effects = _Effects()
    claimed_count = 0
    now = datetime.now(UTC)
    async with in_transaction():
        for event in events:
            # The claim: a second applier's update finds no PENDING row and skips the event.
            claimed = await InboundEvent.filter(id=event.id, status=PENDING).update(
                status=APPLIED, applied_at=now, last_error=""
            )
            if not claimed:
                continue
            claimed_count += 1
            apply = _APPLIERS.get(event.type)
            try:
                if apply is None:
                    raise EventRejected(f"no applier for event type {event.type!r}")
                outcome, error = await apply(event, effects, settings), ""
            except (EventRejected, BusinessError) as exc:
                outcome, error = FAILED, _error_text(exc)
                log.warning("ERP event %s (%s) failed: %s", event.event_id, event.type, error)
            if outcome != APPLIED:
                await InboundEvent.filter(id=event.id).update(status=outcome, last_error=error)
        await effects.write(cache)
    await effects.invalidate(cache)
    return claimed_count


async def _apply_chunk(cache: Cache, settings: Settings, ids: Sequence[int]) -> int:
    events = await InboundEvent.filter(id__in=list(ids), source=SOURCE, status=PENDING).order_by("id")
    if not events:
        return 0
    try:
        return await _apply_group(cache, settings, events)
    except Exception:  # e.g. a deadlock with another applier: retry one event per transaction
        log.warning("applying %d ERP events together failed; applying one by one", len(events), exc_info=True)
    done = 0
    for event in events:
        try:
            done += await _apply_group(cache, settings, [event])
        except Exception as exc:  # presumed transient: the event stays PENDING for the next sweep
            log.exception("ERP event %s (%s) could not be applied", event.event_id, event.type)
            await InboundEvent.filter(id=event.id, status=PENDING).update(last_error=_error_text(exc))
    return done


async def apply_events(cache: Cache, event_ids: Sequence[int], *, settings: Settings | None = None) -> int:
    """Apply these stored events that are still PENDING, oldest first; returns how many left PENDING."""
    settings = settings or load_settings()
    ids = sorted(set(event_ids))
    done = 0
    for start in range(0, len(ids), APPLY_CHUNK):
        done += await _apply_chunk(cache, settings, ids[start : start + APPLY_CHUNK])
    return done


async def apply_pending(cache: Cache, limit: int = 500, *, settings: Settings | None = None) -> int:
    """The worker's sweep: apply up to `limit` PENDING ERP events, oldest first; returns how many."""
    rows = await InboundEvent.filter(source=SOURCE, status=PENDING).order_by("id").limit(limit).values("id")
    ids = [int(row["id"]) for row in rows]
    return await apply_events(cache, ids, settings=settings) if ids else 0


@handler(APPLY_TOPIC)
async def apply_events_message(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Outbox fallback for a batch the endpoint stored but did not get to apply (usually a no-op)."""
    ids = [int(i) for i in payload.get("event_ids", [])]
    await apply_events(ctx.services.cache, ids, settings=ctx.services.settings)
    left = await InboundEvent.filter(id__in=ids, status=PENDING).count() if ids else 0
    if left:
        raise RuntimeError(f"{left} ERP events still PENDING")  # retried with the outbox's backoff
