"""Behaviour tracking: raw events from the mini-program and the daily rollups the dashboard reads."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class TrackedEvent(Model):
    """One behaviour event as the mini-program sent it (the member comes from the token)."""

    id = fields.BigIntField(primary_key=True)
    client_event_id = fields.CharField(max_length=64)
    anonymous_id = fields.CharField(max_length=64)
    member_id = fields.IntField(null=True)
    session_id = fields.CharField(max_length=64, default="")
    type = fields.CharField(max_length=32)
    page = fields.CharField(max_length=128, default="")
    product_id = fields.IntField(null=True)
    keyword = fields.CharField(max_length=64, null=True)
    result_count = fields.IntField(null=True)
    properties: fields.JSONField[dict[str, object]] = fields.JSONField(default=dict)
    occurred_at = fields.DatetimeField()
    received_at = fields.DatetimeField()
    # The shop-local calendar day of occurred_at, stored so rollups group without date functions.
    day = fields.DateField()

    class Meta:
        table = "analytics_event"
        # Duplicates are dropped per device: a retried batch resends the same client ids.
        unique_together = (("anonymous_id", "client_event_id"),)
        indexes = (("day", "type"), ("member_id", "day"), ("product_id", "day"))


class VisitorDay(Model):
    """What one visitor did on one day: the rows UV, the funnel and retention are counted from."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    # m:<member id> for signed-in visitors, a:<anonymous id> otherwise.
    visitor_key = fields.CharField(max_length=80)
    member_id = fields.IntField(null=True)
    page_views = fields.IntField(default=0)
    product_views = fields.IntField(default=0)
    add_to_carts = fields.IntField(default=0)
    checkout_starts = fields.IntField(default=0)
    shares = fields.IntField(default=0)

    class Meta:
        table = "analytics_visitor_day"
        unique_together = (("day", "visitor_key"),)
        indexes = (("visitor_key", "day"), ("member_id", "day"))


class ProductDay(Model):
    """Exposures, clicks, detail views and add-to-carts of a product on one day."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    product_id = fields.IntField()
    exposures = fields.IntField(default=0)
    clicks = fields.IntField(default=0)
    views = fields.IntField(default=0)
    add_to_carts = fields.IntField(default=0)

    class Meta:
        table = "analytics_product_day"
        unique_together = (("day", "product_id"),)


class KeywordDay(Model):
    """How often a keyword was searched on one day, and how many of those searches found nothing."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    keyword = fields.CharField(max_length=64)
    searches = fields.IntField(default=0)
    zero_results = fields.IntField(default=0)

    class Meta:
        table = "analytics_keyword_day"
        unique_together = (("day", "keyword"),)


class ExperimentVisitor(Model):
    """The first exposure of a visitor to an experiment, with the variant the server assigned."""

    id = fields.BigIntField(primary_key=True)
    experiment_key = fields.CharField(max_length=64)
    variant = fields.CharField(max_length=32)
    visitor_key = fields.CharField(max_length=80)
    member_id = fields.IntField(null=True)
    first_exposed_at = fields.DatetimeField()

    class Meta:
        table = "analytics_experiment_visitor"
        unique_together = (("experiment_key", "visitor_key"),)
        indexes = (("experiment_key", "variant"),)


class DirtyDay(Model):
    """A day whose rollups are older than its events: the next rollup run rebuilds it."""

    day = fields.DateField(primary_key=True)
    marked_at = fields.DatetimeField()

    class Meta:
        table = "analytics_dirty_day"
