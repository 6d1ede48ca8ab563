"""CRM batch function: every member ref of one request in one batch-get, behind a short cache."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bff.cache import Cache
from integrations.crm import CrmClient
from integrations.errors import IntegrationError
from loaders.cached import read_through

log = logging.getLogger("bff.crm")

CRM_CACHE_TTL = 60.0


def member_ref(member_id: int) -> str:
    """How the CRM names one of our members."""
    return f"m_{member_id}"


async def load_crm_profiles(
    cache: Cache, crm: CrmClient, member_ids: Sequence[int]
) -> list[dict[str, Any] | None]:
    """CRM profiles by member id; a CRM that is slow or down yields None (and nothing is cached)."""

    async def fetch(missing: list[int]) -> dict[int, Any]:
        try:
            profiles = await crm.batch_get([member_ref(m) for m in missing])
        except IntegrationError as exc:
            log.warning("CRM unavailable, profile fields left empty: %s", exc)
            return {}
        found: dict[int, Any] = {}
        for member_id in missing:
            profile = profiles.get(member_ref(member_id))
            if profile is not None:
                found[member_id] = {
                    "tags": list(profile.tags),
                    "segment": profile.segment,
                    "lifetime_value_fen": profile.lifetime_value_fen,
                    "preferred_category_codes": list(profile.preferred_category_codes),
                }
        return found

    return await read_through(cache, "crm:profile", member_ids, CRM_CACHE_TTL, fetch)
