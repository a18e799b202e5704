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
  of creation) and appends one ``changelog`` row listing their keys. It is written
  in the same transaction as the change, so it can never disagree with the data.
  One log row a batch costs almost nothing; a log row per element (trigger-fed)
  halved the upsert rate and an index on ``seq`` cost a third of it. Upserts only
  touch rows whose merged JSON differs, which is what makes a re-upsert of
  identical data write nothing.
"""

from __future__ import annotations

import io
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, Final, Literal

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from graph.errors import GraphError, GraphUnavailable, InvalidInput, UnknownVertex
from graph.model import ID_PREFIX, EdgeLabel, PropertyValue, VertexLabel, edge_id
from graph.store import (
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

# Upserts are multi-row ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: one
# statement writes up to _ROWS_PER_STATEMENT rows, merges properties in C with
# json_patch, skips rows the merge would not change, and returns exactly the rows
# it created or updated (``cseq = seq`` marks a creation), so the change feed and
# the counts cost no extra lookups. executemany cannot return rows, and a second
# pass to tell inserts from updates cost a third of the rate.
_ROWS_PER_STATEMENT: Final = 500
_VERTEX_UPSERT_TAIL: Final = """
ON CONFLICT(id) DO UPDATE SET
    props = json_patch(vertices.props, excluded.props),
    ts = coalesce(excluded.ts, vertices.ts),
    seq = excluded.seq
WHERE json_patch(vertices.props, excluded.props) IS NOT vertices.props
RETURNING id, cseq = seq
"""
_EDGE_UPSERT_TAIL: Final = """
ON CONFLICT(src, label, dst) DO UPDATE SET
    props = json_patch(edges.props, excluded.props),
    seq = excluded.seq
WHERE json_patch(edges.props, excluded.props) IS NOT edges.props
RETURNING src || char(9) || dst, cseq = seq
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
def _multi_row_upsert(table: str, rows: int) -> str:
    columns = (
        "(id, label, props, ts, seq, cseq)"
        if table == "vertices"
        else ("(src, label, dst, props, seq, cseq)")
    )
    tail = _VERTEX_UPSERT_TAIL if table == "vertices" else _EDGE_UPSERT_TAIL
    values = ",".join(["(?,?,?,?,?,?)"] * rows)
    return f"INSERT INTO {table}{columns} VALUES {values}{tail}"


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
    return _EPOCH + timedelta(microseconds=value)


def _encode_default(value: object) -> object:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: _micros(value)}
    raise TypeError(f"cannot store {type(value).__name__}")


_ENCODE_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME


def _encode(properties: dict[str, PropertyValue | None]) -> tuple[str, str]:
    """The merge patch for an existing element and the document for a new one."""
    patch = orjson.dumps(properties, default=_encode_default, option=_ENCODE_OPTIONS).decode()
    if None not in properties.values():
        return patch, patch
    present = {key: value for key, value in properties.items() if value is not None}
    return patch, orjson.dumps(present, default=_encode_default, option=_ENCODE_OPTIONS).decode()


def _decode(text: str) -> dict[str, PropertyValue]:
    decoded: dict[str, Any] = orjson.loads(text)
    for key, value in decoded.items():
        if type(value) is dict:
            decoded[key] = _from_micros(value[_DATETIME_TAG])
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
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {self._durability.upper()}")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA cache_size = -65536")
            connection.execute("PRAGMA temp_store = MEMORY")
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
        flat_rows: list[tuple[Any, ...]],
        single_rows: list[tuple[Any, ...]],
        size: int,
    ) -> tuple[UpsertResult, list[str]]:
        """Write prepared rows; return the counts and the keys of the rows written."""
        returned: list[tuple[str, int]] = []
        for start in range(0, len(flat_rows), _ROWS_PER_STATEMENT):
            part = flat_rows[start : start + _ROWS_PER_STATEMENT]
            params = list(chain.from_iterable(part))
            returned += connection.execute(_multi_row_upsert(table, len(part)), params).fetchall()
        one = _VERTEX_UPSERT_ONE if table == "vertices" else _EDGE_UPSERT_ONE
        for row in single_rows:
            returned += connection.execute(one, row).fetchall()
        created = sum(flag for _, flag in returned)
        result = UpsertResult(
            created=created, updated=len(returned) - created, unchanged=size - len(returned)
        )
        return result, [key for key, _ in returned]

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
        batch = _merge_duplicates(batch, lambda record: record[0])
        with self._transaction(f"upsert of {len(batch)} {label} vertices") as connection:
            stamp = self._claim_seq(connection)
            name = label.value
            flat_rows: list[tuple[Any, ...]] = []
            single_rows: list[tuple[Any, ...]] = []
            for vertex_id, properties in batch:
                ts = properties.get("ts")
                if isinstance(ts, datetime):
                    # Tagging ts here saves orjson a call back into Python for it.
                    ts_micros: int | None = (ts - _EPOCH) // _MICROSECOND
                    properties = {**properties, "ts": {_DATETIME_TAG: ts_micros}}  # type: ignore[dict-item]
                else:
                    ts_micros = None
                patch, document = _encode(properties)
                if patch is document:
                    flat_rows.append((vertex_id, name, document, ts_micros, stamp, stamp))
                else:
                    ts_removed = ts is None and "ts" in properties
                    single_rows.append(
                        (vertex_id, name, patch, document, ts_micros, ts_removed, stamp)
                    )
            result, keys = self._write_rows(
                connection, "vertices", flat_rows, single_rows, len(batch)
            )
            self._append_changelog(connection, stamp, "vertex", name, keys)
            return result

    def _upsert_edges(
        self, label: EdgeLabel, batch: list[tuple[str, str, dict[str, PropertyValue | None]]]
    ) -> UpsertResult:
        batch = _merge_duplicates(batch, lambda record: (record[0], record[1]))
        with self._transaction(f"upsert of {len(batch)} {label} edges") as connection:
            stamp = self._claim_seq(connection)
            name = label.value
            flat_rows: list[tuple[Any, ...]] = []
            single_rows: list[tuple[Any, ...]] = []
            for source, target, properties in batch:
                patch, document = _encode(properties)
                if patch is document:
                    flat_rows.append((source, name, target, document, stamp, stamp))
                else:
                    single_rows.append((source, name, target, patch, document, stamp))
            try:
                result, keys = self._write_rows(
                    connection, "edges", flat_rows, single_rows, len(batch)
                )
            except sqlite3.IntegrityError as error:
                raise self._missing_endpoints(connection, label, batch) from error
            self._append_changelog(connection, stamp, "edge", name, keys)
            return result

    def _missing_endpoints(
        self,
        connection: sqlite3.Connection,
        label: EdgeLabel,
        batch: list[tuple[str, str, dict[str, PropertyValue | None]]],
    ) -> UnknownVertex:
        endpoints = list(dict.fromkeys(vid for s, t, _ in batch for vid in (s, t)))
        present = self._existing_ids(connection, endpoints)
        for index, (source, target, _) in enumerate(batch):
            for vertex_id in (source, target):
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
                found.extend(
                    Vertex(row[0], row[1], _decode(row[2]))
                    for row in connection.execute(
                        f"SELECT id, label, props FROM vertices WHERE id IN ({marks})", chunk
                    )
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
        return [Vertex(row[0], row[1], _decode(row[2])) for row in rows]

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
        return [
            Neighbour(
                Edge(row[0], row[1], row[2], _decode(row[3])),
                Vertex(row[4], row[5], _decode(row[6])),
            )
            for row in rows
        ]

    def _timeline(
        self,
        customer: str,
        start: datetime | None,
        end: datetime | None,
        limit: int | None,
    ) -> list[Vertex]:
        sql = (
            "SELECT v.id, v.label, v.props FROM edges e JOIN vertices v ON v.id = e.dst"
            " WHERE e.src = ? AND e.label = 'PERFORMED'"
        )
        params: list[Any] = [customer]
        if start is not None:
            sql += " AND v.ts >= ?"
            params.append(_micros(start))
        if end is not None:
            sql += " AND v.ts < ?"
            params.append(_micros(end))
        sql += " ORDER BY v.ts, v.id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._translate("timeline"):
            rows = self._reader().execute(sql, params).fetchall()
        return [Vertex(row[0], row[1], _decode(row[2])) for row in rows]

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


def _merge_duplicates(
    batch: list[tuple[Any, ...]], key_of: Callable[[tuple[Any, ...]], Hashable]
) -> list[tuple[Any, ...]]:
    """Fold repeated elements of one batch into one: later properties win.

    The insert pass would create the first copy and the update pass skip the rest
    as already written by this batch; composing the merge patches here keeps the
    meaning of writing them one after the other.
    """
    keys = [key_of(record) for record in batch]
    if len(set(keys)) == len(keys):
        return batch
    merged: dict[Hashable, tuple[Any, ...]] = {}
    for key, record in zip(keys, batch, strict=True):
        if key in merged:
            previous = merged[key]
            record = (*record[:-1], {**previous[-1], **record[-1]})
        merged[key] = record
    return list(merged.values())


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
    decoded = [_decode(text) for text in texts]
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
