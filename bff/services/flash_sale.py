"""Flash sales (秒杀): the FLASH_SALE campaign handler, which cannot oversell.

Two guards, in this order. The counter store (one Redis Lua script shared by every process, or an
in-process store) reserves stock and the per-member limit in one atomic step and turns most attempts
away before the database is touched. Then, inside the order transaction, a conditional UPDATE of
`flash_sale_item.sold` is the final word on stock, and the item row it locks serialises the
per-member check: the database is the record, and the counters are seeded from it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import F, RawSQL

from bff.counters import CounterStore, CounterUnavailable, MemoryCounterStore, Outcome
from bff.models.marketing import FlashSale, FlashSaleItem, FlashSalePurchase
from bff.models.order import Order
from bff.services.campaign_checkout import FLASH_SALE, CampaignLine, CampaignRef, register
from bff.services.errors import BusinessError
from bff.services.outbox import HandlerContext, enqueue, handler

log = logging.getLogger("bff.flash_sale")

RESERVED = "RESERVED"
PAID = "PAID"
RELEASED = "RELEASED"
GIVE_BACK_TOPIC = "flash_sale.give_back"

# An in-process store sees neither other processes' sales nor releases run by a separate worker:
# it re-reads the database this often, so it can never stay wrong for long.
LOCAL_SEED_TTL = 2.0
# Shared counters live until the sale ends (then nothing reserves), plus a margin for late releases.
SHARED_SEED_MARGIN = 3600.0
_SEED_ATTEMPTS = 3

_counters: CounterStore = MemoryCounterStore()


def configure(counters: CounterStore) -> CounterStore:
    """Reserve through `counters` from now on; returns the store it replaces (to restore it later)."""
    global _counters
    previous, _counters = _counters, counters
    return previous


def counters() -> CounterStore:
    """The counter store flash-sale purchases reserve through."""
    return _counters


def pool_key(item_id: int) -> str:
    """The counter pool of one flash-sale item."""
    return f"flash:{item_id}"


def member_limit(item: FlashSaleItem) -> int:
    """The most one member may hold of the item; 0 or less means only the stock limits them."""
    return item.per_member_limit if item.per_member_limit > 0 else item.stock_total


async def held_by(item_id: int, member_id: int) -> int:
    """What a member holds of an item in the database: reserved (unpaid) plus paid quantities."""
    rows = await FlashSalePurchase.filter(
        item_id=item_id, member_id=member_id, status__in=(RESERVED, PAID)
    ).values("quantity")
    return sum(int(row["quantity"]) for row in rows)


def _sold_out(left: int) -> BusinessError:
    message = f"手慢了，仅剩 {left} 件" if left > 0 else "手慢了，秒杀商品已抢光"
    return BusinessError("SOLD_OUT", message, "campaign")


def _over_limit(limit: int, held: int | None = None) -> BusinessError:
    mine = f"，您已抢到 {held} 件" if held else ""
    return BusinessError("LIMIT_REACHED", f"每人限购 {limit} 件{mine}", "campaign")


def _busy() -> BusinessError:
    return BusinessError("RATE_LIMITED", "抢购人数太多，请稍后再试", "campaign")


async def _running_item(item_id: int, now: datetime) -> FlashSaleItem:
    item = await FlashSaleItem.filter(id=item_id).select_related("flash_sale").first()
    if item is None:
        raise BusinessError("NOT_FOUND", "秒杀商品不存在", "campaign")
    sale = item.flash_sale
    if now < sale.starts_at:
        raise BusinessError("INVALID_STATE", "秒杀尚未开始", "campaign")
    if now >= sale.ends_at:
        raise BusinessError("INVALID_STATE", "秒杀已结束", "campaign")
    return item


def _quantity(item: FlashSaleItem, lines: Sequence[tuple[int, int]]) -> int:
    if not lines:
        raise BusinessError("INVALID_INPUT", "秒杀商品请选择规格后立即购买", "lines")
    if any(sku_id != item.sku_id for sku_id, _ in lines):
        raise BusinessError("INVALID_INPUT", "该规格不在此秒杀活动中", "lines")
    if any(quantity < 1 for _, quantity in lines):
        raise BusinessError("INVALID_INPUT", "数量至少为 1", "lines")
    return sum(quantity for _, quantity in lines)


async def _seed(item: FlashSaleItem, member_id: int, now: datetime) -> None:
    sale = await FlashSale.get(id=item.flash_sale_id)
    ttl = max(1.0, (sale.ends_at - now).total_seconds()) + SHARED_SEED_MARGIN
    if not _counters.shared:
        ttl = min(ttl, LOCAL_SEED_TTL)
    await _counters.seed(
        pool_key(item.id),
        max(0, item.stock_total - item.sold),
        str(member_id),
        await held_by(item.id, member_id),
        ttl,
    )


async def give_back(item_id: int, member_id: int, quantity: int, token: str) -> None:
    """Return quantity to the counters once per token; queued for the worker when they cannot answer."""
    try:
        await _counters.release(pool_key(item_id), str(member_id), quantity, token)
    except CounterUnavailable as exc:
        log.warning("flash-sale give-back of item %s queued for retry: %s", item_id, exc)
        payload = {"item_id": item_id, "member_id": member_id, "quantity": quantity, "token": token}
        try:
            await enqueue(GIVE_BACK_TOPIC, payload, dedupe_key=f"flash-give-back:{token}")
        except Exception:
            # Never mask the failure that made the caller give back; the counters stay low (not
            # oversold) until they expire and are seeded again from the database.
            log.exception("flash-sale give-back of item %s lost", item_id)


async def stock_edited(item_id: int) -> None:
    """Call after an operator changes an item's stock_total: the counters re-read it from the database."""
    await _counters.forget(pool_key(item_id))


class FlashSaleHandler:
    """The FLASH_SALE hooks of checkout (see `bff.services.campaign_checkout`)."""

    kinds: tuple[str, ...] = (FLASH_SALE,)

    async def quote(self, member_id: int, ref: CampaignRef, lines: Sequence[tuple[int, int]]) -> CampaignLine:
        """The item's line at its flash price, if the sale runs and the database shows room for it."""
        item = await _running_item(ref.ref_id, datetime.now(UTC))
        quantity = _quantity(item, lines)
        limit = member_limit(item)
        held = await held_by(item.id, member_id)
        if held + quantity > limit:
            raise _over_limit(limit, held)
        if item.sold + quantity > item.stock_total:
            raise _sold_out(item.stock_total - item.sold)
        return CampaignLine(sku_id=item.sku_id, quantity=quantity, unit_price_fen=item.flash_price_fen)

    async def pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None:
        """Reserve stock and the member's limit in the counters, in one atomic step."""
        now = datetime.now(UTC)
        item = await FlashSaleItem.get(id=ref.ref_id)
        limit = member_limit(item)
        pool, holder = pool_key(item.id), str(member_id)
        try:
            for _ in range(_SEED_ATTEMPTS):
                outcome = await _counters.reserve(pool, holder, line.quantity, limit)
                if outcome is not Outcome.UNSEEDED:
                    break
                await _seed(item, member_id, now)
        except CounterUnavailable as exc:
            log.warning("flash-sale counters unavailable, purchase refused: %s", exc)
            raise _busy() from exc
        if outcome is Outcome.SOLD_OUT:
            raise _sold_out(0)
        if outcome is Outcome.LIMIT_REACHED:
            raise _over_limit(limit)
        if outcome is Outcome.UNSEEDED:  # the counters expired under us three times: Redis is in trouble
            raise _busy()

    async def undo_pre_reserve(self, member_id: int, ref: CampaignRef, line: CampaignLine) -> None:
        """The order was not written: give the counters back what pre_reserve took."""
        await give_back(ref.ref_id, member_id, line.quantity, f"undo:{uuid.uuid4().hex}")

    async def hold(self, order: Order, ref: CampaignRef, line: CampaignLine) -> None:
        """Inside the order transaction: take the stock in the database and record the purchase."""
        quantity = int(line.quantity)
        taken = await FlashSaleItem.filter(
            id=ref.ref_id, stock_total__gte=RawSQL(f'"sold" + {quantity}')
        ).update(sold=F("sold") + quantity)
        if not taken:
            raise _sold_out(0)
        # The UPDATE holds the item's row lock (PostgreSQL) or the write lock (SQLite) until commit,
        # so no other purchase of this item changes this member's total between this read and the insert.
        item = await FlashSaleItem.get(id=ref.ref_id)
        limit = member_limit(item)
        held = await held_by(item.id, order.member_id)
        if held + quantity > limit:
            raise _over_limit(limit, held)
        await FlashSalePurchase.create(
            item_id=item.id, member_id=order.member_id, order_id=order.id, quantity=quantity, status=RESERVED
        )

    async def on_paid(self, order: Order) -> bool:
        """The reservation becomes a sale; flash orders ship at once."""
        paid = await FlashSalePurchase.filter(order_id=order.id, status=RESERVED).update(status=PAID)
        if not paid:
            log.warning("flash-sale order %s paid without a reserved purchase", order.order_no)
        return True

    async def on_released(self, order: Order) -> None:
        """The order closed unpaid: the stock returns to the sale, in the database and the counters."""
        purchase = await FlashSalePurchase.get_or_none(order_id=order.id)
        if purchase is None:
            return
        released = await FlashSalePurchase.filter(id=purchase.id, status=RESERVED).update(status=RELEASED)
        if not released:
            return
        await FlashSaleItem.filter(id=purchase.item_id, sold__gte=purchase.quantity).update(
            sold=F("sold") - purchase.quantity
        )
        # Through the outbox, in this transaction: the counters hear of the release exactly when it
        # commits, and a Redis outage only delays it.
        payload = {
            "item_id": purchase.item_id,
            "member_id": purchase.member_id,
            "quantity": purchase.quantity,
            "token": f"order:{order.id}",
        }
        await enqueue(GIVE_BACK_TOPIC, payload, dedupe_key=f"flash-give-back:order:{order.id}")


@handler(GIVE_BACK_TOPIC)
async def run_give_back(payload: dict[str, Any], ctx: HandlerContext) -> None:
    """Return a released hold to the counters (idempotent by token; retried while they cannot answer)."""
    await _counters.release(
        pool_key(int(payload["item_id"])),
        str(payload["member_id"]),
        int(payload["quantity"]),
        str(payload["token"]),
    )


HANDLER = register(FlashSaleHandler())
