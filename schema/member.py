"""Member types: the viewer, levels, points, coupons, addresses, order counts."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from bff.context import Info
from bff.ids import decode_id, encode_id
from bff.models.member import Address as AddressModel
from bff.models.member import Member as MemberModel
from bff.models.member import PointsLedger
from bff.pagination import decode_cursor, encode_cursor, page_size
from bff.services.privacy import consent_of
from loaders.member import LevelRow
from schema.common import Connection, Money, UserError, connection, money
from schema.marketing import MemberCoupon
from schema.order import Order, OrderStatusFilter
from schema.privacy import PrivacyConsent


@strawberry.type
class MemberLevel:
    name: str
    discount_percent: int = strawberry.field(description="Percent off list prices at this level (0-100).")
    free_shipping: bool
    benefits: list[str]

    @classmethod
    def from_row(cls, row: LevelRow) -> MemberLevel:
        return cls(
            name=row.name,
            discount_percent=row.discount_percent,
            free_shipping=row.free_shipping,
            benefits=row.benefits,
        )


@strawberry.type
class NextLevel:
    name: str
    growth_needed: int


@strawberry.type
class PointsEntry:
    id: strawberry.ID
    delta: int
    reason: str
    balance_after: int
    created_at: datetime

    @classmethod
    def from_model(cls, row: PointsLedger) -> PointsEntry:
        return cls(
            id=strawberry.ID(encode_id("PointsEntry", row.id)),
            delta=row.delta,
            reason=row.reason,
            balance_after=row.balance_after,
            created_at=row.created_at,
        )


@strawberry.type
class Address:
    id: strawberry.ID
    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str
    is_default: bool

    @classmethod
    def from_model(cls, row: AddressModel) -> Address:
        return cls(
            id=strawberry.ID(encode_id("Address", row.id)),
            name=row.name,
            phone=row.phone,
            province=row.province,
            city=row.city,
            district=row.district,
            detail=row.detail,
            is_default=row.is_default,
        )

    @strawberry.field
    def full_text(self) -> str:
        return f"{self.province}{self.city}{self.district}{self.detail}"


@strawberry.type
class OrderCounts:
    pending_payment: int
    paid: int
    shipped: int
    after_sale: int


@strawberry.enum
class CouponStatus(enum.Enum):
    UNUSED = "UNUSED"
    USED = "USED"
    EXPIRED = "EXPIRED"


@strawberry.type(description="The member's marketing profile from the CRM.")
class CrmProfile:
    tags: list[str]
    segment: str
    lifetime_value: Money
    preferred_category_codes: list[str]


@strawberry.type(description="A signed-in member, as they see themselves.")
class Member:
    id: strawberry.ID
    nickname: str
    avatar_url: str
    growth_value: int
    points_balance: int
    model: strawberry.Private[MemberModel]

    @classmethod
    def from_model(cls, row: MemberModel) -> Member:
        return cls(
            id=strawberry.ID(encode_id("Member", row.id)),
            nickname=row.nickname,
            avatar_url=row.avatar_url,
            growth_value=row.growth_value,
            points_balance=row.points_balance,
            model=row,
        )

    @strawberry.field
    async def level(self, info: Info) -> MemberLevel | None:
        levels = await info.context.loaders.levels()
        row = next((lv for lv in levels if lv.id == self.model.level_id), None)
        return MemberLevel.from_row(row) if row is not None else None

    @strawberry.field(description="The level above this member's, or null at the top.")
    async def next_level(self, info: Info) -> NextLevel | None:
        levels = await info.context.loaders.levels()
        current = next((lv for lv in levels if lv.id == self.model.level_id), None)
        rank = current.rank if current is not None else -1
        higher = [lv for lv in levels if lv.rank > rank]
        if not higher:
            return None
        target = min(higher, key=lambda lv: lv.rank)
        return NextLevel(name=target.name, growth_needed=max(0, target.min_growth - self.model.growth_value))

    @strawberry.field(description="Points changes, newest first.")
    async def points_ledger(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[PointsEntry]:
        n = page_size(first)
        cursor = decode_cursor(after, 1)
        before_id = int(cursor[0]) if cursor is not None else None
        rows, total = await info.context.loaders.points_page.load((self.model.id, n, before_id))

        async def count() -> int:
            return total

        page = rows[:n]
        return connection(
            [PointsEntry.from_model(r) for r in page],
            [encode_cursor([r.id]) for r in page],
            has_next=len(rows) > n,
            count=count,
            has_previous=before_id is not None,
        )

    @strawberry.field
    async def coupons(self, info: Info, status: CouponStatus = CouponStatus.UNUSED) -> list[MemberCoupon]:
        rows = await info.context.loaders.coupons_by_member_status.load((self.model.id, status.value))
        return [MemberCoupon.from_models(r, r.template, status.value) for r in rows]

    @strawberry.field
    async def addresses(self, info: Info) -> list[Address]:
        return [
            Address.from_model(a) for a in await info.context.loaders.addresses_by_member.load(self.model.id)
        ]

    @strawberry.field
    async def order_counts(self, info: Info) -> OrderCounts:
        row = await info.context.loaders.order_counts.load(self.model.id)
        return OrderCounts(
            pending_payment=row.pending_payment, paid=row.paid, shipped=row.shipped, after_sale=row.after_sale
        )

    @strawberry.field(description="The member's orders on one status tab, newest first.")
    async def orders(
        self,
        info: Info,
        status: OrderStatusFilter = OrderStatusFilter.ALL,
        first: int | None = 10,
        after: str | None = None,
    ) -> Connection[Order]:
        n = page_size(first, default=10)
        cursor = decode_cursor(after, 1)
        before_id = int(cursor[0]) if cursor is not None else None
        rows, total = await info.context.loaders.order_page.load((self.model.id, status.value, n, before_id))

        async def count() -> int:
            return total

        page = rows[:n]
        return connection(
            [Order.from_model(r) for r in page],
            [encode_cursor([r.id]) for r in page],
            has_next=len(rows) > n,
            count=count,
            has_previous=before_id is not None,
        )

    @strawberry.field(description="Tags and segment from the CRM; null when the CRM cannot answer.")
    async def crm_profile(self, info: Info) -> CrmProfile | None:
        profile = await info.context.loaders.crm_profile.load(self.model.id)
        if profile is None:
            return None
        return CrmProfile(
            tags=profile["tags"],
            segment=profile["segment"],
            lifetime_value=money(profile["lifetime_value_fen"]),
            preferred_category_codes=profile["preferred_category_codes"],
        )

    @strawberry.field(description="Total quantity in the cart (the cart tab's badge).")
    async def cart_item_count(self, info: Info) -> int:
        return await info.context.loaders.cart_quantity.load(self.model.id)

    @strawberry.field(description="Spendable coupons: unused and not expired.")
    async def unused_coupon_count(self, info: Info) -> int:
        return await info.context.loaders.unused_coupon_count.load(self.model.id)

    @strawberry.field(description="The privacy policy version the member accepted; is it current.")
    def privacy_consent(self, info: Info) -> PrivacyConsent:
        current = info.context.settings.privacy_policy_version
        return PrivacyConsent.from_consent(consent_of(self.model, current))


@strawberry.type
class LoginMember(Member):
    is_new: bool = strawberry.field(description="True when this login registered the member.")


@strawberry.type
class LoginPayload:
    token: str | None
    expires_at: datetime | None
    member: LoginMember | None
    user_errors: list[UserError]


@strawberry.input(description="Omit `id` to add an address; give it to edit one.")
class AddressInput:
    id: strawberry.ID | None = None
    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str
    is_default: bool | None = False


@strawberry.type
class SaveAddressPayload:
    address: Address | None
    user_errors: list[UserError]


@strawberry.type
class DeleteAddressPayload:
    deleted_id: strawberry.ID | None
    user_errors: list[UserError]


def address_pk(opaque: strawberry.ID) -> int | None:
    """The pk inside an Address ID."""
    return decode_id(str(opaque), "Address")
