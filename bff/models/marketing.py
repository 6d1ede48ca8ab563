"""Campaigns and coupons: flash sales, group-buy, presale, bargain, coupon templates and member coupons."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class FlashSale(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=100)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()

    class Meta:
        table = "flash_sale"
        indexes = (("starts_at", "ends_at"),)


class FlashSaleItem(Model):
    id = fields.IntField(primary_key=True)
    flash_sale: fields.ForeignKeyRelation[FlashSale] = fields.ForeignKeyField(
        "models.FlashSale", related_name="items", on_delete=fields.CASCADE
    )
    flash_sale_id: int
    sku_id = fields.IntField()
    product_id = fields.IntField()
    flash_price_fen = fields.IntField()
    stock_total = fields.IntField()
    sold = fields.IntField(default=0)
    per_member_limit = fields.IntField(default=1)
    sort_order = fields.IntField(default=0)

    class Meta:
        table = "flash_sale_item"
        indexes = (("flash_sale_id", "sort_order"), ("product_id",))


class GroupBuyCampaign(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=100)
    product_id = fields.IntField()
    sku_id = fields.IntField()
    group_price_fen = fields.IntField()
    group_size = fields.IntField()
    team_ttl_minutes = fields.IntField(default=24 * 60)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()

    class Meta:
        table = "group_buy_campaign"
        indexes = (("product_id",),)


class GroupBuyTeam(Model):
    id = fields.IntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[GroupBuyCampaign] = fields.ForeignKeyField(
        "models.GroupBuyCampaign", related_name="teams", on_delete=fields.CASCADE
    )
    campaign_id: int
    leader_id = fields.IntField()
    status = fields.CharField(max_length=16, default="OPEN")  # OPEN, COMPLETED, FAILED
    member_count = fields.IntField(default=1)
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "group_buy_team"
        indexes = (("campaign_id", "status", "expires_at"),)


class GroupBuyTeamMember(Model):
    id = fields.IntField(primary_key=True)
    team: fields.ForeignKeyRelation[GroupBuyTeam] = fields.ForeignKeyField(
        "models.GroupBuyTeam", related_name="members", on_delete=fields.CASCADE
    )
    team_id: int
    member_id = fields.IntField()
    order_id = fields.IntField(null=True)
    status = fields.CharField(max_length=16, default="PAID", db_default="PAID")  # PENDING, PAID, REFUNDED
    joined_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "group_buy_team_member"
        unique_together = (("team_id", "member_id"),)


class PresaleCampaign(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=100)
    product_id = fields.IntField()
    sku_id = fields.IntField()
    presale_price_fen = fields.IntField()
    deposit_fen = fields.IntField()
    deposit_deduction_fen = fields.IntField()  # what the deposit counts for at balance time (定金膨胀)
    deposit_starts_at = fields.DatetimeField()
    deposit_ends_at = fields.DatetimeField()
    balance_starts_at = fields.DatetimeField()
    balance_ends_at = fields.DatetimeField()

    class Meta:
        table = "presale_campaign"
        indexes = (("product_id",),)


class BargainCampaign(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=100)
    product_id = fields.IntField()
    sku_id = fields.IntField()
    start_price_fen = fields.IntField()
    floor_price_fen = fields.IntField()
    helpers_needed = fields.IntField()
    session_ttl_minutes = fields.IntField(default=24 * 60)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()

    class Meta:
        table = "bargain_campaign"
        indexes = (("product_id",),)


class CouponTemplate(Model):
    """A kind of coupon: FIXED, THRESHOLD (满减), PERCENT (with cap) or FREE_SHIPPING."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    description = fields.CharField(max_length=256, default="")
    kind = fields.CharField(max_length=16)
    amount_fen = fields.IntField(default=0)  # FIXED / THRESHOLD: the amount off
    percent_off = fields.IntField(default=0)  # PERCENT: 1-99
    cap_fen = fields.IntField(default=0)  # PERCENT: maximum discount, 0 = no cap
    min_spend_fen = fields.IntField(default=0)
    scope = fields.CharField(max_length=16, default="ALL")  # ALL, CATEGORY, PRODUCT
    scope_ids: fields.JSONField[list[int]] = fields.JSONField(default=list)
    total_quantity = fields.IntField(default=0)  # 0 = unlimited
    claimed_count = fields.IntField(default=0)
    per_member_limit = fields.IntField(default=1)
    claimable = fields.BooleanField(default=True)  # shown on product pages / coupon centre
    # What the template is for besides claiming: SHARE_INVITER / SHARE_INVITEE rewards, LOTTERY, CARE…
    purpose = fields.CharField(max_length=24, default="", db_default="")
    claim_starts_at = fields.DatetimeField(null=True)
    claim_ends_at = fields.DatetimeField(null=True)
    valid_from = fields.DatetimeField(null=True)  # fixed validity window …
    valid_to = fields.DatetimeField(null=True)
    valid_days = fields.IntField(default=0)  # … or N days after claim

    class Meta:
        table = "coupon_template"


class MemberCoupon(Model):
    id = fields.IntField(primary_key=True)
    member_id = fields.IntField()
    template: fields.ForeignKeyRelation[CouponTemplate] = fields.ForeignKeyField(
        "models.CouponTemplate", related_name="member_coupons", on_delete=fields.RESTRICT
    )
    template_id: int
    status = fields.CharField(max_length=16, default="UNUSED")  # UNUSED, LOCKED, USED
    claimed_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    order_id = fields.IntField(null=True)
    # n-th claim of this template by this member (1..per_member_limit); null for coupons we granted.
    # The unique (member, template, claim_seq) is what keeps concurrent claims within the limit.
    claim_seq = fields.IntField(null=True)
    source = fields.CharField(max_length=24, default="CLAIM", db_default="CLAIM")

    class Meta:
        table = "member_coupon"
        unique_together = (("member_id", "template_id", "claim_seq"),)
        indexes = (("member_id", "status", "expires_at"),)


class FlashSalePurchase(Model):
    """A hold on flash-sale stock for one order, RESERVED until paid and RELEASED if it closes."""

    id = fields.IntField(primary_key=True)
    item_id = fields.IntField()
    member_id = fields.IntField()
    order_id = fields.IntField(null=True, unique=True)
    quantity = fields.IntField()
    status = fields.CharField(max_length=12, default="RESERVED")  # RESERVED, PAID, RELEASED
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "flash_sale_purchase"
        indexes = (("item_id", "member_id", "status"),)


class BargainSession(Model):
    id = fields.IntField(primary_key=True)
    campaign_id = fields.IntField()
    member_id = fields.IntField()
    current_price_fen = fields.IntField()
    helpers_count = fields.IntField(default=0)
    status = fields.CharField(max_length=12, default="OPEN")  # OPEN, FLOOR, BOUGHT, EXPIRED
    expires_at = fields.DatetimeField()
    order_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bargain_session"
        indexes = (("campaign_id", "member_id"), ("status", "expires_at"))


class BargainHelp(Model):
    id = fields.IntField(primary_key=True)
    session_id = fields.IntField()
    helper_id = fields.IntField()
    cut_fen = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bargain_help"
        unique_together = (("session_id", "helper_id"),)


class PresaleOrder(Model):
    """A presale purchase: the deposit order, then the balance order."""

    id = fields.IntField(primary_key=True)
    campaign_id = fields.IntField()
    member_id = fields.IntField()
    deposit_order_id = fields.IntField(unique=True)
    balance_order_id = fields.IntField(null=True)
    status = fields.CharField(max_length=16, default="DEPOSIT_PENDING")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "presale_order"
        indexes = (("campaign_id", "member_id"),)


class Referral(Model):
    """分享得券: who invited whom. Both are rewarded once, when the invitee pays a first order."""

    id = fields.IntField(primary_key=True)
    inviter_id = fields.IntField()
    invitee_id = fields.IntField(unique=True)
    rewarded_order_id = fields.IntField(null=True)
    rewarded_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "referral"
        indexes = (("inviter_id",),)


class LotteryPool(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    points_cost = fields.IntField(default=0)
    daily_draws = fields.IntField(default=1)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()

    class Meta:
        table = "lottery_pool"


class LotteryPrize(Model):
    id = fields.IntField(primary_key=True)
    pool_id = fields.IntField()
    kind = fields.CharField(max_length=16)  # COUPON, POINTS, PHYSICAL, NOTHING
    name = fields.CharField(max_length=64)
    weight = fields.IntField()  # probability in parts per million
    stock = fields.IntField(default=-1)  # -1 = unlimited
    coupon_template_id = fields.IntField(null=True)
    points = fields.IntField(default=0)

    class Meta:
        table = "lottery_prize"
        indexes = (("pool_id",),)


class LotteryDraw(Model):
    """The auditable record of every draw."""

    id = fields.IntField(primary_key=True)
    pool_id = fields.IntField()
    member_id = fields.IntField()
    prize_id = fields.IntField(null=True)
    day = fields.DateField()
    roll = fields.IntField()  # the random number drawn, 0..999999
    points_spent = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "lottery_draw"
        indexes = (("pool_id", "member_id", "day"),)


class ActivityPage(Model):
    """活动页: a campaign page assembled from blocks by an operator, served without a release."""

    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=64, unique=True)
    title = fields.CharField(max_length=100)
    blocks: fields.JSONField[list[dict[str, object]]] = fields.JSONField(default=list)
    published = fields.BooleanField(default=False)
    starts_at = fields.DatetimeField(null=True)
    ends_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "activity_page"
