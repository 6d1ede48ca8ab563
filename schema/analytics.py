"""Operators' dashboard types: traffic, funnel, retention, sales, search and campaign figures."""

from __future__ import annotations

import enum
from datetime import date

import strawberry

from bff.ids import encode_id
from bff.pagination import page_size
from bff.services import dashboard as figures
from schema.common import Money, money

# The GraphQL type of a campaign id, by reported campaign kind.
_CAMPAIGN_TYPES = {
    "FLASH_SALE": "FlashSale",
    "GROUP_BUY": "GroupBuyCampaign",
    "BARGAIN": "BargainCampaign",
    "PRESALE": "PresaleCampaign",
}
DEFAULT_TOP = 10


@strawberry.input(description="Shop-local calendar days (UTC+8), both ends inclusive; at most 366 days.")
class DateRangeInput:
    from_: date = strawberry.field(name="from")
    to: date


@strawberry.type(description="Shop-local calendar days (UTC+8), both ends inclusive.")
class DateRange:
    from_: date = strawberry.field(name="from")
    to: date


@strawberry.enum(description="How trend points and retention cohorts are bucketed.")
class Granularity(enum.Enum):
    DAY = "DAY"
    WEEK = "WEEK"


@strawberry.enum(description="A step of the purchase funnel.")
class DashboardFunnelStepName(enum.Enum):
    VIEW = "VIEW"
    ADD_TO_CART = "ADD_TO_CART"
    CHECKOUT = "CHECKOUT"
    PAY = "PAY"


@strawberry.enum(description="The kind of campaign an order was bought in; NONE for regular orders.")
class DashboardCampaignKind(enum.Enum):
    FLASH_SALE = "FLASH_SALE"
    GROUP_BUY = "GROUP_BUY"
    BARGAIN = "BARGAIN"
    PRESALE = "PRESALE"
    NONE = "NONE"


@strawberry.type(description="The headline figures of the range.")
class DashboardSummary:
    visitors: int = strawberry.field(description="Distinct visitors (UV) with any event in the range.")
    page_views: int
    orders: int = strawberry.field(description="Orders created in the range, any status.")
    paid_orders: int = strawberry.field(description="Orders paid in the range.")
    paying_members: int
    gmv: Money = strawberry.field(description="Payable amount of the orders paid in the range.")
    average_order_value: Money = strawberry.field(description="gmv / paidOrders, rounded half up.")
    refunds: Money = strawberry.field(description="Refunds that succeeded in the range.")
    conversion_rate: float = strawberry.field(description="payingMembers / visitors, 0..1.")
    repurchase_rate: float = strawberry.field(
        description="Share of paying members with two or more orders paid in the range, 0..1."
    )
    new_members: int = strawberry.field(description="Members registered in the range.")
    returning_members: int = strawberry.field(
        description="Members registered before the range who visited or paid in it."
    )

    @classmethod
    def from_summary(cls, s: figures.Summary) -> DashboardSummary:
        return cls(
            visitors=s.visitors,
            page_views=s.page_views,
            orders=s.orders,
            paid_orders=s.paid_orders,
            paying_members=s.paying_members,
            gmv=money(s.gmv_fen),
            average_order_value=money(s.average_order_value_fen),
            refunds=money(s.refunds_fen),
            conversion_rate=s.conversion_rate,
            repurchase_rate=s.repurchase_rate,
            new_members=s.new_members,
            returning_members=s.returning_members,
        )


@strawberry.type(description="One day, or one ISO week (bucket = its Monday, only days in the range).")
class DashboardTrendPoint:
    bucket: date
    visitors: int = strawberry.field(description="Distinct visitors within the bucket.")
    page_views: int
    paid_orders: int
    gmv: Money
    average_order_value: Money

    @classmethod
    def from_point(cls, p: figures.TrendPoint) -> DashboardTrendPoint:
        return cls(
            bucket=p.bucket,
            visitors=p.visitors,
            page_views=p.page_views,
            paid_orders=p.paid_orders,
            gmv=money(p.gmv_fen),
            average_order_value=money(p.average_order_value_fen),
        )


@strawberry.type(description="Distinct visitors at a funnel step over the range (PAY: paying members).")
class DashboardFunnelStep:
    step: DashboardFunnelStepName
    visitors: int
    rate_from_previous: float = strawberry.field(description="visitors / the previous step's, 0..1.")
    rate_from_first: float = strawberry.field(description="visitors / VIEW's, 0..1.")


@strawberry.type(description="Visitors whose first visit ever falls in the bucket, and who came back.")
class DashboardRetentionCohort:
    cohort: date = strawberry.field(description="The day, or the Monday of the week.")
    size: int
    day1: float | None = strawberry.field(
        description="Share back exactly 1 day after their first; null: unknown yet."
    )
    day7: float | None
    day30: float | None


@strawberry.type(description="A best-selling product of the range.")
class DashboardProduct:
    product_id: strawberry.ID
    title: str
    views: int = strawberry.field(description="Detail page views in the range.")
    add_to_carts: int
    units_sold: int = strawberry.field(description="Units paid in the range, minus those refunded.")
    sales: Money = strawberry.field(description="Paid minus refunded amount of the lines.")


@strawberry.type(description="A searched keyword and how many of its searches found nothing.")
class DashboardKeyword:
    keyword: str
    searches: int
    zero_results: int


@strawberry.type(description="A keyword whose searches found nothing.")
class DashboardZeroResultKeyword:
    keyword: str
    searches: int = strawberry.field(description="Searches of the keyword that found nothing.")


@strawberry.type(description="Orders paid in the range, per campaign.")
class DashboardCampaignSales:
    kind: DashboardCampaignKind
    campaign_id: strawberry.ID | None
    name: str | None = strawberry.field(description="The campaign's title, when it still exists.")
    orders: int
    gmv: Money


def _campaign(row: figures.CampaignSales) -> DashboardCampaignSales:
    type_name = _CAMPAIGN_TYPES.get(row.kind)
    return DashboardCampaignSales(
        kind=DashboardCampaignKind(row.kind),
        campaign_id=strawberry.ID(encode_id(type_name, row.campaign_id))
        if type_name is not None and row.campaign_id is not None
        else None,
        name=row.name,
        orders=row.orders,
        gmv=money(row.gmv_fen),
    )


def _top(first: int | None) -> int:
    return page_size(first, default=DEFAULT_TOP)


@strawberry.type(description="The operators' dashboard over a range of shop-local days.")
class Dashboard:
    range: DateRange
    granularity: Granularity
    figures: strawberry.Private[figures.Dashboard]

    @strawberry.field
    async def summary(self) -> DashboardSummary:
        return DashboardSummary.from_summary(await self.figures.summary())

    @strawberry.field(description="One point per day (DAY) or ISO week (WEEK) of the range.")
    async def trend(self) -> list[DashboardTrendPoint]:
        return [DashboardTrendPoint.from_point(p) for p in await self.figures.trend()]

    @strawberry.field(description="View → add to cart → checkout → pay.")
    async def funnel(self) -> list[DashboardFunnelStep]:
        return [
            DashboardFunnelStep(
                step=DashboardFunnelStepName(s.step),
                visitors=s.visitors,
                rate_from_previous=s.rate_from_previous,
                rate_from_first=s.rate_from_first,
            )
            for s in await self.figures.funnel()
        ]

    @strawberry.field(description="New-visitor cohorts by day or week, with D1/D7/D30 retention.")
    async def retention(self) -> list[DashboardRetentionCohort]:
        return [
            DashboardRetentionCohort(
                cohort=c.cohort, size=c.size, day1=c.returned[1], day7=c.returned[7], day30=c.returned[30]
            )
            for c in await self.figures.retention()
        ]

    @strawberry.field(description="Best sellers by net sales, then units (default 10, at most 100).")
    async def top_products(self, first: int | None = DEFAULT_TOP) -> list[DashboardProduct]:
        return [
            DashboardProduct(
                product_id=strawberry.ID(encode_id("Product", p.product_id)),
                title=p.title,
                views=p.views,
                add_to_carts=p.add_to_carts,
                units_sold=p.units_sold,
                sales=money(p.sales_fen),
            )
            for p in await self.figures.top_products(_top(first))
        ]

    @strawberry.field(description="Most searched keywords (default 10, at most 100).")
    async def top_keywords(self, first: int | None = DEFAULT_TOP) -> list[DashboardKeyword]:
        return [
            DashboardKeyword(keyword=k.keyword, searches=k.searches, zero_results=k.zero_results)
            for k in await self.figures.top_keywords(_top(first))
        ]

    @strawberry.field(description="Keywords with searches that found nothing, most first (default 10).")
    async def zero_result_keywords(self, first: int | None = DEFAULT_TOP) -> list[DashboardZeroResultKeyword]:
        return [
            DashboardZeroResultKeyword(keyword=k.keyword, searches=k.zero_results)
            for k in await self.figures.zero_result_keywords(_top(first))
        ]

    @strawberry.field(description="Orders paid in the range per campaign; regular orders as NONE.")
    async def sales_by_campaign(self) -> list[DashboardCampaignSales]:
        return [_campaign(row) for row in await self.figures.sales_by_campaign()]
