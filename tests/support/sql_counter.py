"""Counts the SQL statements Tortoise sends, so tests can assert that batching holds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_SKIP_PREFIXES = ("Created connection pool", "Closed connection pool")


class SqlCounter(logging.Handler):
    """A logging handler on `tortoise.db_client` that records each statement."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith(_SKIP_PREFIXES):
            self.statements.append(message)

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def count_sql() -> Iterator[SqlCounter]:
    """Record the SQL statements run inside the block."""
    logger = logging.getLogger("tortoise.db_client")
    counter = SqlCounter()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)
