"""``EmbeddedStore``: the default backend, one SQLite file in WAL mode, no server.

Why SQLite: a single file, crash-safe transactions (a killed process leaves the
last committed batch intact), many concurrent readers beside one writer (WAL), and
upserts, JSON merge and cascading deletes done in C rather than Python.

Layout:

* ``vertices(id, label, props, ts, ...)``: ``props`` is a JSON object; datetimes
  are stored as ``{"$dt": <microseconds since the epoch, UTC>}`` so they round-trip
  as datetimes (and export straight into Arrow timestamps), and a vertex's ``ts``
  property is mirrored into the integer ``ts`` column for timelines. Labels are id
  prefixes, so a label scan is a primary-key range scan with no index of its own.
* ``edges(src, label, dst, props)`` keyed by ``(src, label, dst)`` with an index on
  ``(dst, label, src)``; foreign keys to ``vertices`` cascade deletes and refuse
  edges whose endpoints are missing.
* The change feed: every write batch takes the next number of a store-wide
  sequence, stamps the rows it changes with it (``seq``; ``cseq`` keeps the stamp
  of creation) and appends one ``changelog`` row listing their keys (those of
  unchanged rows may be among them; readers skip keys stamped by another batch).
  It is written in the same transaction as the change, so it can never disagree
  with the data. One log row a batch costs almost nothing; a log row per element
  (trigger-fed) halved the upsert rate and an index on ``seq`` cost a third of it.
  Upserts only touch rows whose merged JSON differs, which is what makes a
  re-upsert of identical data write nothing.
* Arrow tables (``upsert_vertex_table``) skip Python per row: ids and values are
  checked with Arrow kernels and the JSON documents built column by column,
  byte for byte what the records path writes.
"""

from __future__ import annotations

import io
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, Final, Literal, cast

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from graph.errors import GraphError, GraphUnavailable, InvalidInput, UnknownVertex
from graph.model import (
    EDGE_TYPES,
    ID_PREFIX,
    INT64_MAX,
    MAX_STRING_LENGTH,
    EdgeLabel,
    PropertyValue,
    VertexLabel,
    arrow_ids_valid,
    edge_id,
    property_key_valid,
)
from graph.store import (
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
)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS vertices (
    id    TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    props TEXT NOT NULL,
    ts    INTEGER,
    seq   INTEGER NOT NULL,
    cseq  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edges (
    src   TEXT NOT NULL REFERENCES vertices(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    dst   TEXT NOT NULL REFERENCES vertices(id) ON DELETE CASCADE,
    props TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    cseq  INTEGER NOT NULL,
    PRIMARY KEY (src, label, dst)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_in ON edges(dst, label, src);
CREATE TABLE IF NOT EXISTS changelog (
    seq     INTEGER PRIMARY KEY,
    element TEXT NOT NULL,
    label   TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    keys    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('seq', '0');
"""
SCHEMA_VERSION: Final = "1"

# Upserts are multi-row statements of up to _ROWS_PER_STATEMENT rows, bound as ?1
# the label, ?2 the batch's stamp and then three values a row (vertices: id, props,
# ts; edges: src, dst, props). The counts and the change feed come from change
# counts, not RETURNING, which buffers every written row and cost a third of the
# rate. A chunk that is expected to be new runs as INSERT ... ON CONFLICT DO NOTHING,
# which counts the rows created, and only if some already existed runs again as the
# merge; one expected to exist runs as the merge (DO UPDATE: json_patch folds the
# properties in, rows it would not change are skipped, and a document equal to the
# stored one is skipped before json_patch parses both), and only if that wrote
# anything are its new rows counted by their creation stamp. The expectation is
# what the chunk before found, so a bulk load and a re-upsert of unchanged data
# each take one pass a chunk.
_ROWS_PER_STATEMENT: Final = 500
_VERTEX_MERGE: Final = """
ON CONFLICT(id) DO UPDATE SET
    props = json_patch(vertices.props, excluded.props),
    ts = coalesce(excluded.ts, vertices.ts),
    seq = excluded.seq
WHERE excluded.props IS NOT vertices.props
    AND json_patch(vertices.props, excluded.props) IS NOT vertices.props
"""
_EDGE_MERGE: Final = """
ON CONFLICT(src, label, dst) DO UPDATE SET
    props = json_patch(edges.props, excluded.props),
    seq = excluded.seq
WHERE excluded.props IS NOT edges.props
    AND json_patch(edges.props, excluded.props) IS NOT edges.props
"""
# Rows whose properties remove a key (a None value) need the merge patch with its
# nulls for an existing row but the document without them for a new one, which
# ``excluded`` cannot carry; they are rare and go one at a time.
_VERTEX_UPSERT_ONE: Final = """
INSERT INTO vertices(id, label, props, ts, seq, cseq) VALUES (?1, ?2, ?4, ?5, ?7, ?7)
ON CONFLICT(id) DO UPDATE SET
    props = json_patch(vertices.props, ?3),
    ts = CASE WHEN ?6 THEN NULL WHEN ?5 IS NOT NULL THEN ?5 ELSE vertices.ts END,
    seq = ?7
WHERE json_patch(vertices.props, ?3) IS NOT vertices.props
RETURNING id, cseq = seq
"""
_EDGE_UPSERT_ONE: Final = """
INSERT INTO edges(src, label, dst, props, seq, cseq) VALUES (?1, ?2, ?3, ?5, ?6, ?6)
ON CONFLICT(src, label, dst) DO UPDATE SET props = json_patch(edges.props, ?4), seq = ?6
WHERE json_patch(edges.props, ?4) IS NOT edges.props
RETURNING src || char(9) || dst, cseq = seq
"""


@lru_cache(maxsize=64)
def _multi_row_write(table: Literal["vertices", "edges"], rows: int, merge: bool) -> str:
    if table == "vertices":
        head = "INSERT INTO vertices(id, label, props, ts, seq, cseq) VALUES "
        tail = _VERTEX_MERGE if merge else " ON CONFLICT(id) DO NOTHING"
    else:
        head = "INSERT INTO edges(src, label, dst, props, seq, cseq) VALUES "
        tail = _EDGE_MERGE if merge else " ON CONFLICT(src, label, dst) DO NOTHING"
    values = ",".join(f"(?{i},?1,?{i + 1},?{i + 2},?2,?2)" for i in range(3, 3 * rows + 3, 3))
    return head + values + tail


@lru_cache(maxsize=64)
def _count_created(table: Literal["vertices", "edges"], rows: int) -> str:
    """How many of ``rows`` keys (from ?3 on) were created by the batch stamped ?2."""
    if table == "vertices":
        keys = ",".join(f"(?{i})" for i in range(3, rows + 3))
        return (
            f"SELECT count(*) FROM (VALUES {keys}) AS batch"
            " JOIN vertices ON id = batch.column1 WHERE cseq = ?2"
        )
    keys = ",".join(f"(?{i},?{i + 1})" for i in range(3, 2 * rows + 3, 2))
    return (
        f"SELECT count(*) FROM (VALUES {keys}) AS batch JOIN edges"
        " ON src = batch.column1 AND label = ?1 AND dst = batch.column2 WHERE cseq = ?2"
    )


# 16 KiB pages (the default is 4 KiB) make shallower trees and fewer page splits
# for edges, whose rows land all over their table: about a tenth off the edge
# upsert time. Only a new file takes it; an existing one keeps its page size.
_PAGE_SIZE: Final = 16_384
# Checkpoint the WAL into the file every 64 MiB instead of every 4 MiB: fewer
# fsyncs, and pages written by several batches are copied once.
_CHECKPOINT_PAGES: Final = 4096
_CURSOR_SHIFT: Final = 32
_OFFSET_MASK: Final = (1 << _CURSOR_SHIFT) - 1
_SQL_CHUNK: Final = 500
"""Ids per ``IN (...)`` list; well under SQLite's bound-parameter limit."""
_DATETIME_TAG: Final = "$dt"


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _micros(value: datetime) -> int:
    """Microseconds since the Unix epoch: exact, and ordered like the instants."""
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(value: int) -> datetime:
    # Multiplying a timedelta is exact and twice as fast as timedelta(microseconds=...).
    return _EPOCH + _MICROSECOND * value


def _encode_default(value: object) -> object:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: _micros(value)}
    raise TypeError(f"cannot store {type(value).__name__}")


_ENCODE_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME


def _document(properties: dict[str, Any]) -> str:
    return orjson.dumps(properties, _encode_default, _ENCODE_OPTIONS).decode()


def _encode(properties: dict[str, PropertyValue | None]) -> tuple[str, str]:
    """The merge patch for an existing element and the document for a new one."""
    patch = _document(properties)
    if None not in properties.values():
        return patch, patch
    return patch, _document({key: value for key, value in properties.items() if value is not None})


def _decode(text: str) -> dict[str, PropertyValue]:
    return _decode_many([text])[0]


def _decode_many(texts: list[str]) -> list[dict[str, PropertyValue]]:
    """Property documents as dicts: one orjson call for them all, then the datetimes."""
    decoded: list[dict[str, Any]] = orjson.loads("[" + ",".join(texts) + "]")
    for properties in decoded:
        for key, value in properties.items():
            if type(value) is dict:
                properties[key] = _from_micros(value[_DATETIME_TAG])
    return decoded


def _label_range(label: VertexLabel) -> tuple[str, str]:
    """Id bounds ``[low, high)`` of one label: its prefix with the last char bumped."""
    prefix = ID_PREFIX[label]
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _SQL_CHUNK):
        yield items[start : start + _SQL_CHUNK]


class EmbeddedStore(GraphStore):
    """The default graph store: one SQLite file, one writer, many concurrent readers.

    ``durability="normal"`` survives a killed process (the WAL is synced at
    checkpoints); ``"full"`` also survives a power cut, at some write speed.
    Safe to share between threads: writes are serialised on one connection and
    each reading thread gets its own connection.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        durability: Literal["normal", "full"] = "normal",
        busy_timeout_ms: int = 30_000,
    ) -> None:
        if durability not in ("normal", "full"):
            raise InvalidInput(f"durability must be 'normal' or 'full', got {durability!r}")
        self.path = Path(path)
        self._durability = durability
        self._busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise GraphUnavailable(
                f"cannot create folder for store {self.path}: {error}"
            ) from error
        self._writer = self._connect()
        with self._translate("create schema"):
            self._writer.executescript(_SCHEMA)
            self._writer.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"

    # --- connections ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            connection.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {self._durability.upper()}")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA cache_size = -65536")
            connection.execute("PRAGMA temp_store = MEMORY")
            connection.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
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
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One atomic write batch: everything commits, or nothing does."""
        if self._closed:
            raise GraphUnavailable(f"embedded store {self.path} is closed")
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
                connection.execute("COMMIT")

    def close(self) -> None:
        """Close every connection; the WAL is checkpointed into the main file."""
        if self._closed:
            return
        self._closed = True
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

    def _write_rows(
        self,
        connection: sqlite3.Connection,
        table: Literal["vertices", "edges"],
        label: str,
        stamp: int,
        columns: tuple[Sequence[Any], Sequence[Any], Sequence[Any]],
        keys_of: Callable[[int, int], Iterable[str]],
    ) -> tuple[int, int, list[str]]:
        """Create or merge rows given as three columns (see _ROWS_PER_STATEMENT).

        Returns the rows created, the rows updated and the changelog keys: those of
        every chunk that wrote something. Keys of unchanged rows among them cost the
        feed nothing, as it skips keys whose rows carry another batch's stamp.
        """
        key_columns = columns[:1] if table == "vertices" else columns[:2]
        created = updated = 0
        keys: list[str] = []
        expect_new = True
        total = len(columns[0])
        for start in range(0, total, _ROWS_PER_STATEMENT):
            end = min(start + _ROWS_PER_STATEMENT, total)
            size = end - start
            insert = _multi_row_write(table, size, merge=False)
            merge = _multi_row_write(table, size, merge=True)
            params = [label, stamp, *_interleave(columns, start, end)]
            if expect_new:
                inserted = connection.execute(insert, params).rowcount
                merged = connection.execute(merge, params).rowcount if inserted < size else 0
            else:
                written = connection.execute(merge, params).rowcount
                inserted = 0
                if written:
                    probe = [label, stamp, *_interleave(key_columns, start, end)]
                    row = connection.execute(_count_created(table, size), probe).fetchone()
                    inserted = row[0]
                merged = written - inserted
            if inserted or merged:
                keys.extend(keys_of(start, end))
            created += inserted
            updated += merged
            expect_new = inserted == size
        return created, updated, keys

    def _write_single_rows(
        self, connection: sqlite3.Connection, statement: str, rows: list[tuple[Any, ...]]
    ) -> tuple[int, int, list[str]]:
        """Upsert rows one at a time; returns what _write_rows returns."""
        returned: list[tuple[str, int]] = []
        for row in rows:
            returned += connection.execute(statement, row).fetchall()
        created = sum(flag for _, flag in returned)
        return created, len(returned) - created, [key for key, _ in returned]

    def _append_changelog(
        self,
        connection: sqlite3.Connection,
        stamp: int,
        element: Literal["vertex", "edge"],
        label: str,
        keys: list[str],
        deleted: bool = False,
    ) -> None:
        if keys:
            connection.execute(
                "INSERT INTO changelog(seq, element, label, deleted, keys) VALUES (?, ?, ?, ?, ?)",
                (stamp, element, label, int(deleted), "\n".join(keys)),
            )

    def _upsert_vertices(
        self, label: VertexLabel, batch: list[tuple[str, dict[str, PropertyValue | None]]]
    ) -> UpsertResult:
        all_ids = [vertex_id for vertex_id, _ in batch]
        if len(set(all_ids)) < len(all_ids):
            return self._upsert_vertices(label, _merge_duplicates(batch, all_ids))
        ids: list[str] = []
        documents: list[str] = []
        times: list[int | None] = []
        single_rows: list[tuple[Any, ...]] = []
        for vertex_id, properties in batch:
            ts = properties.get("ts")
            document: dict[str, Any]
            if isinstance(ts, datetime):
                # Tagging ts here saves orjson a call back into Python for it.
                ts_micros: int | None = (ts - _EPOCH) // _MICROSECOND
                document = {**properties, "ts": {_DATETIME_TAG: ts_micros}}
            else:
                ts_micros = None
                document = properties
            if None in properties.values():
                ts_removed = ts is None and "ts" in properties
                single_rows.append(
                    (vertex_id, label.value, *_encode(document), ts_micros, ts_removed)
                )
            else:
                ids.append(vertex_id)
                documents.append(_document(document))
                times.append(ts_micros)
        return self._write_vertices(label, ids, documents, times, single_rows)

    def _upsert_vertex_table(self, label: VertexLabel, table: pa.Table) -> UpsertResult:
        ids = table["id"]
        documents = _table_documents(table, VERTEX_TABLE_KEYS)
        if (
            documents is None
            or not arrow_ids_valid(label, ids)
            or pc.count_distinct(ids).as_py() < len(ids)
        ):
            # Repeated ids, or values the Arrow checks cannot vouch for: the records
            # path merges the repeats and checks (and reports) value by value.
            return super()._upsert_vertex_table(label, table)
        ts = table["ts"] if "ts" in table.column_names else None
        if ts is not None and pa.types.is_timestamp(ts.type):
            times = _micros_array(ts.combine_chunks()).to_pylist()
        else:
            times = [None] * len(ids)
        return self._write_vertices(label, _strings(ids), documents, times, [])

    def _write_vertices(
        self,
        label: VertexLabel,
        ids: list[str],
        documents: list[str],
        times: list[int | None],
        single_rows: list[tuple[Any, ...]],
    ) -> UpsertResult:
        """Write encoded vertices in one transaction: rows, single rows, change log."""
        return self._write_encoded(
            "vertex",
            label.value,
            (ids, documents, times),
            lambda start, end: ids[start:end],
            _VERTEX_UPSERT_ONE,
            single_rows,
        )

    def _write_encoded(
        self,
        element: Literal["vertex", "edge"],
        label: str,
        columns: tuple[list[Any], list[Any], list[Any]],
        keys_between: Callable[[int, int], list[str]],
        single_sql: str,
        single_rows: list[tuple[Any, ...]],
        missing: Callable[[sqlite3.Connection], UnknownVertex] | None = None,
    ) -> UpsertResult:
        """One write batch of either element: chunked rows, single rows, then the changelog.

        ``missing`` turns a foreign-key failure into the error naming the missing
        endpoint (edges only; vertices have no foreign keys).
        """
        table: Literal["vertices", "edges"] = "vertices" if element == "vertex" else "edges"
        size = len(columns[0]) + len(single_rows)
        with self._transaction(f"upsert of {size} {label} {table}") as connection:
            stamp = self._claim_seq(connection)
            try:
                created, updated, written = self._write_rows(
                    connection, table, label, stamp, columns, keys_between
                )
                if single_rows:
                    one = [(*row, stamp) for row in single_rows]
                    more = self._write_single_rows(connection, single_sql, one)
                    created, updated = created + more[0], updated + more[1]
                    written += more[2]
            except sqlite3.IntegrityError as error:
                if missing is None:
                    raise
                raise missing(connection) from error
            self._append_changelog(connection, stamp, element, label, written)
        return UpsertResult(created, updated, size - created - updated)

    def _upsert_edges(
        self, label: EdgeLabel, batch: list[tuple[str, str, dict[str, PropertyValue | None]]]
    ) -> UpsertResult:
        sources, targets, properties = (list(column) for column in zip(*batch, strict=True))
        keys = list(map("\t".join, zip(sources, targets, strict=True)))
        if len(set(keys)) < len(keys):
            return self._upsert_edges(label, _merge_duplicates(batch, keys))
        documents = [_document(patch) if patch else "{}" for patch in properties]
        single_rows: list[tuple[Any, ...]] = []
        removing = [index for index, patch in enumerate(properties) if None in patch.values()]
        for index in reversed(removing):
            patch = properties[index]
            single_rows.append((sources[index], label.value, targets[index], *_encode(patch)))
            for column in (sources, targets, documents, keys):
                del column[index]
        return self._write_edges(
            label,
            sources,
            targets,
            documents,
            keys,
            single_rows,
            lambda: [(source, target) for source, target, _ in batch],
        )

    def _upsert_edge_table(self, label: EdgeLabel, table: pa.Table) -> UpsertResult:
        edge_type = EDGE_TYPES[label]
        sources, targets = table["source"], table["target"]
        documents = _table_documents(table, EDGE_TABLE_KEYS)
        keys = None
        if (
            documents is not None
            and arrow_ids_valid(edge_type.source, sources)
            and arrow_ids_valid(edge_type.target, targets)
        ):
            keys = _concat(sources.combine_chunks(), "\t", targets.combine_chunks())
        if documents is None or keys is None or pc.count_distinct(keys).as_py() < len(keys):
            # As for vertices: the records path merges repeats and reports errors.
            return super()._upsert_edge_table(label, table)
        source_ids, target_ids = _strings(sources), _strings(targets)
        return self._write_edges(
            label,
            source_ids,
            target_ids,
            documents,
            _strings(keys),
            [],
            lambda: list(zip(source_ids, target_ids, strict=True)),
        )

    def _write_edges(
        self,
        label: EdgeLabel,
        sources: list[str],
        targets: list[str],
        documents: list[str],
        keys: list[str],
        single_rows: list[tuple[Any, ...]],
        pairs: Callable[[], list[tuple[str, str]]],
    ) -> UpsertResult:
        """Write encoded edges in one transaction; ``pairs`` names them for errors.

        ``keys`` are the changelog keys of the rows, ``source<TAB>target``.
        """
        return self._write_encoded(
            "edge",
            label.value,
            (sources, targets, documents),
            lambda start, end: keys[start:end],
            _EDGE_UPSERT_ONE,
            single_rows,
            lambda connection: self._missing_endpoints(connection, label, pairs()),
        )

    def _missing_endpoints(
        self, connection: sqlite3.Connection, label: EdgeLabel, pairs: list[tuple[str, str]]
    ) -> UnknownVertex:
        endpoints = list(dict.fromkeys(vertex_id for pair in pairs for vertex_id in pair))
        present = self._existing_ids(connection, endpoints)
        for index, pair in enumerate(pairs):
            for vertex_id in pair:
                if vertex_id not in present:
                    return UnknownVertex(
                        f"{label} edge {index} points at vertex {vertex_id!r}, which is not "
                        "in the graph; upsert the vertices before the edges",
                        details={"index": index, "id": vertex_id},
                    )
        return UnknownVertex(f"{label} edges point at vertices that are not in the graph")

    def _existing_ids(self, connection: sqlite3.Connection, ids: list[str]) -> set[str]:
        present: set[str] = set()
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            present.update(
                row[0]
                for row in connection.execute(
                    f"SELECT id FROM vertices WHERE id IN ({marks})", chunk
                )
            )
        return present

    def _bury(
        self,
        connection: sqlite3.Connection,
        element: Literal["vertex", "edge"],
        label: str,
        keys: list[str],
    ) -> None:
        """Append a deletion entry to the changelog."""
        self._append_changelog(
            connection, self._claim_seq(connection), element, label, keys, deleted=True
        )

    def _delete_vertices(self, ids: list[str]) -> int:
        with self._transaction(f"delete of {len(ids)} vertices") as connection:
            dead_edges: dict[str, list[str]] = {}
            dead_vertices: dict[str, list[str]] = {}
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                for label, src, dst in connection.execute(
                    f"SELECT label, src, dst FROM edges WHERE src IN ({marks})"
                    f" UNION SELECT label, src, dst FROM edges WHERE dst IN ({marks})",
                    chunk + chunk,
                ):
                    dead_edges.setdefault(label, []).append(f"{src}\t{dst}")
                for label, vertex_id in connection.execute(
                    f"SELECT label, id FROM vertices WHERE id IN ({marks})", chunk
                ):
                    dead_vertices.setdefault(label, []).append(vertex_id)
                # Foreign keys cascade the delete to every edge found above.
                connection.execute(f"DELETE FROM vertices WHERE id IN ({marks})", chunk)
            for label, keys in dead_edges.items():
                self._bury(connection, "edge", label, keys)
            for label, keys in dead_vertices.items():
                self._bury(connection, "vertex", label, keys)
            return sum(len(keys) for keys in dead_vertices.values())

    def _delete_edges(self, label: EdgeLabel, pairs: list[tuple[str, str]]) -> int:
        with self._transaction(f"delete of {len(pairs)} {label} edges") as connection:
            dead: list[str] = []
            for source, target in dict.fromkeys(pairs):
                cursor = connection.execute(
                    "DELETE FROM edges WHERE src = ? AND label = ? AND dst = ?",
                    (source, label.value, target),
                )
                if cursor.rowcount:
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
                marks = ",".join("?" * len(chunk))
                found += _vertices(
                    connection.execute(
                        f"SELECT id, label, props FROM vertices WHERE id IN ({marks})", chunk
                    ).fetchall()
                )
        return found

    def _get_edge(self, label: EdgeLabel, source: str, target: str) -> Edge | None:
        with self._translate("edge lookup"):
            row = (
                self._reader()
                .execute(
                    "SELECT props FROM edges WHERE src = ? AND label = ? AND dst = ?",
                    (source, label.value, target),
                )
                .fetchone()
            )
        return Edge(label.value, source, target, _decode(row[0])) if row else None

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
                clauses.append(f"json_extract(props, '$.{key}.\"{_DATETIME_TAG}\"') = ?")
                params.append(_micros(value))
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
        label_params: list[str] = []
        if labels:
            label_filter = f" AND e.label IN ({','.join('?' * len(labels))})"
            label_params = [label.value for label in labels]
        parts: list[str] = []
        params: list[Any] = []
        if direction in ("out", "both"):
            parts.append(
                "SELECT e.label, e.src, e.dst, e.props, v.id, v.label, v.props FROM edges e"
                f" JOIN vertices v ON v.id = e.dst WHERE e.src = ?{label_filter}"
            )
            params += [vertex_id, *label_params]
        if direction in ("in", "both"):
            parts.append(
                "SELECT e.label, e.src, e.dst, e.props, v.id, v.label, v.props FROM edges e"
                f" JOIN vertices v ON v.id = e.src WHERE e.dst = ?{label_filter}"
            )
            params += [vertex_id, *label_params]
        sql = " UNION ALL ".join(parts)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._translate("neighbour lookup"):
            rows = self._reader().execute(sql, params).fetchall()
        properties = _decode_many([text for row in rows for text in (row[3], row[6])])
        return [
            Neighbour(
                Edge(row[0], row[1], row[2], properties[2 * index]),
                Vertex(row[4], row[5], properties[2 * index + 1]),
            )
            for index, row in enumerate(rows)
        ]

    def _timeline(
        self,
        customer: str,
        start: datetime | None,
        end: datetime | None,
        limit: int | None,
    ) -> list[Vertex]:
        sql = (
            "SELECT v.id, v.label, v.ts, v.props FROM edges e JOIN vertices v ON v.id = e.dst"
            " WHERE e.src = ? AND e.label = 'PERFORMED'"
        )
        params: list[Any] = [customer]
        if start is not None:
            sql += " AND v.ts >= ?"
            params.append(_micros(start))
        if end is not None:
            sql += " AND v.ts < ?"
            params.append(_micros(end))
        if limit is not None:
            sql += " ORDER BY v.ts, v.id LIMIT ?"
            params.append(limit)
        with self._translate("timeline"):
            rows = self._reader().execute(sql, params).fetchall()
        if limit is None:
            # SQLite's ORDER BY (ts with NULLs first, then id) sorts slower than Python
            # does; UTF-8 bytes and code points order alike.
            rows.sort(key=lambda row: (row[2] is not None, row[2] or 0, row[0]))
        properties = _decode_many([row[3] for row in rows])
        return [Vertex(row[0], row[1], props) for row, props in zip(rows, properties, strict=True)]

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
                    .execute("SELECT count(*) FROM edges WHERE label = ?", (label.value,))
                    .fetchone()
                )
        return int(row[0])

    def _changes(self, since: int, limit: int) -> ChangeBatch:
        """Read the changelog after a cursor: ``(log seq << 32) | entries consumed``.

        An element written again later, or deleted, is reported once, at its latest
        entry; "created" means created after the cursor.
        """
        since_seq, since_offset = since >> _CURSOR_SHIFT, since & _OFFSET_MASK
        changes: list[Change] = []
        cursor = since
        with self._translate("change feed"):
            connection = self._reader()
            connection.execute("BEGIN")
            try:
                log = connection.execute(
                    "SELECT seq, element, label, deleted, keys FROM changelog WHERE seq >= ?"
                    " ORDER BY seq",
                    (since_seq,),
                )
                consumed: set[str] = set()
                for seq, element, label, deleted, text in log:
                    keys = text.split("\n")
                    offset = since_offset if seq == since_seq else 0
                    if seq == since_seq and not deleted:
                        # Keys of the cursor's own log row already read: their creation
                        # was seen, so a later write of one of them is an update.
                        consumed = set(keys[:offset])
                    if offset >= len(keys):
                        continue
                    for start in range(offset, len(keys), _SQL_CHUNK):
                        part = keys[start : start + min(_SQL_CHUNK, limit - len(changes))]
                        changes += self._changelog_entries(
                            connection,
                            seq,
                            element,
                            label,
                            bool(deleted),
                            part,
                            since_seq,
                            consumed,
                        )
                        cursor = (seq << _CURSOR_SHIFT) | (start + len(part))
                        if len(changes) >= limit:
                            break
                    if len(changes) >= limit:
                        break
            finally:
                connection.execute("COMMIT")
        return ChangeBatch(changes, cursor)

    def _changelog_entries(
        self,
        connection: sqlite3.Connection,
        seq: int,
        element: Literal["vertex", "edge"],
        label: str,
        deleted: bool,
        keys: list[str],
        since_seq: int,
        consumed: set[str],
    ) -> list[Change]:
        if element == "vertex":
            element_ids = keys
        else:
            element_ids = [f"{label}:{key.replace(chr(9), '>', 1)}" for key in keys]
        if deleted:
            return [Change(seq, ChangeKind.DELETED, element, label, i) for i in element_ids]
        stamps = self._current_stamps(connection, element, label, keys)
        entries = []
        for key, element_id in zip(keys, element_ids, strict=True):
            current = stamps.get(key)
            if current is None or current[0] != seq:
                continue  # deleted or written again later: reported at that later entry
            created_after_cursor = current[1] > since_seq or (
                current[1] == since_seq and key not in consumed
            )
            kind = ChangeKind.CREATED if created_after_cursor else ChangeKind.UPDATED
            entries.append(Change(seq, kind, element, label, element_id))
        return entries

    def _current_stamps(
        self,
        connection: sqlite3.Connection,
        element: Literal["vertex", "edge"],
        label: str,
        keys: list[str],
    ) -> dict[str, tuple[int, int]]:
        marks = ",".join("?" * len(keys))
        if element == "vertex":
            rows = connection.execute(
                f"SELECT id, seq, cseq FROM vertices WHERE id IN ({marks})", keys
            )
            return {vertex_id: (seq, cseq) for vertex_id, seq, cseq in rows}
        sources = list({key.split("\t", 1)[0] for key in keys})
        marks = ",".join("?" * len(sources))
        rows = connection.execute(
            f"SELECT src || char(9) || dst, seq, cseq FROM edges"
            f" WHERE src IN ({marks}) AND label = ?",
            [*sources, label],
        )
        return {key: (seq, cseq) for key, seq, cseq in rows}

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
        properties = _properties_table([row[1] for row in rows])
        return _prepend(properties, [("id", ids)])

    def _export_edges(self, label: EdgeLabel) -> pa.Table:
        with self._translate(f"export of {label}"):
            rows = (
                self._reader()
                .execute(
                    "SELECT src, dst, props FROM edges WHERE label = ? ORDER BY src, dst",
                    (label.value,),
                )
                .fetchall()
            )
        sources = pa.array([row[0] for row in rows], pa.string())
        targets = pa.array([row[1] for row in rows], pa.string())
        properties = _properties_table([row[2] for row in rows])
        return _prepend(properties, [("source", sources), ("target", targets)])

    def _ping(self) -> None:
        with self._translate("ping"):
            self._reader().execute("SELECT 1").fetchone()

    # --- maintenance ------------------------------------------------------------------

    def compact_changes(self, before: int) -> int:
        """Drop changelog entries every consumer has read (cursor ``before``)."""
        with self._transaction("change feed compaction") as connection:
            # The cursor's own log row goes too once all its keys (newlines + 1) are read.
            return connection.execute(
                "DELETE FROM changelog WHERE seq < ?1 OR (seq = ?1 AND ?2 >="
                " length(keys) - length(replace(keys, char(10), '')) + 1)",
                (before >> _CURSOR_SHIFT, before & _OFFSET_MASK),
            ).rowcount

    def edge_ids(self, label: EdgeLabel) -> Iterator[str]:
        """Ids of every edge of one label (streamed; for consistency checks)."""
        with self._translate(f"scan of {label}"):
            for source, target in self._reader().execute(
                "SELECT src, dst FROM edges WHERE label = ?", (label.value,)
            ):
                yield edge_id(label, source, target)


def _interleave(columns: Sequence[Sequence[Any]], start: int, end: int) -> Iterator[Any]:
    """Rows ``start:end`` of ``columns`` flattened row by row, as bound parameters."""
    return chain.from_iterable(zip(*(column[start:end] for column in columns), strict=True))


def _merge_duplicates(batch: list[Any], keys: Sequence[Hashable]) -> list[Any]:
    """Fold repeated elements of one batch (by ``keys``) into one: later properties win.

    One multi-row statement would create the first copy and skip the rest as
    already there; composing the merge patches here keeps the meaning of writing
    them one after the other.
    """
    if len(set(keys)) == len(keys):
        return batch
    merged: dict[Hashable, tuple[Any, ...]] = {}
    for key, record in zip(keys, batch, strict=True):
        if key in merged:
            previous = merged[key]
            record = (*record[:-1], {**previous[-1], **record[-1]})
        merged[key] = record
    return list(merged.values())


def _vertices(rows: list[tuple[str, str, str]]) -> list[Vertex]:
    """Vertices from ``(id, label, props)`` rows."""
    properties = _decode_many([row[2] for row in rows])
    return [Vertex(row[0], row[1], props) for row, props in zip(rows, properties, strict=True)]


def _prepend(table: pa.Table, columns: list[tuple[str, pa.Array[Any]]]) -> pa.Table:
    for position, (name, column) in enumerate(columns):
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.add_column(position, name, column)
    return table


def _properties_table(texts: list[str]) -> pa.Table:
    """Property JSON objects as columns: Arrow's JSON reader in C, Python as fallback.

    The fast path fails when one property holds different types on different
    vertices; then each column is built on its own and mixed ones become text.
    """
    if not texts:
        return pa.table({})
    try:
        table = pa_json.read_json(
            io.BytesIO("\n".join(texts).encode()),
            read_options=pa_json.ReadOptions(block_size=1 << 26),
        )
        columns = [_datetime_column(table[name]) for name in table.column_names]
        return pa.Table.from_arrays(columns, names=table.column_names)
    except pa.ArrowInvalid:
        return _properties_table_slow(texts)


def _datetime_column(column: pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    if pa.types.is_struct(column.type) and [f.name for f in column.type] == [_DATETIME_TAG]:
        struct: pa.StructArray = column.combine_chunks()  # type: ignore[assignment]
        micros = struct.field(_DATETIME_TAG).cast(pa.int64())
        return pa.chunked_array([micros.cast(pa.timestamp("us", tz="UTC"))])
    return column


def _properties_table_slow(texts: list[str]) -> pa.Table:
    decoded = _decode_many(texts)
    names = list(dict.fromkeys(key for item in decoded for key in item))
    columns: dict[str, pa.Array[Any]] = {}
    for name in names:
        values = [item.get(name) for item in decoded]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array(
                [None if value is None else str(value) for value in values], pa.string()
            )
    return pa.table(columns)


# --- columnar writes --------------------------------------------------------------

_JSON_ESCAPES: Final = {
    "\\": "\\\\",  # first, so the backslashes of the other escapes stay as they are
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
} | {chr(code): f"\\u{code:04x}" for code in range(32) if code not in (8, 9, 10, 12, 13)}
"""What orjson escapes in a string, and how; no other character is escaped."""
_NEEDS_ESCAPE: Final = r'["\\\x00-\x1f]'


def _table_documents(table: pa.Table, key_columns: tuple[str, ...]) -> list[str] | None:
    """Each row's property columns as the JSON document the records path would store.

    Built column by column in Arrow kernels, byte for byte what orjson writes for the
    same values, so re-upserting through either path finds the data unchanged. None
    when a column is one the records path must check (a bad name, an unsupported
    type, a value out of range).
    """
    members = []
    for name in table.column_names:
        if name in key_columns:
            continue
        column = table[name].combine_chunks()
        if pa.types.is_null(column.type):
            continue
        member = _json_member(name, column) if property_key_valid(name) else None
        if member is None:
            return None
        members.append(member)
    if not members:
        return ["{}"] * table.num_rows
    # Each member ends with a comma and nulls join as nothing, which skips the
    # properties a row has no value for; the last comma then gives way to the brace.
    joined = _concat("{", *members, skip_nulls=True)
    return _strings(_concat(pc.utf8_rtrim(joined, characters=","), "}"))


def _json_member(name: str, column: pa.Array[Any]) -> pa.Array[Any] | None:
    """``"name":value,`` per value as orjson writes it, null for nulls; None if unsupported."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if (pc.max(pc.utf8_length(column)).as_py() or 0) > MAX_STRING_LENGTH:  # type: ignore[call-overload]
            return None
        text = _json_string(column)
    elif pa.types.is_boolean(kind):
        text = pc.if_else(column, "true", "false")
    elif pa.types.is_integer(kind):
        if pa.types.is_uint64(kind) and (pc.max(column).as_py() or 0) > INT64_MAX:
            return None
        text = column.cast(pa.string())
    elif pa.types.is_floating(kind):
        values = column.cast(pa.float64())
        if not pc.all(pc.is_finite(values), min_count=0).as_py():
            return None
        # Arrow formats floats its own way; orjson's text, split at the commas of the
        # list, is what the records path stores. Nulls come out as "null" and go.
        written = orjson.dumps(values.to_pylist())[1:-1].split(b",")
        text = pc.if_else(column.is_valid(), pa.array(written, pa.string()), None)
    elif pa.types.is_timestamp(kind) and kind.tz is not None:
        micros = _micros_array(column).cast(pa.string())
        text = _concat(f'{{"{_DATETIME_TAG}":', micros, "}")
    else:
        return None
    return _concat(f'"{name}":', text, ",")


def _json_string(column: pa.Array[Any]) -> pa.Array[Any]:
    if pc.any(pc.match_substring_regex(column, _NEEDS_ESCAPE)).as_py():
        for char, escape in _JSON_ESCAPES.items():
            column = pc.replace_substring(column, char, escape)
    return _concat('"', column, '"')


def _concat(*parts: Any, skip_nulls: bool = False) -> pa.Array[Any]:
    """Strings joined element-wise, constants repeated; a null part makes the result
    null, or with ``skip_nulls`` counts as empty."""
    if skip_nulls:
        joined = pc.binary_join_element_wise(
            *parts, "", null_handling="replace", null_replacement=""
        )
    else:
        joined = pc.binary_join_element_wise(*parts, "")
    return cast("pa.Array[Any]", joined)


def _strings(column: pa.Array[Any] | pa.ChunkedArray[Any]) -> list[str]:
    """The values of a string column that has no nulls."""
    return cast(list[str], column.to_pylist())


def _micros_array(column: pa.Array[Any]) -> pa.Array[Any]:
    """A timestamp column as microseconds since the epoch, floored like ``_micros``."""
    values = column.cast(pa.int64())
    unit = column.type.unit
    if unit == "s":
        return pc.multiply_checked(values, 1_000_000)
    if unit == "ms":
        return pc.multiply_checked(values, 1000)
    if unit == "ns":
        # Integer division truncates towards zero; floor the negative ones.
        quotient = pc.divide(values, 1000)
        below = pc.greater(pc.multiply(quotient, 1000), values)
        return pc.subtract(quotient, below.cast(pa.int64()))
    return values
