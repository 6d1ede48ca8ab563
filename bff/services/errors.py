"""The one exception services raise for business failures; resolvers turn it into userErrors."""

from __future__ import annotations


class BusinessError(Exception):
    """A rule refused the request; nothing was changed. `code` is an ErrorCode name."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
