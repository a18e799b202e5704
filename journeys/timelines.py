"""Every customer's timeline as sorted columnar arrays: what the journey analyzers read.

The lake keeps touchpoints in the order they arrived, partitioned by month. Journey
questions read each customer's touchpoints in ``(ts, event_id)`` order, and sorting
ten million rows for every question costs seconds. So ``TimelineIndex`` keeps one
sorted, dictionary-coded copy of the columns journeys need next to the lake
(``<lake root>/timelines/``): NumPy arrays on disk that a query maps into memory and
scans, a few bytes a touchpoint.

The copy says which lake it was built from (the lake's files and the identity merge
map). ``TimelineIndex.load`` rebuilds it when either has changed since, so answers
are never staler than the lake; a rebuild is one DuckDB sort of the lake.

Codes: event types, channels and sources are numbered in sorted order of their
names, so comparing two journeys' codes compares their names, and an event code
fits one byte while there are at most 255 event types.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from graph.errors import InvalidInput
from ingest.lake import Lake

FORMAT_VERSION: Final = 1
FOLDER: Final = "timelines"
ARRAYS: Final = ("offsets", "event", "channel", "source", "ts")

Codes = npt.NDArray[np.uint8] | npt.NDArray[np.uint16]
"""Dictionary codes: one byte while the vocabulary has at most 255 names."""


@dataclass(frozen=True)
class Timelines:
    """Touchpoints of every customer, grouped by customer and ordered by (ts, event_id).

    The touchpoints of customer ``i`` (``customers[i]``) are the positions
    ``offsets[i]:offsets[i + 1]`` of ``event``, ``channel``, ``source`` and ``ts``.
    Customers are sorted by id after a full build; customers spliced in since (see
    ``TimelineIndex``) follow in their own order. ``ts`` is milliseconds since the
    epoch (UTC).
    """

    customers: pa.Array[Any]
    offsets: npt.NDArray[np.int64]
    event: Codes
    channel: Codes
    source: Codes
    ts: npt.NDArray[np.int64]
    event_types: tuple[str, ...]
    channels: tuple[str, ...]
    sources: tuple[str, ...]
    event_ids: pa.Array[Any] | None = None
    """Each touchpoint's event id (what orders ties in time); kept so that changes
    can be spliced in without reading the lake again."""

    def __len__(self) -> int:
        return len(self.event)

    @property
    def customer_count(self) -> int:
        """How many customers have a timeline."""
        return len(self.offsets) - 1

    def owners(self) -> npt.NDArray[np.int32]:
        """The customer (an index into ``customers``) of every touchpoint."""
        lengths = np.diff(self.offsets)
        return np.repeat(np.arange(self.customer_count, dtype=np.int32), lengths)

    def vocabulary(self, column: str) -> tuple[str, ...]:
        """The names behind the codes of ``event``, ``channel`` or ``source``."""
        vocabularies = {
            "event": self.event_types,
            "channel": self.channels,
            "source": self.sources,
        }
        return vocabularies[column]

    def codes_of(self, column: str, names: list[str], field: str) -> list[int]:
        """The codes of ``names`` in ``column``; unknown names are an error naming them.

        A name that never occurs cannot be coded, and a filter on it would silently
        match nothing, which is almost always a misspelling.
        """
        vocabulary = self.vocabulary(column)
        lookup = {name: code for code, name in enumerate(vocabulary)}
        unknown = [name for name in names if name not in lookup]
        if unknown:
            shown = ", ".join(vocabulary[:50])
            raise InvalidInput(
                f"{field}: {', '.join(map(repr, unknown))} never occurs in the touchpoints; "
                f"known: {shown}",
                details={"field": field, "unknown": unknown},
            )
        return [lookup[name] for name in names]

    @classmethod
    def from_table(cls, table: pa.Table) -> Timelines:
        """Build timelines from touchpoint rows in any order.

        ``table`` has columns ``customer``, ``event_id``, ``event_type``, ``channel``,
        ``source`` and ``ts`` (an Arrow timestamp or integer milliseconds).
        """
        missing = {"customer", "event_id", "event_type", "channel", "source", "ts"} - set(
            table.column_names
        )
        if missing:
            raise InvalidInput(f"timeline rows lack columns {sorted(missing)}")
        ts = _milliseconds(table.column("ts"))
        table = table.set_column(table.column_names.index("ts"), "ts", ts)
        order = pc.sort_indices(
            table,
            sort_keys=[("customer", "ascending"), ("ts", "ascending"), ("event_id", "ascending")],
        )
        return cls.from_sorted(table.take(order))

    @classmethod
    def from_sorted(cls, table: pa.Table) -> Timelines:
        """Build timelines from rows already sorted by (customer, ts, event_id)."""
        customer_codes, customers = _encode(table.column("customer"), sort=False)
        starts = np.flatnonzero(np.diff(customer_codes)) + 1
        offsets = np.concatenate([[0], starts, [len(customer_codes)]]).astype(np.int64)
        if len(customer_codes) == 0:
            offsets = np.zeros(1, np.int64)
        event, event_types = _encode(table.column("event_type"))
        channel, channels = _encode(table.column("channel"))
        source, sources = _encode(table.column("source"))
        ts = _milliseconds(table.column("ts"))
        return cls(
            customers=pa.array(customers, pa.string()),
            offsets=offsets,
            event=_narrow(event, len(event_types)),
            channel=_narrow(channel, len(channels)),
            source=_narrow(source, len(sources)),
            ts=np.asarray(ts.to_numpy(), np.int64),
            event_types=tuple(event_types),
            channels=tuple(channels),
            sources=tuple(sources),
            event_ids=_one_chunk(table.column("event_id"))
            if "event_id" in table.column_names
            else None,
        )

    def rows(self, customers: npt.NDArray[np.bool_]) -> pa.Table:
        """The touchpoints of some customers (a flag each) as rows ``from_table`` reads."""
        lengths = np.diff(self.offsets)
        picked = np.flatnonzero(np.repeat(customers, lengths))
        owners = np.repeat(np.arange(self.customer_count), lengths)[picked]
        assert self.event_ids is not None
        return pa.table(
            {
                "customer": self.customers.take(owners),
                "event_id": self.event_ids.take(picked),
                "event_type": pa.array(self.event_types, pa.string()).take(self.event[picked]),
                "channel": pa.array(self.channels, pa.string()).take(self.channel[picked]),
                "source": pa.array(self.sources, pa.string()).take(self.source[picked]),
                "ts": pa.array(np.asarray(self.ts)[picked], pa.int64()),
            }
        )

    def save(self, folder: Path, signature: str, state: LakeState | None = None) -> None:
        """Write to ``folder`` whole or not at all (a new folder renamed into place)."""
        staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ARRAYS:
            np.save(staging / f"{name}.npy", getattr(self, name))
        _write_strings(staging / "customers.arrow", "customer", self.customers)
        if self.event_ids is not None:
            _write_strings(staging / "event_ids.arrow", "event_id", self.event_ids)
        meta = {
            "format": FORMAT_VERSION,
            "signature": signature,
            "events": len(self),
            "customers": self.customer_count,
            "event_types": self.event_types,
            "channels": self.channels,
            "sources": self.sources,
            "files": {} if state is None else state.files,
            "corrections": None if state is None else state.corrections,
        }
        (staging / "meta.json").write_text(json.dumps(meta))
        (staging / "merges.json").write_text(
            json.dumps({} if state is None else dict(state.merges))
        )
        retired = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        if folder.exists():
            os.replace(folder, retired)
        os.replace(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)

    @classmethod
    def open(cls, folder: Path) -> Timelines:
        """Map a saved copy into memory (pages are read as a query touches them)."""
        meta = read_meta(folder)
        if meta is None:
            raise InvalidInput(f"{folder} holds no timelines of format {FORMAT_VERSION}")
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        # One chunk each, mapped: pages are read only when a query needs the ids.
        customers = _read_strings(folder / "customers.arrow")
        event_ids = None
        if (folder / "event_ids.arrow").exists():
            events = _read_strings(folder / "event_ids.arrow")
            event_ids = _one_chunk(events.column("event_id"))
        return cls(
            event_ids=event_ids,
            customers=_one_chunk(customers.column("customer")),
            offsets=arrays["offsets"],
            event=arrays["event"],
            channel=arrays["channel"],
            source=arrays["source"],
            ts=arrays["ts"],
            event_types=tuple(meta["event_types"]),
            channels=tuple(meta["channels"]),
            sources=tuple(meta["sources"]),
        )


def read_meta(folder: Path) -> dict[str, Any] | None:
    """The description of a saved copy, or None if there is none of this format."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        return None
    return meta


@dataclass(frozen=True)
class LakeState:
    """What a copy of the timelines was built from: the lake's files and the merges."""

    files: dict[str, tuple[int, int]]
    """Every lake file (relative path) with its size and modification time."""
    corrections: int | None
    """When a touchpoint was last moved to another customer (the marker's time)."""
    merges: Mapping[str, str]
    merges_digest: str

    @property
    def signature(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for name in sorted(self.files):
            size, modified = self.files[name]
            digest.update(f"{name}\0{size}\0{modified}\n".encode())
        digest.update(f"corrections {self.corrections} {self.merges_digest}".encode())
        return digest.hexdigest()


def _change_stamps(lake: Lake) -> tuple[tuple[str, int], ...]:
    """What tells whether the lake's files changed: its change marker (its inode and
    modification time), or where it has none (a lake written before there was one)
    the modification times of the touchpoint folder and its month folders."""
    try:
        marker = os.stat(lake.change_marker)
    except FileNotFoundError:
        return _folder_stamps(lake.touchpoint_root)
    return ((f"marker {marker.st_ino}", marker.st_mtime_ns),)


def _folder_stamps(root: Path) -> tuple[tuple[str, int], ...]:
    """The lake's touchpoint folder and its month folders, each with its modification time."""
    try:
        stamps = [(str(root), os.stat(root).st_mtime_ns)]
        with os.scandir(root) as entries:
            months = sorted(
                (entry.path, entry.stat().st_mtime_ns)
                for entry in entries
                if entry.name.startswith("month=") and entry.is_dir()
            )
    except FileNotFoundError:
        return ()
    return (*stamps, *months)


def merges_digest(merges: Mapping[str, str]) -> str:
    """A digest of a merge map (sorted, so equal maps digest equally)."""
    digest = hashlib.blake2b(digest_size=16)
    for loser in sorted(merges):
        digest.update(f"{loser}>{merges[loser]}\n".encode())
    return digest.hexdigest()


class TimelineIndex:
    """The sorted copy of the lake's timelines, brought up to date on ``load``.

    ``merge_map`` gives the identity merge map (loser -> survivor) now; it is asked
    on every ``load`` so merges since the last build are seen, and must return a new
    mapping when the merges change (see ``state``).

    When the lake has only gained files since the copy was built (ingest appends
    parts) and no touchpoint was moved by a correction, only the customers those
    files touch, and those merged since, are read again from the lake and spliced
    in; anything else rebuilds the copy. ``MAX_SPLICED`` bounds the splice: past
    that share of customers a rebuild is cheaper.
    """

    MAX_SPLICED: Final = 0.2

    def __init__(self, lake: Lake, merge_map: Callable[[], Mapping[str, str]]) -> None:
        self.lake = lake
        self.merge_map = merge_map
        self.folder = lake.root / FOLDER
        self._loaded: tuple[str, Timelines] | None = None
        self._lock = threading.Lock()  # one rebuild at a time when the service is asked twice
        self._merges: tuple[Mapping[str, str] | None, str] = (None, "")
        self._folders: tuple[tuple[tuple[str, int], ...], dict[str, tuple[int, int]]] = ((), {})
        # The last signature, under what it was computed from (the files listing is
        # the same object while the folders are unchanged): digesting 500 files' stamps
        # on every query was a tenth of a cached widget answer.
        self._signed: tuple[object, int | None, str, str] | None = None

    def state(self) -> LakeState:
        """The lake's files and merges as they are now.

        Cheap when nothing changed, as every query asks: the lake replaces its change
        marker after every write, so a marker with the same inode and modification
        time (over a second old, past the clock's granularity) means the same files
        as last time (a lake without a marker is judged by its folders' modification
        times, as renames into them change those); and a merge map is digested again only when
        ``merge_map`` returns a different object (``MergeMapFile`` returns a new one
        exactly when the identity index changed).
        """
        try:
            corrections: int | None = os.stat(self.lake.corrections).st_mtime_ns
        except FileNotFoundError:
            corrections = None
        merges = self.merge_map()
        if merges is not self._merges[0]:
            self._merges = (merges, merges_digest(merges))
        return LakeState(self._files(), corrections, merges, self._merges[1])

    def _files(self) -> dict[str, tuple[int, int]]:
        stamps = _change_stamps(self.lake)
        now = time.time_ns()
        settled = all(now - stamp > 1_000_000_000 for _, stamp in stamps)
        if stamps == self._folders[0] and settled:
            return self._folders[1]
        files = {}
        for path in self.lake.files():
            stat = path.stat()
            files[str(path.relative_to(self.lake.root))] = (stat.st_size, stat.st_mtime_ns)
        self._folders = (stamps, files)
        return files

    def current(self) -> Timelines | None:
        """The loaded timelines if they are the lake's as it is now, without waiting: None
        when they are stale, not loaded yet, or another thread is loading them.

        For callers on an event loop, which must not block on a rebuild (``load`` then,
        in a thread).
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._loaded is None:
                return None
            signature = self._signature(self.state())
            return self._loaded[1] if self._loaded[0] == signature else None
        finally:
            self._lock.release()

    def _signature(self, state: LakeState) -> str:
        signed = self._signed
        if (
            signed is not None
            and signed[0] is state.files
            and signed[1] == state.corrections
            and signed[2] == state.merges_digest
        ):
            return signed[3]
        signature = state.signature
        self._signed = (state.files, state.corrections, state.merges_digest, signature)
        return signature

    def load(self) -> Timelines:
        """The timelines as the lake has them now (brought up to date first if stale)."""
        with self._lock:
            state = self.state()
            signature = self._signature(state)
            if self._loaded is not None and self._loaded[0] == signature:
                return self._loaded[1]
            meta = read_meta(self.folder)
            if meta is None or meta.get("signature") != signature:
                updated = self._spliced(meta, state) if meta is not None else None
                timelines = updated if updated is not None else self.build(state.merges)
                timelines.save(self.folder, signature, state)
            timelines = Timelines.open(self.folder)
            self._loaded = (signature, timelines)
            return timelines

    def build(self, merges: Mapping[str, str]) -> Timelines:
        """Sort the whole lake into timelines (DuckDB does the sort, out of core if need be)."""
        return self._read(merges, None)

    def _read(self, merges: Mapping[str, str], customers: list[str] | None) -> Timelines:
        """Timelines of the whole lake, or of some customers (as merged now)."""
        connection = _connect()
        try:
            relation = self.lake.relation(connection, merges)
            if relation is None:
                return Timelines.from_sorted(ROW_SCHEMA.empty_table())
            connection.register("_touchpoints", relation)
            where = ""
            if customers is not None:
                connection.register("_wanted", pa.table({"customer": pa.array(customers)}))
                where = "WHERE customer IN (SELECT customer FROM _wanted) "
            table = connection.sql(
                f"SELECT {_ROW_COLUMNS} FROM _touchpoints {where}ORDER BY customer, ts, event_id"
            ).to_arrow_table()
        finally:
            connection.close()
        return Timelines.from_sorted(table)

    def _spliced(self, meta: dict[str, Any], state: LakeState) -> Timelines | None:
        """The saved copy with the customers changed since spliced in; None: rebuild.

        The changed customers' timelines are their saved touchpoints (under the
        survivor's id where they were merged since) plus the touchpoints of the
        lake files added since: nothing else of the lake is read.
        """
        before = _saved_state(self.folder, meta)
        if before is None or before.corrections != state.corrections:
            return None
        if any(state.files.get(name) != stat for name, stat in before.files.items()):
            return None
        if any(loser not in state.merges for loser in before.merges):
            return None
        old = Timelines.open(self.folder)
        if old.event_ids is None:
            return None
        added = _added_rows(
            [self.lake.root / name for name in state.files if name not in before.files],
            state.merges,
        )
        affected: set[str] = {str(c) for c in added.column("customer").to_pylist()}
        for loser, survivor in state.merges.items():
            if before.merges.get(loser) != survivor:
                affected.update({loser, survivor, before.merges.get(loser, loser)})
        if len(affected) > max(1_000, self.MAX_SPLICED * old.customer_count):
            return None
        replaced = pa.array(sorted(affected), pa.string())
        flags = np.asarray(
            pc.is_in(old.customers, value_set=replaced).to_numpy(zero_copy_only=False), bool
        )
        saved = _merged(old.rows(flags).cast(ROW_SCHEMA), state.merges)
        fresh = Timelines.from_table(pa.concat_tables([saved, added]))
        return splice(old, fresh, replaced)


def _added_rows(files: list[Path], merges: Mapping[str, str]) -> pa.Table:
    """The touchpoints of ``files`` as timeline rows, customers as merged now."""
    if not files:
        return ROW_SCHEMA.empty_table()
    connection = _connect()
    try:
        rows = connection.read_parquet([str(f) for f in files]).select(_ROW_COLUMNS)
        table = rows.to_arrow_table().cast(ROW_SCHEMA)
    finally:
        connection.close()
    return _merged(table, merges)


def _merged(rows: pa.Table, merges: Mapping[str, str]) -> pa.Table:
    """Timeline rows with each merged customer replaced by its survivor."""
    if not merges:
        return rows
    mapping = pa.table({"loser": list(merges), "survivor": list(merges.values())})
    found = pc.index_in(rows.column("customer"), value_set=mapping.column("loser"))
    survivors = pc.coalesce(mapping.column("survivor").take(found), rows["customer"])
    return rows.set_column(0, "customer", survivors)


def _connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")  # it writes to stdout (--json)
    return connection


def _saved_state(folder: Path, meta: dict[str, Any]) -> LakeState | None:
    try:
        merges = json.loads((folder / "merges.json").read_text())
    except (OSError, ValueError):
        return None
    files = {name: (int(size), int(modified)) for name, (size, modified) in meta["files"].items()}
    return LakeState(files, meta.get("corrections"), merges, merges_digest(merges))


def splice(old: Timelines, fresh: Timelines, replaced: pa.Array[Any]) -> Timelines:
    """``old`` without the ``replaced`` customers, then ``fresh`` (their new timelines).

    Codes are renumbered over the union of both vocabularies, still in name order.
    """
    keep = np.asarray(
        pc.invert(pc.is_in(old.customers, value_set=replaced)).to_numpy(zero_copy_only=False),
        bool,
    )
    kept = np.repeat(keep, np.diff(old.offsets))
    columns = {}
    vocabularies = {}
    for column in ("event", "channel", "source"):
        names = sorted(set(old.vocabulary(column)) | set(fresh.vocabulary(column)))
        position = {name: code for code, name in enumerate(names)}
        parts = []
        for timelines, mask in ((old, kept), (fresh, None)):
            codes = np.asarray(getattr(timelines, column))
            codes = codes if mask is None else codes[mask]
            if timelines.vocabulary(column) != tuple(names):  # else the codes stand as they are
                recode = np.array([position[n] for n in timelines.vocabulary(column)], np.int64)
                codes = recode[codes]
            parts.append(codes)
        columns[column] = _narrow(np.concatenate(parts), len(names))
        vocabularies[column] = tuple(names)
    lengths = np.concatenate([np.diff(old.offsets)[keep], np.diff(fresh.offsets)])
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    event_ids = None
    if old.event_ids is not None and fresh.event_ids is not None:
        event_ids = pa.concat_arrays([old.event_ids.filter(pa.array(kept)), fresh.event_ids])
    return Timelines(
        event_ids=event_ids,
        customers=pa.concat_arrays([old.customers.filter(pa.array(keep)), fresh.customers]),
        offsets=offsets,
        event=columns["event"],
        channel=columns["channel"],
        source=columns["source"],
        ts=np.concatenate([np.asarray(old.ts)[kept], np.asarray(fresh.ts)]),
        event_types=vocabularies["event"],
        channels=vocabularies["channel"],
        sources=vocabularies["source"],
    )


ROW_SCHEMA: Final = pa.schema(
    [pa.field(name, pa.string()) for name in ("customer", "event_id", "event_type")]
    + [pa.field("channel", pa.string()), pa.field("source", pa.string())]
    + [pa.field("ts", pa.int64())]
)
"""Timeline rows as ``Timelines.from_table`` reads them (``ts`` in epoch milliseconds)."""
_ROW_COLUMNS: Final = "customer, event_id, event_type, channel, source, epoch_ms(ts) AS ts"


def _write_strings(path: Path, name: str, values: pa.Array[Any]) -> None:
    """One string column as an Arrow IPC file, one record batch (mapped whole on read).

    Arrow IPC directly rather than ``pyarrow.feather``, whose import loads pandas.
    """
    table = pa.table({name: values})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(len(values), 1))


def _read_strings(path: Path) -> pa.Table:
    """A file of ``_write_strings``, memory-mapped: pages are read as they are used."""
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def _one_chunk(column: pa.ChunkedArray[Any]) -> pa.Array[Any]:
    if column.num_chunks == 1:
        return cast("pa.Array[Any]", column.chunk(0))
    return pa.concat_arrays([pa.array([], column.type), *column.chunks])


def _encode(column: pa.ChunkedArray[Any], sort: bool = True) -> tuple[npt.NDArray[Any], list[str]]:
    """Dictionary codes of a string column and its names, numbered in name order."""
    if column.null_count:
        raise InvalidInput(f"timeline column {column.type} holds nulls")
    encoded: Any = pc.dictionary_encode(column).combine_chunks()
    dictionary = encoded.dictionary
    names = cast(list[str], dictionary.to_pylist())
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
    if not sort or not names:
        return codes, names
    order = np.argsort(np.array(names, dtype=object), kind="stable")
    recode = np.empty(len(order), np.int64)
    recode[order] = np.arange(len(order))
    return recode[codes], [names[i] for i in order]


def _narrow(codes: npt.NDArray[Any], vocabulary: int) -> Codes:
    if vocabulary <= 255:
        return codes.astype(np.uint8)
    if vocabulary <= 65_535:
        return codes.astype(np.uint16)
    raise InvalidInput(f"{vocabulary} distinct names; at most 65,535 are supported")


def _milliseconds(column: pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    """A timestamp or integer column as int64 milliseconds since the epoch."""
    if pa.types.is_timestamp(column.type):
        milliseconds = pc.cast(column, pa.timestamp("ms", column.type.tz), safe=False)
        return cast("pa.ChunkedArray[Any]", milliseconds.cast(pa.int64()))
    if pa.types.is_integer(column.type):
        return column.cast(pa.int64())
    raise InvalidInput(f"ts must be a timestamp or integer milliseconds, not {column.type}")
