"""Login: exchange a wx.login code for our bearer token."""

from __future__ import annotations

import strawberry

from bff.auth import Principal, Role, issue_token
from bff.context import Info
from bff.services.members import login_member
from bff.sessions import remember_session
from integrations.errors import IntegrationError, InvalidLoginCode, WeChatHighRiskUser, WeChatRateLimited
from schema.common import ErrorCode, user_error
from schema.member import LoginMember, LoginPayload, Member


def _failed(code: ErrorCode, message: str) -> LoginPayload:
    return LoginPayload(
        token=None, expires_at=None, member=None, user_errors=[user_error(code, message, "code")]
    )


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Sign in with the code from wx.login(); registers new members.")
    async def login(self, info: Info, code: str) -> LoginPayload:
        if not code.strip() or len(code) > 256:
            return _failed(ErrorCode.INVALID_CODE, "登录凭证无效，请重新登录")
        try:
            session = await info.context.services.wechat.code2session(code.strip())
        except InvalidLoginCode:
            return _failed(ErrorCode.INVALID_CODE, "登录凭证无效或已使用，请重新登录")
        except WeChatRateLimited:
            return _failed(ErrorCode.RATE_LIMITED, "登录太频繁，请稍后再试")
        except WeChatHighRiskUser:
            return _failed(ErrorCode.RISKY_USER, "账号存在风险，暂时无法登录")
        except IntegrationError:
            return _failed(ErrorCode.WECHAT_UNAVAILABLE, "微信登录服务繁忙，请稍后再试")
        member, is_new = await login_member(session.openid, session.unionid)
        settings = info.context.settings
        issued = issue_token(
            Principal(role=Role.MEMBER, member_id=member.id, token_version=member.token_version),
            settings.signing_keys,
            settings.token_ttl_seconds,
        )
        await remember_session(member, info.context.services.cache)
        base = Member.from_model(member)
        return LoginPayload(
            token=issued.token,
            expires_at=issued.expires_at,
            member=LoginMember(**{**base.__dict__, "is_new": is_new}),
            user_errors=[],
        )
