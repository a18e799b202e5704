"""Journeys for similarity: each customer's event types, shaped and laid out as rows.

A journey here is what two customers are compared on: the event types of a
customer's touchpoints in (ts, event_id) order, after three shaping steps
(``JourneyRepresentation``): event types in ``exclude`` are dropped (machine events
such as ``network_kpi`` arrive every few hours and would drown what the customer
did), consecutive repeats are collapsed to one step, and only the last
``last_steps`` steps are kept (recent behaviour is what predicts an outcome, and a
cap keeps edit distances cheap and comparable).

Journeys are rows of a ``(customers, last_steps)`` uint16 matrix: step codes plus
one, left-aligned, zero after the last step. Zero never stands for a step, so a row
viewed as a NumPy unicode string is the journey as a string of code characters
(trailing zeros are dropped), which is what rapidfuzz compares.
Everything is vectorised over all customers at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from journeys.timelines import Timelines

Rows = npt.NDArray[np.uint16]
Indices = npt.NDArray[np.int64]
MAX_CODES: Final = 65_534
"""Most distinct event types a journey can hold (codes + 1 must fit uint16)."""


@dataclass(frozen=True)
class Shaping:
    """A representation resolved against one vocabulary.

    ``translate[c]`` is the output code of input code ``c``, or -1 where the event
    type is excluded.
    """

    translate: Indices
    collapse_repeats: bool
    last_steps: int
    since_ms: int | None = None
    until_ms: int | None = None


def shape(codes: Indices, owners: Indices, customers: int, shaping: Shaping) -> Rows:
    """Journey rows of ``customers`` timelines given as flat ``codes`` with their ``owners``.

    ``owners`` (the row of each touchpoint) must be non-decreasing, and each
    timeline's touchpoints must be in time order.
    """
    translated = shaping.translate[codes] if len(codes) else np.zeros(0, np.int64)
    kept = translated >= 0
    steps, owner = translated[kept], owners[kept]
    if shaping.collapse_repeats and len(steps):
        first = np.ones(len(steps), bool)
        first[1:] = (steps[1:] != steps[:-1]) | (owner[1:] != owner[:-1])
        steps, owner = steps[first], owner[first]
    counts = np.bincount(owner, minlength=customers)
    ends = np.cumsum(counts)
    from_end = ends[owner] - 1 - np.arange(len(steps))
    recent = from_end < shaping.last_steps
    steps, owner, from_end = steps[recent], owner[recent], from_end[recent]
    column = np.minimum(counts, shaping.last_steps)[owner] - 1 - from_end
    rows = np.zeros((customers, shaping.last_steps), np.uint16)
    rows[owner, column] = steps + 1
    return rows


def timeline_rows(timelines: Timelines, shaping: Shaping, customers: Indices | None = None) -> Rows:
    """Journey rows of every customer of ``timelines`` (or of ``customers``, indices)."""
    offsets = np.asarray(timelines.offsets)
    if customers is None:
        count = timelines.customer_count
        owners = np.repeat(np.arange(count, dtype=np.int64), np.diff(offsets))
        positions = np.arange(len(owners))
    else:
        count = len(customers)
        starts, stops = offsets[customers], offsets[customers + 1]
        lengths = stops - starts
        owners = np.repeat(np.arange(count, dtype=np.int64), lengths)
        positions = np.arange(len(owners)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        positions += np.repeat(starts, lengths)
    codes = np.asarray(timelines.event[positions], np.int64)
    if shaping.since_ms is not None or shaping.until_ms is not None:
        ts = np.asarray(timelines.ts[positions])
        inside = np.ones(len(ts), bool)
        if shaping.since_ms is not None:
            inside &= ts >= shaping.since_ms
        if shaping.until_ms is not None:
            inside &= ts < shaping.until_ms
        codes, owners = codes[inside], owners[inside]
    return shape(codes, owners, count, shaping)


def position_of(customers: pa.Array[Any], customer: str) -> int:
    """Where ``customer`` is in sorted ``customers`` (binary search), or -1."""
    low, high = 0, len(customers)
    while low < high:
        middle = (low + high) // 2
        if cast(str, customers[middle].as_py()) < customer:
            low = middle + 1
        else:
            high = middle
    if low < len(customers) and customers[low].as_py() == customer:
        return low
    return -1


@dataclass(frozen=True)
class CustomerOrder:
    """A timelines' customer ids in id order, for lookups and ties by id.

    Timelines list customers sorted after a full build, but customers spliced in
    since follow at the end; ``order`` (None when already sorted) maps each sorted
    position back to the timelines' own.
    """

    ids: pa.Array[Any]
    order: Indices | None

    @classmethod
    def of(cls, customers: pa.Array[Any]) -> CustomerOrder:
        """Sort ``customers`` unless they already are."""
        if len(customers) < 2:
            return cls(customers, None)
        ascending = pc.all(pc.less(customers.slice(0, len(customers) - 1), customers.slice(1)))
        if ascending.as_py():
            return cls(customers, None)
        order = pc.sort_indices(customers)
        return cls(customers.take(order), np.asarray(order.to_numpy(), np.int64))

    def position(self, customer: str) -> int:
        """The customer's position in the timelines, or -1."""
        found = position_of(self.ids, customer)
        if found < 0 or self.order is None:
            return found
        return int(self.order[found])

    def sort(self, rows: Rows) -> Rows:
        """Rows in the timelines' customer order, put in id order."""
        return rows if self.order is None else rows[self.order]


def lengths_of(rows: Rows) -> Indices:
    """Steps in each journey row."""
    return np.asarray(np.count_nonzero(rows, axis=1), np.int64)


def as_strings(rows: Rows) -> list[str]:
    """Each row as a string of code characters (what rapidfuzz compares)."""
    if len(rows) == 0:
        return []
    wide = np.ascontiguousarray(rows, np.uint32)
    return cast(list[str], wide.view(np.dtype(("U", rows.shape[1]))).ravel().tolist())


def row_hashes(rows: Rows) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each row (equal rows, equal hashes)."""
    weights = np.random.default_rng(0x5EED).integers(1, 2**63, rows.shape[1], np.uint64)
    with np.errstate(over="ignore"):
        weighted = rows.astype(np.uint64) * (weights | np.uint64(1))
        return np.asarray(weighted.sum(axis=1, dtype=np.uint64), np.uint64)


def distinct(rows: Rows) -> tuple[Rows, Indices]:
    """The distinct rows (in no particular order) and each input row's distinct index.

    Rows are grouped by a 64-bit hash in one sort, then checked against their group's
    first row; a collision (never seen, but possible) falls back to a byte-wise unique.
    """
    if len(rows) == 0:
        return rows, np.zeros(0, np.int64)
    _, first, inverse = np.unique(row_hashes(rows), return_index=True, return_inverse=True)
    unique_rows = rows[first]
    if np.array_equal(unique_rows[inverse], rows):
        return unique_rows, np.asarray(inverse, np.int64)
    as_bytes = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1] * 2))).ravel()
    _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
    return rows[first], np.asarray(inverse, np.int64)
