"""The Parquet lake: every accepted, resolved touchpoint, the analytics copy.

Layout: ``ROOT/touchpoints/month=YYYY-MM/<part>.parquet`` (Hive partitioning by the
touchpoint's UTC month: partitions by day made ~1,800 files of a handful of rows
for one chunk of CRM records that span years, and reading them back cost more than
the month pruning saves), each file the frame's columns plus ``customer`` (the
customer the touchpoint was resolved to when it was written) and ``batch`` (the
write's sequence number). Customers merged later resolve through the identity
index's merge map, which readers apply (``touchpoints(..., merge_map)``), so the lake
is append-only and never rewritten.

A write is idempotent by its part name: writing the same part again replaces its
files, so a chunk re-done after an interruption leaves no duplicates. Files are
written under a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from graph.errors import InvalidInput
from ingest.frame import FRAME_SCHEMA

_PART: Final = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")
TOUCHPOINTS: Final = "touchpoints"


class Lake:
    """Append-only, month-partitioned Parquet files of resolved touchpoints."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.touchpoint_root = root / TOUCHPOINTS

    def append(self, frame: pa.Table, customers: pa.Array[Any], part: str, batch: int) -> int:
        """Write ``frame`` with its ``customers`` as part ``part``; returns rows written.

        Re-writing a part replaces it (idempotent re-runs).
        """
        if not _PART.match(part):
            raise InvalidInput(f"lake part name {part!r} must be 1-120 of A-Z a-z 0-9 _ . -")
        if len(customers) != frame.num_rows:
            raise InvalidInput("one customer per touchpoint is required")
        self.remove_part(part)
        if frame.num_rows == 0:
            return 0
        table = frame.append_column("customer", customers).append_column(
            "batch", pa.array(np.full(frame.num_rows, batch, np.int64))
        )
        days = pc.strftime(table.column("ts"), format="%Y-%m")
        order = pc.sort_indices(days)
        table = table.take(order)
        days = days.take(order)
        bounds = _run_bounds(days)
        for start, stop in bounds:
            day = days[start].as_py()
            folder = self.touchpoint_root / f"month={day}"
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"{part}.parquet"
            temporary = folder / f".{part}.parquet.tmp"
            pq.write_table(table.slice(start, stop - start), temporary, compression="zstd")
            os.replace(temporary, final)
        self._changed()
        return frame.num_rows

    def remove_part(self, part: str) -> None:
        """Delete every file of one part (no error if there is none)."""
        if not self.touchpoint_root.exists():
            return
        removed = False
        for path in self.touchpoint_root.glob(f"month=*/{part}.parquet"):
            path.unlink()
            removed = True
        if removed:
            self._changed()

    @property
    def change_marker(self) -> Path:
        """A file replaced after every change to the lake's files.

        Readers that keep a listing of the files (the timelines' freshness check)
        stat this one file instead of every month folder. It is replaced, not
        touched, so each change gives it a new inode even within one clock tick.
        """
        return self.root / "touchpoints.changed"

    def _changed(self) -> None:
        marker = self.change_marker
        marker.parent.mkdir(parents=True, exist_ok=True)
        temporary = marker.with_name(f".{marker.name}.tmp")
        temporary.write_bytes(os.urandom(8))
        os.replace(temporary, marker)

    def files(self) -> list[Path]:
        """Every Parquet file of the lake, sorted."""
        if not self.touchpoint_root.exists():
            return []
        return sorted(self.touchpoint_root.glob("month=*/*.parquet"))

    def relation(
        self,
        connection: duckdb.DuckDBPyConnection,
        merge_map: Mapping[str, str] | None = None,
        max_batch: int | None = None,
    ) -> duckdb.DuckDBPyRelation | None:
        """All touchpoints as a DuckDB relation with ``customer`` mapped to survivors.

        A touchpoint written again later (a correction: ``detach`` moved it to another
        customer) counts once, as its latest write. ``max_batch`` gives the lake as it
        was after that batch. None when the lake is empty.
        """
        files = self.files()
        if not files:
            return None
        paths = [str(path) for path in files]
        relation = connection.read_parquet(paths, hive_partitioning=True)
        if max_batch is not None:
            relation = relation.filter(f"batch <= {int(max_batch)}")
        if self.corrections.exists():
            connection.register("_written", relation)
            relation = connection.sql(
                "SELECT * FROM _written "
                "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY batch DESC) = 1"
            )
        if not merge_map:
            return relation
        mapping = pa.table(
            {"loser": list(merge_map), "survivor": [merge_map[k] for k in merge_map]}
        )
        connection.register("_merge_map", mapping)
        connection.register("_lake", relation)
        return connection.sql(
            "SELECT * REPLACE (coalesce(m.survivor, t.customer) AS customer) "
            "FROM _lake t LEFT JOIN _merge_map m ON t.customer = m.loser"
        )

    def holding(self, event_ids: Sequence[str], except_part: str | None = None) -> set[str]:
        """Which of ``event_ids`` the lake holds, in parts other than ``except_part``.

        One scan of the event id column: for a resumed batch only, not every batch.
        """
        files = [str(path) for path in self.files() if path.stem != except_part]
        if not files or not event_ids:
            return set()
        connection = duckdb.connect()
        try:
            connection.register("_wanted", pa.table({"event_id": pa.array(event_ids, pa.string())}))
            connection.register("_events", connection.read_parquet(files).select("event_id"))
            rows = connection.sql(
                "SELECT DISTINCT event_id FROM _events SEMI JOIN _wanted USING (event_id)"
            ).fetchall()
            return {str(event) for (event,) in rows}
        finally:
            connection.close()

    def customers_since(self, batch: int) -> set[str]:
        """Customers (as written) of every touchpoint written after ``batch``."""
        files = self.files()
        if not files:
            return set()
        connection = duckdb.connect()
        try:
            relation = connection.read_parquet([str(path) for path in files])
            rows = relation.filter(f"batch > {int(batch)}").select("customer").distinct()
            return {str(customer) for (customer,) in rows.fetchall()}
        finally:
            connection.close()

    @property
    def corrections(self) -> Path:
        """A marker that some touchpoints were written twice (readers then dedupe)."""
        return self.root / "corrections"

    def correct(self, rows: pa.Table, customer: str, part: str, batch: int) -> int:
        """Re-write touchpoints (lake rows) under another customer, as a newer part."""
        self.corrections.parent.mkdir(parents=True, exist_ok=True)
        self.corrections.touch()
        frame = rows.drop_columns(
            [n for n in ("customer", "batch", "month") if n in rows.column_names]
        )
        customers = pa.array([customer] * rows.num_rows, pa.string())
        return self.append(
            frame.select(FRAME_SCHEMA.names).cast(FRAME_SCHEMA), customers, part, batch
        )

    def touchpoints(
        self,
        columns: Sequence[str] | None = None,
        merge_map: Mapping[str, str] | None = None,
    ) -> pa.Table:
        """The whole lake (or some columns) as one Arrow table, customers mapped."""
        connection = duckdb.connect()
        try:
            relation = self.relation(connection, merge_map)
            if relation is None:
                return pa.table({})
            if columns:
                relation = relation.select(*columns)
            return relation.to_arrow_table()
        finally:
            connection.close()

    def clear(self) -> None:
        """Remove every file (for tests and full rebuilds)."""
        shutil.rmtree(self.touchpoint_root, ignore_errors=True)
        self._changed()


def _run_bounds(sorted_values: pa.Array[Any]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of equal values in a sorted string array."""
    if len(sorted_values) == 0:
        return []
    if isinstance(sorted_values, pa.ChunkedArray):
        sorted_values = sorted_values.combine_chunks()
    encoded: Any = pc.dictionary_encode(sorted_values)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.diff(codes) != 0) + 1
    edges = [0, *starts.tolist(), len(codes)]
    return list(zip(edges[:-1], edges[1:], strict=False))
