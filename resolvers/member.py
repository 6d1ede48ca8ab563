"""Member entry points: the viewer and the address book."""

from __future__ import annotations

import strawberry

from bff.context import Info
from bff.ids import encode_id
from bff.services import addresses
from bff.services.errors import BusinessError
from loaders.registry import forget
from schema.common import user_errors
from schema.member import (
    Address,
    AddressInput,
    DeleteAddressPayload,
    Member,
    SaveAddressPayload,
    address_pk,
)


@strawberry.type
class MemberQuery:
    @strawberry.field(description="The signed-in member; null for anonymous visitors.")
    async def viewer(self, info: Info) -> Member | None:
        member_id = info.context.member_id
        if member_id is None:
            return None
        row = await info.context.loaders.member_by_id.load(member_id)
        return Member.from_model(row) if row is not None else None


@strawberry.type
class MemberMutation:
    @strawberry.mutation(description="Add an address (no `id`) or edit one.")
    async def save_address(self, info: Info, input: AddressInput) -> SaveAddressPayload:
        fields = addresses.AddressFields(
            name=input.name,
            phone=input.phone,
            province=input.province,
            city=input.city,
            district=input.district,
            detail=input.detail,
            is_default=bool(input.is_default),
        )
        try:
            member_id = info.context.acting_member()
            pk = None
            if input.id is not None:
                pk = address_pk(input.id)
                if pk is None:
                    raise BusinessError("NOT_FOUND", "地址不存在", "id")
            saved = await addresses.save_address(member_id, pk, fields)
        except BusinessError as exc:
            return SaveAddressPayload(address=None, user_errors=user_errors(exc))
        forget(info.context.loaders.addresses_by_member, member_id)
        return SaveAddressPayload(address=Address.from_model(saved), user_errors=[])

    @strawberry.mutation
    async def delete_address(self, info: Info, id: strawberry.ID) -> DeleteAddressPayload:
        pk = address_pk(id)
        try:
            member_id = info.context.acting_member()
            if pk is None:
                raise BusinessError("NOT_FOUND", "地址不存在", "id")
            await addresses.delete_address(member_id, pk)
        except BusinessError as exc:
            return DeleteAddressPayload(deleted_id=None, user_errors=user_errors(exc))
        forget(info.context.loaders.addresses_by_member, member_id)
        return DeleteAddressPayload(deleted_id=strawberry.ID(encode_id("Address", pk)), user_errors=[])
