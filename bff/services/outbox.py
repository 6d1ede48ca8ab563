"""The transactional outbox: enqueue side effects with the change that causes them, run them later.

`enqueue` writes an `OutboxMessage` through the caller's current transaction, so the side effect
exists exactly when the change commits. `run_due` (driven by `bff.worker.Worker`) claims due
messages under a lease, calls the handler registered for the topic and records the outcome:
DONE, retried later with exponential backoff and full jitter, or DEAD (visible in `dead_letters`,
re-driven by `retry_dead`).

Delivery is at least once: a worker that dies mid-handler leaves its lease to expire and another
worker runs the message again. Every handler must therefore be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from bff.models.outbox import OutboxMessage

if TYPE_CHECKING:
    from bff.context import Services

log = logging.getLogger("bff.outbox")

PENDING = "PENDING"
DONE = "DONE"
DEAD = "DEAD"

# A handler gets HANDLER_TIMEOUT; the lease outlives it by a margin for the bookkeeping queries,
# so a live worker never loses a message to a second worker while still working on it.
HANDLER_TIMEOUT = timedelta(seconds=30)
LEASE = timedelta(seconds=60)
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 600.0
CONCURRENCY = 8  # messages one run_due call handles at the same time
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class HandlerContext:
    """What a handler may use: the process services, the message id and this attempt's number (1-based).

    `now` is the run's clock (what `run_due` was given): compare deadlines with it, not the wall clock,
    so tests drive time. The upstream clients are `services.erp`, `services.crm`, `services.wechat`.
    """

    services: Services
    message_id: int
    attempt: int
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


Handler = Callable[[dict[str, Any], HandlerContext], Awaitable[None]]
ContextFactory = Callable[[int, int, datetime], HandlerContext]  # (message_id, attempt, now) -> context

_HANDLERS: dict[str, Handler] = {}


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help (e.g. a 4xx refusal): the message goes DEAD at once.

    Any exception whose `retryable` attribute is False counts the same: every non-retryable
    `integrations.errors.IntegrationError` (a 4xx, a refusing errcode) escaping a handler dead-letters.
    """


class DuplicateHandler(RuntimeError):
    """A second handler was registered for a topic."""


def handler(topic: str) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the handler of `topic`; handlers must be idempotent."""

    def register(fn: Handler) -> Handler:
        if topic in _HANDLERS:
            raise DuplicateHandler(f"outbox topic {topic!r} already has a handler: {_HANDLERS[topic]!r}")
        _HANDLERS[topic] = fn
        return fn

    return register


def registered_topics() -> frozenset[str]:
    """The topics that have a handler in this process."""
    return frozenset(_HANDLERS)


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def enqueue(
    topic: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Store a side effect in the caller's current transaction; an existing `dedupe_key` makes it a no-op."""
    message = OutboxMessage(
        topic=topic,
        payload=payload,
        dedupe_key=dedupe_key,
        status=PENDING,
        run_at=run_at or _utcnow(),
    )
    # Tortoise routes the model's queries through the task's active transaction, if any.
    # ON CONFLICT DO NOTHING (PostgreSQL and SQLite alike) rather than catching IntegrityError:
    # a failed INSERT would abort the caller's whole PostgreSQL transaction. The only unique
    # column besides the generated id is dedupe_key, so the untargeted form means the same.
    await OutboxMessage.bulk_create([message], ignore_conflicts=True)


# --- running messages ----------------------------------------------------------------------------


def backoff_delay(attempt: int, *, rng: random.Random | None = None) -> timedelta:
    """Delay before retry after failed attempt `attempt` (1-based): full jitter over a capped exponential."""
    # The exponent is clamped: the cap is reached long before, and 2**huge would overflow a float.
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(max(0, attempt - 1), 32))
    return timedelta(seconds=(rng or random).uniform(0.0, ceiling))


def _due(now: datetime, topics: Collection[str] | None) -> Q:
    condition = Q(status=PENDING, run_at__lte=now) & (Q(locked_until__isnull=True) | Q(locked_until__lt=now))
    if topics is not None:
        condition &= Q(topic__in=list(topics))
    return condition


def _is_postgres() -> bool:
    return OutboxMessage._meta.db.capabilities.dialect == "postgres"


async def _claim(limit: int, now: datetime, lease: timedelta, topics: Collection[str] | None) -> list[int]:
    """Take up to `limit` due messages for this worker: lease them and count the attempt."""
    lease_until = now + lease
    if _is_postgres():
        # SKIP LOCKED: concurrent workers each take different rows without waiting on each other.
        async with in_transaction():
            rows = await (
                OutboxMessage.filter(_due(now, topics))
                .order_by("run_at", "id")
                .limit(limit)
                .select_for_update(skip_locked=True)
                .only("id")  # not .values(): Tortoise drops FOR UPDATE from values queries
            )
            ids = [row.id for row in rows]
            if ids:
                await OutboxMessage.filter(id__in=ids).update(
                    locked_until=lease_until, attempts=F("attempts") + 1
                )
        return ids
    # SQLite has no row locks: a conditional UPDATE per candidate is the claim, and only the
    # worker whose UPDATE changed the row owns it (SQLite serialises writers).
    candidates = (
        await OutboxMessage.filter(_due(now, topics)).order_by("run_at", "id").limit(limit).values("id")
    )
    claimed: list[int] = []
    for row in candidates:
        message_id = int(row["id"])
        changed = await OutboxMessage.filter(_due(now, topics), id=message_id).update(
            locked_until=lease_until, attempts=F("attempts") + 1
        )
        if changed == 1:
            claimed.append(message_id)
    return claimed


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


async def _finish(message: OutboxMessage, **values: Any) -> None:
    # Guarded by the claimed attempt number: when our lease lapsed and another worker re-claimed
    # the message, its outcome is the one that counts.
    changed = await OutboxMessage.filter(id=message.id, status=PENDING, attempts=message.attempts).update(
        locked_until=None, **values
    )
    if changed == 0:
        log.warning(
            "outbox message %s (%s) attempt %s: lease lost, outcome discarded",
            message.id,
            message.topic,
            message.attempts,
        )


async def _dead(message: OutboxMessage, now: datetime, error: str) -> None:
    log.error(
        "outbox message %s (%s) is DEAD after attempt %s: %s",
        message.id,
        message.topic,
        message.attempts,
        error,
    )
    await _finish(message, status=DEAD, last_error=error, done_at=now)


async def _process(
    message: OutboxMessage,
    ctx_factory: ContextFactory,
    now: datetime,
    max_attempts: int | None,
    handler_timeout: timedelta,
) -> None:
    fn = _HANDLERS.get(message.topic)
    if fn is None:
        await _dead(message, now, f"no handler registered for topic {message.topic!r}")
        return
    ctx = ctx_factory(message.id, message.attempts, now)
    if max_attempts is None:
        max_attempts = ctx.services.settings.outbox_max_attempts
    if message.attempts > max_attempts:
        # Every earlier attempt ended with an expired lease (a message that kills its worker, say):
        # stop before it takes down one more.
        await _dead(message, now, f"gave up after {max_attempts} attempts whose lease expired (worker died?)")
        return
    try:
        async with asyncio.timeout(handler_timeout.total_seconds()):
            await fn(dict(message.payload), ctx)
    except PermanentFailure as exc:
        await _dead(message, now, _error_text(exc))
        return
    except Exception as exc:
        # integrations.errors flags what a retry can fix; other exceptions carry no such flag.
        if getattr(exc, "retryable", True) is not False:
            await _retry_or_dead(message, now, max_attempts, exc)
            return
        await _dead(message, now, _error_text(exc))
        return
    await _finish(message, status=DONE, done_at=now, last_error="")


async def _retry_or_dead(message: OutboxMessage, now: datetime, max_attempts: int, exc: Exception) -> None:
    error = _error_text(exc)
    if message.attempts >= max_attempts:
        await _dead(message, now, f"gave up after {message.attempts} attempts: {error}")
        return
    delay = backoff_delay(message.attempts)
    log.warning(
        "outbox message %s (%s) attempt %s failed, retrying in %.1fs: %s",
        message.id,
        message.topic,
        message.attempts,
        delay.total_seconds(),
        error,
    )
    await _finish(message, last_error=error, run_at=now + delay)


async def run_due(
    ctx_factory: ContextFactory,
    *,
    limit: int = 50,
    now: datetime | None = None,
    worker_id: str,
    topics: Collection[str] | None = None,
    max_attempts: int | None = None,
    lease: timedelta = LEASE,
    handler_timeout: timedelta = HANDLER_TIMEOUT,
    stop: asyncio.Event | None = None,
) -> int:
    """Claim up to `limit` due messages (optionally only `topics`) and handle them; returns how many ran.

    `now` defaults to the clock; tests pass it to drive backoff and lease expiry without sleeping.
    `max_attempts` defaults to the handler context's `settings.outbox_max_attempts`. Once `stop` is
    set no more messages are claimed; those in flight are finished.
    """
    clock = now or _utcnow()
    processed = 0
    # Claimed in chunks of CONCURRENCY that run together: a chunk finishes within one handler
    # timeout, well inside the lease, however long the whole batch takes.
    while processed < limit and not (stop is not None and stop.is_set()):
        ids = await _claim(min(CONCURRENCY, limit - processed), clock, lease, topics)
        if not ids:
            break
        messages = await OutboxMessage.filter(id__in=ids).order_by("run_at", "id")
        log.debug("worker %s claimed outbox messages %s", worker_id, ids)
        # return_exceptions: a bookkeeping failure (database blip) on one message must not abandon
        # the others mid-flight; the failed one keeps its lease and is retried once it expires.
        outcomes = await asyncio.gather(
            *(_process(m, ctx_factory, clock, max_attempts, handler_timeout) for m in messages),
            return_exceptions=True,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        processed += len(messages)
        if now is None:
            clock = _utcnow()
    return processed


# --- dead letters --------------------------------------------------------------------------------


async def dead_letters(limit: int = 100) -> list[OutboxMessage]:
    """The most recent DEAD messages, newest first, with their last_error."""
    return await OutboxMessage.filter(status=DEAD).order_by("-id").limit(limit)


async def retry_dead(message_id: int, *, now: datetime | None = None) -> bool:
    """Put a DEAD message back in the queue with a fresh attempt budget; False when it is not DEAD."""
    changed = await OutboxMessage.filter(id=message_id, status=DEAD).update(
        status=PENDING, attempts=0, run_at=now or _utcnow(), locked_until=None, done_at=None
    )
    return changed == 1
