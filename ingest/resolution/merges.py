"""The identity merge map as readers of the lake need it: read from the index file alone.

The analyzers map each touchpoint's customer (as written) to its survivor. They need
nothing else of the identity index, so this module reads only the file's customers
table with the standard library: importing it does not load the resolver (SciPy,
pandas), which matters for a command line that should answer in a second.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path


def read_merge_map(path: Path) -> dict[str, str]:
    """The merge map of an identity index file, read without loading the index.

    Readers of the lake (the analyzers) need only this: each merged customer id and
    the survivor it resolves to now. A missing file has merged nobody.
    """
    if not path.exists():
        return {}
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        merged = dict(
            connection.execute(
                "SELECT customer, merged_into FROM customers WHERE merged_into IS NOT NULL"
            ).fetchall()
        )
    finally:
        connection.close()
    return {loser: survivor_of(merged, loser) for loser in merged}


def survivor_of(merged_into: Mapping[str, str], customer: str) -> str:
    """The customer id that ``customer`` resolves to through ``merged_into`` (loser ->
    the customer it was merged into): itself unless merged."""
    seen = 0
    while customer in merged_into:
        customer = merged_into[customer]
        seen += 1
        if seen > 10_000:
            raise RuntimeError(f"merge map has a cycle through {customer}")
    return customer


class MergeMapFile:
    """The merge map of an identity index file, read again only after the file changed.

    Analyzers ask for the merge map on every query to see merges since the last one;
    reading it means scanning the customers table, so the file's (and its WAL's)
    size and modification time decide whether the last answer still holds.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[tuple[int, int] | None, ...] | None = None
        self._merges: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, str]:
        with self._lock:
            stamp = tuple(
                _stamp(p) for p in (self.path, self.path.with_name(f"{self.path.name}-wal"))
            )
            if stamp != self._stamp:
                self._merges = read_merge_map(self.path)
                self._stamp = stamp
            return self._merges


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns
