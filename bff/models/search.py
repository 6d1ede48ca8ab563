"""Search index and search statistics."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class SearchToken(Model):
    """Prefix-searchable tokens of a product: suffixes of its text, pinyin and initials."""

    # A keyword matches a product when it is a prefix of one of its tokens, which a plain btree
    # range scan answers on both PostgreSQL and SQLite.

    id = fields.BigIntField(primary_key=True)
    token = fields.CharField(max_length=32)
    product_id = fields.IntField()

    class Meta:
        table = "search_token"
        unique_together = (("token", "product_id"),)
        indexes = (("product_id",),)


class SearchKeywordDaily(Model):
    """How often a keyword was searched on a day, and how many results it last found."""

    id = fields.IntField(primary_key=True)
    day = fields.DateField()
    keyword = fields.CharField(max_length=64)
    search_count = fields.IntField(default=0)
    last_result_count = fields.IntField(default=0)

    class Meta:
        table = "search_keyword_daily"
        unique_together = (("day", "keyword"),)
