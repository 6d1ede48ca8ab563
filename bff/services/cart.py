"""Cart rules: which lines can be bought, and the mutations that keep quantities within stock."""

from __future__ import annotations

from collections.abc import Sequence

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bff.models.cart import CartItem
from bff.models.catalog import Product, Sku
from bff.services.errors import BusinessError

MAX_LINE_QUANTITY = 999
MAX_CART_LINES = 100

# Why a line cannot be bought now (CartItemUnavailableReason in GraphQL).
OFF_SHELF = "OFF_SHELF"
SOLD_OUT = "SOLD_OUT"
INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
SKU_REMOVED = "SKU_REMOVED"


def unavailable_reason(sku_exists: bool, on_shelf: bool, stock: int, quantity: int) -> str | None:
    """Why a cart line cannot be bought now, or None when it can."""
    if not sku_exists:
        return SKU_REMOVED
    if not on_shelf:
        return OFF_SHELF
    if stock <= 0:
        return SOLD_OUT
    if stock < quantity:
        return INSUFFICIENT_STOCK
    return None


def _check_quantity(quantity: int) -> None:
    if quantity < 1 or quantity > MAX_LINE_QUANTITY:
        raise BusinessError("INVALID_INPUT", f"数量须在 1 到 {MAX_LINE_QUANTITY} 之间", "quantity")


def _out_of_stock(stock: int) -> BusinessError:
    if stock <= 0:
        return BusinessError("OUT_OF_STOCK", "该规格已售罄", "quantity")
    return BusinessError("OUT_OF_STOCK", f"库存不足，最多可购买 {stock} 件", "quantity")


async def _buyable_stock(sku_id: int) -> int:
    sku = await Sku.get_or_none(id=sku_id)
    if sku is None:
        raise BusinessError("NOT_FOUND", "商品规格不存在", "skuId")
    if not await Product.filter(id=sku.product_id, on_shelf=True).exists():
        raise BusinessError("PRODUCT_UNAVAILABLE", "商品已下架", "skuId")
    return buyable(sku)


def buyable(sku: Sku) -> int:
    """What shoppers can still buy of a SKU: the ERP's stock less unpaid orders' reservations."""
    return max(0, sku.stock - sku.reserved)


async def add_to_cart(member_id: int, sku_id: int, quantity: int) -> None:
    """Add `quantity` of a SKU to the cart (merging with an existing line) within its stock."""
    _check_quantity(quantity)
    stock = await _buyable_stock(sku_id)
    for _ in range(2):
        # The conditional update merges into an existing line only while the total stays within stock.
        updated = await CartItem.filter(
            member_id=member_id, sku_id=sku_id, quantity__lte=min(stock, MAX_LINE_QUANTITY) - quantity
        ).update(quantity=F("quantity") + quantity, selected=True)
        if updated:
            return
        existing = await CartItem.get_or_none(member_id=member_id, sku_id=sku_id)
        if existing is not None:
            if existing.quantity + quantity > MAX_LINE_QUANTITY:
                raise BusinessError("INVALID_INPUT", f"单个商品最多加购 {MAX_LINE_QUANTITY} 件", "quantity")
            raise _out_of_stock(stock - existing.quantity)
        if quantity > stock:
            raise _out_of_stock(stock)
        if await CartItem.filter(member_id=member_id).count() >= MAX_CART_LINES:
            raise BusinessError("CART_FULL", f"购物车最多放 {MAX_CART_LINES} 种商品", "skuId")
        try:
            await CartItem.create(member_id=member_id, sku_id=sku_id, quantity=quantity, selected=True)
            return
        except IntegrityError:
            continue  # a concurrent add created the line first: merge into it
    raise BusinessError("INVALID_INPUT", "购物车正忙，请重试", "skuId")


async def update_cart_item(member_id: int, item_id: int, quantity: int | None, selected: bool | None) -> None:
    """Change a line's quantity (within stock) and/or whether it is selected for checkout."""
    item = await CartItem.get_or_none(id=item_id, member_id=member_id)
    if item is None:
        raise BusinessError("NOT_FOUND", "购物车中没有这件商品", "itemId")
    changes: dict[str, object] = {}
    if quantity is not None:
        _check_quantity(quantity)
        sku = await Sku.get_or_none(id=item.sku_id)
        stock = buyable(sku) if sku is not None else 0
        if quantity > item.quantity and quantity > stock:
            raise _out_of_stock(stock)
        changes["quantity"] = quantity
    if selected is not None:
        changes["selected"] = selected
    if changes:
        await CartItem.filter(id=item.id).update(**changes)


async def remove_cart_items(member_id: int, item_ids: Sequence[int]) -> None:
    """Remove lines from the cart; if any id is not in this member's cart nothing is removed."""
    wanted = set(item_ids)
    if not wanted:
        raise BusinessError("INVALID_INPUT", "请选择要删除的商品", "itemIds")
    async with in_transaction():
        owned = await CartItem.filter(member_id=member_id, id__in=list(wanted)).count()
        if owned != len(wanted):
            raise BusinessError("NOT_FOUND", "购物车中没有这些商品", "itemIds")
        await CartItem.filter(member_id=member_id, id__in=list(wanted)).delete()
