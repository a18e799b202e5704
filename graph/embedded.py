"""``EmbeddedStore``: the default backend, one SQLite file in WAL mode, no server.

Why SQLite: a single file, crash-safe transactions (a killed process leaves the
last committed batch intact), many concurrent readers beside one writer (WAL), and
upserts, JSON merge and index lookups done in C rather than Python.

Layout (schema version 2; a file of another version is refused when opened):

* ``vertices(rid, id, label, props, ts, ...)``: an integer ``rid`` keys the row and a
  unique index maps the caller's string ``id`` to it. New rows take the next rid, so
  a bulk load appends to the table instead of inserting at random places of it, and
  only the narrow id index grows in id order. ``props`` is a JSON object
  (``graph._embedded_codec``); a vertex's ``ts`` property is mirrored into the
  integer ``ts`` column for timelines. Labels are id prefixes, so a label scan is a
  range scan of the id index.
* ``edges(src, label, dst, props, ...)`` keyed by ``(src, label, dst)``, endpoint rids
  and a small label code (``_EDGE_LABEL_CODES``), and ``edges_in(dst, label, src)``
  holding the same keys reversed, for the edges into a vertex. Integer keys make the
  trees about a quarter of the size of string-keyed ones, which at millions of edges
  is most of the write time. ``edges_in`` is a table kept in step by hand rather than
  an index: an index takes its rows in the table's order, random for it, and was half
  the time of an edge write; a table takes them sorted its own way. There are no
  foreign keys: a write batch looks its endpoints up once per distinct id (which is
  also how it finds their rids) and refuses the batch if one is missing, and deleting
  a vertex deletes its edges, both ways, in the same transaction.
* The change feed: every write batch takes the next number of a store-wide
  sequence, stamps the rows it changes with it (``seq``; ``cseq`` keeps the stamp
  of creation) and appends one ``changelog`` row listing their keys (rids, or rid
  pairs for edges, as packed 64-bit integers; those of unchanged rows may be among
  them, and readers skip keys stamped by another batch). A deletion lists the
  deleted ids as text, since their rows are gone. The log is written in the same
  transaction as the change, so it can never disagree with the data. One log row a
  batch costs almost nothing; a log row per element (trigger-fed) halved the upsert
  rate and an index on ``seq`` cost a third of it. Upserts only touch rows whose
  merged JSON differs, which is what makes a re-upsert of identical data write
  nothing.
* Arrow tables (``upsert_vertex_table``) skip Python per row: ids and values are
  checked with Arrow kernels and the JSON documents built column by column,
  byte for byte what the records path writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph._embedded_codec import (
    DATETIME_TAG,
    EPOCH,
    MICROSECOND,
    decode,
    decode_many,
    document,
    encode,
    micros,
    micros_array,
    prepend,
    properties_table,
    strings,
    table_documents,
)
from graph._embedded_write import (
    EDGE_UPSERT_ONE,
    VERTEX_UPSERT_ONE,
    Checkpointer,
    EdgeRows,
    RepeatedEdges,
    Rids,
    Unvouched,
    VertexRows,
    endpoint_rids,
    existing_ids,
    merge_duplicates,
    pair_order,
    plan_endpoints,
    prepared_parts,
    rows_of,
    strictly_increasing,
    write_reverse_keys,
    write_rows,
)
from graph.errors import GraphError, GraphUnavailable, InvalidInput, UnknownVertex
from graph.model import (
    EDGE_TYPES,
    ID_PREFIX,
    EdgeLabel,
    PropertyValue,
    VertexLabel,
    arrow_ids_valid,
    edge_id,
)
from graph.store import (
    ALL_CHANGE_KINDS,
    EDGE_TABLE_KEYS,
    VERTEX_TABLE_KEYS,
    Change,
    ChangeBatch,
    ChangeKind,
    Direction,
    Edge,
    GraphStore,
    Neighbour,
    UpsertResult,
    Vertex,
    WantedChanges,
)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS vertices (
    rid   INTEGER PRIMARY KEY,
    id    TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    props TEXT NOT NULL,
    ts    INTEGER,
    seq   INTEGER NOT NULL,
    cseq  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS edges (
    src   INTEGER NOT NULL,
    label INTEGER NOT NULL,
    dst   INTEGER NOT NULL,
    props TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    cseq  INTEGER NOT NULL,
    PRIMARY KEY (src, label, dst)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edges_in (
    dst   INTEGER NOT NULL,
    label INTEGER NOT NULL,
    src   INTEGER NOT NULL,
    PRIMARY KEY (dst, label, src)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changelog (
    seq     INTEGER PRIMARY KEY,
    element TEXT NOT NULL,
    label   TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    keys    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('seq', '0');
"""
SCHEMA_VERSION: Final = "2"
"""Version 1 keyed vertices and edges by their string ids, with foreign keys."""

_EDGE_LABEL_CODES: Final[dict[EdgeLabel, int]] = {
    EdgeLabel.HAS_IDENTIFIER: 1,
    EdgeLabel.PERFORMED: 2,
    EdgeLabel.NEXT: 3,
    EdgeLabel.REACHED: 4,
    EdgeLabel.EVIDENCED_BY: 5,
    EdgeLabel.ABOUT: 6,
    EdgeLabel.AT_CELL: 7,
    EdgeLabel.USES: 8,
}
"""Edge labels as stored: one byte a row in each edge tree instead of the name. The
codes are in every store file, so never renumber them; a new label takes the next."""
_EDGE_LABELS: Final = {code: label for label, code in _EDGE_LABEL_CODES.items()}

_LOG_ROW: Final = (
    "INSERT INTO changelog(seq, element, label, deleted, size, keys) VALUES (?, ?, ?, ?, ?, ?)"
)


# 16 KiB pages (the default is 4 KiB) make shallower trees and fewer page splits.
# Only a new file takes it; an existing one keeps its page size.
_PAGE_SIZE: Final = 16_384
# Checkpoint the WAL into the file every 64 MiB instead of every 4 MiB: fewer
# fsyncs, and pages written by several batches are copied once. Batches of
# _BULK_ROWS rows or more leave it to a thread of its own instead (Checkpointer).
_CHECKPOINT_PAGES: Final = 4096
_BULK_ROWS: Final = 20_000
# A WAL grows to gigabytes during a bulk load; when it is next rewound, it is cut
# back to this size, giving the disk back.
_WAL_SIZE_LIMIT: Final = 64 << 20
DEFAULT_CACHE_MB: Final = 1024
"""The writer's page cache. A bulk load's working set is the id index and the edge
trees it inserts into (about 0.8 GB at 6M vertices and 13M edges); when they fit,
random inserts cost no reads. SQLite allocates the cache as pages are used, so a
small store never takes it all."""
_READER_CACHE_MB: Final = 64
_CURSOR_SHIFT: Final = 32
_OFFSET_MASK: Final = (1 << _CURSOR_SHIFT) - 1
_SQL_CHUNK: Final = 500
"""Ids per ``IN (...)`` list; well under SQLite's bound-parameter limit."""
_KEY_TYPE: Final = np.dtype("<i8")
"""Change-log keys of upserts: rids (vertices) or rid pairs (edges), little-endian."""


def _label_range(label: VertexLabel) -> tuple[str, str]:
    """Id bounds ``[low, high)`` of one label: its prefix with the last char bumped."""
    prefix = ID_PREFIX[label]
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _read_ahead(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(descriptor)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _SQL_CHUNK):
        yield items[start : start + _SQL_CHUNK]


def _marks(items: Sequence[Any]) -> str:
    """``?,?,...`` for an ``IN`` list of ``items``."""
    return ",".join("?" * len(items))


class EmbeddedStore(GraphStore):
    """The default graph store: one SQLite file, one writer, many concurrent readers.

    ``durability="normal"`` survives a killed process (the WAL is synced at
    checkpoints); ``"full"`` also survives a power cut, at some write speed.
    ``cache_mb`` is the writing connection's page cache (each reading thread has
    64 MB); bulk loads of millions of elements slow down when their indexes do not
    fit in it. Safe to share between threads: writes are serialised on one
    connection and each reading thread gets its own connection.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        durability: Literal["normal", "full"] = "normal",
        busy_timeout_ms: int = 30_000,
        cache_mb: int = DEFAULT_CACHE_MB,
    ) -> None:
        if durability not in ("normal", "full"):
            raise InvalidInput(f"durability must be 'normal' or 'full', got {durability!r}")
        if not isinstance(cache_mb, int) or cache_mb < 1:
            raise InvalidInput(f"cache_mb must be a positive integer, got {cache_mb!r}")
        self.path = Path(path)
        self._durability = durability
        self._busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._checkpointer: Checkpointer | None = None
        self._preparer: ThreadPoolExecutor | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise GraphUnavailable(
                f"cannot create folder for store {self.path}: {error}"
            ) from error
        self._writer = self._connect(cache_mb)
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"

    def _create_schema(self) -> None:
        """Create the tables of a new file; refuse a file of another schema version."""
        with self._translate("create schema"):
            has_meta = self._writer.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            if has_meta:
                row = self._writer.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
                found = row[0] if row else "unknown"
                if found != SCHEMA_VERSION:
                    raise GraphError(
                        f"embedded store {self.path} has schema version {found}, and this "
                        f"journeygraph reads version {SCHEMA_VERSION} only: load the data "
                        "into a new store file, or open it with the version that wrote it",
                        details={"schema_version": found, "expected": SCHEMA_VERSION},
                    )
            self._writer.executescript(_SCHEMA)
            self._writer.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )

    # --- connections ------------------------------------------------------------

    def _connect(self, cache_mb: int = _READER_CACHE_MB) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            connection.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {self._durability.upper()}")
            connection.execute(f"PRAGMA cache_size = {-1024 * int(cache_mb)}")
            connection.execute("PRAGMA temp_store = MEMORY")
            connection.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            connection.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        except sqlite3.Error as error:
            raise GraphUnavailable(f"cannot open embedded store {self.path}: {error}") from error
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise GraphUnavailable(f"embedded store {self.path} is closed")
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as error:
            message = str(error)
            if "locked" in message or "busy" in message:
                raise GraphUnavailable(
                    f"{action}: store {self.path} is locked: {message}"
                ) from error
            raise GraphError(f"{action} failed in {self.path}: {message}") from error
        except sqlite3.DatabaseError as error:
            raise GraphError(f"{action} failed in {self.path}: {error}") from error

    @contextmanager
    def _transaction(self, action: str, rows: int = 0) -> Iterator[sqlite3.Connection]:
        """One atomic write batch of ``rows`` rows: everything commits, or nothing does."""
        if self._closed:
            raise GraphUnavailable(f"embedded store {self.path} is closed")
        bulk = rows >= _BULK_ROWS
        with self._write_lock:
            connection = self._writer
            with self._translate(action):
                connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            with self._translate(action):
                if bulk:
                    # The checkpoint of a large batch goes to the background thread.
                    connection.execute("PRAGMA wal_autocheckpoint = 0")
                try:
                    connection.execute("COMMIT")
                finally:
                    if bulk:
                        connection.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            if bulk:
                if self._checkpointer is None:
                    self._checkpointer = Checkpointer(self._connect(), str(self.path))
                self._checkpointer.request()

    def warm(self) -> None:
        """Have the kernel read the store file into its page cache, in the background.

        A lookup that finds its pages on disk rather than in memory waits for several
        reads: on a 1M-customer store just started, that put the customer lookup's p99
        at 25 ms where a warm one takes 0.3 ms. The kernel drops these pages again
        under memory pressure like any other cache.
        """
        if hasattr(os, "posix_fadvise") and self.path.exists():
            # The advice itself can block while the kernel queues the reads.
            threading.Thread(target=_read_ahead, args=(self.path,), daemon=True).start()

    def close(self) -> None:
        """Close every connection; the WAL is checkpointed into the main file."""
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            if self._checkpointer is not None:
                self._checkpointer.stop()
            if self._preparer is not None:
                self._preparer.shutdown()
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    # --- writes -------------------------------------------------------------------

    def _claim_seq(self, connection: sqlite3.Connection) -> int:
        """The next change-feed stamp (one per batch, or per log row of a delete)."""
        row = connection.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq' RETURNING value"
        ).fetchone()
        return int(row[0])

    def _append_changelog(
        self,
        connection: sqlite3.Connection,
        stamp: int,
        element: Literal["vertex", "edge"],
        label: str,
        keys: list[int] | Rids,
    ) -> None:
        """Log an upsert batch: its rids (vertices) or ``(src, dst)`` rid pairs (edges)."""
        if len(keys):
            packed = np.asarray(keys, _KEY_TYPE).tobytes()
            connection.execute(_LOG_ROW, (stamp, element, label, 0, len(keys), packed))

    def _upsert_vertices(
        self, label: VertexLabel, batch: list[tuple[str, dict[str, PropertyValue | None]]]
    ) -> UpsertResult:
        all_ids = [vertex_id for vertex_id, _ in batch]
        if len(set(all_ids)) < len(all_ids):
            return self._upsert_vertices(label, merge_duplicates(batch, all_ids))
        ids: list[str] = []
        documents: list[str] = []
        times: list[int | None] = []
        single_rows: list[tuple[Any, ...]] = []
        for vertex_id, properties in batch:
            ts = properties.get("ts")
            properties_document: dict[str, Any]
            if isinstance(ts, datetime):
                # Tagging ts here saves orjson a call back into Python for it.
                ts_micros: int | None = (ts - EPOCH) // MICROSECOND
                properties_document = {**properties, "ts": {DATETIME_TAG: ts_micros}}
            else:
                ts_micros = None
                properties_document = properties
            if None in properties.values():
                ts_removed = ts is None and "ts" in properties
                single_rows.append(
                    (vertex_id, label.value, *encode(properties_document), ts_micros, ts_removed)
                )
            else:
                ids.append(vertex_id)
                documents.append(document(properties_document))
                times.append(ts_micros)
        keys = pa.array(ids, pa.string())
        if not strictly_increasing(keys):  # see _upsert_vertex_table
            rows = cast(list[int], pc.sort_indices(keys).to_pylist())
            ids = [ids[i] for i in rows]
            documents = [documents[i] for i in rows]
            times = [times[i] for i in rows]

        def encoded(start: int, end: int) -> VertexRows:
            return ids[start:end], documents[start:end], times[start:end]

        return self._write_vertices(label, len(ids), encoded, single_rows, overlap=False)

    def _upsert_vertex_table(self, label: VertexLabel, table: pa.Table) -> UpsertResult:
        ids = table["id"].combine_chunks()
        if not arrow_ids_valid(label, table["id"]):
            # Ids the Arrow checks cannot vouch for: the records path checks (and
            # reports) them one by one.
            return super()._upsert_vertex_table(label, table)
        order = None
        if not strictly_increasing(ids):  # sorted ids are distinct ids
            if pc.count_distinct(ids).as_py() < len(ids):
                # The records path merges repeated ids in order.
                return super()._upsert_vertex_table(label, table)
            # Rows in id order insert neighbouring keys one after the other, on index
            # pages the insert before has just brought into the CPU's caches.
            order = pc.sort_indices(ids)

        def encoded(start: int, end: int) -> VertexRows | None:
            if order is None:
                part = table.slice(start, end - start)
            else:
                part = table.take(order[start:end])
            documents = table_documents(part, VERTEX_TABLE_KEYS)
            if documents is None:
                return None
            ts = part["ts"].combine_chunks() if "ts" in part.column_names else None
            if ts is not None and pa.types.is_timestamp(ts.type):
                times = micros_array(ts).to_pylist()
            else:
                times = [None] * len(part)
            if isinstance(documents, str):
                return strings(part["id"]), [documents] * len(part), times
            return strings(part["id"]), strings(documents), times

        try:
            return self._write_vertices(label, len(ids), encoded, [])
        except Unvouched:
            # A value the Arrow checks cannot vouch for: the records path checks (and
            # reports) value by value.
            return super()._upsert_vertex_table(label, table)

    def _write_vertices(
        self,
        label: VertexLabel,
        total: int,
        encoded: Callable[[int, int], VertexRows | None],
        single_rows: list[tuple[Any, ...]],
        overlap: bool = True,
    ) -> UpsertResult:
        """Write ``total`` vertices, encoded part by part (sorted by id), the single
        rows and the change log in one transaction.

        With ``overlap`` the next part is encoded while this one is written (see
        prepared_parts). A part of None (a value the Arrow checks cannot vouch for)
        raises ``Unvouched``, having written nothing.
        """
        size = total + len(single_rows)
        with (
            self._transaction(f"upsert of {size} {label} vertices", size) as connection,
            prepared_parts(self._pool if overlap else None, total, encoded) as parts,
        ):
            stamp = self._claim_seq(connection)
            created = updated = 0
            keys: list[int] = []
            for part in parts:
                if part is None:
                    raise Unvouched
                for chunk in write_rows(connection, "vertices", label.value, stamp, part):
                    created, updated = created + chunk.created, updated + chunk.updated
                    if chunk.last_rowid is not None:
                        # Every row of the chunk is new, and new rows are numbered in turn.
                        first = chunk.last_rowid - chunk.size + 1
                        keys.extend(range(first, chunk.last_rowid + 1))
                    else:
                        chunk_ids = part[0][chunk.start : chunk.end]
                        keys += [
                            row[0]
                            for row in connection.execute(
                                f"SELECT rid FROM vertices WHERE id IN ({_marks(chunk_ids)})",
                                chunk_ids,
                            )
                        ]
            for row in single_rows:
                for rid, was_created in connection.execute(VERTEX_UPSERT_ONE, (*row, stamp)):
                    keys.append(rid)
                    created += was_created
                    updated += not was_created
            self._append_changelog(connection, stamp, "vertex", label.value, keys)
        return UpsertResult(created, updated, size - created - updated)

    def _upsert_edges(
        self, label: EdgeLabel, batch: list[tuple[str, str, dict[str, PropertyValue | None]]]
    ) -> UpsertResult:
        sources, targets, properties = (list(column) for column in zip(*batch, strict=True))
        pairs = list(zip(sources, targets, strict=True))
        if len(set(pairs)) < len(pairs):
            return self._upsert_edges(label, merge_duplicates(batch, pairs))
        removals = {
            index: encode(patch)[1]
            for index, patch in enumerate(properties)
            if None in patch.values()
        }
        documents: pa.Array[Any] | str = "{}"
        if any(properties):
            patches = [document(patch) if patch else "{}" for patch in properties]
            documents = pa.array(patches, pa.string())
        source_ids, target_ids = pa.array(sources, pa.string()), pa.array(targets, pa.string())

        def planned(start: int, end: int) -> EdgeRows:
            part = documents if isinstance(documents, str) else documents[start:end]
            return part, plan_endpoints(source_ids[start:end], target_ids[start:end])

        return self._write_edges(label, len(batch), planned, removals, overlap=False)

    def _upsert_edge_table(self, label: EdgeLabel, table: pa.Table) -> UpsertResult:
        edge_type = EDGE_TYPES[label]
        if not arrow_ids_valid(edge_type.source, table["source"]) or not arrow_ids_valid(
            edge_type.target, table["target"]
        ):
            # As for vertices: the records path checks and reports id by id.
            return super()._upsert_edge_table(label, table)
        sources = table["source"].combine_chunks().cast(pa.string())
        targets = table["target"].combine_chunks().cast(pa.string())

        def planned(start: int, end: int) -> EdgeRows | None:
            documents = table_documents(table.slice(start, end - start), EDGE_TABLE_KEYS)
            if documents is None:
                return None
            return documents, plan_endpoints(sources[start:end], targets[start:end])

        try:
            return self._write_edges(label, len(sources), planned, {})
        except (Unvouched, RepeatedEdges):
            # Values the Arrow checks cannot vouch for, or repeated edges: the records
            # path checks and reports value by value, and merges repeats in order.
            return super()._upsert_edge_table(label, table)

    def _write_edges(
        self,
        label: EdgeLabel,
        total: int,
        planned: Callable[[int, int], EdgeRows | None],
        removals: dict[int, str],
        overlap: bool = True,
    ) -> UpsertResult:
        """Write ``total`` edges, their reverse keys and the change log in one transaction.

        ``planned`` gives each part's property documents (the merge patches, or one
        for all) and its endpoint lookups; with ``overlap`` the next part is planned
        while this one's endpoints are looked up (see prepared_parts). ``removals``
        are the documents of new edges for rows whose patch removes a key (index ->
        document), which go one at a time. Raises ``Unvouched`` (a part of None) or
        ``RepeatedEdges`` (an edge in the batch twice; callers merge repeats first),
        having written nothing. ``edges`` takes the rows in (source, target) order
        and ``edges_in`` the new ones in (target, source) order, so that each tree
        is written front to back (see the module docstring).
        """
        code = _EDGE_LABEL_CODES[label]
        with (
            self._transaction(f"upsert of {total} {label} edges", total) as connection,
            prepared_parts(self._pool if overlap else None, total, planned) as parts,
        ):
            stamp = self._claim_seq(connection)
            src, dst, documents = self._resolve(connection, label, parts)
            order = pair_order(src, dst)
            repeated = (src[order[1:]] == src[order[:-1]]) & (dst[order[1:]] == dst[order[:-1]])
            if repeated.any():
                raise RepeatedEdges
            single: Rids = order[:0]
            if removals:
                removing = np.zeros(total, dtype=bool)
                removing[list(removals)] = True
                single = order[removing[order]]
                order = order[~removing[order]]
            src_sorted, dst_sorted = src[order], dst[order]
            patches = documents if isinstance(documents, str) else strings(documents.take(order))
            written = write_rows(
                connection,
                "edges",
                code,
                stamp,
                (src_sorted.tolist(), dst_sorted.tolist(), patches),
            )
            created = sum(chunk.created for chunk in written)
            updated = sum(chunk.updated for chunk in written)
            changed = rows_of(written)
            keys = [np.column_stack((src_sorted[changed], dst_sorted[changed]))]
            # Rows of chunks that created every row are new to edges_in too; of those
            # that created some, the new ones are not known, so all go, as upserts.
            fresh = rows_of([chunk for chunk in written if chunk.created == chunk.size])
            write_reverse_keys(connection, code, src_sorted[fresh], dst_sorted[fresh])
            mixed = rows_of([chunk for chunk in written if 0 < chunk.created < chunk.size])
            new_src, new_dst = [src_sorted[mixed]], [dst_sorted[mixed]]
            for index in single.tolist():
                source, target = int(src[index]), int(dst[index])
                patch = cast("pa.Array[Any]", documents)[index].as_py()
                params = (source, code, target, patch, removals[index], stamp)
                for (was_created,) in connection.execute(EDGE_UPSERT_ONE, params):
                    keys.append(np.array([[source, target]]))
                    created += was_created
                    updated += not was_created
                    if was_created:
                        new_src.append(np.array([source]))
                        new_dst.append(np.array([target]))
            write_reverse_keys(
                connection, code, np.concatenate(new_src), np.concatenate(new_dst), upsert=True
            )
            self._append_changelog(connection, stamp, "edge", label.value, np.concatenate(keys))
        return UpsertResult(created, updated, total - created - updated)

    def _resolve(
        self,
        connection: sqlite3.Connection,
        label: EdgeLabel,
        parts: Iterator[EdgeRows | None],
    ) -> tuple[Rids, Rids, pa.Array[Any] | str]:
        """Every edge's source and target rids, and the documents, part by part.

        A missing endpoint is reported (``UnknownVertex``) only once every part is
        known to hold values the Arrow checks vouch for, so that a batch with both
        gets the error the records path would give, about the values.
        """
        sources: list[Rids] = []
        targets: list[Rids] = []
        documents: list[pa.Array[Any] | str] = []
        offset = 0
        for part in parts:
            if part is None:
                raise Unvouched
            part_documents, endpoints = part
            try:
                src, dst = endpoint_rids(connection, label, endpoints, offset)
            except UnknownVertex:
                if any(rest is None for rest in parts):
                    raise Unvouched from None
                raise
            sources.append(src)
            targets.append(dst)
            documents.append(part_documents)
            offset += len(src)
        if all(isinstance(item, str) for item in documents) and len(set(documents)) == 1:
            return np.concatenate(sources), np.concatenate(targets), cast(str, documents[0])
        arrays = [
            pa.array([item] * len(src), pa.string()) if isinstance(item, str) else item
            for item, src in zip(documents, sources, strict=True)
        ]
        return np.concatenate(sources), np.concatenate(targets), pa.concat_arrays(arrays)

    def _pool(self) -> ThreadPoolExecutor:
        """The thread that prepares the next part of a large batch (see prepared_parts).

        Called in the write transaction, so only one writer ever makes it."""
        if self._preparer is None:
            self._preparer = ThreadPoolExecutor(1, thread_name_prefix="journeygraph-prepare")
        return self._preparer

    def _bury(
        self,
        connection: sqlite3.Connection,
        element: Literal["vertex", "edge"],
        label: str,
        keys: list[str],
    ) -> None:
        """Log a deletion: the ids (``source<TAB>target`` for edges), as the rows are gone."""
        stamp = self._claim_seq(connection)
        connection.execute(_LOG_ROW, (stamp, element, label, 1, len(keys), "\n".join(keys)))

    def _delete_vertices(self, ids: list[str]) -> int:
        with self._transaction(f"delete of {len(ids)} vertices", len(ids)) as connection:
            dead_edges: dict[str, list[str]] = {}
            dead_vertices: dict[str, list[str]] = {}
            for chunk in _chunks(ids):
                found = connection.execute(
                    f"SELECT rid, label, id FROM vertices WHERE id IN ({_marks(chunk)})", chunk
                ).fetchall()
                if not found:
                    continue
                rids = [rid for rid, _, _ in found]
                marks = _marks(rids)
                for code, source, target in connection.execute(
                    "SELECT e.label, s.id, d.id FROM edges e JOIN vertices s ON s.rid = e.src"
                    f" JOIN vertices d ON d.rid = e.dst WHERE e.src IN ({marks}) UNION"
                    " SELECT e.label, s.id, d.id FROM edges_in e JOIN vertices s ON s.rid = e.src"
                    f" JOIN vertices d ON d.rid = e.dst WHERE e.dst IN ({marks})",
                    rids + rids,
                ):
                    dead_edges.setdefault(_EDGE_LABELS[code], []).append(f"{source}\t{target}")
                for _, label, vertex_id in found:
                    dead_vertices.setdefault(label, []).append(vertex_id)
                # No foreign keys cascade (see the module docstring): the edges out of and
                # into the vertices go here, from both trees, in the same transaction.
                connection.execute(
                    "DELETE FROM edges_in WHERE (dst, label, src) IN"
                    f" (SELECT dst, label, src FROM edges WHERE src IN ({marks}))",
                    rids,
                )
                connection.execute(f"DELETE FROM edges WHERE src IN ({marks})", rids)
                connection.execute(
                    "DELETE FROM edges WHERE (src, label, dst) IN"
                    f" (SELECT src, label, dst FROM edges_in WHERE dst IN ({marks}))",
                    rids,
                )
                connection.execute(f"DELETE FROM edges_in WHERE dst IN ({marks})", rids)
                connection.execute(f"DELETE FROM vertices WHERE rid IN ({marks})", rids)
            for label, keys in dead_edges.items():
                self._bury(connection, "edge", label, keys)
            for label, keys in dead_vertices.items():
                self._bury(connection, "vertex", label, keys)
            return sum(len(keys) for keys in dead_vertices.values())

    def _delete_edges(self, label: EdgeLabel, pairs: list[tuple[str, str]]) -> int:
        with self._transaction(f"delete of {len(pairs)} {label} edges") as connection:
            dead: list[str] = []
            code = _EDGE_LABEL_CODES[label]
            for source, target in dict.fromkeys(pairs):
                rids = connection.execute(
                    "SELECT (SELECT rid FROM vertices WHERE id = ?1),"
                    " (SELECT rid FROM vertices WHERE id = ?2)",
                    (source, target),
                ).fetchone()
                cursor = connection.execute(
                    "DELETE FROM edges WHERE src = ?1 AND label = ?2 AND dst = ?3",
                    (rids[0], code, rids[1]),
                )
                if cursor.rowcount:
                    connection.execute(
                        "DELETE FROM edges_in WHERE dst = ?3 AND label = ?2 AND src = ?1",
                        (rids[0], code, rids[1]),
                    )
                    dead.append(f"{source}\t{target}")
            if dead:
                self._bury(connection, "edge", label.value, dead)
            return len(dead)

    # --- reads ----------------------------------------------------------------------

    def _get_vertices(self, ids: list[str]) -> list[Vertex]:
        found: list[Vertex] = []
        with self._translate("vertex lookup"):
            connection = self._reader()
            for chunk in _chunks(ids):
                found += _vertices(
                    connection.execute(
                        f"SELECT id, label, props FROM vertices WHERE id IN ({_marks(chunk)})",
                        chunk,
                    ).fetchall()
                )
        return found

    def _existing_vertices(self, ids: list[str]) -> set[str]:
        with self._translate("vertex lookup"):
            return existing_ids(self._reader(), ids)

    def _get_edge(self, label: EdgeLabel, source: str, target: str) -> Edge | None:
        with self._translate("edge lookup"):
            row = (
                self._reader()
                .execute(
                    "SELECT props FROM edges WHERE src = (SELECT rid FROM vertices WHERE id = ?1)"
                    " AND label = ?2 AND dst = (SELECT rid FROM vertices WHERE id = ?3)",
                    (source, _EDGE_LABEL_CODES[label], target),
                )
                .fetchone()
            )
        return Edge(label.value, source, target, decode(row[0])) if row else None

    def _find_vertices(
        self, label: VertexLabel, where: dict[str, PropertyValue | None], limit: int
    ) -> list[Vertex]:
        low, high = _label_range(label)
        clauses = ["id >= ? AND id < ?"]
        params: list[Any] = [low, high]
        for key, value in where.items():
            if value is None:
                clauses.append(f"json_type(props, '$.{key}') IS NULL")
            elif isinstance(value, datetime):
                clauses.append(f"json_extract(props, '$.{key}.\"{DATETIME_TAG}\"') = ?")
                params.append(micros(value))
            else:
                # json_extract returns SQL integers for JSON true/false.
                clauses.append(f"json_extract(props, '$.{key}') = ?")
                params.append(int(value) if isinstance(value, bool) else value)
                if isinstance(value, bool):
                    clauses.append(f"json_type(props, '$.{key}') IN ('true', 'false')")
        params.append(limit)
        sql = f"SELECT id, label, props FROM vertices WHERE {' AND '.join(clauses)} LIMIT ?"
        with self._translate(f"{label} lookup"):
            rows = self._reader().execute(sql, params).fetchall()
        return _vertices(rows)

    def _neighbours(
        self,
        vertex_id: str,
        direction: Direction,
        labels: list[EdgeLabel] | None,
        limit: int | None,
    ) -> list[Neighbour]:
        label_filter = ""
        label_params: list[int] = []
        if labels:
            label_filter = f" AND {{tree}}.label IN ({_marks(labels)})"
            label_params = [_EDGE_LABEL_CODES[label] for label in labels]
        parts: list[str] = []
        params: list[Any] = []
        # The first column says whether the vertex at the far end is the target (1).
        if direction in ("out", "both"):
            parts.append(
                "SELECT 1, e.label, e.props, v.id, v.label, v.props FROM edges e"
                " JOIN vertices v ON v.rid = e.dst"
                " WHERE e.src = (SELECT rid FROM vertices WHERE id = ?)"
                + label_filter.format(tree="e")
            )
            params += [vertex_id, *label_params]
        if direction in ("in", "both"):
            parts.append(
                "SELECT 0, e.label, e.props, v.id, v.label, v.props FROM edges_in i"
                " JOIN edges e ON e.src = i.src AND e.label = i.label AND e.dst = i.dst"
                " JOIN vertices v ON v.rid = i.src"
                " WHERE i.dst = (SELECT rid FROM vertices WHERE id = ?)"
                + label_filter.format(tree="i")
            )
            params += [vertex_id, *label_params]
        sql = " UNION ALL ".join(parts)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._translate("neighbour lookup"):
            rows = self._reader().execute(sql, params).fetchall()
        properties = decode_many([text for row in rows for text in (row[2], row[5])])
        neighbours = []
        for index, (outgoing, code, _, other, other_label, _) in enumerate(rows):
            source, target = (vertex_id, other) if outgoing else (other, vertex_id)
            neighbours.append(
                Neighbour(
                    Edge(_EDGE_LABELS[code].value, source, target, properties[2 * index]),
                    Vertex(other, other_label, properties[2 * index + 1]),
                )
            )
        return neighbours

    def _degree(
        self, vertex_id: str, direction: Direction, labels: list[EdgeLabel] | None
    ) -> dict[str, int]:
        label_filter = f" AND label IN ({_marks(labels)})" if labels else ""
        label_params = [_EDGE_LABEL_CODES[label] for label in labels or []]
        parts: list[str] = []
        params: list[Any] = []
        for wanted, table, end in (("out", "edges", "src"), ("in", "edges_in", "dst")):
            if direction in (wanted, "both"):
                parts.append(
                    f"SELECT label, count(*) FROM {table}"
                    f" WHERE {end} = (SELECT rid FROM vertices WHERE id = ?)"
                    f"{label_filter} GROUP BY label"
                )
                params += [vertex_id, *label_params]
        with self._translate("degree"):
            rows = self._reader().execute(" UNION ALL ".join(parts), params).fetchall()
        counts: dict[str, int] = {}
        for code, found in rows:
            name = _EDGE_LABELS[code].value
            counts[name] = counts.get(name, 0) + found
        return counts

    def _timeline(
        self,
        customer: str,
        start: datetime | None,
        end: datetime | None,
        limit: int | None,
    ) -> list[Vertex]:
        sql = (
            "SELECT v.id, v.label, v.ts, v.props FROM edges e JOIN vertices v ON v.rid = e.dst"
            " WHERE e.src = (SELECT rid FROM vertices WHERE id = ?) AND e.label = ?"
        )
        params: list[Any] = [customer, _EDGE_LABEL_CODES[EdgeLabel.PERFORMED]]
        if start is not None:
            sql += " AND v.ts >= ?"
            params.append(micros(start))
        if end is not None:
            sql += " AND v.ts < ?"
            params.append(micros(end))
        if limit is not None:
            sql += " ORDER BY v.ts, v.id LIMIT ?"
            params.append(limit)
        with self._translate("timeline"):
            rows = self._reader().execute(sql, params).fetchall()
        if limit is None:
            # SQLite's ORDER BY (ts with NULLs first, then id) sorts slower than Python
            # does; UTF-8 bytes and code points order alike.
            rows.sort(key=lambda row: (row[2] is not None, row[2] or 0, row[0]))
        properties = decode_many([row[3] for row in rows])
        return [Vertex(row[0], row[1], props) for row, props in zip(rows, properties, strict=True)]

    def _touchpoint_times(self, customers: list[str]) -> pa.Table:
        rows: list[tuple[str, str, int | None]] = []
        code = _EDGE_LABEL_CODES[EdgeLabel.PERFORMED]
        with self._translate("touchpoint times"):
            connection = self._reader()
            for chunk in _chunks(customers):
                rows += connection.execute(
                    "SELECT c.id, v.id, v.ts FROM vertices c"
                    " JOIN edges e ON e.src = c.rid AND e.label = ?"
                    " JOIN vertices v ON v.rid = e.dst"
                    f" WHERE c.id IN ({_marks(chunk)})",
                    [code, *chunk],
                ).fetchall()
        owners, ids, times = zip(*rows, strict=True) if rows else ((), (), ())
        return pa.table(
            {
                "customer": pa.array(owners, pa.string()),
                "id": pa.array(ids, pa.string()),
                "ts": pa.array(times, pa.int64()).cast(pa.timestamp("us", "UTC")),
            }
        )

    def _count_vertices(self, label: VertexLabel | None) -> int:
        with self._translate("count"):
            if label is None:
                row = self._reader().execute("SELECT count(*) FROM vertices").fetchone()
            else:
                row = (
                    self._reader()
                    .execute(
                        "SELECT count(*) FROM vertices WHERE id >= ? AND id < ?",
                        _label_range(label),
                    )
                    .fetchone()
                )
        return int(row[0])

    def _count_edges(self, label: EdgeLabel | None) -> int:
        with self._translate("count"):
            if label is None:
                row = self._reader().execute("SELECT count(*) FROM edges").fetchone()
            else:
                row = (
                    self._reader()
                    .execute(
                        "SELECT count(*) FROM edges WHERE label = ?", (_EDGE_LABEL_CODES[label],)
                    )
                    .fetchone()
                )
        return int(row[0])

    def _changes(
        self, since: int, limit: int, wanted: WantedChanges | None, targets: bool
    ) -> ChangeBatch:
        """Read the changelog after a cursor: ``(log seq << 32) | entries consumed``.

        An element written again later, or deleted, is reported once, at its latest
        entry; "created" means created after the cursor. Log rows of labels not wanted
        are never read, and the stamps of kinds not wanted are compared in SQL, so a
        filtered feed costs what it returns.
        """
        since_seq, since_offset = since >> _CURSOR_SHIFT, since & _OFFSET_MASK
        changes: list[Change] = []
        cursor = since
        sql = "SELECT seq, element, label, deleted, size, keys FROM changelog WHERE seq >= ?"
        params: list[Any] = [since_seq]
        if wanted is not None:
            sql += f" AND label IN ({_marks(list(wanted))})"
            params += list(wanted)
        with self._translate("change feed"):
            connection = self._reader()
            connection.execute("BEGIN")
            try:
                log = connection.execute(sql + " ORDER BY seq", params)
                consumed: set[Hashable] = set()
                for seq, element, label, deleted, size, packed in log:
                    keys = _LogKeys(element, packed)
                    offset = since_offset if seq == since_seq else 0
                    if seq == since_seq and not deleted:
                        # Keys of the cursor's own log row already read: their creation
                        # was seen, so a later write of one of them is an update.
                        consumed = set(keys.part(0, offset))
                    if offset >= size:
                        continue
                    read = _LogRead(
                        seq,
                        element,
                        label,
                        ALL_CHANGE_KINDS if wanted is None else wanted[label],
                        since_seq,
                        consumed,
                        targets,
                    )
                    if not read.wants(bool(deleted)):
                        cursor = (seq << _CURSOR_SHIFT) | size
                        continue
                    # A part may report fewer changes than it has keys (stale ones, kinds
                    # not wanted), so the next part starts where this one ended.
                    start = offset
                    while start < size and len(changes) < limit:
                        stop = min(start + _SQL_CHUNK, start + limit - len(changes), size)
                        part = keys.part(start, stop)
                        changes += self._changelog_entries(connection, read, bool(deleted), part)
                        start = stop
                        cursor = (seq << _CURSOR_SHIFT) | start
                    if len(changes) >= limit:
                        break
                else:
                    cursor = max(cursor, _log_end(connection))
            finally:
                connection.execute("COMMIT")
        return ChangeBatch(changes, cursor)

    def _changelog_entries(
        self,
        connection: sqlite3.Connection,
        read: _LogRead,
        deleted: bool,
        keys: Sequence[Any],
    ) -> list[Change]:
        seq, element, label = read.seq, read.element, read.label
        if deleted:
            if element == "vertex":
                element_ids = list(keys)
            else:
                element_ids = [f"{label}:{key.replace(chr(9), '>', 1)}" for key in keys]
            return [Change(seq, ChangeKind.DELETED, element, label, i) for i in element_ids]
        kind = read.kind
        if element == "vertex":
            return [
                Change(seq, found, element, label, vertex_id)
                for rid, vertex_id, created_seq in self._stamped_vertices(connection, read, keys)
                if (found := kind(rid, created_seq)) is not None
            ]
        rows = self._stamped_edges(connection, read, keys)
        if not read.targets:
            return [
                Change(seq, found, element, label, edge_id(label, source, target))
                for src, dst, source, target, created_seq in rows
                if (found := kind((src, dst), created_seq)) is not None
            ]
        properties = decode_many([row[6] for row in rows])
        return [
            Change(
                seq,
                found,
                element,
                label,
                edge_id(label, row[2], row[3]),
                Vertex(row[3], row[5], props),
            )
            for row, props in zip(rows, properties, strict=True)
            if (found := kind((row[0], row[1]), row[4])) is not None
        ]

    # The keys this log row wrote last, of the kinds wanted (in SQL). Keys written again
    # later are reported at that later entry. Rows come in no particular order: the
    # changes of one log row share a cursor.

    def _stamped_vertices(
        self, connection: sqlite3.Connection, read: _LogRead, keys: Sequence[int]
    ) -> sqlite3.Cursor:
        """``(rid, id, cseq)`` of the vertices."""
        stamped, stamp_params = read.stamped("vertices")
        return connection.execute(
            f"SELECT rid, id, cseq FROM vertices WHERE rid IN ({_marks(keys)}) AND {stamped}",
            [*keys, *stamp_params],
        )

    def _stamped_edges(
        self, connection: sqlite3.Connection, read: _LogRead, keys: Sequence[tuple[int, int]]
    ) -> list[Any]:
        """``(src, dst, source id, target id, cseq)``, then the target's label and properties."""
        # The keys' own edges, not every edge of their sources: a customer's key would
        # otherwise read all of the customer's PERFORMED edges (3.6k -> 12.7k changes/s
        # for the milestone follower on a real 10k-customer store). The target vertex
        # is read for its id anyway, so its properties come at almost no cost.
        pairs = ",".join("(?, ?)" for _ in keys)
        stamped, stamp_params = read.stamped("e")
        target_columns = ", d.label, d.props" if read.targets else ""
        return connection.execute(
            f"WITH k(src, dst) AS (VALUES {pairs})"
            f" SELECT e.src, e.dst, s.id, d.id, e.cseq{target_columns}"
            " FROM k CROSS JOIN edges e ON e.src = k.src AND e.label = ? AND e.dst = k.dst"
            " JOIN vertices s ON s.rid = e.src JOIN vertices d ON d.rid = e.dst"
            f" WHERE {stamped}",
            [
                *(value for key in keys for value in key),
                _EDGE_LABEL_CODES[EdgeLabel(read.label)],
                *stamp_params,
            ],
        ).fetchall()

    def _export_vertices(self, label: VertexLabel) -> pa.Table:
        with self._translate(f"export of {label}"):
            rows = (
                self._reader()
                .execute(
                    "SELECT id, props FROM vertices WHERE id >= ? AND id < ? ORDER BY id",
                    _label_range(label),
                )
                .fetchall()
            )
        ids = pa.array([row[0] for row in rows], pa.string())
        properties = properties_table([row[1] for row in rows])
        return prepend(properties, [("id", ids)])

    def _export_edges(self, label: EdgeLabel) -> pa.Table:
        with self._translate(f"export of {label}"):
            rows = (
                self._reader()
                .execute(
                    "SELECT s.id, d.id, e.props FROM edges e JOIN vertices s ON s.rid = e.src"
                    " JOIN vertices d ON d.rid = e.dst WHERE e.label = ?",
                    (_EDGE_LABEL_CODES[label],),
                )
                .fetchall()
            )
        sources = pa.array([row[0] for row in rows], pa.string())
        targets = pa.array([row[1] for row in rows], pa.string())
        properties = properties_table([row[2] for row in rows])
        return prepend(properties, [("source", sources), ("target", targets)])

    def _ping(self) -> None:
        with self._translate("ping"):
            self._reader().execute("SELECT 1").fetchone()

    # --- maintenance ------------------------------------------------------------------

    def compact_changes(self, before: int) -> int:
        """Drop changelog entries every consumer has read (cursor ``before``)."""
        with self._transaction("change feed compaction") as connection:
            # The cursor's own log row goes too once all its keys are read.
            return connection.execute(
                "DELETE FROM changelog WHERE seq < ?1 OR (seq = ?1 AND ?2 >= size)",
                (before >> _CURSOR_SHIFT, before & _OFFSET_MASK),
            ).rowcount

    def edge_ids(self, label: EdgeLabel) -> Iterator[str]:
        """Ids of every edge of one label (streamed; for consistency checks)."""
        with self._translate(f"scan of {label}"):
            for source, target in self._reader().execute(
                "SELECT s.id, d.id FROM edges e JOIN vertices s ON s.rid = e.src"
                " JOIN vertices d ON d.rid = e.dst WHERE e.label = ?",
                (_EDGE_LABEL_CODES[label],),
            ):
                yield edge_id(label, source, target)


class _LogKeys:
    """The keys of one log row: ids (deletions), rids or ``(src, dst)`` rid pairs.

    Decoded a part at a time: a feed read often stops part-way into a row of many
    thousand keys, and the next one starts there.
    """

    def __init__(self, element: Literal["vertex", "edge"], packed: bytes | str) -> None:
        self._ids = packed.split("\n") if isinstance(packed, str) else None
        self._rids = np.frombuffer(packed, _KEY_TYPE) if isinstance(packed, bytes) else None
        self._width = 2 if element == "edge" else 1

    def part(self, start: int, stop: int) -> list[Any]:
        """Keys ``start:stop``."""
        if self._ids is not None:
            return self._ids[start:stop]
        assert self._rids is not None
        values: list[int] = self._rids[start * self._width : stop * self._width].tolist()
        if self._width == 1:
            return values
        return list(zip(values[0::2], values[1::2], strict=True))


@dataclass
class _LogRead:
    """What a feed read wants of one changelog row."""

    seq: int
    element: Literal["vertex", "edge"]
    label: str
    kinds: frozenset[ChangeKind]
    since_seq: int
    consumed: set[Hashable]
    targets: bool
    # The kind to report an upsert as, or None when not wanted; decided once a row
    # (an enum's hash is a Python call, too slow for every entry).
    created: ChangeKind | None = field(init=False)
    updated: ChangeKind | None = field(init=False)

    def __post_init__(self) -> None:
        self.created = ChangeKind.CREATED if ChangeKind.CREATED in self.kinds else None
        self.updated = ChangeKind.UPDATED if ChangeKind.UPDATED in self.kinds else None

    def wants(self, deleted: bool) -> bool:
        """Whether any entry of a log row of deletions (or of upserts) is wanted."""
        if deleted:
            return ChangeKind.DELETED in self.kinds
        return self.created is not None or self.updated is not None

    def kind(self, key: Hashable, created_seq: int) -> ChangeKind | None:
        """An upsert's kind (None: not wanted): created means after the cursor."""
        if created_seq > self.since_seq or (
            created_seq == self.since_seq and key not in self.consumed
        ):
            return self.created
        return self.updated

    def stamped(self, table: str) -> tuple[str, list[int]]:
        """A SQL condition on ``table``'s rows: those this log row wrote last, kinds wanted.

        Created after the cursor means ``cseq`` above the cursor's seq; at it, ``kind``
        decides by the keys already consumed.
        """
        sql, params = f"{table}.seq = ?", [self.seq]
        if self.created is None:
            sql += f" AND {table}.cseq <= ?"
            params.append(self.since_seq)
        elif self.updated is None:
            sql += f" AND {table}.cseq >= ?"
            params.append(self.since_seq)
        return sql, params


def _log_end(connection: sqlite3.Connection) -> int:
    """The cursor after the last changelog row (0 when the log is empty)."""
    row = connection.execute("SELECT seq, size FROM changelog ORDER BY seq DESC LIMIT 1").fetchone()
    return 0 if row is None else (row[0] << _CURSOR_SHIFT) | row[1]


def _vertices(rows: list[tuple[str, str, str]]) -> list[Vertex]:
    """Vertices from ``(id, label, props)`` rows."""
    properties = decode_many([row[2] for row in rows])
    return [Vertex(row[0], row[1], props) for row, props in zip(rows, properties, strict=True)]
