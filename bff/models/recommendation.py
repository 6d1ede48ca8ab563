"""Precomputed recommendations: item-to-item neighbours, per-member picks, the popularity fallback."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class ProductNeighbor(Model):
    """A product often viewed, carted or bought together with another, best first by rank."""

    id = fields.BigIntField(primary_key=True)
    product_id = fields.IntField()
    neighbor_id = fields.IntField()
    score = fields.FloatField()
    rank = fields.IntField()

    class Meta:
        table = "reco_product_neighbor"
        unique_together = (("product_id", "neighbor_id"),)
        indexes = (("product_id", "rank"),)


class MemberRecommendation(Model):
    """A product picked for one member, best first by rank, with the signal that picked it."""

    id = fields.BigIntField(primary_key=True)
    member_id = fields.IntField()
    product_id = fields.IntField()
    score = fields.FloatField()
    rank = fields.IntField()
    # co_occurrence, affinity, crm_preference or popular
    reason = fields.CharField(max_length=24)

    class Meta:
        table = "reco_member_product"
        unique_together = (("member_id", "product_id"),)
        indexes = (("member_id", "rank"),)


class PopularProduct(Model):
    """The cold-start list: products ranked by recent views, carts and sales."""

    product_id = fields.IntField(primary_key=True)
    score = fields.FloatField()
    rank = fields.IntField(unique=True)

    class Meta:
        table = "reco_popular_product"
