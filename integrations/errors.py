"""Typed failures of outbound calls, and the helpers that turn httpx outcomes into them.

Callers catch these, never httpx exceptions: `UpstreamUnavailable` means "try again later / serve
from the mirror", `UpstreamError` means "the upstream understood and refused". Subclasses name the
refusals a resolver maps to a userError code; `retryable` tells the outbox worker what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx


class IntegrationError(Exception):
    """Base of every failure of a call to the ERP, the CRM or WeChat."""

    retryable: ClassVar[bool] = False

    def __init__(self, upstream: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{upstream}: {message}")
        self.upstream = upstream
        self.message = message
        self.status = status


class UpstreamUnavailable(IntegrationError):
    """Timeout, connection failure, 5xx, 429 or a "busy" answer: retry later, serve from the mirror."""

    retryable = True


class UpstreamError(IntegrationError):
    """The upstream answered and refused (4xx, a non-zero errcode) or answered something malformed."""

    def __init__(
        self, upstream: str, message: str, *, status: int | None = None, code: int | str | None = None
    ) -> None:
        super().__init__(upstream, message, status=status)
        self.code = code


class UpstreamNotFound(UpstreamError):
    """404: the upstream does not know the entity (e.g. an order never pushed to the ERP)."""


class UpstreamConflict(UpstreamError):
    """409: the entity is in a state that forbids the change."""


class OrderAlreadyShipped(UpstreamConflict):
    """The ERP refused a cancellation because the order has shipped (a business outcome, no retry)."""


# --- WeChat: HTTP 200 with a non-zero errcode ----------------------------------------------------


class WeChatError(UpstreamError):
    """WeChat answered a non-zero `errcode`; `code` holds it, `message` the errmsg."""

    @property
    def errcode(self) -> int:
        """The numeric WeChat errcode."""
        return int(self.code or 0)


class InvalidLoginCode(WeChatError):
    """40029 / 40163: the wx.login code is wrong, expired or already used; the user retries login."""


class WeChatRateLimited(WeChatError):
    """45011: too many calls for this user/app per minute."""

    retryable = True


class WeChatHighRiskUser(WeChatError):
    """40226: WeChat flags the user as high-risk and forbids the login."""


class WeChatTokenInvalid(WeChatError):
    """40001 / 40014 / 42001: the access_token is wrong or expired; refresh it and retry once."""

    retryable = True


class WeChatNotSubscribed(WeChatError):
    """43101: the member has not (or no longer) subscribed to the template; do not retry."""


class WeChatBusy(UpstreamUnavailable):
    """errcode -1: WeChat is busy; transient by definition, so it is an `UpstreamUnavailable`."""

    def __init__(self, message: str) -> None:
        super().__init__("wechat", message, status=200)

    @property
    def errcode(self) -> int:
        """Always -1, for symmetry with `WeChatError.errcode`."""
        return -1


_WECHAT_ERRCODES: dict[int, type[WeChatError]] = {
    40029: InvalidLoginCode,
    40163: InvalidLoginCode,
    45011: WeChatRateLimited,
    40226: WeChatHighRiskUser,
    40001: WeChatTokenInvalid,
    40014: WeChatTokenInvalid,
    42001: WeChatTokenInvalid,
    43101: WeChatNotSubscribed,
}


def wechat_error(errcode: int, errmsg: str) -> IntegrationError:
    """The typed error for a non-zero WeChat errcode."""
    if errcode == -1:
        return WeChatBusy(errmsg or "system busy")
    cls = _WECHAT_ERRCODES.get(errcode, WeChatError)
    return cls("wechat", errmsg or f"errcode {errcode}", status=200, code=errcode)


# --- helpers used by every client ----------------------------------------------------------------


@contextmanager
def translating(upstream: str) -> Iterator[None]:
    """Turn any httpx exception raised inside the block into a typed `IntegrationError`."""
    try:
        yield
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise UpstreamUnavailable(upstream, f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        raise UpstreamError(upstream, f"{type(exc).__name__}: {exc}") from exc


def check_status(response: httpx.Response, upstream: str) -> None:
    """Raise the typed error for a non-2xx answer; 5xx and 429 are transient, other 4xx are not."""
    status = response.status_code
    if status < 400:
        return
    detail = response.text[:200]
    if status >= 500 or status == 429:
        raise UpstreamUnavailable(upstream, f"HTTP {status} {detail}", status=status)
    cls = {404: UpstreamNotFound, 409: UpstreamConflict}.get(status, UpstreamError)
    raise cls(upstream, f"HTTP {status} {detail}", status=status)


def json_object(response: httpx.Response, upstream: str) -> dict[str, Any]:
    """The answer's JSON object, or `UpstreamError` when the body is not one."""
    try:
        data = response.json()
    except ValueError as exc:
        raise UpstreamError(upstream, "answer is not JSON", status=response.status_code) from exc
    if not isinstance(data, dict):
        raise UpstreamError(upstream, "answer is not a JSON object", status=response.status_code)
    return data


@contextmanager
def decoding(upstream: str) -> Iterator[None]:
    """Turn a missing or mistyped field while reading an answer into `UpstreamError`."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(upstream, f"malformed answer: {exc!r}") from exc
