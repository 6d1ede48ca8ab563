"""Types every domain uses: Money, page info, user errors and their codes."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import strawberry

from bff.services.errors import BusinessError
from bff.services.money import format_fen

CURRENCY = "CNY"
T = TypeVar("T")


@strawberry.type(description="An amount of money. `amount` is in fen (1/100 CNY); never a float.")
class Money:
    amount: int
    currency: str
    formatted: str


def money(fen: int) -> Money:
    """A Money value for an amount in fen."""
    return Money(amount=fen, currency=CURRENCY, formatted=format_fen(fen))


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.enum(description="Why a mutation did not do what was asked.")
class ErrorCode(enum.Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_CODE = "INVALID_CODE"
    WECHAT_UNAVAILABLE = "WECHAT_UNAVAILABLE"
    RATE_LIMITED = "RATE_LIMITED"
    RISKY_USER = "RISKY_USER"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PRODUCT_UNAVAILABLE = "PRODUCT_UNAVAILABLE"
    CART_FULL = "CART_FULL"
    ADDRESS_LIMIT_REACHED = "ADDRESS_LIMIT_REACHED"
    COUPON_NOT_APPLICABLE = "COUPON_NOT_APPLICABLE"
    PRICE_CHANGED = "PRICE_CHANGED"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    ADDRESS_REQUIRED = "ADDRESS_REQUIRED"
    POINTS_OVER_LIMIT = "POINTS_OVER_LIMIT"
    INVALID_STATE = "INVALID_STATE"
    PAYMENT_UNAVAILABLE = "PAYMENT_UNAVAILABLE"
    SOLD_OUT = "SOLD_OUT"
    LIMIT_REACHED = "LIMIT_REACHED"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    DUPLICATE = "DUPLICATE"
    ORDER_IN_PROGRESS = "ORDER_IN_PROGRESS"


@strawberry.type(description="A business failure: the mutation changed nothing.")
class UserError:
    code: ErrorCode
    field: str | None
    message: str


def user_error(code: ErrorCode, message: str, field: str | None = None) -> UserError:
    """One user error."""
    return UserError(code=code, field=field, message=message)


def user_errors(exc: BusinessError) -> list[UserError]:
    """The userErrors a service's BusinessError stands for."""
    return [user_error(ErrorCode(exc.code), exc.message, exc.field)]


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(
    description="A page of a list: edges, page info, and the total size (computed only if asked)."
)
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds (every page).")
    async def total_count(self) -> int:
        return await self.count()


def connection(
    nodes: list[T],
    cursors: list[str],
    has_next: bool,
    count: Callable[[], Awaitable[int]],
    has_previous: bool,
) -> Connection[T]:
    """A Connection from one page of nodes and their cursors."""
    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(cursors, nodes, strict=True)],
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
        count=count,
    )
