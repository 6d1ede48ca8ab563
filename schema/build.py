"""The Schema object: every domain's queries and mutations merged, with the request-safety extensions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from resolvers.activity import ActivityQuery
from resolvers.admin import AdminMutation, AdminQuery
from resolvers.auth import AuthMutation
from resolvers.bargain import BargainMutation, BargainQuery, BargainSubscription
from resolvers.cart import CartMutation, CartQuery
from resolvers.catalog import CatalogQuery
from resolvers.content import ContentQuery
from resolvers.group_buy import GroupBuyMutation, GroupBuyQuery, GroupBuySubscription
from resolvers.lottery import LotteryMutation, LotteryQuery
from resolvers.loyalty import LoyaltyMutation, LoyaltyQuery
from resolvers.marketing import MarketingQuery
from resolvers.member import MemberMutation, MemberQuery
from resolvers.order import OrderMutation, OrderQuery
from resolvers.presale import PresaleMutation, PresaleQuery

Query = merge_types(
    "Query",
    (
        MemberQuery,
        ContentQuery,
        CatalogQuery,
        MarketingQuery,
        CartQuery,
        OrderQuery,
        GroupBuyQuery,
        BargainQuery,
        PresaleQuery,
        LotteryQuery,
        ActivityQuery,
        AdminQuery,
        LoyaltyQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AuthMutation,
        CartMutation,
        MemberMutation,
        OrderMutation,
        GroupBuyMutation,
        BargainMutation,
        PresaleMutation,
        LotteryMutation,
        AdminMutation,
        LoyaltyMutation,
    ),
)
Subscription = merge_types("Subscription", (GroupBuySubscription, BargainSubscription))


def build_schema(max_depth: int = 12, max_aliases: int = 30) -> strawberry.Schema:
    """The GraphQL schema with depth/alias limits and parse/validation caches."""
    # The limits' rule classes are built once: the validation cache is keyed by the rules, so
    # extensions that made new rules per request would never hit it.
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[
            # Factories, not shared instances: each execution gets its own extension objects.
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
        ],
    )
