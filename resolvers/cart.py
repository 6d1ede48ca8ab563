"""Cart entry points: the cart screen and its mutations."""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.ids import decode_id, decode_ids
from bff.services import cart as cart_service
from bff.services.errors import BusinessError
from loaders.registry import forget
from schema.cart import Cart, CartPayload, build_cart
from schema.common import user_errors


async def _fresh_cart(info: Info, member_id: int) -> Cart:
    # The mutation changed the lines: drop what this request already loaded of them.
    loaders = info.context.loaders
    forget(loaders.cart_items_by_member, member_id)
    forget(loaders.cart_quantity, member_id)
    loaders.sku_by_id.clear_all()
    return await build_cart(info, member_id)


@strawberry.type
class CartQuery:
    @strawberry.field(description="The signed-in member's cart, priced now.")
    async def cart(self, info: Info) -> Cart:
        return await build_cart(info, info.context.require_member())


@strawberry.type
class CartMutation:
    @strawberry.mutation
    async def add_to_cart(self, info: Info, sku_id: strawberry.ID, quantity: int) -> CartPayload:
        try:
            member_id = info.context.acting_member()
            pk = decode_id(str(sku_id), "Sku")
            if pk is None:
                raise BusinessError("NOT_FOUND", "商品规格不存在", "skuId")
            await cart_service.add_to_cart(member_id, pk, quantity)
        except BusinessError as exc:
            return CartPayload(cart=None, user_errors=user_errors(exc))
        return CartPayload(cart=await _fresh_cart(info, member_id), user_errors=[])

    @strawberry.mutation
    async def update_cart_item(
        self, info: Info, item_id: strawberry.ID, quantity: int | None = None, selected: bool | None = None
    ) -> CartPayload:
        try:
            member_id = info.context.acting_member()
            pk = decode_id(str(item_id), "CartItem")
            if pk is None:
                raise BusinessError("NOT_FOUND", "购物车中没有这件商品", "itemId")
            await cart_service.update_cart_item(member_id, pk, quantity, selected)
        except BusinessError as exc:
            return CartPayload(cart=None, user_errors=user_errors(exc))
        return CartPayload(cart=await _fresh_cart(info, member_id), user_errors=[])

    @strawberry.mutation
    async def remove_cart_items(self, info: Info, item_ids: list[strawberry.ID]) -> CartPayload:
        try:
            member_id = info.context.acting_member()
            pks = decode_ids([str(i) for i in item_ids], "CartItem")
            if pks is None:
                raise BusinessError("NOT_FOUND", "购物车中没有这些商品", "itemIds")
            await cart_service.remove_cart_items(member_id, pks)
        except BusinessError as exc:
            return CartPayload(cart=None, user_errors=user_errors(exc))
        return CartPayload(cart=await _fresh_cart(info, member_id), user_errors=[])
