"""The outbox worker process (`bff worker`): polls due messages and runs their handlers until stopped.

Several workers may run at once, on one host or many: claims are leased per message, so each
message is handled by one worker at a time (see `bff.services.outbox`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
from collections.abc import Collection, Sequence
from contextlib import AsyncExitStack
from datetime import datetime

from bff.context import Services
from bff.db import close_db, init_db
from bff.runtime import build_services
from bff.services.churn import enqueue_daily_scoring
from bff.services.erp_events import apply_pending
from bff.services.orders import enqueue_overdue_closes
from bff.services.outbox import HandlerContext, run_due
from bff.services.reco_refresh import enqueue_refresh
from bff.services.rollups import rebuild_dirty
from bff.settings import load_settings

log = logging.getLogger("bff.worker")

# Modules whose import registers outbox handlers; a topic without a handler dead-letters.
HANDLER_MODULES: list[str] = [
    "bff.services.side_effects",
    "bff.services.orders",
    "bff.services.payments",
    "bff.services.fulfilment",
    "bff.services.erp_events",
    "bff.services.group_buy",
    "bff.services.bargain",
    "bff.services.flash_sale",
    "bff.services.presale",
    "bff.services.lottery",
    "bff.services.loyalty",
    "bff.services.points",
    "bff.services.churn",
    "bff.services.reco_refresh",
]


def load_handlers(modules: Sequence[str] | None = None) -> None:
    """Import every handler module so its `@handler` registrations exist in this process."""
    for name in HANDLER_MODULES if modules is None else modules:
        importlib.import_module(name)


class Worker:
    """Runs due outbox messages (of `topics`, default all) in batches.

    `stop()` lets the messages in flight finish, claims no more, and `run()` returns.
    """

    def __init__(
        self,
        services: Services,
        *,
        poll_interval: float = 0.5,
        batch: int = 50,
        worker_id: str | None = None,
        topics: Collection[str] | None = None,
    ) -> None:
        load_handlers()
        self.topics = None if topics is None else frozenset(topics)
        self.services = services
        self.poll_interval = poll_interval
        self.batch = batch
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stopping = asyncio.Event()

    def context(self, message_id: int, attempt: int, now: datetime) -> HandlerContext:
        """The handler context of one attempt of one message."""
        return HandlerContext(
            services=self.services,
            message_id=message_id,
            attempt=attempt,
            now=now,
        )

    async def run_once(self, *, now: datetime | None = None) -> int:
        """Run one batch of due messages; returns how many were handled."""
        return await run_due(
            self.context,
            limit=self.batch,
            now=now,
            worker_id=self.worker_id,
            topics=self.topics,
            stop=self._stopping,
        )

    async def sweep(self, now: datetime | None = None) -> None:
        """Safety nets for work that lost its outbox message: overdue unpaid orders, unapplied ERP events.

        Also queues the daily jobs (deduplicated per shop day): churn scoring.
        """
        await enqueue_overdue_closes(now)
        await apply_pending(self.services.cache, settings=self.services.settings)
        await enqueue_daily_scoring(now)
        await enqueue_refresh(self.services.settings.reco_refresh_minutes, now)
        # Analytics rollups follow ingestion within a sweep interval (the dashboard rebuilds its own range).
        await rebuild_dirty()

    async def run(self, *, sweep_interval: float = 30.0) -> None:
        """Poll and run batches until `stop()`; a full batch polls again at once, an idle one waits."""
        log.info("outbox worker %s started", self.worker_id)
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + sweep_interval
                    await self.sweep()
                handled = await self.run_once()
            except Exception:
                # A database blip must not end the process: claimed messages wait for their lease.
                log.exception("outbox worker %s: batch failed", self.worker_id)
                handled = 0
            if handled < self.batch:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_interval)
                except TimeoutError:
                    pass
        log.info("outbox worker %s stopped", self.worker_id)

    def stop(self) -> None:
        """Ask `run()` to return once the batch in flight is finished."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called."""
        return self._stopping.is_set()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bff worker", description=__doc__)
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between idle polls")
    parser.add_argument("--batch", type=int, default=50, help="messages per batch")
    parser.add_argument("--once", action="store_true", help="run one batch and exit")
    parser.add_argument(
        "--topic", action="append", dest="topics", help="only this topic (repeatable; default: all)"
    )
    return parser


async def main(argv: Sequence[str] | None = None) -> int:
    """`bff worker`: run until SIGINT/SIGTERM, finish the batch in flight, close everything."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    settings.check()
    await init_db(settings.database_url)
    try:
        async with AsyncExitStack() as stack:
            services = await build_services(settings, stack)
            worker = Worker(services, poll_interval=args.poll_interval, batch=args.batch, topics=args.topics)
            if args.once:
                handled = await worker.run_once()
                log.info("outbox worker handled %d messages", handled)
                return 0
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, worker.stop)
            try:
                await worker.run()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
    finally:
        await close_db()
    return 0
