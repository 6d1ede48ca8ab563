"""The Schema object: every domain's queries and mutations merged, with the request-safety extensions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from bff.document_cache import CachedDocuments, DocumentCache
from bff.documents import operations
from bff.request_guard import Limits, RequestGuard, WorstCases
from resolvers.activity import ActivityQuery
from resolvers.admin import AdminMutation, AdminQuery
from resolvers.analytics import AnalyticsQuery
from resolvers.auth import AuthMutation
from resolvers.bargain import BargainMutation, BargainQuery, BargainSubscription
from resolvers.cart import CartMutation, CartQuery
from resolvers.catalog import CatalogQuery
from resolvers.churn import ChurnMutation, ChurnQuery
from resolvers.content import ContentQuery
from resolvers.experiment import ExperimentMutation, ExperimentQuery
from resolvers.group_buy import GroupBuyMutation, GroupBuyQuery, GroupBuySubscription
from resolvers.lottery import LotteryMutation, LotteryQuery
from resolvers.loyalty import LoyaltyMutation, LoyaltyQuery
from resolvers.marketing import MarketingQuery
from resolvers.member import MemberMutation, MemberQuery
from resolvers.order import OrderMutation, OrderQuery
from resolvers.presale import PresaleMutation, PresaleQuery
from resolvers.privacy import PrivacyMutation, PrivacyQuery
from resolvers.session import SessionMutation
from resolvers.tracking import TrackingMutation

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
        ExperimentQuery,
        AnalyticsQuery,
        ChurnQuery,
        PrivacyQuery,
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
        ExperimentMutation,
        TrackingMutation,
        ChurnMutation,
        SessionMutation,
        PrivacyMutation,
    ),
)
Subscription = merge_types("Subscription", (GroupBuySubscription, BargainSubscription))


def build_schema(
    max_depth: int = 12,
    max_aliases: int = 30,
    *,
    naive: bool = False,
    max_tokens: int = 5_000,
    max_cost: int = 25_000,
    limits: Limits | None = None,
    introspection: bool = True,
) -> strawberry.Schema:
    """The GraphQL schema with depth/alias/token limits, the cost budget and rate limits (`limits`,
    None for none), and parse/validation caches (none when naive)."""
    # The limits' rule classes are built once: the validation cache is keyed by the rules, so
    # extensions that made new rules per request would never hit it.
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    documents = DocumentCache(maxsize=512)
    worst_cases = WorstCases()
    schema = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # In production, field suggestions ("did you mean …") would map the schema for a stranger.
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=not introspection),
        extensions=[
            # Factories, not shared instances: each execution gets its own extension objects.
            lambda: AddValidationRules(rules),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: RequestGuard(max_cost=max_cost, limits=limits, worst_cases=worst_cases),
            *([] if introspection else [DisableIntrospection]),
            # Benchmark G0 (BFF_NAIVE=1) parses and validates every request: what this cache saves.
            *([] if naive else [lambda: CachedDocuments(documents)]),
        ],
    )
    if not naive:
        # The shipped screens are validated once, now: a broken one fails the start, not a request.
        documents.pin(schema._schema, rules, operations().values())
    return schema
