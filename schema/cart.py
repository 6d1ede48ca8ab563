"""Cart types: lines with current prices and stock, and the totals of what is selected."""

from __future__ import annotations

import asyncio
import enum

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.models.cart import CartItem as CartItemModel
from bff.services.cart import unavailable_reason
from bff.services.money import member_price
from bff.services.pricing import cart_totals
from loaders.catalog import ProductRow, SkuRow
from loaders.registry import Loaders
from schema.catalog import Sku
from schema.common import Money, UserError, money


@strawberry.enum(description="Why a cart line cannot be bought now.")
class CartItemUnavailableReason(enum.Enum):
    OFF_SHELF = "OFF_SHELF"
    SOLD_OUT = "SOLD_OUT"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    SKU_REMOVED = "SKU_REMOVED"


@strawberry.type
class CartItem:
    id: strawberry.ID
    quantity: int
    selected: bool
    sku: Sku | None
    unit_price: Money = strawberry.field(description="The current price at the member's level.")
    line_total: Money
    available: bool
    unavailable_reason: CartItemUnavailableReason | None


@strawberry.type
class CartSummary:
    items_total: Money = strawberry.field(description="List prices of the selected, available lines.")
    discount_total: Money
    payable: Money


@strawberry.type
class Cart:
    items: list[CartItem]
    selected_count: int = strawberry.field(description="Total quantity of selected, available lines.")
    summary: CartSummary


async def _lines(
    loaders: Loaders, member_id: int
) -> tuple[list[CartItemModel], list[SkuRow | None], dict[int, ProductRow]]:
    """The member's cart lines, each line's current SKU, and the SKUs' products by id."""
    rows: list[CartItemModel] = await loaders.cart_items_by_member.load(member_id)
    skus: list[SkuRow | None] = list(await loaders.sku_by_id.load_many([r.sku_id for r in rows]))
    products = await loaders.product_by_id.load_many([s.product_id for s in skus if s is not None])
    return rows, skus, {p.id: p for p in products if p is not None}


async def build_cart(info: Info, member_id: int) -> Cart:
    """The member's cart priced now: current SKU prices and stock, member discount applied."""
    # The viewer's level does not depend on the lines: load both at once.
    (rows, skus, product_by_id), level = await asyncio.gather(
        _lines(info.context.loaders, member_id), info.context.viewer_level()
    )
    discount = level.discount_percent if level is not None else 0

    items: list[CartItem] = []
    buy: list[tuple[int, int]] = []
    for row, sku in zip(rows, skus, strict=True):
        product = product_by_id.get(sku.product_id) if sku is not None else None
        reason = unavailable_reason(
            sku_exists=sku is not None and product is not None,
            on_shelf=product.on_shelf if product is not None else False,
            stock=sku.stock if sku is not None else 0,
            quantity=row.quantity,
        )
        unit = member_price(sku.price_fen, discount) if sku is not None else 0
        items.append(
            CartItem(
                id=strawberry.ID(encode_id("CartItem", row.id)),
                quantity=row.quantity,
                selected=row.selected,
                sku=Sku.from_row(sku, product) if sku is not None else None,
                unit_price=money(unit),
                line_total=money(unit * row.quantity),
                available=reason is None,
                unavailable_reason=CartItemUnavailableReason(reason) if reason else None,
            )
        )
        if reason is None and row.selected and sku is not None:
            buy.append((sku.price_fen, row.quantity))
    totals = cart_totals(buy, discount)
    return Cart(
        items=items,
        selected_count=sum(q for _, q in buy),
        summary=CartSummary(
            items_total=money(totals.items_total),
            discount_total=money(totals.discount_total),
            payable=money(totals.payable),
        ),
    )


@strawberry.type
class CartPayload:
    cart: Cart | None
    user_errors: list[UserError]
