"""The per-request context: who is calling, one fresh set of loaders, the shared services."""

from __future__ import annotations

from dataclasses import dataclass, field

from strawberry.types import Info as StrawberryInfo

from bff.auth import Principal, Role
from bff.cache import Cache
from bff.errors import Forbidden, Unauthenticated
from bff.rate_limit import RateLimiter
from bff.services.errors import BusinessError
from bff.settings import Settings
from integrations.crm import CrmClient
from integrations.erp import ErpClient
from integrations.wechat import WeChatClient
from integrations.wechatpay import WeChatPayClient
from loaders.member import LevelRow
from loaders.registry import Loaders


@dataclass
class Services:
    """What lives as long as the process: settings, cache, one client per upstream."""

    settings: Settings
    cache: Cache
    wechat: WeChatClient
    wechat_pay: WeChatPayClient
    erp: ErpClient
    crm: CrmClient
    rate_limiter: RateLimiter


@dataclass
class Context:
    services: Services
    principal: Principal | None
    loaders: Loaders
    client_ip: str = ""
    retry_after: float | None = None  # set when a rate limit refused the request
    _level: LevelRow | None = field(default=None, init=False)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def member_id(self) -> int | None:
        """The signed-in member's id, or None for anonymous visitors and operators."""
        p = self.principal
        return p.member_id if p is not None and p.role is Role.MEMBER else None

    def require_member(self) -> int:
        """The signed-in member's id; anonymous callers get UNAUTHENTICATED."""
        member_id = self.member_id
        if member_id is None:
            raise Unauthenticated()
        return member_id

    def acting_member(self) -> int:
        """The signed-in member for a mutation; anonymous callers get an UNAUTHENTICATED userError."""
        member_id = self.member_id
        if member_id is None:
            raise BusinessError("UNAUTHENTICATED", "请先登录")
        return member_id

    def require_operator(self) -> str:
        """The signed-in operator's name; anyone else gets UNAUTHENTICATED or FORBIDDEN."""
        if self.principal is None:
            raise Unauthenticated()
        if self.principal.role is not Role.OPERATOR or self.principal.name is None:
            raise Forbidden()
        return self.principal.name

    async def viewer_level(self) -> LevelRow | None:
        """The signed-in member's level (drives member prices), or None for anonymous visitors."""
        member_id = self.member_id
        if member_id is None:
            return None
        if self._level is None:
            member = await self.loaders.member_by_id.load(member_id)
            if member is None:
                return None
            levels = await self.loaders.levels()
            self._level = next((lv for lv in levels if lv.id == member.level_id), None)
        return self._level


Info = StrawberryInfo[Context, None]
