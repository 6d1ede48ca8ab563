"""Member accounts: registration on first WeChat login."""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bff.models.member import Member, MemberLevel
from bff.services.outbox import enqueue

ENTRY_LEVEL_NAME = "普通"


async def _entry_level() -> MemberLevel:
    level = await MemberLevel.filter(rank=0).first()
    if level is not None:
        return level
    # A shop that never ran the demo seed still lets its first shopper in.
    level, _ = await MemberLevel.get_or_create(
        rank=0, defaults={"name": ENTRY_LEVEL_NAME, "min_growth": 0, "benefits": ["会员专享价"]}
    )
    return level


async def login_member(openid: str, unionid: str | None) -> tuple[Member, bool]:
    """The member behind a WeChat openid, registering them on first login; True when new."""
    now = datetime.now(UTC)
    member = await Member.get_or_none(openid=openid)
    if member is not None:
        await Member.filter(id=member.id).update(last_login_at=now)
        return member, False
    level = await _entry_level()
    try:
        async with in_transaction():
            member = await Member.create(
                openid=openid,
                unionid=unionid,
                nickname=f"微信用户{openid[-4:]}",
                level_id=level.id,
                last_login_at=now,
            )
            await enqueue("crm.upsert_member", {"member_id": member.id}, dedupe_key=f"crm-upsert:{member.id}")
    except IntegrityError:
        # Two first logins raced; the other one registered the member.
        return await Member.get(openid=openid), False
    return member, True
