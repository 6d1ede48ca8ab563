"""A fake CRM speaking contract/crm.md: profile batch-get, member upsert, deduplicated care tasks.

Admin (no auth): `POST /_sim/members` `{"members": [{"member_ref", ...profile fields?}],
"prefixes": ["m_"]}` seeds profiles (missing fields are generated deterministically from the ref)
and makes every ref starting with a prefix known with its generated profile (for demos and load
runs); plus the shared `/_sim/config|state|reset`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations.simulators.knobs import (
    BadRequest,
    Knobs,
    KnobsMiddleware,
    admin_routes,
    bearer_endpoint,
    json_endpoint,
    read_json,
    require,
    server_error,
    str_list,
)

BATCH_GET_LIMIT = 100
CARE_TASK_DEDUPE_SECONDS = 7 * 24 * 3600
_TAGS = ("coupon_sensitive", "night_owl", "parent", "pet_owner", "big_spender", "weekend_shopper")
_SEGMENTS = ("new", "active", "loyal", "vip", "churn_risk", "dormant")
_CATEGORIES = ("apparel", "beauty", "food", "home", "digital", "baby", "sports", "pets")


def generated_profile(member_ref: str) -> dict[str, Any]:
    """A plausible profile derived only from the ref, so the same ref always looks the same."""
    digest = hashlib.sha256(member_ref.encode()).digest()
    return {
        "member_ref": member_ref,
        "tags": [tag for i, tag in enumerate(_TAGS) if digest[i] % 3 == 0],
        "lifetime_value_fen": int.from_bytes(digest[8:11], "big") % 5_000_000,
        "segment": _SEGMENTS[digest[11] % len(_SEGMENTS)],
        "preferred_category_codes": [c for i, c in enumerate(_CATEGORIES) if digest[12 + i] % 4 == 0],
    }


@dataclass
class CrmState:
    """Everything the fake CRM holds and has received."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    prefixes: list[str] = field(default_factory=list)
    crm_ids: dict[str, str] = field(default_factory=dict)
    upserts: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    batch_gets: list[list[str]] = field(default_factory=list)

    def profile(self, member_ref: str) -> dict[str, Any] | None:
        """The profile the CRM knows for a ref, if any."""
        if member_ref in self.profiles:
            return self.profiles[member_ref]
        if any(member_ref.startswith(prefix) for prefix in self.prefixes):
            return generated_profile(member_ref)
        return None

    def as_json(self) -> dict[str, Any]:
        """The state as `GET /_sim/state` shows it."""
        return {
            "members": list(self.profiles.values()),
            "prefixes": self.prefixes,
            "upserts": self.upserts,
            "tasks": self.tasks,
            "batch_gets": self.batch_gets,
        }

    def clear(self) -> None:
        """Forget everything (`POST /_sim/reset`)."""
        self.profiles.clear()
        self.prefixes.clear()
        self.crm_ids.clear()
        self.upserts.clear()
        self.tasks.clear()
        self.batch_gets.clear()


def create_crm_app(api_token: str) -> Starlette:
    """The fake CRM as an ASGI app; every `/api/v1` call needs `Authorization: Bearer <api_token>`."""
    knobs = Knobs()
    state = CrmState()

    async def batch_get(request: Request) -> Response:
        refs = str_list(await read_json(request), "member_refs")
        if len(refs) > BATCH_GET_LIMIT:
            raise BadRequest(f"at most {BATCH_GET_LIMIT} member_refs per call")
        state.batch_gets.append(refs)
        found = (state.profile(ref) for ref in dict.fromkeys(refs))
        return JSONResponse({"members": [p for p in found if p is not None]})

    async def upsert(request: Request) -> Response:
        body = await read_json(request)
        require(body, "member_ref", "openid", "nickname", "phone_masked", "level", "registered_at")
        ref = str(body["member_ref"])
        state.upserts.append(body)
        crm_id = state.crm_ids.setdefault(ref, f"crm_{len(state.crm_ids) + 1:06d}")
        if ref not in state.profiles:
            known = state.profile(ref)
            state.profiles[ref] = known or {
                "member_ref": ref,
                "tags": [],
                "lifetime_value_fen": 0,
                "segment": "new",
                "preferred_category_codes": [],
            }
        return JSONResponse({"crm_id": crm_id})

    async def care_task(request: Request) -> Response:
        body = await read_json(request)
        require(body, "member_ref", "kind")
        now = knobs.now()
        for task in reversed(state.tasks):
            same = (task["member_ref"], task["kind"]) == (body["member_ref"], body["kind"])
            if same and now - task["created_at"] < CARE_TASK_DEDUPE_SECONDS:
                return JSONResponse({"task_id": task["task_id"]}, status_code=200)
        task_id = f"task_{len(state.tasks) + 1:06d}"
        state.tasks.append(
            {
                "task_id": task_id,
                "member_ref": body["member_ref"],
                "kind": body["kind"],
                "reason": body.get("reason"),
                "suggested_coupon_template": body.get("suggested_coupon_template"),
                "created_at": now,
            }
        )
        return JSONResponse({"task_id": task_id}, status_code=201)

    async def seed(request: Request) -> Response:
        body = await read_json(request)
        members = body.get("members", [])
        if not isinstance(members, list) or not all(
            isinstance(m, dict) and isinstance(m.get("member_ref"), str) for m in members
        ):
            raise BadRequest("members must be a list of objects with a member_ref")
        for member in members:
            state.profiles[member["member_ref"]] = generated_profile(member["member_ref"]) | member
        if "prefixes" in body:
            state.prefixes.extend(p for p in str_list(body, "prefixes") if p not in state.prefixes)
        return JSONResponse({"count": len(members), "prefixes": state.prefixes})

    routes = [
        Route("/api/v1/members/batch-get", bearer_endpoint(api_token, batch_get), methods=["POST"]),
        Route("/api/v1/members/upsert", bearer_endpoint(api_token, upsert), methods=["POST"]),
        Route("/api/v1/care-tasks", bearer_endpoint(api_token, care_task), methods=["POST"]),
        Route("/_sim/members", json_endpoint(seed), methods=["POST"]),
        *admin_routes(knobs, state.as_json, state.clear),
    ]
    return Starlette(routes=routes, middleware=[Middleware(KnobsMiddleware, knobs=knobs, fault=server_error)])
