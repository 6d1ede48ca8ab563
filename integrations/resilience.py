"""Circuit breakers and jittered retries for calls to the ERP, the CRM and WeChat.

A breaker opens after `failure_threshold` consecutive unavailability failures and then fails calls
at once (`CircuitOpen`, an `UpstreamUnavailable`) for `reset_after` seconds, so a dead upstream costs
a screen nothing instead of a timeout per request; then one probe call decides whether it closes.
An answer that refuses (a 4xx, an errcode) proves the upstream is up: it counts as a success.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx

from integrations.errors import IntegrationError, UpstreamUnavailable

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitOpen(UpstreamUnavailable):
    """The upstream failed repeatedly just now: the call was not made."""


class CircuitBreaker:
    """Per-upstream breaker, shared by every request of the process."""

    def __init__(
        self,
        upstream: str,
        *,
        failure_threshold: int = 5,
        reset_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self.state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    def _admit(self) -> None:
        if self.state == CLOSED:
            return
        if self.state == OPEN and self._clock() - self._opened_at >= self.reset_after:
            self.state = HALF_OPEN
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True  # this call is the probe; others keep failing fast until it ends
            return
        raise CircuitOpen(self.upstream, "circuit open after repeated failures: not calling")

    def _succeeded(self) -> None:
        self.state, self._failures, self._probing = CLOSED, 0, False

    def _failed(self) -> None:
        self._failures += 1
        self._probing = False
        if self.state == HALF_OPEN or self._failures >= self.failure_threshold:
            self.state, self._opened_at = OPEN, self._clock()

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run one call through the breaker: refuse it when open, record how it went."""
        self._admit()
        try:
            yield
        except UpstreamUnavailable:
            self._failed()
            raise
        except IntegrationError:
            self._succeeded()
            raise
        except BaseException:
            self._probing = False  # cancelled or a bug of ours: says nothing about the upstream
            raise
        self._succeeded()


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, httpx.TimeoutException)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 3,
    base_delay: float = 0.05,
    max_delay: float = 0.5,
    rng: random.Random | None = None,
) -> T:
    """Run an idempotent call, again after a jittered pause when the upstream was unavailable.

    A timeout is not retried (it already spent the caller's budget), nor is an open circuit.
    """
    pick = (rng or random.SystemRandom()).uniform
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except CircuitOpen:
            raise
        except UpstreamUnavailable as exc:
            if attempt == attempts or _timed_out(exc):
                raise
            # Full jitter: callers that failed together do not come back together.
            await asyncio.sleep(pick(0, min(max_delay, base_delay * 2 ** (attempt - 1))))
    raise AssertionError("unreachable: the last attempt returns or raises")
