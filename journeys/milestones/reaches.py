"""Reaches as Parquet beside the lake: what KPIs read (funnels, time to milestone, churn).

Layout: ``<lake root>/milestones/part-<n>.parquet`` (``n`` zero-padded, increasing),
each file with exactly this schema::

    customer    string                   the customer as evaluated
    milestone   string                   the definition's name
    version     int64                    the definition's version
    reached_at  timestamp[ms, tz=UTC]    ts of the touchpoint that completed it
    evidence    list<string>             the event ids of the chain, in time order

Files are only ever added (or, on a rebuild, replaced all at once), so a reach that
changed has rows in several files. ``read_reaches`` and ``reaches_relation`` give the
current reaches: customers mapped through the identity merge map (as lake readers
do), then per ``(customer, milestone, version)`` the row of the newest file. Read
reaches through them rather than globbing the files.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

FOLDER: Final = "milestones"
_FIELDS: Final[list[pa.Field[Any]]] = [
    pa.field("customer", pa.string()),
    pa.field("milestone", pa.string()),
    pa.field("version", pa.int64()),
    pa.field("reached_at", pa.timestamp("ms", tz="UTC")),
    pa.field("evidence", pa.list_(pa.string())),
]
REACH_SCHEMA: Final = pa.schema(_FIELDS)
"""The schema of every reach file (and of ``read_reaches``)."""
_PART: Final = re.compile(r"^part-(\d{1,18})\.parquet$")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Reach:
    """A customer reached a milestone (one version of it) at a touchpoint.

    ``evidence`` are the event ids of the touchpoints that satisfied the condition,
    in time order; the last completed it, and ``reached_at`` is its ts.
    """

    customer: str
    milestone: str
    version: int
    reached_at: datetime
    evidence: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str, int]:
        """What a customer reaches at most once: ``(customer, milestone, version)``."""
        return self.customer, self.milestone, self.version


def milliseconds(moment: datetime) -> int:
    """Milliseconds since the epoch of a timezone-aware datetime (exact, no float)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def moment(ms: int) -> datetime:
    """The UTC datetime of milliseconds since the epoch."""
    return EPOCH + timedelta(milliseconds=ms)


def reach_table(reaches: Sequence[Reach]) -> pa.Table:
    """Reaches as a table of ``REACH_SCHEMA``."""
    return pa.table(
        {
            "customer": [reach.customer for reach in reaches],
            "milestone": [reach.milestone for reach in reaches],
            "version": [reach.version for reach in reaches],
            "reached_at": [reach.reached_at for reach in reaches],
            "evidence": [list(reach.evidence) for reach in reaches],
        },
        schema=REACH_SCHEMA,
    )


def reaches_of(table: pa.Table) -> list[Reach]:
    """The rows of a reach table as ``Reach`` objects."""
    return [
        Reach(
            row["customer"],
            row["milestone"],
            row["version"],
            row["reached_at"],
            tuple(row["evidence"]),
        )
        for row in table.to_pylist()
    ]


class ReachStore:
    """The reach files of one lake: append, rebuild, read."""

    def __init__(self, lake_root: Path) -> None:
        self.folder = lake_root / FOLDER

    def files(self) -> list[Path]:
        """The reach files, oldest first."""
        if not self.folder.exists():
            return []
        parts = [
            (int(match.group(1)), path)
            for path in self.folder.iterdir()
            if (match := _PART.match(path.name))
        ]
        return [path for _, path in sorted(parts)]

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """Hold the folder's lock; yields the next part number.

        Writers (a backfill, a follower) may run at once; the lock makes part
        numbers, and so "the newest row wins", follow the order of the writes.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                files = self.files()
                match = _PART.match(files[-1].name) if files else None
                yield int(match.group(1)) + 1 if match else 1
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, reaches: pa.Table) -> Path | None:
        """Write reaches (new or changed) as the newest part; None when there are none."""
        if reaches.num_rows == 0:
            return None
        with self._locked() as number:
            return self._write(number, reaches)

    def replace(self, reaches: pa.Table) -> Path | None:
        """Replace every file by one holding exactly ``reaches`` (a rebuild)."""
        with self._locked() as number:
            stale = self.files()
            path = self._write(number, reaches) if reaches.num_rows else None
            for old in stale:
                old.unlink()
            return path

    def _write(self, number: int, reaches: pa.Table) -> Path:
        path = self.folder / f"part-{number:06d}.parquet"
        temporary = self.folder / f".{path.name}.tmp"
        pq.write_table(reaches.select(REACH_SCHEMA.names).cast(REACH_SCHEMA), temporary)
        os.replace(temporary, path)
        return path


def reaches_relation(
    connection: duckdb.DuckDBPyConnection,
    lake_root: Path,
    merge_map: Mapping[str, str] | None = None,
) -> duckdb.DuckDBPyRelation | None:
    """The current reaches as a DuckDB relation of ``REACH_SCHEMA``; None when none.

    Customers are mapped through ``merge_map`` (loser -> survivor); of the rows left
    for one ``(customer, milestone, version)``, the newest file's wins.
    """
    files = ReachStore(lake_root).files()
    if not files:
        return None
    written = connection.read_parquet([str(path) for path in files], filename=True)
    connection.register("_reach_rows", written)
    customer = "r.customer"
    join = ""
    if merge_map:
        mapping = pa.table({"loser": list(merge_map), "survivor": list(merge_map.values())})
        connection.register("_reach_merge_map", mapping)
        customer = "coalesce(m.survivor, r.customer)"
        join = "LEFT JOIN _reach_merge_map m ON r.customer = m.loser"
    # Newest file first; within a file (two customers written there may have merged
    # since) the survivor's own row, then a fixed order.
    return connection.sql(
        f"SELECT {customer} AS customer, r.milestone, r.version, r.reached_at, r.evidence "
        f"FROM _reach_rows r {join} "
        f"QUALIFY row_number() OVER (PARTITION BY {customer}, r.milestone, r.version "
        "ORDER BY CAST(regexp_extract(r.filename, 'part-([0-9]+)[.]parquet$', 1) AS BIGINT) DESC,"
        f" r.customer = {customer} DESC, r.reached_at, r.customer) = 1"
    )


def read_reaches(lake_root: Path, merge_map: Mapping[str, str] | None = None) -> pa.Table:
    """The current reaches (see ``reaches_relation``) as an Arrow table of ``REACH_SCHEMA``."""
    connection = duckdb.connect()
    try:
        relation = reaches_relation(connection, lake_root, merge_map)
        if relation is None:
            return REACH_SCHEMA.empty_table()
        return relation.order("milestone, version, customer").to_arrow_table().cast(REACH_SCHEMA)
    finally:
        connection.close()
