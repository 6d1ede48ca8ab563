"""The soak's verdict: what the shoppers were told, set against what the database holds at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bench.soak_shopper import CATALOG_SCREENS, Tally
from bff.models.catalog import Sku
from bff.models.marketing import FlashSaleItem, FlashSalePurchase
from bff.models.member import Member
from bff.models.order import Order, Payment
from bff.models.outbox import InboundEvent


@dataclass(frozen=True)
class Verdict:
    """Each count the report states; `passed` holds when every must-be-zero count is zero."""

    catalog_5xx: int
    catalog_failures: int  # 5xx, transport errors and GraphQL errors on catalog screens
    orders_answered: int
    orders_in_db: int
    orders_lost: int  # answered to the shopper, missing from the database
    orders_duplicated: int  # more than one order for one idempotency key
    orders_unanswered: int  # in the database, the shopper never got the answer (retries all failed)
    flash_stock: int
    flash_sold: int
    flash_told_bought: int
    flash_oversold: int
    sku_oversold: int  # SKUs with more reserved than in stock, or negative stock
    payments_acknowledged: int
    payments_applied_once: int
    payments_not_applied: int
    payments_duplicated: int
    webhooks_accepted: int
    webhooks_applied_once: int
    webhooks_stale: int  # processed once and skipped: a newer version of the SKU was applied first
    webhooks_not_applied: int
    webhooks_duplicated: int
    webhook_skus_behind: int  # SKUs whose stock_version is not the last version the ERP sent

    @property
    def passed(self) -> bool:
        """True when nothing was lost, duplicated, oversold or answered 5xx on a catalog screen."""
        return not any(
            (
                self.catalog_5xx,
                self.orders_lost,
                self.orders_duplicated,
                self.flash_oversold,
                self.sku_oversold,
                self.payments_not_applied,
                self.payments_duplicated,
                self.webhooks_not_applied,
                self.webhooks_duplicated,
                self.webhook_skus_behind,
            )
        )


async def judge(
    tally: Tally,
    run: str,
    flash_item_id: int,
    sku_ids: list[int],
    event_ids: list[str],
    last_versions: dict[str, int],
) -> Verdict:
    """Count everything the soak promises, from the tally and the database."""
    members = await Member.filter(openid__startswith=f"o_soak{run}s").values_list("id", flat=True)
    orders = await Order.filter(member_id__in=list(members)).values(
        "id", "order_no", "idempotency_key", "status"
    )
    by_key = Counter(str(o["idempotency_key"]) for o in orders)
    ids = {int(o["id"]) for o in orders}
    answered_ids = set(tally.placed.values())

    item = await FlashSaleItem.get(id=flash_item_id)
    held = sum(
        int(p["quantity"])
        for p in await FlashSalePurchase.filter(
            item_id=flash_item_id, status__in=["RESERVED", "PAID"]
        ).values("quantity")
    )
    skus = await Sku.filter(id__in=sku_ids).values("stock", "reserved")
    versions = {
        str(r["code"]): int(r["stock_version"])
        for r in await Sku.filter(code__in=list(last_versions)).values("code", "stock_version")
    }

    order_no_to_id = {str(o["order_no"]): int(o["id"]) for o in orders}
    notified = [order_no_to_id[n] for n in tally.notified if n in order_no_to_id]
    payments = Counter(
        int(p["order_id"]) for p in await Payment.filter(order_id__in=notified).values("order_id")
    )
    paid_status = {int(o["id"]) for o in orders if o["status"] != "PENDING_PAYMENT"}

    stored = await InboundEvent.filter(source="erp", event_id__in=event_ids).values("event_id", "status")
    events = Counter(str(e["event_id"]) for e in stored if e["status"] in ("APPLIED", "STALE"))
    stale = {str(e["event_id"]) for e in stored if e["status"] == "STALE"}
    catalog_5xx = sum(tally.server_errors[s] for s in CATALOG_SCREENS)
    return Verdict(
        catalog_5xx=catalog_5xx,
        catalog_failures=catalog_5xx
        + sum(tally.transport_errors[s] + tally.graphql_errors[s] for s in CATALOG_SCREENS),
        orders_answered=len(tally.placed),
        orders_in_db=len(orders),
        orders_lost=len(answered_ids - ids),
        orders_duplicated=sum(n - 1 for n in by_key.values() if n > 1),
        orders_unanswered=len(ids - answered_ids),
        flash_stock=item.stock_total,
        flash_sold=item.sold,
        flash_told_bought=tally.flash_units,
        flash_oversold=max(0, item.sold - item.stock_total) + max(0, held - item.stock_total),
        sku_oversold=sum(1 for s in skus if s["stock"] < 0 or s["reserved"] > s["stock"]),
        payments_acknowledged=len(tally.notified),
        payments_applied_once=sum(1 for o in notified if payments[o] == 1 and o in paid_status),
        payments_not_applied=sum(1 for o in notified if payments[o] == 0 or o not in paid_status)
        + (len(tally.notified) - len(notified)),
        payments_duplicated=sum(1 for o in notified if payments[o] > 1),
        webhooks_accepted=len(event_ids),
        webhooks_applied_once=sum(1 for e in event_ids if events[e] == 1 and e not in stale),
        webhooks_stale=sum(1 for e in event_ids if events[e] == 1 and e in stale),
        webhooks_not_applied=sum(1 for e in event_ids if events[e] == 0),
        webhooks_duplicated=sum(1 for e in event_ids if events[e] > 1),
        webhook_skus_behind=sum(1 for code, v in last_versions.items() if versions.get(code) != v),
    )
