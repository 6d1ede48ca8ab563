"""Tortoise models, one module per domain; MODEL_MODULES lists them for Tortoise.init."""

MODEL_MODULES = [
    "bff.models.catalog",
    "bff.models.content",
    "bff.models.member",
    "bff.models.cart",
    "bff.models.marketing",
    "bff.models.order",
    "bff.models.search",
    "bff.models.outbox",
    "bff.models.analytics",
    "bff.models.recommendation",
    "bff.models.churn",
    "bff.models.experiment",
]
