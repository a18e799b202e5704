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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

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
    Customers are sorted by id. ``ts`` is milliseconds since the epoch (UTC).
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
        )

    def save(self, folder: Path, signature: str) -> None:
        """Write to ``folder`` whole or not at all (a new folder renamed into place)."""
        staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ARRAYS:
            np.save(staging / f"{name}.npy", getattr(self, name))
        feather.write_feather(
            pa.table({"customer": self.customers}),
            staging / "customers.arrow",
            "uncompressed",
            chunksize=max(len(self.customers), 1),
        )
        meta = {
            "format": FORMAT_VERSION,
            "signature": signature,
            "events": len(self),
            "customers": self.customer_count,
            "event_types": self.event_types,
            "channels": self.channels,
            "sources": self.sources,
        }
        (staging / "meta.json").write_text(json.dumps(meta))
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
        customers = feather.read_table(folder / "customers.arrow", memory_map=True)
        column = customers.column("customer")
        # One chunk, mapped: its pages are read only when a query needs the ids.
        ids = (
            cast("pa.Array[Any]", column.chunk(0))
            if column.num_chunks == 1
            else pa.concat_arrays(column.chunks)
        )
        return cls(
            customers=ids,
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


class TimelineIndex:
    """The sorted copy of the lake's timelines, rebuilt when the lake has changed.

    ``merge_map`` gives the identity merge map (loser -> survivor) now; it is read
    on every ``load`` so merges since the last build are seen.
    """

    def __init__(self, lake: Lake, merge_map: Callable[[], Mapping[str, str]]) -> None:
        self.lake = lake
        self.merge_map = merge_map
        self.folder = lake.root / FOLDER
        self._loaded: tuple[str, Timelines] | None = None
        self._lock = threading.Lock()  # one rebuild at a time when the service is asked twice

    def signature(self, merges: Mapping[str, str]) -> str:
        """What the copy depends on: every lake file (name, size, time) and the merges."""
        digest = hashlib.blake2b(digest_size=16)
        for path in self.lake.files():
            stat = path.stat()
            digest.update(f"{path.relative_to(self.lake.root)}\0{stat.st_size}\0".encode())
            digest.update(f"{stat.st_mtime_ns}\n".encode())
        for loser in sorted(merges):
            digest.update(f"{loser}>{merges[loser]}\n".encode())
        return digest.hexdigest()

    def load(self) -> Timelines:
        """The timelines as the lake has them now (rebuilt first if the copy is stale)."""
        with self._lock:
            merges = self.merge_map()
            signature = self.signature(merges)
            if self._loaded is not None and self._loaded[0] == signature:
                return self._loaded[1]
            meta = read_meta(self.folder)
            if meta is None or meta.get("signature") != signature:
                self.build(merges).save(self.folder, signature)
            timelines = Timelines.open(self.folder)
            self._loaded = (signature, timelines)
            return timelines

    def build(self, merges: Mapping[str, str]) -> Timelines:
        """Sort the whole lake into timelines (DuckDB does the sort, out of core if need be)."""
        connection = duckdb.connect()
        try:
            relation = self.lake.relation(connection, merges)
            if relation is None:
                return Timelines.from_sorted(_EMPTY_ROWS.empty_table())
            connection.register("_touchpoints", relation)
            table = connection.sql(
                "SELECT customer, event_type, channel, source, epoch_ms(ts) AS ts "
                "FROM _touchpoints ORDER BY customer, ts, event_id"
            ).to_arrow_table()
        finally:
            connection.close()
        return Timelines.from_sorted(table)


_EMPTY_ROWS: Final = pa.schema(
    [pa.field(name, pa.string()) for name in ("customer", "event_id", "event_type", "channel")]
    + [pa.field("source", pa.string()), pa.field("ts", pa.int64())]
)


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


def _narrow(codes: npt.NDArray[np.int64], vocabulary: int) -> Codes:
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
