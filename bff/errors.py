"""Errors shown to GraphQL clients as they are (never masked), with a machine-readable code."""

from __future__ import annotations

from graphql import GraphQLError


class PublicError(GraphQLError):
    """A request error the client caused; `code` lands in `extensions.code`."""

    def __init__(self, message: str, code: str = "BAD_USER_INPUT") -> None:
        super().__init__(message, extensions={"code": code})


class Unauthenticated(PublicError):
    def __init__(self, message: str = "sign in first (Authorization: Bearer <token>)") -> None:
        super().__init__(message, code="UNAUTHENTICATED")


class Forbidden(PublicError):
    def __init__(self, message: str = "this operation needs another role") -> None:
        super().__init__(message, code="FORBIDDEN")
