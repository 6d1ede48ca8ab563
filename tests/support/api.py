"""A mini-program as the tests see it: sends the shipped screen documents over HTTP to the ASGI app."""

from __future__ import annotations

from typing import Any

import httpx

from bff.documents import operations


class Api:
    """Sends operations by name (from the project's copy of the contract) or raw documents."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        operation_name: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation_name:
            body["operationName"] = operation_name
        return await self.client.post("/graphql", json=body, headers=headers)

    async def op(
        self, name: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Any:
        """Run a contract operation; assert the HTTP exchange and the absence of errors; return data."""
        response = await self.post(operations()[name], variables, token=token, operation_name=name)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def raw(
        self, name: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Any:
        """Run a contract operation and return the whole JSON body (data and errors)."""
        response = await self.post(operations()[name], variables, token=token, operation_name=name)
        return response.json()

    async def login(self, name: str) -> str:
        """Sign in through the WeChat simulator as `o_<name>`; returns the bearer token."""
        data = await self.op("Login", {"code": f"sim_{name}"})
        assert data["login"]["userErrors"] == []
        token = data["login"]["token"]
        assert isinstance(token, str)
        return token
