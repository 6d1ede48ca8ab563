"""活动页: operators assemble campaign pages from blocks stored as data, so a page ships without a release.

A page is a slug, a title, an optional display window and up to MAX_BLOCKS blocks, each one of:
BANNER (image_url https, optional link), PRODUCT_GRID (1-50 product ids, optional title),
COUPONS (1-20 coupon template ids, optional title), COUNTDOWN (ends_at, optional title) and
RICH_TEXT (html of a small allowlist of tags and attributes, no scripts or event handlers).
Blocks are validated one by one when saved; a userError names the block (`blocks[2].productIds`).
Shoppers see a page only when it is published and inside its window; operators always see it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from bff.models.catalog import Product
from bff.models.marketing import ActivityPage, CouponTemplate
from bff.services.errors import BusinessError

BLOCK_TYPES = ("BANNER", "PRODUCT_GRID", "COUPONS", "COUNTDOWN", "RICH_TEXT")
MAX_BLOCKS = 30
MAX_GRID_PRODUCTS = 50
MAX_COUPONS = 20
MAX_HTML = 20_000
MAX_BLOCK_TITLE = 64
MAX_URL = 512
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
_TAGS = frozenset(
    "p br b strong i em u s span div h1 h2 h3 h4 ul ol li img a blockquote section table tr td th".split()
)
_ATTRIBUTES = frozenset({"class", "style", "src", "href", "alt", "title", "width", "height"})


@dataclass(frozen=True)
class BlockSpec:
    """One block as an operator sends it; which fields count depends on `type`."""

    type: str
    title: str = ""
    image_url: str = ""
    link: str = ""
    product_ids: tuple[int, ...] = ()
    template_ids: tuple[int, ...] = ()
    ends_at: datetime | None = None
    html: str = ""


@dataclass(frozen=True)
class PageSpec:
    slug: str
    title: str
    blocks: tuple[BlockSpec, ...] = field(default_factory=tuple)
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class _HtmlCheck(HTMLParser):
    """Collects what a RICH_TEXT block may not contain."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.problem is not None:
            return
        if tag not in _TAGS:
            self.problem = f"不支持的标签 <{tag}>"
            return
        for name, value in attrs:
            if name not in _ATTRIBUTES:
                self.problem = f"不支持的属性 {name}"
                return
            # Only web links and images: no javascript:/data: URLs, no expressions in styles.
            text = (value or "").strip().lower()
            if name in ("src", "href") and not text.startswith(("https://", "/")):
                self.problem = f"{name} 须为 https 链接或站内路径"
                return
            if name == "style" and ("url(" in text or "expression" in text):
                self.problem = "style 中不能引用外部资源"
                return


def _block_error(index: int, name: str, message: str) -> BusinessError:
    return BusinessError("INVALID_INPUT", f"第 {index + 1} 个模块：{message}", f"blocks[{index}].{name}")


def _check_title(index: int, title: str) -> str:
    text = title.strip()
    if len(text) > MAX_BLOCK_TITLE:
        raise _block_error(index, "title", f"标题最多 {MAX_BLOCK_TITLE} 个字符")
    return text


def _https(index: int, name: str, url: str, required: bool) -> str:
    text = url.strip()
    if not text and not required:
        return ""
    if not text.startswith("https://") or len(text) > MAX_URL:
        raise _block_error(index, name, "须为 https 链接（最长 512 个字符）")
    return text


def _ids(index: int, name: str, ids: Sequence[int], most: int, what: str) -> list[int]:
    unique = list(dict.fromkeys(ids))
    if not 1 <= len(unique) <= most:
        raise _block_error(index, name, f"请选择 1 到 {most} 个{what}")
    return unique


def block_data(index: int, block: BlockSpec) -> dict[str, Any]:
    """The stored form of a block after its own checks (ids are checked against the database later)."""
    if block.type == "BANNER":
        return {
            "type": "BANNER",
            "image_url": _https(index, "imageUrl", block.image_url, True),
            "link": block.link.strip()[:MAX_URL],
        }
    if block.type == "PRODUCT_GRID":
        ids = _ids(index, "productIds", block.product_ids, MAX_GRID_PRODUCTS, "商品")
        return {"type": "PRODUCT_GRID", "title": _check_title(index, block.title), "product_ids": ids}
    if block.type == "COUPONS":
        ids = _ids(index, "couponTemplateIds", block.template_ids, MAX_COUPONS, "优惠券")
        return {"type": "COUPONS", "title": _check_title(index, block.title), "template_ids": ids}
    if block.type == "COUNTDOWN":
        if block.ends_at is None or block.ends_at.tzinfo is None:
            raise _block_error(index, "endsAt", "请设置带时区的结束时间")
        return {
            "type": "COUNTDOWN",
            "title": _check_title(index, block.title),
            "ends_at": block.ends_at.astimezone(UTC).isoformat(),
        }
    if block.type == "RICH_TEXT":
        if not block.html.strip() or len(block.html) > MAX_HTML:
            raise _block_error(index, "html", f"内容须为 1 到 {MAX_HTML} 个字符")
        check = _HtmlCheck()
        check.feed(block.html)
        check.close()
        if check.problem is not None:
            raise _block_error(index, "html", check.problem)
        return {"type": "RICH_TEXT", "html": block.html}
    raise _block_error(index, "type", f"不支持的模块类型 {block.type}")


async def _check_references(blocks: Sequence[dict[str, Any]]) -> None:
    """Every product and coupon template a block names exists (two queries for the whole page)."""
    product_ids = {i for b in blocks if b["type"] == "PRODUCT_GRID" for i in b["product_ids"]}
    template_ids = {i for b in blocks if b["type"] == "COUPONS" for i in b["template_ids"]}
    known_products = set(await Product.filter(id__in=list(product_ids)).values_list("id", flat=True))
    known_templates = set(await CouponTemplate.filter(id__in=list(template_ids)).values_list("id", flat=True))
    for index, block in enumerate(blocks):
        if block["type"] == "PRODUCT_GRID" and (missing := set(block["product_ids"]) - known_products):
            raise _block_error(index, "productIds", f"商品不存在：{sorted(missing)}")
        if block["type"] == "COUPONS" and (missing := set(block["template_ids"]) - known_templates):
            raise _block_error(index, "couponTemplateIds", f"优惠券不存在：{sorted(missing)}")


async def save_page(page_id: int | None, spec: PageSpec) -> ActivityPage:
    """Create or edit a page (unpublished when new); every block is checked before anything is written."""
    slug = spec.slug.strip().lower()
    if not SLUG.match(slug):
        raise BusinessError("INVALID_INPUT", "slug 须为 3-64 位小写字母、数字或连字符", "slug")
    title = spec.title.strip()
    if not 1 <= len(title) <= 100:
        raise BusinessError("INVALID_INPUT", "标题须为 1 到 100 个字符", "title")
    for name, moment in (("startsAt", spec.starts_at), ("endsAt", spec.ends_at)):
        if moment is not None and moment.tzinfo is None:
            raise BusinessError("INVALID_INPUT", "时间须带时区", name)
    if spec.starts_at is not None and spec.ends_at is not None and spec.ends_at <= spec.starts_at:
        raise BusinessError("INVALID_INPUT", "结束时间须晚于开始时间", "endsAt")
    if len(spec.blocks) > MAX_BLOCKS:
        raise BusinessError("INVALID_INPUT", f"一个页面最多 {MAX_BLOCKS} 个模块", "blocks")
    blocks = [block_data(i, b) for i, b in enumerate(spec.blocks)]
    await _check_references(blocks)
    taken = ActivityPage.filter(slug=slug)
    if page_id is not None:
        taken = taken.exclude(id=page_id)
    if await taken.exists():
        raise BusinessError("INVALID_INPUT", "slug 已被其他页面使用", "slug")
    values: dict[str, Any] = {
        "slug": slug,
        "title": title,
        "blocks": blocks,
        "starts_at": spec.starts_at.astimezone(UTC) if spec.starts_at is not None else None,
        "ends_at": spec.ends_at.astimezone(UTC) if spec.ends_at is not None else None,
    }
    if page_id is None:
        return await ActivityPage.create(**values)
    page = await ActivityPage.get_or_none(id=page_id)
    if page is None:
        raise BusinessError("NOT_FOUND", "活动页不存在", "id")
    page.update_from_dict(values)
    await page.save()
    return page


async def set_published(page_id: int, published: bool) -> ActivityPage:
    """Publish or withdraw a page."""
    page = await ActivityPage.get_or_none(id=page_id)
    if page is None:
        raise BusinessError("NOT_FOUND", "活动页不存在", "id")
    page.published = published
    await page.save(update_fields=["published", "updated_at"])
    return page


def visible(page: ActivityPage, now: datetime) -> bool:
    """Whether shoppers may see the page now: published and inside its window."""
    return (
        page.published
        and (page.starts_at is None or page.starts_at <= now)
        and (page.ends_at is None or now < page.ends_at)
    )


async def page_for(slug: str, *, operator: bool, now: datetime | None = None) -> ActivityPage | None:
    """The page at `slug` if the caller may see it (operators preview unpublished pages)."""
    page = await ActivityPage.get_or_none(slug=slug.strip().lower())
    if page is None:
        return None
    if operator or visible(page, now or datetime.now(UTC)):
        return page
    return None
