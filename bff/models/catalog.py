"""Catalog: category tree, brands, products (SPU), SKUs and reviews."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Category(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=64)
    parent: fields.ForeignKeyNullableRelation[Category] = fields.ForeignKeyField(
        "models.Category", related_name="children", null=True, on_delete=fields.RESTRICT
    )
    parent_id: int | None
    icon_url = fields.CharField(max_length=512, default="")
    sort_order = fields.IntField(default=0)

    class Meta:
        table = "category"


class Brand(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=64)
    logo_url = fields.CharField(max_length=512, default="")

    class Meta:
        table = "brand"


class Product(Model):
    """A product (SPU), with the aggregates of its SKUs kept in step by the catalog service."""

    id = fields.IntField(primary_key=True)
    spu_code = fields.CharField(max_length=64, unique=True)
    title = fields.CharField(max_length=200)
    subtitle = fields.CharField(max_length=300, default="")
    category: fields.ForeignKeyRelation[Category] = fields.ForeignKeyField(
        "models.Category", related_name="products", on_delete=fields.RESTRICT
    )
    category_id: int
    brand: fields.ForeignKeyNullableRelation[Brand] = fields.ForeignKeyField(
        "models.Brand", related_name="products", null=True, on_delete=fields.SET_NULL
    )
    brand_id: int | None
    images: fields.JSONField[list[str]] = fields.JSONField(default=list)
    detail_html = fields.TextField(default="")
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    on_shelf = fields.BooleanField(default=True)
    price_fen = fields.IntField(default=0)
    market_price_fen = fields.IntField(default=0)
    in_stock = fields.BooleanField(default=False)
    sales_count = fields.IntField(default=0)
    # Lower-cased text plus its pinyin and initials: search_title for the title alone (relevance),
    # search_text for title, subtitle, brand and category names.
    search_title = fields.TextField(default="")
    search_text = fields.TextField(default="")
    version = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "product"
        indexes = (
            ("on_shelf", "category_id", "sales_count", "id"),
            ("on_shelf", "sales_count", "id"),
            ("on_shelf", "price_fen", "id"),
            ("on_shelf", "created_at", "id"),
            ("brand_id",),
        )


class Sku(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="skus", on_delete=fields.CASCADE
    )
    product_id: int
    # Ordered [{"name": "颜色", "value": "红"}, …]; the order is the product's spec order.
    spec_values: fields.JSONField[list[dict[str, str]]] = fields.JSONField(default=list)
    price_fen = fields.IntField()
    market_price_fen = fields.IntField(default=0)
    stock = fields.IntField(default=0)  # what the ERP says is available (the mirror)
    reserved = fields.IntField(default=0, db_default=0)  # held by unpaid orders; buyable = stock - reserved
    # ERP entity versions: a webhook with an older version never overwrites a newer one.
    stock_version = fields.BigIntField(default=0)
    price_version = fields.BigIntField(default=0)
    sort_order = fields.IntField(default=0)

    class Meta:
        table = "sku"
        indexes = (("product_id", "sort_order"),)


class Review(Model):
    id = fields.IntField(primary_key=True)
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="reviews", on_delete=fields.CASCADE
    )
    product_id: int
    member_id = fields.IntField(null=True)
    rating = fields.SmallIntField()
    content = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "review"
        indexes = (("product_id",),)
