"""Login: wx.login code → jscode2session on the WeChat simulator → our bearer token."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bff.auth import Principal, Role, issue_token
from bff.models.member import Member
from tests.support.api import Api


async def test_first_login_registers_and_later_logins_find_the_member(api: Api) -> None:
    name = f"new{uuid.uuid4().hex[:8]}"
    first = (await api.op("Login", {"code": f"sim_{name}"}))["login"]
    assert first["userErrors"] == []
    assert first["member"]["isNew"] is True
    assert datetime.fromisoformat(first["expiresAt"]) > datetime.now(UTC)
    member = await Member.get(openid=f"o_{name}")
    assert member.nickname == first["member"]["nickname"]

    again = (await api.op("Login", {"code": f"sim_{name}"}))["login"]
    assert again["member"] == {**first["member"], "isNew": False}
    assert await Member.filter(openid=f"o_{name}").count() == 1

    viewer = (await api.op("Home", {"recommendFirst": 1}, token=again["token"]))["viewer"]
    assert viewer["id"] == first["member"]["id"]


async def test_a_bad_code_is_invalid_code(api: Api) -> None:
    for code in ("not-a-sim-code", "", "sim_"):
        login = (await api.op("Login", {"code": code}))["login"]
        assert login["token"] is None and login["member"] is None
        assert login["userErrors"][0]["code"] == "INVALID_CODE"


async def test_an_expired_or_forged_token_is_refused_with_401(api: Api, alice: str) -> None:
    member = await Member.get(openid="o_alice")
    from bff.settings import load_settings

    expired = issue_token(
        Principal(role=Role.MEMBER, member_id=member.id), load_settings().jwt_secret, 60, now=1_000_000
    ).token
    forged = issue_token(Principal(role=Role.MEMBER, member_id=member.id), "x" * 40, 3600).token
    for token in (expired, forged, alice[:-3] + "abc"):
        response = await api.post("query { viewer { id } }", token=token)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_session_key_never_leaves_the_server(api: Api) -> None:
    response = await api.post(
        "mutation($c: String!) { login(code: $c) { token member { id } } }", {"c": "sim_keyholder"}
    )
    assert "session_key" not in response.text and "sessionKey" not in response.text
