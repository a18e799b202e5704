"""The array work behind the frequency analyzer: timelines in, counted journeys out.

Everything here is vectorised over all customers at once; nothing loops over
customers or touchpoints in Python. The steps, in order:

1. ``select``: drop touchpoints outside the filters, collapse repeats, split
   timelines at session gaps. The result is a ``Selection``: event codes and times
   of the kept touchpoints with the start and end of each timeline.
2. ``anchor``: the positions of the anchor touchpoints (every one, or each
   timeline's first, or last for journeys that end at the anchor).
3. ``cut``: each anchor's journey as a run of positions (up to ``max_steps``,
   shorter where the timeline runs out, or up to a second anchor for ``between``),
   gathered into one flat array of codes with offsets.
4. ``count``: the journeys as an Arrow binary array, one value a journey (its codes'
   bytes, so byte order is name order), dictionary-encoded in C++; then counts,
   distinct customers, step counts, links with median gaps and drop-offs with
   ``np.bincount`` over packed keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from journeys.timelines import Codes, Timelines

Indices = npt.NDArray[np.int64]
GAP_BITS: Final = 40
"""Bits of a packed link key that hold the gap in milliseconds (about 35 years)."""


@dataclass(frozen=True)
class Filters:
    """Which touchpoints a query keeps, as codes (None: no filter of that kind)."""

    since_ms: int | None = None
    until_ms: int | None = None
    channels: list[int] | None = None
    sources: list[int] | None = None
    exclude: list[int] | None = None
    customers: npt.NDArray[np.bool_] | None = None
    """One flag a customer of the timelines: keep that customer's touchpoints."""
    collapse_repeats: bool = False
    session_gap_ms: int | None = None


@dataclass(frozen=True)
class Selection:
    """The kept touchpoints, grouped into timelines (a customer's, or a session's).

    Timeline ``t`` is positions ``starts[t]:ends[t]`` of ``event``/``ts`` and belongs
    to customer ``customer[t]`` (an index into the timelines' customers).
    """

    event: Codes
    ts: npt.NDArray[np.int64]
    starts: Indices
    ends: Indices
    customer: npt.NDArray[np.int64]
    one_per_customer: bool
    """Whether every customer has at most one timeline (no session split)."""


@dataclass
class Cut:
    """Anchored journeys: journey ``j`` is ``lengths[j]`` consecutive positions of the
    selection from ``first[j]``; ``offsets`` places them end to end (see ``positions``).
    """

    first: Indices
    offsets: Indices
    timeline: Indices
    """The timeline of each journey."""
    aligned_end: bool
    """Whether journeys end at their anchor (their steps are numbered back from it)."""
    not_reached: int = 0
    """Anchors whose journey never reached the ``between`` anchor."""
    tiled: bool = False
    """Whether the journeys are the whole selection, in order (whole timelines)."""

    @property
    def lengths(self) -> Indices:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @cached_property
    def positions(self) -> Indices:
        """The selection position of every step of every journey, end to end."""
        lengths = self.lengths
        return np.arange(self.offsets[-1], dtype=np.int64) + np.repeat(
            self.first - self.offsets[:-1], lengths
        )

    def gather(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``values`` (one per selected touchpoint) at every step of every journey."""
        return values if self.tiled else values[self.positions]


def select(timelines: Timelines, filters: Filters) -> Selection:
    """Apply the filters, collapse repeats and split sessions (see module docstring)."""
    keep = _touchpoint_mask(timelines, filters)
    n = timelines.customer_count
    if keep is None and not filters.collapse_repeats and filters.session_gap_ms is None:
        offsets = np.asarray(timelines.offsets, np.int64)
        lengths = np.diff(offsets)
        present = np.flatnonzero(lengths)
        return Selection(
            event=timelines.event,
            ts=timelines.ts,
            starts=offsets[:-1][present],
            ends=offsets[1:][present],
            customer=present.astype(np.int64),
            one_per_customer=True,
        )
    owner = timelines.owners()
    event: Codes = timelines.event
    ts = np.asarray(timelines.ts)
    if keep is not None:
        kept = np.flatnonzero(keep)
        owner, event, ts = owner[kept], event[kept], ts[kept]
    if filters.collapse_repeats and len(event):
        repeat = (owner[1:] == owner[:-1]) & (event[1:] == event[:-1])
        kept = np.flatnonzero(~np.concatenate([[False], repeat]))
        owner, event, ts = owner[kept], event[kept], ts[kept]
    boundary = np.ones(len(owner), bool)
    if len(owner):
        boundary[1:] = owner[1:] != owner[:-1]
        if filters.session_gap_ms is not None:
            boundary[1:] |= (ts[1:] - ts[:-1]) > filters.session_gap_ms
    starts = np.flatnonzero(boundary)
    ends = np.append(starts[1:], len(owner)).astype(np.int64)
    return Selection(
        event=event,
        ts=ts,
        starts=starts.astype(np.int64),
        ends=ends,
        customer=owner[starts].astype(np.int64) if n else np.zeros(0, np.int64),
        one_per_customer=filters.session_gap_ms is None,
    )


def _touchpoint_mask(timelines: Timelines, filters: Filters) -> npt.NDArray[np.bool_] | None:
    keep: npt.NDArray[np.bool_] | None = None

    def narrow(mask: npt.NDArray[np.bool_]) -> None:
        nonlocal keep
        keep = mask if keep is None else keep & mask

    if filters.since_ms is not None:
        narrow(np.asarray(timelines.ts) >= filters.since_ms)
    if filters.until_ms is not None:
        narrow(np.asarray(timelines.ts) < filters.until_ms)
    if filters.channels is not None:
        narrow(_allowed(len(timelines.channels), filters.channels)[timelines.channel])
    if filters.sources is not None:
        narrow(_allowed(len(timelines.sources), filters.sources)[timelines.source])
    if filters.exclude:
        narrow(~_allowed(len(timelines.event_types), filters.exclude)[timelines.event])
    if filters.customers is not None:
        narrow(np.repeat(filters.customers, np.diff(timelines.offsets)))
    return keep


def _allowed(size: int, codes: list[int]) -> npt.NDArray[np.bool_]:
    table = np.zeros(max(size, 1), bool)
    table[codes] = True
    return table


def anchor(
    selection: Selection, code: int | None, end: bool, every: bool
) -> tuple[Indices, Indices]:
    """Positions of the anchors and their timelines.

    ``code`` None anchors at each timeline's first touchpoint (its last with ``end``).
    Otherwise every touchpoint of that event type, or (``every`` False) each
    timeline's first one (its last with ``end``).
    """
    if code is None:
        timelines = np.arange(len(selection.starts), dtype=np.int64)
        return (selection.ends - 1 if end else selection.starts), timelines
    positions = np.flatnonzero(selection.event == code).astype(np.int64)
    timeline = np.searchsorted(selection.starts, positions, side="right").astype(np.int64) - 1
    if every or len(positions) == 0:
        return positions, timeline
    changes = timeline[1:] != timeline[:-1]
    keep = np.concatenate([changes, [True]]) if end else np.concatenate([[True], changes])
    return positions[keep], timeline[keep]


def cut(
    selection: Selection,
    anchors: Indices,
    timeline: Indices,
    max_steps: int | None,
    end: bool,
    until_code: int | None = None,
) -> Cut:
    """Each anchor's journey (see ``Cut``); ``until_code`` ends it at that event type."""
    limit = np.iinfo(np.int64).max if max_steps is None else max_steps
    not_reached = 0
    if end:
        lengths = np.minimum(limit, anchors - selection.starts[timeline] + 1)
        first = anchors - lengths + 1
    else:
        lengths = np.minimum(limit, selection.ends[timeline] - anchors)
        first = anchors
        if until_code is not None:
            targets = np.flatnonzero(selection.event == until_code)
            following = np.searchsorted(targets, anchors, side="right")
            found = following < len(targets)
            stop = np.full(len(anchors), -1, np.int64)
            stop[found] = targets[following[found]]
            reached = found & (stop < selection.ends[timeline]) & (stop - anchors < limit)
            not_reached = int(len(anchors) - np.count_nonzero(reached))
            first, timeline = anchors[reached], timeline[reached]
            lengths = stop[reached] - first + 1
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tiled = (
        not end
        and len(first) == len(selection.starts)
        and offsets[-1] == len(selection.event)
        and bool(np.array_equal(first, selection.starts))
    )
    return Cut(first, offsets, timeline.astype(np.int64), end, not_reached, tiled)


@dataclass(frozen=True)
class Counted:
    """The distinct journeys of a cut and how often each occurs.

    ``journey[j]`` is the distinct journey (an index into ``distinct``) of journey
    ``j`` of the cut; ``distinct`` holds each distinct journey's codes as bytes.
    """

    journey: npt.NDArray[np.int64]
    distinct: pa.Array[Any]
    counts: npt.NDArray[np.int64]
    customers: npt.NDArray[np.int64]
    """Distinct customers behind each distinct journey."""


def journey_bytes(codes: Codes, offsets: Indices) -> pa.Array[Any]:
    """One binary value a journey: its codes' bytes (big-endian, so bytes sort as codes)."""
    width = codes.dtype.itemsize
    data = codes if width == 1 else codes.astype(">u2")
    byte_offsets = offsets * width
    large = byte_offsets[-1] >= 2**31
    offset_type, value_type = (np.int64, pa.large_binary()) if large else (np.int32, pa.binary())
    buffers = [
        None,
        pa.py_buffer(byte_offsets.astype(offset_type).tobytes()),
        pa.py_buffer(data.tobytes()),
    ]
    return pa.Array.from_buffers(value_type, len(offsets) - 1, buffers)


def decode(value: bytes, width: int) -> list[int]:
    """The codes of one journey's bytes."""
    dtype = np.uint8 if width == 1 else np.dtype(">u2")
    return [int(code) for code in np.frombuffer(value, dtype)]


def count(selection: Selection, journeys: Cut, codes: Codes) -> Counted:
    """Count distinct journeys and the distinct customers behind each."""
    encoded = cast(
        "pa.DictionaryArray[Any, Any]",
        pc.dictionary_encode(journey_bytes(codes, journeys.offsets)),
    )
    journey = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
    distinct = encoded.dictionary
    counts = np.bincount(journey, minlength=len(distinct)).astype(np.int64)
    if one_journey_per_customer(selection, journeys):
        customers = counts
    else:
        owner = selection.customer[journeys.timeline]
        pairs = np.unique(journey * (int(owner.max(initial=0)) + 1) + owner)
        customers = np.bincount(
            pairs // (int(owner.max(initial=0)) + 1), minlength=len(distinct)
        ).astype(np.int64)
    return Counted(journey, distinct, counts, customers)


def one_journey_per_customer(selection: Selection, journeys: Cut) -> bool:
    """Whether no customer has two journeys (so journeys count customers too)."""
    timeline = journeys.timeline
    one_a_timeline = len(timeline) < 2 or bool(np.all(timeline[1:] > timeline[:-1]))
    return selection.one_per_customer and one_a_timeline


def step_index(journeys: Cut, max_steps: int | None) -> Indices:
    """The step (0-based) of each position of the cut: from the anchor for journeys
    that start there, aligned so the anchor is the last step for those that end there."""
    lengths = journeys.lengths
    within = np.arange(journeys.offsets[-1], dtype=np.int64) - np.repeat(
        journeys.offsets[:-1], lengths
    )
    if not journeys.aligned_end:
        return within
    longest = int(lengths.max(initial=0)) if max_steps is None else max_steps
    return within + np.repeat(longest - lengths, lengths)


def step_counts(steps: Indices, codes: Codes, vocabulary: int) -> list[tuple[int, int, int]]:
    """``(step, code, count)`` of every step and event type that occurs, by step then code."""
    if len(steps) == 0:
        return []
    keys = steps * vocabulary + codes
    tally = np.bincount(keys)
    present = np.flatnonzero(tally)
    return [(int(k // vocabulary), int(k % vocabulary), int(tally[k])) for k in present.tolist()]


def links(
    journeys: Cut, steps: Indices, codes: Codes, times: npt.NDArray[np.int64], vocabulary: int
) -> list[tuple[int, int, int, int, float]]:
    """``(step, source, target, count, median gap ms)`` of each pair of consecutive steps.

    ``codes``, ``steps`` and ``times`` hold every step of every journey end to end.
    The median is exact: keys and gaps are packed into one integer and sorted, so
    each link's gaps are a sorted run and its median is read from the middle.
    """
    if journeys.offsets[-1] < 2:
        return []
    # Pair every step with the one after it (whole-array slices, no gathers), then
    # drop the pairs that straddle two journeys.
    linked = np.ones(int(journeys.offsets[-1]) - 1, bool)
    starts = journeys.offsets[1:-1]
    linked[starts[starts > 0] - 1] = False
    keys = (steps[:-1] * vocabulary + codes[:-1]) * vocabulary + codes[1:]
    gaps = times[1:] - times[:-1]
    keys, gaps = keys[linked], gaps[linked]
    if len(keys) == 0:
        return []
    if int(keys.max()) >= 2 ** (63 - GAP_BITS) or int(gaps.max()) >= 2**GAP_BITS:
        order = np.lexsort((gaps, keys))
        keys, gaps = keys[order], gaps[order]
    else:
        packed = (keys << GAP_BITS) | gaps
        packed.sort()
        keys, gaps = packed >> GAP_BITS, packed & ((1 << GAP_BITS) - 1)
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    sizes = np.diff(np.append(first, len(keys)))
    lower = gaps[first + (sizes - 1) // 2]
    upper = gaps[first + sizes // 2]
    medians = (lower + upper) / 2
    square = vocabulary * vocabulary
    return [
        (int(k // square), int(k // vocabulary % vocabulary), int(k % vocabulary), int(n), float(m))
        for k, n, m in zip(keys[first].tolist(), sizes.tolist(), medians.tolist(), strict=True)
    ]


def drop_offs(
    journeys: Cut, codes: Codes, max_steps: int | None, vocabulary: int
) -> list[tuple[int, int, int]]:
    """``(step, code, count)`` of journeys shorter than ``max_steps``.

    A journey from an anchor drops off at its last step; one that ends at an anchor
    began less than ``max_steps`` before it, and is counted at its first step
    (numbered as ``step_index`` numbers it).
    """
    if max_steps is None or len(journeys) == 0:
        return []
    lengths = journeys.lengths
    short = np.flatnonzero(lengths < max_steps)
    if journeys.aligned_end:
        steps = max_steps - lengths[short]
        at = journeys.offsets[short]
    else:
        steps = lengths[short] - 1
        at = journeys.offsets[short + 1] - 1
    if len(short) == 0:
        return []
    return step_counts(steps, codes[at], vocabulary)
