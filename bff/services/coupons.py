"""Coupon rules that do not need the database: scope, the text a shopper reads, what a template may be."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields
from datetime import datetime

from bff.models.marketing import CouponTemplate
from bff.services.errors import BusinessError
from bff.services.money import format_fen
from bff.services.shop_time import SHOP_TZ


def template_applies_to(template: CouponTemplate, product_id: int, category_ids: Collection[int]) -> bool:
    """Whether a coupon's scope covers a product (its category ids include the parent category)."""
    if template.scope == "ALL":
        return True
    scope_ids = {int(i) for i in template.scope_ids}
    if template.scope == "PRODUCT":
        return product_id in scope_ids
    if template.scope == "CATEGORY":
        return bool(scope_ids & set(category_ids))
    return False


def _yuan(fen: int) -> str:
    # Whole yuan read better on a coupon ("减¥10"); keep cents only when there are any.
    return format_fen(fen).removesuffix(".00")


def discount_text(template: CouponTemplate) -> str:
    """What the coupon gives, as a shopper reads it: 满199减30, 8.5折 最高减50, 免运费…"""
    if template.kind == "THRESHOLD" and template.min_spend_fen > 0:
        return f"满{_yuan(template.min_spend_fen)}减{_yuan(template.amount_fen)}"
    if template.kind in ("FIXED", "THRESHOLD"):
        return f"立减{_yuan(template.amount_fen)}"
    if template.kind == "PERCENT":
        tenths = 100 - template.percent_off
        rate = f"{tenths // 10}.{tenths % 10}" if tenths % 10 else str(tenths // 10)
        text = f"{rate}折"
        return f"{text} 最高减{_yuan(template.cap_fen)}" if template.cap_fen else text
    if template.kind == "FREE_SHIPPING":
        return "免运费"
    return template.name


def validity_text(template: CouponTemplate) -> str:
    """How long a claimed coupon lasts, as a shopper reads it: 领取后7天内有效, 2025.01.01-2025.01.31有效."""
    if template.valid_to is not None:
        end = template.valid_to.astimezone(SHOP_TZ).strftime("%Y.%m.%d")
        if template.valid_from is None:
            return f"{end}前有效"
        return f"{template.valid_from.astimezone(SHOP_TZ).strftime('%Y.%m.%d')}-{end}有效"
    return f"领取后{template.valid_days}天内有效"


# --- operators: what a template may be --------------------------------------------------------------

KINDS = ("FIXED", "THRESHOLD", "PERCENT", "FREE_SHIPPING")
SCOPES = ("ALL", "CATEGORY", "PRODUCT")
# "" is an ordinary claimable coupon; the others are granted by the feature named.
PURPOSES = ("", "SHARE_INVITER", "SHARE_INVITEE", "LOTTERY", "CARE")
MAX_PER_MEMBER = 100
MAX_VALID_DAYS = 3650
MAX_SCOPE_IDS = 500
# What a coupon in a wallet is worth: frozen once anyone holds one, since wallets read the template.
DISCOUNT_FIELDS = ("kind", "amount_fen", "percent_off", "cap_fen", "min_spend_fen", "scope", "scope_ids")
# Service field → the GraphQL input field a userError names.
INPUT_FIELD = {
    "amount_fen": "amount",
    "percent_off": "percentOff",
    "cap_fen": "cap",
    "min_spend_fen": "minSpend",
    "scope_ids": "scopeIds",
}


@dataclass(frozen=True)
class TemplateFields:
    """Everything an operator sets on a coupon template (amounts in fen)."""

    name: str
    kind: str
    description: str = ""
    amount_fen: int = 0
    percent_off: int = 0
    cap_fen: int = 0
    min_spend_fen: int = 0
    scope: str = "ALL"
    scope_ids: tuple[int, ...] = ()
    total_quantity: int = 0
    per_member_limit: int = 1
    claimable: bool = True
    purpose: str = ""
    claim_starts_at: datetime | None = None
    claim_ends_at: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    valid_days: int = 0

    @classmethod
    def of(cls, template: CouponTemplate) -> TemplateFields:
        """The fields of a stored template."""
        return cls(**{f.name: getattr(template, f.name) for f in fields(cls) if f.name != "scope_ids"},
                   scope_ids=tuple(int(i) for i in template.scope_ids))  # fmt: skip


class InvalidTemplate(BusinessError):
    """The operator's input breaks one or more rules; `problems` holds (input field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("INVALID_INPUT", problems[0][1], problems[0][0])
        self.problems = problems


def _kind_problems(f: TemplateFields) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if f.kind not in KINDS:
        return [("kind", f"不支持的优惠券类型 {f.kind}")]
    if min(f.amount_fen, f.percent_off, f.cap_fen, f.min_spend_fen) < 0:
        problems.append(("amount", "金额和折扣不能为负数"))
    if f.kind in ("FIXED", "THRESHOLD"):
        if f.amount_fen <= 0:
            problems.append(("amount", "请填写减免金额"))
        if f.kind == "THRESHOLD" and f.min_spend_fen <= 0:
            problems.append(("minSpend", "满减券须设置使用门槛"))
        if f.min_spend_fen > 0 and f.amount_fen >= f.min_spend_fen:
            problems.append(("minSpend", "使用门槛须高于减免金额"))
        if f.percent_off or f.cap_fen:
            problems.append(("percentOff", "只有折扣券可以设置折扣和封顶"))
    elif f.kind == "PERCENT":
        if not 1 <= f.percent_off <= 99:
            problems.append(("percentOff", "折扣须在 1-99 之间（减免的百分比）"))
        if f.amount_fen:
            problems.append(("amount", "折扣券不设减免金额"))
    elif f.amount_fen or f.percent_off or f.cap_fen:
        problems.append(("amount", "免运费券不设金额或折扣"))
    return problems


def _window_problems(f: TemplateFields) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if f.claim_starts_at and f.claim_ends_at and f.claim_ends_at <= f.claim_starts_at:
        problems.append(("claimEndsAt", "领取结束时间须晚于开始时间"))
    if f.valid_to is not None and f.valid_days:
        problems.append(("validDays", "固定有效期和领取后 N 天有效只能选一种"))
    elif f.valid_to is None and not 1 <= f.valid_days <= MAX_VALID_DAYS:
        problems.append(("validDays", f"请设置有效期：固定起止时间，或领取后 1-{MAX_VALID_DAYS} 天"))
    if f.valid_from is not None and f.valid_to is None:
        problems.append(("validTo", "设置了生效时间也须设置失效时间"))
    if f.valid_from and f.valid_to and f.valid_to <= f.valid_from:
        problems.append(("validTo", "失效时间须晚于生效时间"))
    if f.valid_to and f.claim_ends_at and f.valid_to < f.claim_ends_at:
        problems.append(("validTo", "有效期须覆盖领取期"))
    return problems


def template_problems(
    f: TemplateFields, *, before: TemplateFields | None = None, claimed_count: int = 0
) -> list[tuple[str, str]]:
    """Every rule `f` breaks, as (input field, message); `before` is the stored template when editing."""
    problems: list[tuple[str, str]] = []
    if not f.name.strip() or len(f.name) > 64:
        problems.append(("name", "名称须为 1-64 个字符"))
    if len(f.description) > 256:
        problems.append(("description", "说明最多 256 个字符"))
    problems += _kind_problems(f)
    if f.scope not in SCOPES:
        problems.append(("scope", f"不支持的适用范围 {f.scope}"))
    elif f.scope == "ALL" and f.scope_ids:
        problems.append(("scopeIds", "全场通用券不指定商品或类目"))
    elif f.scope != "ALL" and not 1 <= len(f.scope_ids) <= MAX_SCOPE_IDS:
        problems.append(("scopeIds", f"请指定 1-{MAX_SCOPE_IDS} 个适用的商品或类目"))
    if f.total_quantity < 0:
        problems.append(("totalQuantity", "总量不能为负数（0 表示不限）"))
    elif 0 < f.total_quantity < claimed_count:
        problems.append(("totalQuantity", f"总量不能少于已领取的 {claimed_count} 张"))
    if not 1 <= f.per_member_limit <= MAX_PER_MEMBER:
        problems.append(("perMemberLimit", f"每人限领须在 1-{MAX_PER_MEMBER} 张之间"))
    if f.purpose not in PURPOSES:
        problems.append(("purpose", f"不支持的用途 {f.purpose}"))
    elif f.purpose and f.claimable:
        problems.append(("claimable", "奖励券由系统发放，不能设为可领取"))
    problems += _window_problems(f)
    if before is not None and claimed_count > 0:
        problems += [
            (INPUT_FIELD.get(name, name), "已有会员领取，不能修改优惠内容")
            for name in DISCOUNT_FIELDS
            if getattr(f, name) != getattr(before, name)
        ]
    return problems
