"""The engagement database: one SQLite file (WAL) for profiles, the queue and feedback.

Everything the loop must not lose lives here, so one transaction can take a batch of
probe events from "read" to "profiles updated, engagements queued, cursor moved": a
process killed mid-batch leaves the batch either wholly applied or not at all.

Each module creates its own tables (``ensure_schema``-style functions, idempotent).
Functions that take part in a caller's transaction never commit; the caller wraps
them in ``transaction(connection)``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from graph.errors import InvalidInput


def open_engage_db(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the engagement database at ``path``.

    The connection is in autocommit mode; group writes with ``transaction``. It may be
    used from the thread that opened it only; open one per thread.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process (not a power cut), which is the
    # failure the loop promises to survive; FULL would sync on every commit.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``).

    Nested use joins the outer transaction.
    """
    if connection.in_transaction:
        yield connection
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def epoch_ms(moment: datetime, where: str) -> int:
    """Milliseconds since the Unix epoch of a timezone-aware datetime (how times are stored).

    ``where`` names the value in the error a naive datetime gets.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{where} is a naive datetime; give a timezone")
    return (moment - _EPOCH) // _MS


def from_epoch_ms(ms: int) -> datetime:
    """The UTC datetime of a stored epoch-milliseconds value."""
    return _EPOCH + ms * _MS
