"""Rolling incident profiles: probe events in, incidents out, a whole batch at a time.

``ProfileEvaluator(table)`` holds, per subscriber, the probe events its decision
table's windows still need, and turns each batch of probe events (``PROBE_SCHEMA``)
into the incidents it raises. The work is done on whole columns: a batch is sorted
once, and the held events are kept sorted in a few runs with running sums, so a
window's sum is a difference of two running sums found by binary search, whatever
the number of events held. Python runs once per new subscriber (once per distinct
subscriber of a batch for those not written in E.164) and once per incident, never
once per event.

Exact semantics (``tests/unit/engage/test_profiles.py`` checks them against a
plain-Python evaluator written from this text):

* **Order.** A subscriber's events are processed in ``(ts, event_id)`` order
  (``event_id`` compared as text); a batch is put in that order before it is applied,
  and batches are applied in the order given.
* **Late events.** An event whose ``(ts, event_id)`` is not after the subscriber's
  latest event of an *earlier* batch is late. A late event joins the held events (so
  the windows of later events include it) but is never evaluated: it raises no
  incident in the past and changes no rule's state. An event equal in
  ``(subscriber, ts, event_id)`` to one held or earlier in the batch is a duplicate
  and is dropped.
* **Window.** The window of a rule at an evaluated event at time ``t`` holds the
  subscriber's events with ``t - window < ts <= t`` that come no later than it in
  processing order and measured the rule's metric (not null). Its weight ``W`` and
  weighted sum ``M`` are added in fixed point, ``round(weight * 10**6)`` and
  ``round(weight * metric * 10**6)`` (to even), so sums are exact whatever the
  batches (below 2**53 micro-units). The profile value is ``M / W``.
* **Active.** A rule is active when ``W >= round(min_weight * 10**6)`` and
  ``M > threshold * W``: the value is above the threshold with enough evidence. An
  empty window is never active.
* **Crossings.** Each evaluated event is observed twice: *before* (its window
  without it) and *after* (with it). A rule is armed for a new subscriber and after
  any inactive observation; an after-observation that is active while the rule is
  armed raises an incident and disarms it. So an incident fires at an event when the
  rule is active after it and either was inactive after the subscriber's previous
  evaluated event or is inactive just before it (events that aged out of the window
  in between brought it down). Staying above the threshold raises nothing more; the
  rule re-arms once the value is back at or below it, or the evidence below
  ``min_weight``.
* **Incidents** carry the value ``M / W``, the event's time and id, the cells of the
  window whose events add up to a positive ``weight * metric`` (the largest sum
  first, then by cell id) and the ids of the last five events of the window, the
  newest first. A batch's incidents come in ``(ts, subscriber, event_id)`` order,
  and those of one event in decision-table order.
* **Memory.** A subscriber's held events are those with ``ts > latest - longest
  window`` (older ones are in no future window; they are dropped when their run is
  next merged, and never saved). A subscriber whose latest event is more than
  ``forget_after`` (by default twice the longest window) older than the newest event
  time seen is forgotten at the end of a batch; an event of theirs after that starts
  afresh (armed, empty windows). That is exact for subscribers whose events lag the
  stream by less than the longest window, which a time-ordered stream always
  satisfies.

State survives restarts: ``save(connection)`` writes what changed since the last save
into the engagement database (``profile_*`` tables) inside the caller's transaction,
and ``load(connection)`` reads it back; a loaded evaluator continues the stream
exactly as an uninterrupted one would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from engage.model import METRICS, PROBE_SCHEMA, Incident
from engage.rules import DecisionTable, Rule, default_decision_table
from graph.errors import InvalidInput
from ingest._columns import text_buffers, valid

__all__ = [
    "INCIDENT_SCHEMA",
    "MAX_WEIGHT",
    "PROBE_IDS_PER_INCIDENT",
    "SCALE",
    "ProfileCounters",
    "ProfileEvaluator",
    "STATE_SCHEMA",
    "SavedProfiles",
    "ensure_schema",
    "incidents_from_table",
    "read_saved_profiles",
]

SCALE: Final = 1_000_000
"""Fixed-point units per unit of weight (and of weight x metric) in window sums."""
MAX_WEIGHT: Final = 1_000_000.0
"""The largest weight one probe event may carry (calls or sessions behind it)."""
PROBE_IDS_PER_INCIDENT: Final = 5
_MS_PER_SECOND: Final = 1_000
_NEVER: Final = np.iinfo(np.int64).min
_KEY_LIMIT: Final = 1 << 62
"""Sort keys (subscriber code x time span) stay below this, far from int64 overflow."""

_INCIDENT_FIELDS: Final[list[pa.Field[Any]]] = [
    pa.field("subscriber", pa.string(), nullable=False),
    pa.field("rule", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64(), nullable=False),
    pa.field("threshold", pa.float64(), nullable=False),
    pa.field("window_seconds", pa.int64(), nullable=False),
    pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("cells", pa.list_(pa.string()), nullable=False),
    pa.field("probe_ids", pa.list_(pa.string()), nullable=False),
]
INCIDENT_SCHEMA: Final = pa.schema(_INCIDENT_FIELDS)
"""Incidents as one Arrow table (``ProfileEvaluator.evaluate_table``); ``event_id`` is
the probe event that made the profile cross."""

Int64s: TypeAlias = "NDArray[np.int64]"
Floats: TypeAlias = "NDArray[np.float64]"
Mask: TypeAlias = "NDArray[np.bool_]"
TextArray: TypeAlias = "pa.Array[Any]"

_SCHEMA_SQL: Final = (
    """CREATE TABLE IF NOT EXISTS profile_state_chunk (
        chunk INTEGER PRIMARY KEY,
        subscribers INTEGER NOT NULL,
        data BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS profile_event_chunk (
        chunk INTEGER PRIMARY KEY,
        save INTEGER NOT NULL,
        latest_ts INTEGER NOT NULL,
        events INTEGER NOT NULL,
        data BLOB NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS profile_event_chunk_latest
        ON profile_event_chunk (latest_ts)""",
    """CREATE TABLE IF NOT EXISTS profile_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
)
_STATE_FIELDS: Final[list[pa.Field[Any]]] = [
    pa.field("subscriber", pa.string(), nullable=False),
    pa.field("last_ts", pa.timestamp("ms", tz="UTC")),
    pa.field("last_event_id", pa.string()),
    pa.field("active_rules", pa.list_(pa.string())),
    pa.field("events_since", pa.int64()),
]
STATE_SCHEMA: Final = pa.schema(_STATE_FIELDS)
"""A subscriber's saved state: its latest evaluated event, the rules active after it,
and the first save whose events are its own (older ones belong to a subscriber of
the same name that was forgotten). ``last_ts`` null marks a forgotten subscriber."""
_HIGH_WATER: Final = "high_water_ms"
_NEXT_SAVE: Final = "next_save"
_COMPACT_SLACK: Final = 10_000
"""Saved rows beyond twice the live ones before the saved chunks are rewritten as one."""


def ensure_schema(connection: sqlite3.Connection) -> None:
    """Create the profile tables if they are missing (idempotent; never commits).

    ``profile_state_chunk`` and ``profile_event_chunk`` hold one row per save: an
    Arrow IPC stream of the subscribers changed (``STATE_SCHEMA``) and of the probe
    events held since the save before (``PROBE_SCHEMA``). A later chunk's row for a
    subscriber replaces an earlier one's; event chunks older than every window are
    deleted, and the chunks are rewritten as one when most of their rows are stale.
    """
    for statement in _SCHEMA_SQL:
        connection.execute(statement)


@dataclass(frozen=True)
class SavedProfiles:
    """What ``load`` would read from an engagement database (for inspection)."""

    subscribers: pa.Table
    """``STATE_SCHEMA``: one row per subscriber with state."""
    events: pa.Table
    """``PROBE_SCHEMA``: the saved events of those subscribers."""


def read_saved_profiles(connection: sqlite3.Connection) -> SavedProfiles:
    """The profile state saved in ``connection``: the latest row of each subscriber
    that is not forgotten, and the saved events that are theirs (``load`` keeps those
    its windows still need)."""
    ensure_schema(connection)
    states = _chunks(connection, "SELECT 0, data FROM profile_state_chunk ORDER BY chunk")
    if states is None:
        states = STATE_SCHEMA.empty_table()
    else:
        states = states.cast(STATE_SCHEMA.append(pa.field("save", pa.int64())))
        numbered = states.append_column("row", pa.array(np.arange(states.num_rows)))
        latest = numbered.group_by("subscriber", use_threads=False).aggregate([("row", "max")])
        states = states.take(latest.column("row_max").combine_chunks().sort())
        states = states.filter(pc.is_valid(states.column("last_ts"))).drop_columns(["save"])
    events = _chunks(connection, "SELECT save, data FROM profile_event_chunk ORDER BY chunk")
    if events is None:
        return SavedProfiles(subscribers=states, events=PROBE_SCHEMA.empty_table())
    owner: Any = pc.index_in(events.column("subscriber"), value_set=states.column("subscriber"))
    since: Any = states.column("events_since").take(owner)
    theirs: Any = pc.greater_equal(events.column("save"), since).fill_null(False)
    return SavedProfiles(
        subscribers=states, events=events.filter(theirs).select(PROBE_SCHEMA.names)
    )


def _chunks(connection: sqlite3.Connection, query: str) -> pa.Table | None:
    """The Arrow tables of a chunk query's rows (``save``, ``data``), with ``save``."""
    tables = []
    for save, data in connection.execute(query):
        table = _from_ipc(data)
        tables.append(table.append_column("save", pa.array(np.full(table.num_rows, save))))
    return pa.concat_tables(tables) if tables else None


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    # zstd makes a chunk a third of the size for about the time writing it saves.
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


@dataclass(frozen=True)
class ProfileCounters:
    """What an evaluator has seen and holds (for progress lines and metrics)."""

    events: int
    """Probe events applied since this evaluator started (duplicates not counted)."""
    late_events: int
    duplicate_events: int
    incidents: int
    forgotten_subscribers: int
    subscribers: int
    """Subscribers with state now."""
    held_events: int
    """Probe events stored for windows now (some may have aged out, awaiting a merge)."""


# -- columns of events ---------------------------------------------------------------


@dataclass
class _Events:
    """Probe events as columns: a batch, or a run of held events."""

    code: Int64s
    """The subscriber's code in ``_Subscribers``."""
    ts: Int64s
    """Milliseconds since 1970."""
    event_id: TextArray
    cell: Int64s
    """The cell's code in ``_Names``."""
    weight: Floats
    metrics: Floats
    """One row per metric of ``METRICS`` (a column per event); NaN where not measured."""
    unsaved: Mask
    fixed: Int64s | None = None
    """What each event adds to window sums, once worked out (``fixed_values``)."""

    def __len__(self) -> int:
        return len(self.code)

    def fixed_values(self) -> Int64s:
        """Per event, its weight and weight x metric for each metric in fixed point
        (``SCALE``): column ``2 * m`` and ``2 * m + 1`` for metric ``m`` of ``METRICS``,
        both 0 where the metric was not measured."""
        if self.fixed is None:
            measured = ~np.isnan(self.metrics)
            fixed = np.zeros((len(self), 2 * len(METRICS)), np.int64)
            weights = np.rint(self.weight * SCALE)
            products = self.weight * self.metrics
            products *= SCALE
            np.rint(products, out=products)
            for metric in range(len(METRICS)):
                fixed[:, 2 * metric] = np.where(measured[metric], weights, 0)
                fixed[:, 2 * metric + 1] = np.where(measured[metric], products[metric], 0)
            self.fixed = fixed
        return self.fixed

    @classmethod
    def empty(cls) -> _Events:
        """No events."""
        return cls(
            code=np.zeros(0, np.int64),
            ts=np.zeros(0, np.int64),
            event_id=pa.array([], pa.string()),
            cell=np.zeros(0, np.int64),
            weight=np.zeros(0, np.float64),
            metrics=np.zeros((len(METRICS), 0), np.float64),
            unsaved=np.zeros(0, bool),
        )

    def subset(self, rows: Mask | Int64s) -> _Events:
        """Some of the events (a mask, or positions in the order wanted)."""
        positions = np.flatnonzero(rows) if rows.dtype == np.bool_ else rows
        if len(positions) == len(self) and rows.dtype == np.bool_:
            return self
        return _Events(
            code=self.code[positions],
            ts=self.ts[positions],
            event_id=self.event_id.take(pa.array(positions, pa.int64())),
            cell=self.cell[positions],
            weight=self.weight[positions],
            metrics=self.metrics[:, positions],
            unsaved=self.unsaved[positions],
            fixed=None if self.fixed is None else self.fixed[positions],
        )

    @staticmethod
    def joined(parts: Sequence[_Events]) -> _Events:
        """The events of ``parts``, one after the other."""
        parts = [part for part in parts if len(part)]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return _Events.empty()
        return _Events(
            code=np.concatenate([part.code for part in parts]),
            ts=np.concatenate([part.ts for part in parts]),
            event_id=pa.concat_arrays([part.event_id for part in parts]),
            cell=np.concatenate([part.cell for part in parts]),
            weight=np.concatenate([part.weight for part in parts]),
            metrics=np.concatenate([part.metrics for part in parts], axis=1),
            unsaved=np.concatenate([part.unsaved for part in parts]),
            fixed=np.concatenate([part.fixed_values() for part in parts]),
        )


@dataclass(frozen=True)
class _Keys:
    """Integer keys that sort events like (subscriber code, ts).

    ``code * span + (ts - base + 1)`` where that fits, else ``code * span + rank``
    with ``rank`` the position of ``ts`` among the distinct ``times``; either way
    the events of one code with ``ts > x`` are those with a key of at least
    ``after(code, x)``.
    """

    base: int
    span: int
    times: Int64s | None

    @classmethod
    def of(cls, code: Int64s, ts: Int64s) -> _Keys:
        """A key scheme for events with these codes and times."""
        if len(ts) == 0:
            return cls(0, 1, None)
        base = int(ts.min())
        span = int(ts.max()) - base + 3
        if (int(code.max()) + 1) * span < _KEY_LIMIT:
            return cls(base, span, None)
        times = np.unique(ts)
        return cls(base, len(times) + 1, times)

    def keys(self, code: Int64s, ts: Int64s) -> Int64s:
        """The key of each event."""
        if self.times is None:
            return code * self.span + (ts - self.base + 1)
        return code * self.span + np.searchsorted(self.times, ts).astype(np.int64)

    def after(self, code: Int64s, time: Int64s) -> Int64s:
        """The least key of an event of ``code`` with ``ts > time``."""
        if self.times is None:
            offset = np.clip(time - self.base + 1, 0, self.span - 2) + 1
        else:
            offset = np.searchsorted(self.times, time, side="right").astype(np.int64)
        return code * self.span + offset

    def end(self, code: Int64s) -> Int64s:
        """The least key of an event of a later code."""
        return (code + 1) * self.span


class _Run:
    """Events in processing order, with keys to find a subscriber's window by binary
    search and running sums to add it up."""

    def __init__(self, events: _Events, keys: _Keys, sorted_keys: Int64s) -> None:
        self.events = events
        self._scheme = keys
        self._keys = sorted_keys
        self._running: Int64s | None = None

    @classmethod
    def of(cls, events: _Events) -> tuple[_Run, int]:
        """``events`` put in processing order without duplicates; and how many were dropped."""
        keys = _Keys.of(events.code, events.ts)
        order = _processing_order(keys.keys(events.code, events.ts), events.event_id.take)
        order, duplicates = _without_duplicates(events, order)
        ordered = events.subset(order)
        return cls(ordered, keys, keys.keys(ordered.code, ordered.ts)), duplicates

    @classmethod
    def merged(cls, runs: Sequence[_Run], stale: Callable[[Int64s, Int64s], Mask]) -> _Run:
        """The events of ``runs`` (which hold no event twice) in one run, without the
        stale ones."""
        events = _Events.joined([run.events for run in runs])
        kept = np.flatnonzero(~stale(events.code, events.ts))
        if len(kept) == 0:
            return cls(_Events.empty(), _Keys.of(kept, kept), kept)
        code, ts = events.code[kept], events.ts[kept]
        keys = _Keys.of(code, ts)
        sort_keys = keys.keys(code, ts)
        order = _processing_order(
            sort_keys, lambda rows: events.event_id.take(pa.array(kept[rows], pa.int64()))
        )
        return cls(events.subset(kept[order]), keys, sort_keys[order])

    def __len__(self) -> int:
        return len(self.events)

    def without(self, rows: Mask) -> _Run:
        """The run without ``rows`` (still in order)."""
        return _Run(self.events.subset(~rows), self._scheme, self._keys[~rows])

    def first_after(self, code: Int64s, time: Int64s) -> Int64s:
        """Per query, the first row of ``code`` with ``ts > time`` (or where it would be)."""
        found: Int64s = np.searchsorted(self._keys, self._scheme.after(code, time))
        return found

    def end(self, code: Int64s) -> Int64s:
        """Per query, the row after the last one of ``code``."""
        found: Int64s = np.searchsorted(self._keys, self._scheme.end(code))
        return found

    @property
    def running(self) -> Int64s:
        """Running sums, one more row than events: column ``2 * m`` the weight of the
        events that measured metric ``m`` (of ``METRICS``), column ``2 * m + 1`` their
        weight x metric, in fixed point (``SCALE``). A window's sums are the
        difference of two rows.

        Over many events the running totals may wrap around int64, but differences
        stay exact as long as each window's own sum fits, which ``MAX_WEIGHT`` ensures.
        """
        if self._running is None:
            running = np.zeros((len(self) + 1, 2 * len(METRICS)), np.int64)
            np.cumsum(self.events.fixed_values(), axis=0, out=running[1:])
            self._running = running
        return self._running

    def sums(self, rows: Int64s, column: Int64s) -> Int64s:
        """The fixed-point value of ``column`` (as in ``running``) of each of ``rows``."""
        running = self.running
        found: Int64s = running[rows + 1, column] - running[rows, column]
        return found


class _Held:
    """The held events: sorted runs, the oldest and largest first.

    A batch's events come as a new run; a run is merged into the one before it
    while that is not more than twice as large, so there are few runs (about
    log2 of held / batch) and each event is copied a few times over its life.
    Merging drops events that aged out and those of forgotten subscribers.
    """

    def __init__(self) -> None:
        self.runs: list[_Run] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    def add(self, run: _Run, stale: Callable[[Int64s, Int64s], Mask]) -> bool:
        """Hold ``run`` too; returns whether every run was merged into one."""
        if len(run):
            self.runs.append(run)
        merged_all = False
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            newer = self.runs.pop()
            older = self.runs.pop()
            merged = _Run.merged([older, newer], stale)
            merged_all = not self.runs
            if len(merged):
                self.runs.append(merged)
        return merged_all

    def unsaved(self, stale: Callable[[Int64s, Int64s], Mask]) -> _Events:
        """The held events not saved yet and not stale; all count as saved from now on."""
        found = []
        for run in self.runs:
            events = run.events
            if events.unsaved.any():
                found.append(events.subset(events.unsaved & ~stale(events.code, events.ts)))
                events.unsaved[:] = False
        return _Events.joined(found)


class _Names:
    """Codes for names (subscribers, cells), assigned once per distinct name of a batch."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str | None] = []
        self._free: list[int] = []
        self._array: TextArray | None = None
        self._ranks: Int64s | None = None

    def __len__(self) -> int:
        return len(self.names)

    def codes_of(self, values: TextArray) -> Int64s:
        """Each value's code (names not seen before get one)."""
        encoded: Any = pc.dictionary_encode(values)
        distinct: TextArray = encoded.dictionary
        if len(self.names) <= 16 * len(distinct) + 4096:
            # Few names known (cells): Arrow looks the batch's up in one pass.
            found = np.asarray(
                pc.index_in(distinct, value_set=self.text_all()).fill_null(-1), np.int64
            )
        else:
            known = self.codes.get
            found = np.fromiter(
                (known(name, -1) for name in _texts(distinct)), np.int64, len(distinct)
            )
        new = np.flatnonzero(found < 0)
        if len(new):
            found[new] = self.add(_texts(distinct.take(pa.array(new, pa.int64()))))
        indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        codes: Int64s = found[indices]
        return codes

    def add(self, names: list[str]) -> Int64s:
        """Codes for new names (freed codes first)."""
        reused = min(len(names), len(self._free))
        codes = [self._free.pop() for _ in range(reused)]
        for code, name in zip(codes, names, strict=False):
            self.names[code] = name
        codes += range(len(self.names), len(self.names) + len(names) - reused)
        self.names += names[reused:]
        self.codes.update(zip(names, codes, strict=True))
        if reused or self._array is None:
            self._array = None
        else:
            self._array = pa.concat_arrays([self._array, pa.array(names, pa.string())])
        self._ranks = None
        return np.asarray(codes, dtype=np.int64)

    def release(self, codes: list[int]) -> list[str]:
        """Forget the names of ``codes`` (their codes are not reused until ``reuse``);
        returns the names."""
        released = []
        for code in codes:
            name = self.names[code]
            if name is not None:
                del self.codes[name]
                self.names[code] = None
                released.append(name)
        # The text array keeps released names: no code asks for them until reused.
        self._ranks = None
        return released

    def reuse(self) -> None:
        """Let released codes be given again (nothing refers to them any more)."""
        self._free = [code for code, name in enumerate(self.names) if name is None]

    def text_all(self) -> TextArray:
        """Every code's name (null for a released code) as a text array."""
        if self._array is None:
            self._array = pa.array(self.names, pa.string())
        return self._array

    def text(self, codes: Int64s) -> TextArray:
        """The names of ``codes`` as a text array."""
        return self.text_all().take(pa.array(codes, pa.int64()))

    def ranks(self) -> Int64s:
        """Each code's position among the names sorted as text."""
        if self._ranks is None:
            ranked = sorted(range(len(self.names)), key=lambda code: self.names[code] or "")
            self._ranks = np.empty(len(self.names), np.int64)
            self._ranks[ranked] = np.arange(len(self.names))
        return self._ranks


class _Subscribers(_Names):
    """Subscriber codes and the per-subscriber state, one array entry per code.

    Subscribers written in E.164 (``+`` and up to 15 digits) are also found by their
    number in a sorted array, which a whole batch searches at once: a dictionary
    lookup per distinct subscriber would cost more than everything else per event.
    """

    def __init__(self, rules: int) -> None:
        super().__init__()
        self.last_ts: Int64s = np.zeros(0, np.int64)
        """Time of the latest evaluated event; ``_NEVER`` for a free code."""
        self.last_event_id: NDArray[np.object_] = np.zeros(0, dtype=object)
        self.active: Mask = np.zeros((0, rules), bool)
        """Per rule, whether it was active after the latest evaluated event."""
        self.dirty: Mask = np.zeros(0, bool)
        """Changed since the last save."""
        self.since: Int64s = np.zeros(0, np.int64)
        """The first save whose events are this subscriber's (-1: not set yet)."""
        self._numbers: Int64s = np.zeros(0, np.int64)
        """The E.164 numbers of subscribers, sorted."""
        self._number_codes: Int64s = np.zeros(0, np.int64)

    @property
    def capacity(self) -> int:
        """Length of the per-code arrays."""
        return len(self.last_ts)

    def codes_of(self, values: TextArray) -> Int64s:
        encoded: Any = pc.dictionary_encode(values)
        distinct: TextArray = encoded.dictionary
        numbers = _e164_numbers(distinct)
        if numbers is None:
            return super().codes_of(values)
        at = np.searchsorted(self._numbers, numbers)
        inside = at < len(self._numbers)
        known = np.zeros(len(numbers), bool)
        known[inside] = self._numbers[at[inside]] == numbers[inside]
        found = np.full(len(numbers), -1, np.int64)
        found[known] = self._number_codes[at[known]]
        new = np.flatnonzero(~known)
        if len(new):
            found[new] = self.add(_texts(distinct.take(pa.array(new, pa.int64()))))
        indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        codes: Int64s = found[indices]
        return codes

    def add(self, names: list[str]) -> Int64s:
        codes = super().add(names)
        if len(self.names) > self.capacity:
            grown = max(1024, 2 * len(self.names))
            self.last_ts = _grown(self.last_ts, grown, _NEVER)
            self.last_event_id = _grown(self.last_event_id, grown, None)
            self.active = _grown(self.active, grown, False)
            self.dirty = _grown(self.dirty, grown, False)
            self.since = _grown(self.since, grown, -1)
        self._reset(codes)
        numbers = _e164_numbers(pa.array(names, pa.string()), every=False)
        if numbers is not None:
            given = numbers >= 0
            self._index(numbers[given], codes[given])
        return codes

    def release(self, codes: list[int]) -> list[str]:
        self._reset(np.asarray(codes, dtype=np.int64))
        released = super().release(codes)
        numbers = _e164_numbers(pa.array(released, pa.string()), every=False)
        if numbers is not None:
            at = np.searchsorted(self._numbers, numbers[numbers >= 0])
            self._numbers = np.delete(self._numbers, at)
            self._number_codes = np.delete(self._number_codes, at)
        return released

    def _index(self, numbers: Int64s, codes: Int64s) -> None:
        order = np.argsort(numbers)
        at = np.searchsorted(self._numbers, numbers[order])
        self._numbers = np.insert(self._numbers, at, numbers[order])
        self._number_codes = np.insert(self._number_codes, at, codes[order])

    def _reset(self, codes: Int64s) -> None:
        self.last_ts[codes] = _NEVER
        self.last_event_id[codes] = None
        self.active[codes] = False
        self.dirty[codes] = False
        self.since[codes] = -1

    @property
    def live(self) -> Mask:
        """Codes in use."""
        in_use: Mask = self.last_ts[: len(self.names)] != _NEVER
        return in_use


def _e164_numbers(names: TextArray, *, every: bool = True) -> Int64s | None:
    """The numbers of E.164 names (``+``, a digit 1-9, then up to 14 digits: checked on
    the raw bytes), ``-1`` for other names when not ``every``; ``None`` when ``every``
    and one is not E.164, or when none is."""
    offsets, data = text_buffers(names)
    starts, lengths = offsets[:-1], np.diff(offsets)
    e164 = valid(names) & (lengths >= 7) & (lengths <= 16)
    if len(data) == 0 or (every and not e164.all()) or not e164.any():
        return None
    first = np.where(e164, starts, 0)
    e164 &= data[first] == ord("+")
    e164 &= (data[first + 1] >= ord("1")) & (data[first + 1] <= ord("9"))
    digits = np.zeros(len(data) + 1, np.int64)
    np.cumsum((data >= ord("0")) & (data <= ord("9")), out=digits[1:])
    e164 &= digits[offsets[1:]] - digits[starts] == lengths - 1
    if (every and not e164.all()) or not e164.any():
        return None
    text = pc.utf8_slice_codeunits(names, 1)
    if not e164.all():
        text = pc.if_else(pa.array(e164), text, pa.scalar("-1"))
    numbers: Int64s = np.asarray(text.cast(pa.int64()).to_numpy(zero_copy_only=False))
    return numbers


def _grown(array: NDArray[Any], length: int, fill: object) -> NDArray[Any]:
    grown = np.full((length, *array.shape[1:]), fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown


# -- the evaluator -------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledRule:
    index: int
    rule: Rule
    metric: int
    """Position of the rule's metric in ``METRICS``."""
    window_ms: int
    min_weight: int
    """In fixed point (``SCALE``)."""


@dataclass
class _Windows:
    """Where the windows of a batch's evaluated events lie, for one window length:
    in the batch's run, and in each held run."""

    batch_start: Int64s
    held_start: list[Int64s]
    """Per held run, per evaluated event, the first row of its window."""


@dataclass
class _Crossings:
    """Where rules fired in a batch: one entry per incident."""

    rule: Int64s
    evaluated: Int64s
    """Index of the event among the batch's evaluated events."""
    value: Floats


class ProfileEvaluator:
    """Rolling profiles per subscriber under a decision table, and the incidents they raise.

    Not thread-safe: one evaluator per stream consumer (one per partition when the
    stream is partitioned by subscriber).
    """

    def __init__(
        self, table: DecisionTable | None = None, *, forget_after: timedelta | None = None
    ) -> None:
        self.table = table if table is not None else default_decision_table()
        enabled = self.table.enabled_rules
        if not enabled:
            raise InvalidInput("the decision table has no enabled rule: nothing to evaluate")
        self._rules = tuple(
            _CompiledRule(
                index=index,
                rule=rule,
                metric=METRICS.index(rule.metric),
                window_ms=rule.window_seconds * _MS_PER_SECOND,
                min_weight=int(np.rint(rule.min_weight * SCALE)),
            )
            for index, rule in enumerate(enabled)
        )
        self._longest_ms = max(rule.window_ms for rule in self._rules)
        forget = forget_after if forget_after is not None else 2 * self.table.longest_window
        if forget < self.table.longest_window:
            raise InvalidInput("forget_after must be at least the longest window of the rules")
        self._forget_ms = int(forget.total_seconds() * _MS_PER_SECOND)
        self._subscribers = _Subscribers(len(self._rules))
        self._cells = _Names()
        self._held = _Held()
        self._high_water = _NEVER
        self._forgotten: set[str] = set()
        self._saved_states = self._saved_events = self._next_save = 0
        self._events = self._late = self._duplicates = self._incidents = self._forgotten_count = 0

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The enabled rules, in the order incidents of one event are reported."""
        return tuple(compiled.rule for compiled in self._rules)

    @property
    def counters(self) -> ProfileCounters:
        """Events, late events, duplicates and incidents so far; subscribers and events held."""
        return ProfileCounters(
            events=self._events,
            late_events=self._late,
            duplicate_events=self._duplicates,
            incidents=self._incidents,
            forgotten_subscribers=self._forgotten_count,
            subscribers=int(self._subscribers.live.sum()),
            held_events=len(self._held),
        )

    def evaluate(self, batch: pa.Table) -> list[Incident]:
        """Apply a batch of probe events (``PROBE_SCHEMA``); the incidents it raised."""
        return incidents_from_table(self.evaluate_table(batch))

    def evaluate_table(self, batch: pa.Table) -> pa.Table:
        """Apply a batch of probe events (``PROBE_SCHEMA``); the incidents it raised as
        an ``INCIDENT_SCHEMA`` table (the fast path: no Python object per incident).

        Raises ``InvalidInput`` (naming the row and the column) when the batch breaks
        the schema: a missing column or value, a weight outside [0, ``MAX_WEIGHT``],
        a metric outside [0, 1]. Nothing is applied then.
        """
        columns = _checked_columns(batch)
        if batch.num_rows == 0:
            return INCIDENT_SCHEMA.empty_table()
        codes = self._subscribers.codes_of(columns.subscriber)
        since = self._subscribers.since
        since[codes[since[codes] < 0]] = self._next_save
        arrived = _Events(
            code=codes,
            ts=columns.ts,
            event_id=columns.event_id,
            cell=self._cells.codes_of(columns.cell_id),
            weight=columns.weight,
            metrics=columns.metrics,
            unsaved=np.ones(batch.num_rows, bool),
        )
        run, duplicates = _Run.of(arrived)
        late = self._late_events(run.events)
        copies = self._held_copies(run.events, late)
        if copies.any():
            run = run.without(copies)
            late = late[~copies]
            duplicates += int(copies.sum())
        evaluated = np.flatnonzero(~late)
        windows = self._windows(run, evaluated)
        crossings = self._crossings(run, evaluated, windows)
        incidents = self._incident_table(run, evaluated, windows, crossings)
        self._remember(run, evaluated)
        self._high_water = max(self._high_water, int(arrived.ts.max()))
        self._forget_idle()
        self._events += batch.num_rows - duplicates
        self._late += int(late.sum())
        self._duplicates += duplicates
        self._incidents += incidents.num_rows
        return incidents

    def _late_events(self, events: _Events) -> Mask:
        """Events not after their subscriber's latest event of an earlier batch."""
        latest = self._subscribers.last_ts[events.code]
        late: Mask = events.ts < latest
        tied = np.flatnonzero(events.ts == latest)
        if len(tied):
            given = events.event_id.take(pa.array(tied, pa.int64()))
            previous = pa.array(
                self._subscribers.last_event_id[events.code[tied]].tolist(), pa.string()
            )
            late[tied] = _mask(pc.less_equal(given, previous))
        return late

    def _held_copies(self, events: _Events, late: Mask) -> Mask:
        """Late events equal in (subscriber, ts, event_id) to a held one."""
        copies = np.zeros(len(events), bool)
        late_rows = np.flatnonzero(late)
        if len(late_rows) == 0:
            return copies
        code, ts = events.code[late_rows], events.ts[late_rows]
        for run in self._held.runs:
            # Only earlier events can be equal: in-order ones come after all held.
            rows, query = _ranges(run.first_after(code, ts - 1), run.first_after(code, ts))
            if len(rows) == 0:
                continue
            same = _mask(
                pc.equal(
                    run.events.event_id.take(pa.array(rows, pa.int64())),
                    events.event_id.take(pa.array(late_rows[query], pa.int64())),
                )
            )
            copies[late_rows[query[same]]] = True
        return copies

    def _windows(self, run: _Run, evaluated: Int64s) -> dict[int, _Windows]:
        """Per window length, where each evaluated event's window starts."""
        code, ts = run.events.code[evaluated], run.events.ts[evaluated]
        return {
            window: _Windows(
                batch_start=run.first_after(code, ts - window),
                held_start=[held.first_after(code, ts - window) for held in self._held.runs],
            )
            for window in sorted({rule.window_ms for rule in self._rules})
        }

    def _crossings(self, run: _Run, evaluated: Int64s, windows: dict[int, _Windows]) -> _Crossings:
        """Which rules fire at which evaluated events; updates each rule's state."""
        codes = run.events.code[evaluated]
        first = np.ones(len(evaluated), bool)
        first[1:] = codes[1:] != codes[:-1]
        last = np.ones(len(evaluated), bool)
        last[:-1] = first[1:]
        held_ends = [held.end(codes) for held in self._held.runs]
        own = run.running[evaluated + 1] - run.running[evaluated]
        state = self._subscribers.active
        found: list[_Crossings] = []
        for length, window in windows.items():
            before = run.running[evaluated] - run.running[window.batch_start]
            for held, start, end in zip(self._held.runs, window.held_start, held_ends, strict=True):
                before += held.running[end] - held.running[start]
            after = before + own
            for compiled in self._rules:
                if compiled.window_ms != length:
                    continue
                weight, total = 2 * compiled.metric, 2 * compiled.metric + 1
                active_after = _active(after[:, weight], after[:, total], compiled)
                active_before = _active(before[:, weight], before[:, total], compiled)
                previous = np.empty(len(evaluated), bool)
                previous[1:] = active_after[:-1]
                previous[first] = state[codes[first], compiled.index]
                fires = np.flatnonzero(active_after & ~(previous & active_before))
                state[codes[last], compiled.index] = active_after[last]
                found.append(
                    _Crossings(
                        rule=np.full(len(fires), compiled.index, np.int64),
                        evaluated=fires.astype(np.int64),
                        value=after[fires, total] / after[fires, weight],
                    )
                )
        return _Crossings(
            rule=np.concatenate([part.rule for part in found]),
            evaluated=np.concatenate([part.evaluated for part in found]),
            value=np.concatenate([part.value for part in found]),
        )

    def _incident_table(
        self,
        run: _Run,
        evaluated: Int64s,
        windows: dict[int, _Windows],
        crossings: _Crossings,
    ) -> pa.Table:
        """The crossings as incidents, with their windows' worst cells and latest events."""
        count = len(crossings.rule)
        if count == 0:
            return INCIDENT_SCHEMA.empty_table()
        rules = self._rules
        metric = np.array([compiled.metric for compiled in rules], np.int64)[crossings.rule]
        window = np.array([compiled.window_ms for compiled in rules], np.int64)[crossings.rule]
        position = evaluated[crossings.evaluated]
        code = run.events.code[position]
        parts: list[tuple[_Run, Int64s, Int64s]] = []
        for length in np.unique(window).tolist():
            chosen = np.flatnonzero(window == length)
            spans = windows[length]
            at = crossings.evaluated[chosen]
            rows, index = _ranges(spans.batch_start[at], position[chosen] + 1)
            parts.append((run, rows, chosen[index]))
            for held, starts in zip(self._held.runs, spans.held_start, strict=True):
                rows, index = _ranges(starts[at], held.end(code[chosen]))
                parts.append((held, rows, chosen[index]))
        contents = _WindowContents.of(parts, metric)
        cells, cell_offsets = contents.worst_cells(self._cells, count)
        probe_ids, probe_offsets = contents.latest_event_ids(count)
        rule = pa.array(crossings.rule, pa.int64())
        table = pa.table(
            {
                "subscriber": pa.array(
                    [self._subscribers.names[index] for index in code.tolist()], pa.string()
                ),
                "rule": pa.array([compiled.rule.name for compiled in rules]).take(rule),
                "metric": pa.array([compiled.rule.metric for compiled in rules]).take(rule),
                "value": pa.array(crossings.value, pa.float64()),
                "threshold": pa.array([compiled.rule.threshold for compiled in rules]).take(rule),
                "window_seconds": pa.array(window // _MS_PER_SECOND, pa.int64()),
                "ts": pa.array(run.events.ts[position], pa.int64()).cast(
                    INCIDENT_SCHEMA.field("ts").type
                ),
                "event_id": run.events.event_id.take(pa.array(position, pa.int64())),
                "cells": pa.ListArray.from_arrays(pa.array(cell_offsets, pa.int32()), cells),
                "probe_ids": pa.ListArray.from_arrays(
                    pa.array(probe_offsets, pa.int32()), probe_ids
                ),
                "rule_order": rule,
            }
        )
        ordered = table.sort_by(
            [
                ("ts", "ascending"),
                ("subscriber", "ascending"),
                ("event_id", "ascending"),
                ("rule_order", "ascending"),
            ]
        )
        return ordered.drop_columns(["rule_order"]).cast(INCIDENT_SCHEMA)

    def _remember(self, run: _Run, evaluated: Int64s) -> None:
        """Move the subscribers' latest events on, and hold the batch's events."""
        subscribers = self._subscribers
        events = run.events
        if len(evaluated):
            codes = events.code[evaluated]
            last = np.ones(len(evaluated), bool)
            last[:-1] = codes[1:] != codes[:-1]
            latest = evaluated[last]
            subscribers.last_ts[codes[last]] = events.ts[latest]
            subscribers.last_event_id[codes[last]] = np.asarray(
                events.event_id.take(pa.array(latest, pa.int64())).to_numpy(zero_copy_only=False),
                dtype=object,
            )
        subscribers.dirty[events.code] = True
        aged = self._aged_out(events)
        self._merge_held(run.without(aged) if aged.any() else run)

    def _merge_held(self, run: _Run) -> None:
        if self._held.add(run, self._stale):
            # Every run was rebuilt without the forgotten subscribers' events.
            self._subscribers.reuse()

    def _aged_out(self, events: _Events) -> Mask:
        """Events older than every future window of their subscriber."""
        aged: Mask = events.ts <= self._subscribers.last_ts[events.code] - self._longest_ms
        return aged

    def _stale(self, code: Int64s, ts: Int64s) -> Mask:
        """Events (by subscriber code and time) aged out or of a forgotten subscriber."""
        last = self._subscribers.last_ts[code]
        stale: Mask = (last == _NEVER) | (ts <= last - self._longest_ms)
        return stale

    def _forget_idle(self) -> None:
        """Forget subscribers whose latest event lies ``forget_after`` behind the stream."""
        subscribers = self._subscribers
        limit = self._high_water - self._forget_ms
        idle = np.flatnonzero(subscribers.live & (subscribers.last_ts[: len(subscribers)] < limit))
        if len(idle) == 0:
            return
        # Their codes stay unused until a merge of every run has dropped their events.
        self._forgotten.update(subscribers.release(idle.tolist()))
        self._forgotten_count += len(idle)

    # -- persistence -----------------------------------------------------------------

    @staticmethod
    def ensure_schema(connection: sqlite3.Connection) -> None:
        """Create the profile tables if they are missing (``ensure_schema``)."""
        ensure_schema(connection)

    def save(self, connection: sqlite3.Connection) -> int:
        """Write the subscribers changed since the last save (and the events held since);
        returns how many subscribers were written.

        Never commits: the caller wraps it (with the cursor and the queued
        engagements) in ``engage._db.transaction``. If that transaction rolls back,
        call ``load`` before going on, as a restarted process would.
        """
        subscribers = self._subscribers
        changed = np.flatnonzero(subscribers.dirty[: len(subscribers)] & subscribers.live)
        # A forgotten subscriber seen again since is live, not gone.
        gone = sorted(name for name in self._forgotten if name not in subscribers.codes)
        states = self._state_table(changed, gone)
        if states.num_rows:
            connection.execute(
                "INSERT INTO profile_state_chunk (subscribers, data) VALUES (?, ?)",
                (states.num_rows, _ipc(states)),
            )
            self._saved_states += states.num_rows
        self._insert_events(connection, self._held.unsaved(self._stale))
        horizon = self._high_water - self._forget_ms - self._longest_ms
        connection.execute("DELETE FROM profile_event_chunk WHERE latest_ts <= ?", (horizon,))
        live = int(subscribers.live.sum())
        if self._saved_states > 2 * live + _COMPACT_SLACK:
            self._rewrite_states(connection)
        held = len(self._held)
        if self._saved_events > 2 * held + _COMPACT_SLACK:
            self._rewrite_events(connection)
        self._next_save += 1
        connection.executemany(
            "INSERT INTO profile_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(_HIGH_WATER, str(self._high_water)), (_NEXT_SAVE, str(self._next_save))],
        )
        subscribers.dirty[:] = False
        written = states.num_rows
        self._forgotten.clear()
        return written

    def _state_table(self, codes: Int64s, forgotten: list[str]) -> pa.Table:
        """``STATE_SCHEMA`` rows: tombstones of ``forgotten``, then subscribers ``codes``."""
        subscribers = self._subscribers
        gone = len(forgotten)
        names = pa.concat_arrays([pa.array(forgotten, pa.string()), subscribers.text(codes)])
        active = self._active_names(subscribers.active[codes])
        return pa.table(
            {
                "subscriber": names,
                "last_ts": pa.array(
                    np.concatenate((np.zeros(gone, np.int64), subscribers.last_ts[codes])),
                    mask=np.concatenate((np.ones(gone, bool), np.zeros(len(codes), bool))),
                ).cast(STATE_SCHEMA.field("last_ts").type),
                "last_event_id": pa.concat_arrays(
                    [
                        pa.nulls(gone, pa.string()),
                        pa.array(subscribers.last_event_id[codes], pa.string()),
                    ]
                ),
                "active_rules": pa.concat_arrays([pa.nulls(gone, pa.list_(pa.string())), active]),
                "events_since": pa.array(
                    np.concatenate((np.zeros(gone, np.int64), subscribers.since[codes]))
                ),
            },
            schema=STATE_SCHEMA,
        )

    def _insert_events(self, connection: sqlite3.Connection, events: _Events) -> None:
        if len(events) == 0:
            return
        table = pa.table(
            {
                "event_id": events.event_id,
                "subscriber": self._subscribers.text(events.code),
                "cell_id": self._cells.text(events.cell),
                "ts": pa.array(events.ts, pa.int64()).cast(PROBE_SCHEMA.field("ts").type),
                "weight": pa.array(events.weight, pa.float64()),
                **{
                    metric: pa.array(values, from_pandas=True)
                    for metric, values in zip(METRICS, events.metrics, strict=True)
                },
            },
            schema=PROBE_SCHEMA,
        )
        connection.execute(
            "INSERT INTO profile_event_chunk (save, latest_ts, events, data) VALUES (?, ?, ?, ?)",
            (self._next_save, int(events.ts.max()), len(events), _ipc(table)),
        )
        self._saved_events += len(events)

    def _rewrite_states(self, connection: sqlite3.Connection) -> None:
        """All live subscribers' state as one chunk, instead of every chunk before."""
        live = np.flatnonzero(self._subscribers.live)
        states = self._state_table(live, [])
        connection.execute("DELETE FROM profile_state_chunk")
        connection.execute(
            "INSERT INTO profile_state_chunk (subscribers, data) VALUES (?, ?)",
            (states.num_rows, _ipc(states)),
        )
        self._saved_states = states.num_rows

    def _rewrite_events(self, connection: sqlite3.Connection) -> None:
        """Every held event as one chunk, instead of every chunk before."""
        connection.execute("DELETE FROM profile_event_chunk")
        self._saved_events = 0
        runs = [run.events for run in self._held.runs]
        every = _Events.joined(runs)
        self._insert_events(connection, every.subset(~self._stale(every.code, every.ts)))

    def load(self, connection: sqlite3.Connection) -> None:
        """Replace the state held in memory by the one saved in ``connection``.

        Rules renamed or removed since the save lose their state (and start armed);
        held events are cut to this table's longest window.
        """
        saved = read_saved_profiles(connection)
        self._subscribers = subscribers = _Subscribers(len(self._rules))
        self._cells = _Names()
        self._held = _Held()
        self._forgotten = set()
        states = saved.subscribers
        if states.num_rows:
            codes = subscribers.add(_texts(states.column("subscriber")))
            subscribers.last_ts[codes] = _ints(states.column("last_ts"))
            subscribers.last_event_id[codes] = np.asarray(
                states.column("last_event_id").to_pylist(), dtype=object
            )
            subscribers.since[codes] = _ints(states.column("events_since"))
            active = states.column("active_rules").to_pylist()
            for compiled in self._rules:
                subscribers.active[codes, compiled.index] = [
                    compiled.rule.name in (names or ()) for names in active
                ]
        if saved.events.num_rows:
            columns = _checked_columns(saved.events)
            events = _Events(
                code=subscribers.codes_of(columns.subscriber),
                ts=columns.ts,
                event_id=columns.event_id,
                cell=self._cells.codes_of(columns.cell_id),
                weight=columns.weight,
                metrics=columns.metrics,
                unsaved=np.zeros(saved.events.num_rows, bool),
            )
            self._merge_held(_Run.of(events.subset(~self._stale(events.code, events.ts)))[0])
        self._saved_states = _count(connection, "SELECT sum(subscribers) FROM profile_state_chunk")
        self._saved_events = _count(connection, "SELECT sum(events) FROM profile_event_chunk")
        meta = dict(connection.execute("SELECT key, value FROM profile_meta").fetchall())
        self._high_water = int(meta.get(_HIGH_WATER, _NEVER))
        self._next_save = int(meta.get(_NEXT_SAVE, 0))

    def _active_names(self, active: Mask) -> TextArray:
        """Per subscriber, the names of its active rules (a list array)."""
        bits = active.astype(np.int64) @ (1 << np.arange(len(self._rules), dtype=np.int64))
        patterns, which = np.unique(bits, return_inverse=True)
        names = [
            [compiled.rule.name for compiled in self._rules if pattern >> compiled.index & 1]
            for pattern in patterns.tolist()
        ]
        return pa.array(names, pa.list_(pa.string())).take(pa.array(which, pa.int64()))


def _texts(array: Any) -> list[str]:
    """A text array without nulls as Python strings."""
    texts: list[str] = array.to_pylist()
    return texts


def _ints(column: Any) -> Int64s:
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)


def _count(connection: sqlite3.Connection, query: str) -> int:
    (total,) = connection.execute(query).fetchone()
    return int(total or 0)


# -- what an incident's window holds -------------------------------------------------


@dataclass
class _WindowContents:
    """The measured events in the windows of a batch's incidents, in processing order
    per incident."""

    incident: Int64s
    cell: Int64s
    contribution: Int64s
    """Weight x the incident's metric in fixed point."""
    event_id: TextArray

    @classmethod
    def of(
        cls, parts: list[tuple[_Run, Int64s, Int64s]], metric_of_incident: Int64s
    ) -> _WindowContents:
        """Gather rows ``rows`` of run ``run`` for incidents ``incident``, per part."""
        incidents, times, cells, contributions, event_ids = [], [], [], [], []
        for run, rows, incident in parts:
            metric = metric_of_incident[incident]
            events = run.events
            measured = ~np.isnan(events.metrics[metric, rows])
            rows, incident, metric = rows[measured], incident[measured], metric[measured]
            incidents.append(incident)
            times.append(events.ts[rows])
            cells.append(events.cell[rows])
            contributions.append(run.sums(rows, 2 * metric + 1))
            event_ids.append(events.event_id.take(pa.array(rows, pa.int64())))
        incident, ts = np.concatenate(incidents), np.concatenate(times)
        event_id = pa.concat_arrays(event_ids)
        if len(incident) == 0:
            return cls(incident, incident, incident, event_id)
        order = _processing_order(_Keys.of(incident, ts).keys(incident, ts), event_id.take)
        return cls(
            incident=incident[order],
            cell=np.concatenate(cells)[order],
            contribution=np.concatenate(contributions)[order],
            event_id=event_id.take(pa.array(order, pa.int64())),
        )

    def worst_cells(self, cells: _Names, count: int) -> tuple[TextArray, Int64s]:
        """Per incident, the cells with a positive weight x metric, worst first; as
        values and list offsets."""
        kinds = max(len(cells), 1)
        groups, group_of_row = np.unique(self.incident * kinds + self.cell, return_inverse=True)
        totals = np.bincount(group_of_row, weights=self.contribution.astype(np.float64))
        keep = totals > 0
        groups, totals = groups[keep], totals[keep]
        group_incident, group_cell = groups // kinds, groups % kinds
        # Ties in contribution go by cell id as text, as the docstring promises.
        order = np.lexsort((cells.ranks()[group_cell], -totals, group_incident))
        offsets = np.zeros(count + 1, np.int64)
        np.cumsum(np.bincount(group_incident, minlength=count), out=offsets[1:])
        return cells.text(group_cell[order]), offsets

    def latest_event_ids(self, count: int) -> tuple[TextArray, Int64s]:
        """Per incident, its last ``PROBE_IDS_PER_INCIDENT`` events, the newest first;
        as values and list offsets."""
        per_incident = np.bincount(self.incident, minlength=count)
        ends = np.cumsum(per_incident)
        from_end = ends[self.incident] - 1 - np.arange(len(self.incident))
        keep = np.flatnonzero(from_end < PROBE_IDS_PER_INCIDENT)
        order = keep[np.lexsort((from_end[keep], self.incident[keep]))]
        offsets = np.zeros(count + 1, np.int64)
        np.cumsum(np.minimum(per_incident, PROBE_IDS_PER_INCIDENT), out=offsets[1:])
        return self.event_id.take(pa.array(order, pa.int64())), offsets


# -- ordering ------------------------------------------------------------------------


def _processing_order(keys: Int64s, event_ids: Callable[[Any], TextArray]) -> Int64s:
    """Positions of events sorted by (``keys``, event id, position); ``keys`` sort like
    (subscriber, ts) and ``event_ids(positions)`` gives the ids where keys tie."""
    order: Int64s = np.argsort(keys, kind="stable")
    ordered = keys[order]
    tied = ordered[1:] == ordered[:-1]
    if not tied.any():
        return order
    # Events of one subscriber at one instant go by event id; a stable sort keeps
    # equal ids in arrival order.
    run = np.zeros(len(order), np.int64)
    np.cumsum(~tied, out=run[1:])
    in_tie = np.zeros(len(order), bool)
    in_tie[1:] |= tied
    in_tie[:-1] |= tied
    positions = np.flatnonzero(in_tie)
    within = pc.sort_indices(
        pa.table(
            {
                "run": pa.array(run[positions], pa.int64()),
                "event_id": event_ids(pa.array(order[positions], pa.int64())),
            }
        ),
        sort_keys=[("run", "ascending"), ("event_id", "ascending")],
    )
    order[positions] = order[positions][np.asarray(within)]
    return order


def _without_duplicates(events: _Events, order: Int64s) -> tuple[Int64s, int]:
    """``order`` without the later copies of equal (subscriber, ts, event_id); and how many."""
    code, ts = events.code[order], events.ts[order]
    candidates = np.flatnonzero((code[1:] == code[:-1]) & (ts[1:] == ts[:-1])) + 1
    if len(candidates) == 0:
        return order, 0
    ids = events.event_id
    same = _mask(
        pc.equal(
            ids.take(pa.array(order[candidates], pa.int64())),
            ids.take(pa.array(order[candidates - 1], pa.int64())),
        )
    )
    copies = candidates[same]
    if len(copies) == 0:
        return order, 0
    keep = np.ones(len(order), bool)
    keep[copies] = False
    return order[keep], len(copies)


def _active(weight: Int64s, weighted_sum: Int64s, compiled: _CompiledRule) -> Mask:
    active: Mask = (weight >= compiled.min_weight) & (
        weighted_sum > compiled.rule.threshold * weight
    )
    return active


def _ranges(start: Int64s, end: Int64s) -> tuple[Int64s, Int64s]:
    """Every row from ``start[i]`` up to ``end[i]`` (exclusive), and the ``i`` of each."""
    lengths = np.maximum(end - start, 0)
    index = np.repeat(np.arange(len(start), dtype=np.int64), lengths)
    first = np.zeros(len(start), np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    rows = start[index] + np.arange(int(lengths.sum()), dtype=np.int64) - first[index]
    return rows, index


# -- checking a batch ----------------------------------------------------------------


@dataclass(frozen=True)
class _BatchColumns:
    """A checked batch: text columns as Arrow arrays, numbers as NumPy arrays."""

    event_id: TextArray
    subscriber: TextArray
    cell_id: TextArray
    ts: Int64s
    weight: Floats
    metrics: Floats
    """One row per metric of ``METRICS``; NaN where null."""


def _checked_columns(batch: pa.Table) -> _BatchColumns:
    """The batch's columns as ``PROBE_SCHEMA`` types; ``InvalidInput`` where it breaks it."""
    missing = [name for name in PROBE_SCHEMA.names if name not in batch.column_names]
    if missing:
        raise InvalidInput(
            f"probe batch lacks the column(s) {', '.join(missing)} (PROBE_SCHEMA)",
            details={"columns": missing},
        )
    columns: dict[str, Any] = {}
    for field in PROBE_SCHEMA:
        chunks = batch.column(field.name)
        column: Any = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
        try:
            if column.type != field.type:
                column = column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise InvalidInput(
                f"probe batch column {field.name}: cannot read {column.type} as {field.type}: "
                f"{error}",
                details={"field": field.name},
            ) from None
        if not field.nullable and column.null_count:
            _refuse(_mask(column.is_null()), field.name, "missing")
        columns[field.name] = column
    weight = _floats(columns["weight"])
    with np.errstate(invalid="ignore"):
        bad_weight = ~((weight >= 0) & (weight <= MAX_WEIGHT))
    if bad_weight.any():
        _refuse(bad_weight, "weight", f"must be a number in [0, {MAX_WEIGHT:g}]", weight)
    metrics = np.empty((len(METRICS), batch.num_rows), np.float64)
    for index, metric in enumerate(METRICS):
        values = metrics[index]
        values[:] = _floats(columns[metric])
        with np.errstate(invalid="ignore"):
            bad = ~((values >= 0.0) & (values <= 1.0))
        if columns[metric].null_count:
            bad &= _mask(columns[metric].is_valid())
        if bad.any():
            _refuse(bad, metric, "must be null or a share in [0, 1]", values)
    return _BatchColumns(
        event_id=columns["event_id"],
        subscriber=columns["subscriber"],
        cell_id=columns["cell_id"],
        ts=np.asarray(columns["ts"].cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64),
        weight=weight,
        metrics=metrics,
    )


def _refuse(mask: Mask, field: str, problem: str, values: Floats | None = None) -> None:
    row = int(np.flatnonzero(mask)[0])
    shown = "" if values is None else f" ({values[row]!r})"
    raise InvalidInput(
        f"probe batch row {row}, {field}{shown}: {problem} ({int(mask.sum())} row(s) in all)",
        details={"row": row, "field": field},
    )


def _floats(array: TextArray) -> Floats:
    """A float column as NumPy, NaN where null."""
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _mask(array: Any) -> Mask:
    result: Mask = np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    return result


def incidents_from_table(table: pa.Table) -> list[Incident]:
    """The rows of an ``INCIDENT_SCHEMA`` table as ``Incident`` objects."""
    return [
        Incident(
            subscriber=row["subscriber"],
            rule=row["rule"],
            metric=row["metric"],
            value=row["value"],
            threshold=row["threshold"],
            window_seconds=row["window_seconds"],
            ts=row["ts"],
            cells=tuple(row["cells"]),
            probe_ids=tuple(row["probe_ids"]),
        )
        for row in table.to_pylist()
    ]
