"""CRM client: member marketing profiles, member sync, care tasks (wire format: contract/crm.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import httpx

from integrations.errors import check_status, decoding, json_object, translating
from integrations.resilience import CircuitBreaker, with_retries

UPSTREAM = "crm"
BATCH_GET_LIMIT = 100  # the CRM refuses larger batches with 400


@dataclass(frozen=True, slots=True)
class CrmProfile:
    """A member's marketing profile as the CRM holds it."""

    member_ref: str
    tags: tuple[str, ...]
    lifetime_value_fen: int
    segment: str
    preferred_category_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CrmMember:
    """The member record the BFF keeps the CRM in sync with."""

    member_ref: str
    openid: str
    nickname: str
    phone_masked: str
    level: str
    registered_at: datetime

    def to_wire(self) -> dict[str, Any]:
        """The JSON body of `POST /api/v1/members/upsert`."""
        return {
            "member_ref": self.member_ref,
            "openid": self.openid,
            "nickname": self.nickname,
            "phone_masked": self.phone_masked,
            "level": self.level,
            "registered_at": self.registered_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class CareTaskResult:
    """The CRM's task; `created` is False when an open task for (member, kind) already existed."""

    task_id: str
    created: bool


class CrmClient:
    """Typed calls to `CRM_BASE_URL` over an injected `httpx.AsyncClient`."""

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, api_token: str, *, timeout: float = 3.0
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_token}"}
        self._timeout = httpx.Timeout(timeout)
        self.breaker = CircuitBreaker(UPSTREAM)

    async def batch_get(self, member_refs: Iterable[str]) -> dict[str, CrmProfile]:
        """Profiles by member ref; refs the CRM does not know are absent. Chunks of 100 per call."""
        refs = list(dict.fromkeys(member_refs))
        result: dict[str, CrmProfile] = {}
        # Sequential on purpose: bounded load on a slow CRM, and the first failure stays typed.
        for start in range(0, len(refs), BATCH_GET_LIMIT):
            chunk = refs[start : start + BATCH_GET_LIMIT]
            call = partial(self._post, "/api/v1/members/batch-get", {"member_refs": chunk})
            _, data = await with_retries(call)
            with decoding(UPSTREAM):
                for member in data["members"]:
                    profile = _profile(member)
                    result[profile.member_ref] = profile
        return result

    async def upsert_member(self, member: CrmMember) -> str:
        """Create or update the member in the CRM; returns its `crm_id`."""
        _, data = await self._post("/api/v1/members/upsert", member.to_wire())
        with decoding(UPSTREAM):
            return str(data["crm_id"])

    async def create_care_task(
        self,
        member_ref: str,
        kind: str,
        reason: str,
        suggested_coupon_template: str | None = None,
    ) -> CareTaskResult:
        """Open a care task; the CRM dedupes (member_ref, kind) within 7 days (`created=False`)."""
        body = {
            "member_ref": member_ref,
            "kind": kind,
            "reason": reason,
            "suggested_coupon_template": suggested_coupon_template,
        }
        status, data = await self._post("/api/v1/care-tasks", body)
        with decoding(UPSTREAM):
            return CareTaskResult(task_id=str(data["task_id"]), created=status == 201)

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.breaker.guard():
            with translating(UPSTREAM):
                response = await self._http.post(
                    self._base_url + path, json=body, headers=self._headers, timeout=self._timeout
                )
            check_status(response, UPSTREAM)
            return response.status_code, json_object(response, UPSTREAM)


def _profile(member: dict[str, Any]) -> CrmProfile:
    return CrmProfile(
        member_ref=str(member["member_ref"]),
        tags=tuple(str(t) for t in member.get("tags") or ()),
        lifetime_value_fen=int(member.get("lifetime_value_fen") or 0),
        segment=str(member.get("segment") or ""),
        preferred_category_codes=tuple(str(c) for c in member.get("preferred_category_codes") or ()),
    )
