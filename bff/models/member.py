"""Members, their levels, points ledger and addresses."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from bff.models.encrypted import EncryptedCharField


class MemberLevel(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=32, unique=True)
    rank = fields.IntField(unique=True)  # 0 = entry level
    min_growth = fields.IntField()
    discount_percent = fields.IntField(default=0)  # percent off the list price, 0-100
    free_shipping = fields.BooleanField(default=False)
    benefits: fields.JSONField[list[str]] = fields.JSONField(default=list)

    class Meta:
        table = "member_level"


class Member(Model):
    id = fields.IntField(primary_key=True)
    openid = fields.CharField(max_length=128, unique=True)
    unionid = fields.CharField(max_length=128, null=True)
    nickname = fields.CharField(max_length=64, default="")
    avatar_url = fields.CharField(max_length=512, default="")
    phone = EncryptedCharField(max_length=255, default="")
    level: fields.ForeignKeyRelation[MemberLevel] = fields.ForeignKeyField(
        "models.MemberLevel", related_name="members", on_delete=fields.RESTRICT
    )
    level_id: int
    growth_value = fields.IntField(default=0)
    points_balance = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)
    # Raised by "sign out everywhere" and account deletion: tokens carrying an older version are refused.
    token_version = fields.IntField(default=0, db_default=0)
    privacy_version = fields.CharField(max_length=16, null=True)  # the privacy policy version accepted
    privacy_accepted_at = fields.DatetimeField(null=True)
    deleted_at = fields.DatetimeField(null=True)  # account deleted: the row stays, anonymised

    class Meta:
        table = "member"


class PointsLedger(Model):
    """One row per change of a member points balance, which equals the sum of deltas."""

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="points_ledger", on_delete=fields.CASCADE
    )
    member_id: int
    delta = fields.IntField()
    reason = fields.CharField(max_length=64)
    balance_after = fields.IntField()
    # Earned points expire oldest first: `remaining` is what is left of this grant to spend or expire.
    remaining = fields.IntField(default=0, db_default=0)
    expires_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "points_ledger"
        indexes = (("member_id", "id"),)


class Address(Model):
    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="addresses", on_delete=fields.CASCADE
    )
    member_id: int
    name = EncryptedCharField(max_length=255)
    phone = EncryptedCharField(max_length=255)
    province = fields.CharField(max_length=32)
    city = fields.CharField(max_length=32)
    district = fields.CharField(max_length=32)
    detail = EncryptedCharField(max_length=1024)
    is_default = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "address"
        indexes = (("member_id",),)


class SignIn(Model):
    """Daily sign-in (签到): one row per member per shop day."""

    id = fields.IntField(primary_key=True)
    member_id = fields.IntField()
    day = fields.DateField()
    points = fields.IntField()
    streak = fields.IntField(default=1)

    class Meta:
        table = "sign_in"
        unique_together = (("member_id", "day"),)
