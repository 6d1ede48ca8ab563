"""Address book rules: validation, one default address, a bounded book."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from bff.models.member import Address
from bff.services.errors import BusinessError

MAX_ADDRESSES = 20
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


@dataclass(frozen=True)
class AddressFields:
    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str
    is_default: bool


def _text(value: str, field: str, label: str, low: int, high: int) -> str:
    cleaned = value.strip()
    if not low <= len(cleaned) <= high:
        raise BusinessError("INVALID_INPUT", f"{label}须为 {low}-{high} 个字", field)
    return cleaned


def validate(fields: AddressFields) -> AddressFields:
    """Trimmed, checked fields; the first problem found is a BusinessError naming the field."""
    phone = re.sub(r"[\s-]", "", fields.phone)
    if not _MOBILE.match(phone):
        raise BusinessError("INVALID_INPUT", "请填写正确的 11 位手机号", "phone")
    return AddressFields(
        name=_text(fields.name, "name", "收货人", 1, 20),
        phone=phone,
        province=_text(fields.province, "province", "省份", 1, 20),
        city=_text(fields.city, "city", "城市", 1, 20),
        district=_text(fields.district, "district", "区县", 1, 20),
        detail=_text(fields.detail, "detail", "详细地址", 2, 120),
        is_default=fields.is_default,
    )


async def save_address(member_id: int, address_id: int | None, fields: AddressFields) -> Address:
    """Add (address_id None) or edit an address; the first one, or one marked default, becomes the default."""
    clean = validate(fields)
    async with in_transaction():
        count = await Address.filter(member_id=member_id).count()
        if address_id is None:
            if count >= MAX_ADDRESSES:
                raise BusinessError("ADDRESS_LIMIT_REACHED", f"最多保存 {MAX_ADDRESSES} 个地址")
            make_default = clean.is_default or count == 0
            address = await Address.create(
                member_id=member_id, **{**clean.__dict__, "is_default": make_default}
            )
        else:
            found = await Address.get_or_none(id=address_id, member_id=member_id)
            if found is None:
                raise BusinessError("NOT_FOUND", "地址不存在", "id")
            address = found
            # There is always exactly one default: unticking it on the default address keeps it.
            make_default = clean.is_default or address.is_default
            for key, value in clean.__dict__.items():
                setattr(address, key, value)
            address.is_default = make_default
            await address.save()
        if make_default:
            await (
                Address.filter(member_id=member_id, is_default=True)
                .exclude(id=address.id)
                .update(is_default=False)
            )
    return address


async def delete_address(member_id: int, address_id: int) -> None:
    """Delete an address; if it was the default, the newest remaining one takes over."""
    async with in_transaction():
        address = await Address.get_or_none(id=address_id, member_id=member_id)
        if address is None:
            raise BusinessError("NOT_FOUND", "地址不存在", "id")
        await address.delete()
        if address.is_default:
            successor = await Address.filter(member_id=member_id).order_by("-id").first()
            if successor is not None:
                await Address.filter(id=successor.id).update(is_default=True)
