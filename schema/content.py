"""Content types: banners."""

from __future__ import annotations

import enum

import strawberry

from bff.ids import encode_id
from loaders.content import BannerRow


@strawberry.enum
class BannerPosition(enum.Enum):
    HOME_TOP = "HOME_TOP"
    CATEGORY_TOP = "CATEGORY_TOP"
    MEMBER_TOP = "MEMBER_TOP"


@strawberry.type
class Banner:
    id: strawberry.ID
    image_url: str
    link: str

    @classmethod
    def from_row(cls, row: BannerRow) -> Banner:
        return cls(id=strawberry.ID(encode_id("Banner", row.id)), image_url=row.image_url, link=row.link)
