"""Activity page entry point: a published page by slug, in one request."""

from __future__ import annotations

import strawberry

from bff.auth import Role
from bff.context import Info
from bff.services import activity_pages
from schema.activity import ActivityPage


@strawberry.type
class ActivityQuery:
    @strawberry.field(
        description="A published page live now, or null; operators also see unpublished pages (preview)."
    )
    async def activity_page(self, info: Info, slug: str) -> ActivityPage | None:
        principal = info.context.principal
        operator = principal is not None and principal.role is Role.OPERATOR
        page = await activity_pages.page_for(slug, operator=operator)
        return ActivityPage.from_model(page) if page is not None else None
