"""Churn batch functions: each member's care flows, for the operators' at-risk list."""

from __future__ import annotations

from collections.abc import Sequence

from bff.models.churn import CareFlow

FLOWS_PER_MEMBER = 10  # the newest flows an operator sees per member (one a week at most)


async def load_care_flows_by_member(member_ids: Sequence[int]) -> list[list[CareFlow]]:
    """Each member's newest care flows first (at most FLOWS_PER_MEMBER), in one query."""
    rows = await CareFlow.filter(member_id__in=list(member_ids)).order_by("member_id", "-started_on", "-id")
    grouped: dict[int, list[CareFlow]] = {m: [] for m in member_ids}
    for row in rows:
        flows = grouped[row.member_id]
        if len(flows) < FLOWS_PER_MEMBER:
            flows.append(row)
    return [grouped[m] for m in member_ids]
