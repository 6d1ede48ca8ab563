"""The outbox: enqueue in the caller's transaction, dedupe, claims, retries, dead letters, the worker.

Runs on the session database (SQLite, or PostgreSQL with DATABASE_URL). Each test registers its own
handler under a topic of its own and runs only that topic, so messages other tests leave behind
are neither run nor counted here.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tortoise.transactions import in_transaction

from bff.context import Services
from bff.db import is_postgres
from bff.models.outbox import OutboxMessage
from bff.runtime import build_services
from bff.services import outbox
from bff.services.outbox import (
    BACKOFF_CAP_SECONDS,
    LEASE,
    DuplicateHandler,
    HandlerContext,
    PermanentFailure,
    backoff_delay,
    dead_letters,
    enqueue,
    handler,
    retry_dead,
    run_due,
)
from bff.settings import load_settings
from bff.worker import Worker, load_handlers
from integrations.errors import UpstreamError, UpstreamUnavailable

MAX_ATTEMPTS = 3

Handler = Callable[[dict[str, Any], HandlerContext], Awaitable[None]]


class Boom(Exception):
    """Makes a transaction roll back."""


class Crash(BaseException):
    """A worker dying mid-handler: nothing in the outbox catches it, as with a killed process."""


@pytest.fixture(scope="module")
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = replace(
        load_settings(),
        database_url=database_url,
        redis_url=None,
        outbox_max_attempts=MAX_ATTEMPTS,
        wechat_api_base_url="http://127.0.0.1:9",  # never called by these handlers
    )
    async with AsyncExitStack() as stack:
        yield await build_services(settings, stack)


@pytest.fixture
def worker(services: Services) -> Worker:
    return Worker(services, worker_id="test")


def register(fn: Handler) -> str:
    """Register `fn` under a fresh topic and return the topic."""
    topic = f"test.{uuid.uuid4().hex[:16]}"
    handler(topic)(fn)
    return topic


class Recorder:
    """A handler that records (message_id, attempt, payload) and fails its first `failures` calls."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.calls: list[tuple[int, int, dict[str, Any]]] = []
        self.failures = failures
        self.error = error or RuntimeError("transient failure")

    async def __call__(self, payload: dict[str, Any], ctx: HandlerContext) -> None:
        self.calls.append((ctx.message_id, ctx.attempt, payload))
        if len(self.calls) <= self.failures:
            raise self.error


async def message(dedupe_key: str) -> OutboxMessage:
    return await OutboxMessage.get(dedupe_key=dedupe_key)


def key() -> str:
    return f"test-{uuid.uuid4().hex}"


async def run(worker: Worker, topic: str, now: datetime | None = None, **kwargs: Any) -> int:
    return await run_due(worker.context, now=now, worker_id=worker.worker_id, topics=[topic], **kwargs)


# --- enqueue --------------------------------------------------------------------------------------


async def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(database_url: str) -> None:
    dedupe = key()
    with pytest.raises(Boom):
        async with in_transaction():
            await enqueue("test.rollback", {"order_id": 1}, dedupe_key=dedupe)
            # Inside the transaction the row is there: enqueue used the transaction's connection.
            assert await OutboxMessage.filter(dedupe_key=dedupe).exists()
            raise Boom
    assert not await OutboxMessage.filter(dedupe_key=dedupe).exists()


async def test_enqueue_in_a_committed_transaction_stores_a_pending_message(database_url: str) -> None:
    dedupe = key()
    before = datetime.now(UTC)
    async with in_transaction():
        await enqueue("test.commit", {"order_id": 7, "note": "好"}, dedupe_key=dedupe)
    row = await message(dedupe)
    assert (row.topic, row.payload, row.status, row.attempts) == (
        "test.commit",
        {"order_id": 7, "note": "好"},
        "PENDING",
        0,
    )
    assert before - timedelta(seconds=1) <= row.run_at <= datetime.now(UTC)
    assert row.locked_until is None and row.done_at is None


async def test_enqueue_is_invisible_to_other_connections_until_commit(database_url: str) -> None:
    if not is_postgres(database_url):
        pytest.skip("needs a second connection with its own view (PostgreSQL)")
    dedupe = key()
    other = await asyncpg.connect("postgresql://" + database_url.split("://", 1)[1])
    try:
        async with in_transaction():
            await enqueue("test.visibility", {}, dedupe_key=dedupe)
            seen = await other.fetchval("SELECT count(*) FROM outbox_message WHERE dedupe_key = $1", dedupe)
            assert seen == 0
        seen = await other.fetchval("SELECT count(*) FROM outbox_message WHERE dedupe_key = $1", dedupe)
        assert seen == 1
    finally:
        await other.close()


async def test_a_duplicate_dedupe_key_is_a_no_op_that_keeps_the_transaction_usable(database_url: str) -> None:
    first, second = key(), key()
    await enqueue("test.dedupe", {"n": 1}, dedupe_key=first)
    async with in_transaction():
        await enqueue("test.dedupe", {"n": 2}, dedupe_key=first)  # committed before: no-op
        await enqueue("test.dedupe", {"n": 3}, dedupe_key=second)
        await enqueue("test.dedupe", {"n": 4}, dedupe_key=second)  # same transaction: no-op
        # On PostgreSQL a failed INSERT would have aborted the transaction; this query proves it did not.
        assert await OutboxMessage.filter(dedupe_key__in=[first, second]).count() == 2
    assert (await message(first)).payload == {"n": 1}
    assert (await message(second)).payload == {"n": 3}


async def test_messages_without_dedupe_key_are_all_kept(database_url: str) -> None:
    topic = f"test.nokey.{uuid.uuid4().hex[:8]}"
    await enqueue(topic, {"n": 1})
    await enqueue(topic, {"n": 1})
    assert await OutboxMessage.filter(topic=topic).count() == 2


def test_a_second_handler_for_a_topic_is_an_error() -> None:
    topic = register(Recorder())
    with pytest.raises(DuplicateHandler):
        handler(topic)(Recorder())
    assert topic in outbox.registered_topics()


# --- running --------------------------------------------------------------------------------------


async def test_a_due_message_runs_once_and_is_done(worker: Worker) -> None:
    recorder = Recorder()
    topic = register(recorder)
    dedupe = key()
    await enqueue(topic, {"order_id": 42}, dedupe_key=dedupe)

    assert await run(worker, topic) == 1
    assert await run(worker, topic) == 0

    row = await message(dedupe)
    assert recorder.calls == [(row.id, 1, {"order_id": 42})]
    assert (row.status, row.attempts, row.locked_until, row.last_error) == ("DONE", 1, None, "")
    assert row.done_at is not None


async def test_a_message_waits_for_its_run_at(worker: Worker) -> None:
    recorder = Recorder()
    topic = register(recorder)
    now = datetime.now(UTC)
    await enqueue(topic, {}, run_at=now + timedelta(minutes=30))

    assert await run(worker, topic, now=now) == 0
    assert await run(worker, topic, now=now + timedelta(minutes=30)) == 1
    assert len(recorder.calls) == 1


async def test_a_failure_is_retried_with_backoff_then_succeeds(worker: Worker) -> None:
    recorder = Recorder(failures=2)
    topic = register(recorder)
    dedupe = key()
    now = datetime.now(UTC)
    await enqueue(topic, {}, dedupe_key=dedupe, run_at=now)

    for attempt in (1, 2):
        assert await run(worker, topic, now=now) == 1
        row = await message(dedupe)
        assert (row.status, row.attempts, row.locked_until) == ("PENDING", attempt, None)
        assert row.last_error == "RuntimeError: transient failure"
        ceiling = timedelta(seconds=outbox.BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        assert now < row.run_at <= now + ceiling
        assert await run(worker, topic, now=now) == 0  # not due before its run_at
        now = row.run_at

    assert await run(worker, topic, now=now) == 1
    row = await message(dedupe)
    assert (row.status, row.attempts) == ("DONE", 3)
    assert [attempt for _, attempt, _ in recorder.calls] == [1, 2, 3]


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    rng = random.Random(7)
    for attempt in range(1, 20):
        ceiling = min(BACKOFF_CAP_SECONDS, outbox.BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, rng=rng).total_seconds() for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # spread over the range
    for attempt in (30, 10_000):
        assert max(backoff_delay(attempt, rng=rng).total_seconds() for _ in range(200)) <= BACKOFF_CAP_SECONDS


async def test_max_attempts_dead_letters_then_retry_dead_redrives(worker: Worker) -> None:
    recorder = Recorder(failures=MAX_ATTEMPTS)
    topic = register(recorder)
    dedupe = key()
    now = datetime.now(UTC)
    await enqueue(topic, {"x": 1}, dedupe_key=dedupe, run_at=now)

    for _ in range(MAX_ATTEMPTS):
        assert await run(worker, topic, now=now) == 1
        now += timedelta(seconds=BACKOFF_CAP_SECONDS)
    row = await message(dedupe)
    assert (row.status, row.attempts) == ("DEAD", MAX_ATTEMPTS)
    assert row.last_error == f"gave up after {MAX_ATTEMPTS} attempts: RuntimeError: transient failure"
    assert await run(worker, topic, now=now + timedelta(days=1)) == 0
    assert row.id in [m.id for m in await dead_letters()]

    assert await retry_dead(row.id) is True
    assert await retry_dead(row.id) is False  # no longer DEAD
    assert row.id not in [m.id for m in await dead_letters()]
    assert await run(worker, topic) == 1
    row = await message(dedupe)
    assert (row.status, row.attempts) == ("DONE", 1)
    assert len(recorder.calls) == MAX_ATTEMPTS + 1


async def test_permanent_failure_dead_letters_at_once(worker: Worker) -> None:
    topic = register(Recorder(failures=1, error=PermanentFailure("order 9 does not exist")))
    dedupe = key()
    await enqueue(topic, {}, dedupe_key=dedupe)

    assert await run(worker, topic) == 1
    row = await message(dedupe)
    assert (row.status, row.attempts, row.last_error) == (
        "DEAD",
        1,
        "PermanentFailure: order 9 does not exist",
    )


async def test_a_non_retryable_upstream_error_dead_letters_and_a_retryable_one_retries(
    worker: Worker,
) -> None:
    refused = register(Recorder(failures=1, error=UpstreamError("erp", "HTTP 400 bad sku", status=400)))
    unavailable = register(Recorder(failures=1, error=UpstreamUnavailable("erp", "HTTP 503", status=503)))
    refused_key, unavailable_key = key(), key()
    await enqueue(refused, {}, dedupe_key=refused_key)
    await enqueue(unavailable, {}, dedupe_key=unavailable_key)

    await run(worker, refused)
    await run(worker, unavailable)

    row = await message(refused_key)
    assert (row.status, row.last_error) == ("DEAD", "UpstreamError: erp: HTTP 400 bad sku")
    row = await message(unavailable_key)
    assert (row.status, row.last_error) == ("PENDING", "UpstreamUnavailable: erp: HTTP 503")


async def test_an_unknown_topic_dead_letters_with_a_clear_error(worker: Worker) -> None:
    topic = f"test.nobody-handles.{uuid.uuid4().hex[:8]}"
    dedupe = key()
    await enqueue(topic, {}, dedupe_key=dedupe)

    assert await run(worker, topic) == 1
    row = await message(dedupe)
    assert (row.status, row.last_error) == ("DEAD", f"no handler registered for topic {topic!r}")


async def test_a_handler_that_hangs_times_out_and_is_retried(worker: Worker) -> None:
    async def hang(payload: dict[str, Any], ctx: HandlerContext) -> None:
        await asyncio.sleep(30)

    topic = register(hang)
    dedupe = key()
    await enqueue(topic, {}, dedupe_key=dedupe)

    assert await run(worker, topic, handler_timeout=timedelta(seconds=0.05)) == 1
    row = await message(dedupe)
    assert (row.status, row.attempts, row.last_error) == ("PENDING", 1, "TimeoutError: ")


async def test_the_handler_context_carries_the_run_clock(worker: Worker) -> None:
    seen: list[datetime] = []

    async def note(payload: dict[str, Any], ctx: HandlerContext) -> None:
        seen.append(ctx.now)

    topic = register(note)
    await enqueue(topic, {})
    later = datetime.now(UTC) + timedelta(hours=2)
    await run(worker, topic, now=later)
    assert seen == [later]


# --- several workers ------------------------------------------------------------------------------


async def test_concurrent_runs_never_handle_a_message_twice(services: Services) -> None:
    handled: list[int] = []

    async def slow(payload: dict[str, Any], ctx: HandlerContext) -> None:
        handled.append(int(payload["n"]))
        await asyncio.sleep(0.01)

    topic = register(slow)
    async with in_transaction():
        for n in range(40):
            await enqueue(topic, {"n": n})
    workers = [Worker(services, worker_id=f"w{i}", batch=40) for i in range(3)]

    counts = await asyncio.gather(*(run(w, topic, limit=40) for w in workers))

    assert sum(counts) == 40
    assert sorted(handled) == list(range(40))
    assert await OutboxMessage.filter(topic=topic, status="DONE", attempts=1).count() == 40


async def test_a_row_locked_by_another_connection_is_skipped_not_waited_for(
    database_url: str, worker: Worker
) -> None:
    if not is_postgres(database_url):
        pytest.skip("row locks and SKIP LOCKED are PostgreSQL's")
    recorder = Recorder()
    topic = register(recorder)
    locked_key, free_key = key(), key()
    now = datetime.now(UTC)
    await enqueue(topic, {"which": "locked"}, dedupe_key=locked_key, run_at=now - timedelta(seconds=1))
    await enqueue(topic, {"which": "free"}, dedupe_key=free_key, run_at=now)
    locked_id = (await message(locked_key)).id

    # Another worker process, mid-claim: its transaction holds the row lock.
    other = await asyncpg.connect("postgresql://" + database_url.split("://", 1)[1])
    try:
        async with other.transaction():
            await other.execute("SELECT id FROM outbox_message WHERE id = $1 FOR UPDATE", locked_id)
            assert await asyncio.wait_for(run(worker, topic), timeout=5) == 1
        assert [payload for _, _, payload in recorder.calls] == [{"which": "free"}]
    finally:
        await other.close()
    assert await run(worker, topic) == 1
    assert [payload["which"] for _, _, payload in recorder.calls] == ["free", "locked"]


async def test_a_crashed_worker_s_message_is_retried_once_its_lease_expires(worker: Worker) -> None:
    calls: list[int] = []

    async def crash_first(payload: dict[str, Any], ctx: HandlerContext) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise Crash

    topic = register(crash_first)
    dedupe = key()
    now = datetime.now(UTC)
    await enqueue(topic, {}, dedupe_key=dedupe, run_at=now)

    with pytest.raises(Crash):
        await run(worker, topic, now=now)
    row = await message(dedupe)
    assert (row.status, row.attempts, row.locked_until) == ("PENDING", 1, now + LEASE)

    assert await run(worker, topic, now=now + LEASE - timedelta(seconds=1)) == 0  # still leased
    assert await run(worker, topic, now=now + LEASE + timedelta(seconds=1)) == 1
    row = await message(dedupe)
    assert (row.status, row.attempts) == ("DONE", 2)
    assert calls == [1, 2]


async def test_a_message_that_keeps_killing_its_worker_is_dead_lettered(worker: Worker) -> None:
    calls: list[int] = []

    async def crash(payload: dict[str, Any], ctx: HandlerContext) -> None:
        calls.append(ctx.attempt)
        raise Crash

    topic = register(crash)
    dedupe = key()
    now = datetime.now(UTC)
    await enqueue(topic, {}, dedupe_key=dedupe, run_at=now)

    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(Crash):
            await run(worker, topic, now=now)
        now += LEASE + timedelta(seconds=1)
    assert await run(worker, topic, now=now) == 1

    row = await message(dedupe)
    assert (row.status, row.attempts) == ("DEAD", MAX_ATTEMPTS + 1)
    assert row.last_error == f"gave up after {MAX_ATTEMPTS} attempts whose lease expired (worker died?)"
    assert calls == [1, 2, 3]


async def test_a_worker_that_outlived_its_lease_does_not_overwrite_the_new_outcome(
    services: Services,
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def first_slow_then_ok(payload: dict[str, Any], ctx: HandlerContext) -> None:
        if ctx.attempt == 1:
            started.set()
            await release.wait()
            raise RuntimeError("too late")

    topic = register(first_slow_then_ok)
    dedupe = key()
    now = datetime.now(UTC)
    await enqueue(topic, {}, dedupe_key=dedupe, run_at=now)
    slow, fast = Worker(services, worker_id="slow"), Worker(services, worker_id="fast")

    slow_run = asyncio.create_task(run(slow, topic, now=now))
    await asyncio.wait_for(started.wait(), timeout=5)
    assert await run(fast, topic, now=now + LEASE + timedelta(seconds=1)) == 1
    release.set()
    assert await slow_run == 1

    row = await message(dedupe)
    assert (row.status, row.attempts, row.last_error) == ("DONE", 2, "")


# --- the worker -----------------------------------------------------------------------------------


async def test_worker_stop_finishes_the_batch_in_flight_then_returns(services: Services) -> None:
    release = asyncio.Event()
    running: list[int] = []

    async def blocking(payload: dict[str, Any], ctx: HandlerContext) -> None:
        running.append(int(payload["n"]))
        await release.wait()

    topic = register(blocking)
    for n in range(3):
        await enqueue(topic, {"n": n})
    worker = Worker(services, poll_interval=0.01, topics=[topic], worker_id="graceful")

    task = asyncio.create_task(worker.run())
    for _ in range(500):
        if len(running) == 3:
            break
        await asyncio.sleep(0.01)
    assert sorted(running) == [0, 1, 2]

    worker.stop()
    await enqueue(topic, {"n": 3})  # arrives while stopping: left for the next worker
    await asyncio.sleep(0.05)
    assert not task.done()  # waits for the handlers in flight
    release.set()
    await asyncio.wait_for(task, timeout=5)

    statuses = {
        int(str(m.payload["n"])): m.status for m in await OutboxMessage.filter(topic=topic).order_by("id")
    }
    assert statuses == {0: "DONE", 1: "DONE", 2: "DONE", 3: "PENDING"}


async def test_worker_run_once_handles_due_messages_of_its_topics(services: Services) -> None:
    recorder = Recorder()
    topic = register(recorder)
    await enqueue(topic, {"a": 1})
    await enqueue(topic, {"a": 2})

    worker = Worker(services, topics=[topic], batch=1)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert [payload for _, _, payload in recorder.calls] == [{"a": 1}, {"a": 2}]


async def test_worker_keeps_polling_after_a_batch_fails(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    topic = register(recorder)
    await enqueue(topic, {})
    worker = Worker(services, poll_interval=0.01, topics=[topic])
    real_run_due = outbox.run_due
    failures = iter([ConnectionError("database went away")])

    async def flaky_run_due(*args: Any, **kwargs: Any) -> int:
        error = next(failures, None)
        if error is not None:
            raise error
        return await real_run_due(*args, **kwargs)

    monkeypatch.setattr("bff.worker.run_due", flaky_run_due)
    task = asyncio.create_task(worker.run())
    for _ in range(500):
        if recorder.calls:
            break
        await asyncio.sleep(0.01)
    worker.stop()
    await asyncio.wait_for(task, timeout=5)
    assert len(recorder.calls) == 1


def test_every_topic_the_code_enqueues_has_a_handler_in_the_worker() -> None:
    # A topic the worker process has no handler for dead-letters at once: HANDLER_MODULES must
    # name every module that registers one. Topics are string literals or *_TOPIC constants.
    load_handlers()
    root = Path(__file__).resolve().parents[2]
    sources = "\n".join(p.read_text() for d in ("bff", "integrations") for p in (root / d).rglob("*.py"))
    literals = set(re.findall(r'enqueue\(\s*"([a-z_.]+)"', sources))
    constants = set(re.findall(r'^[A-Z_]*TOPIC\s*=\s*"([a-z_.]+)"', sources, flags=re.MULTILINE))
    assert {"erp.push_order", "wechat.subscribe_message", "order.close_if_unpaid"} <= literals
    assert literals | constants <= outbox.registered_topics()
