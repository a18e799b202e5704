"""The frequency analyzer: the most frequent journeys from or to an event of interest.

Semantics (``../shared/DESIGN.md``, "Journey frequency semantics", extended by the
options below). Each customer's touchpoints are ordered by (ts, event_id).

1. Filters drop touchpoints first: the time window ``[since, until)``, ``channels``,
   ``sources``, ``exclude`` (event types) and the customers of a ``segment`` or an
   explicit ``customers`` list.
2. ``collapse_repeats`` then keeps only the first of consecutive touchpoints of the
   same event type (after the filters, so ``A x A`` with ``x`` excluded is one ``A``).
3. ``session_gap`` then splits each timeline where two touchpoints are further apart
   than the gap; each session is a timeline of its own from here on.
4. With ``direction=start``, a journey is an anchor touchpoint followed by the next up
   to ``max_steps - 1`` touchpoints of its timeline; with ``direction=end``, the up to
   ``max_steps - 1`` touchpoints before the anchor, then the anchor. ``occurrence=first``
   takes each timeline's first anchor (its last, for ``end``); ``every`` takes every
   anchor. A timeline that runs out gives a shorter journey.
5. ``between`` (with ``direction=start``) ends each journey at the first touchpoint of
   that event type after the anchor, if one comes within ``max_steps``; journeys that
   do not reach it are left out and counted in ``not_reached``.

The answer: ``journeys`` (the top ones, by count descending then steps in name order),
each with its count, distinct customers and share of all anchored journeys;
``other`` (everything outside the top, so shares add up to 1); ``step_counts``
(touchpoints at each step by event type); ``links`` (consecutive steps, for a Sankey,
with the median time between them); ``drop_offs`` (journeys shorter than
``max_steps``, where they ended). Steps are numbered from 1 at the anchor for
``start``; for ``end`` they are aligned on the anchor, which is step ``max_steps``,
so a shorter journey's first step has a higher number.

``FrequencyAnalyzer.customers`` drills down to the customers behind a journey, a
step or a link. ``VariantQuery`` counts whole timelines (process-mining variants).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from graph.errors import InvalidInput
from journeys import _paths
from journeys.timelines import Timelines

SegmentLookup = Callable[[str, list[str]], "pa.Array[Any]"]
"""Customer ids of a named segment's values (``journeys.segments.segment_customers``)."""


class SegmentFilter(BaseModel):
    """Customers whose value of a named segment is one of ``values``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="a segment name, e.g. tenure_band")
    values: list[str] = Field(min_length=1)


class TimelineOptions(BaseModel):
    """Which touchpoints make the timelines a query reads (steps 1-3 of the semantics)."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(None, description="keep touchpoints at or after this time")
    until: datetime | None = Field(None, description="keep touchpoints before this time")
    channels: list[str] | None = Field(None, description="keep only these channels")
    sources: list[str] | None = Field(None, description="keep only these source systems")
    exclude: list[str] = Field(default_factory=list, description="event types to drop")
    segment: SegmentFilter | None = None
    customers: list[str] | None = Field(None, description="keep only these customers")
    collapse_repeats: bool = False
    session_gap: timedelta | None = Field(
        None, description="split timelines at gaps longer than this (seconds or ISO 8601)"
    )

    @model_validator(mode="after")
    def _check_window(self) -> TimelineOptions:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2024-01-01T00:00:00Z)")
        if self.session_gap is not None and self.session_gap <= timedelta(0):
            raise ValueError("session_gap must be positive")
        return self


class FrequencyQuery(TimelineOptions):
    """The top journeys from (or to) an anchor event type."""

    anchor: str = Field(min_length=1, description="the event type of interest")
    direction: Literal["start", "end"] = "start"
    max_steps: int = Field(5, ge=2, le=20)
    occurrence: Literal["first", "every"] = "first"
    top: int = Field(10, ge=1, le=10_000)
    between: str | None = Field(
        None, description="end each journey at the first later touchpoint of this event type"
    )
    links: bool = Field(True, description="count links between steps (for a Sankey)")

    @model_validator(mode="after")
    def _check_between(self) -> FrequencyQuery:
        if self.between is not None and self.direction != "start":
            raise ValueError("between needs direction=start: anchor starts, between ends")
        return self


class VariantQuery(TimelineOptions):
    """Whole timelines counted as variants (each customer's full sequence of event types)."""

    top: int = Field(10, ge=1, le=10_000)
    links: bool = Field(
        False, description="count links between steps (off: whole timelines make long Sankeys)"
    )


class JourneyCount(BaseModel):
    """One journey: its steps, how often it occurs, by how many customers, its share."""

    steps: list[str]
    count: int
    customers: int
    share: float


class OtherJourneys(BaseModel):
    """Every journey outside the top, together."""

    journeys: int = Field(description="distinct journeys outside the top")
    count: int
    customers: int
    share: float


class StepCount(BaseModel):
    """How many journeys have this event type at this step."""

    step: int
    event_type: str
    count: int


class Link(BaseModel):
    """Journeys that go from ``source`` at ``step`` to ``target`` at ``step + 1``."""

    step: int
    source: str
    target: str
    count: int
    median_seconds: float


class FrequencyResult(BaseModel):
    """The answer to a FrequencyQuery or VariantQuery (see the module docstring)."""

    journeys: list[JourneyCount]
    other: OtherJourneys
    step_counts: list[StepCount]
    links: list[Link]
    drop_offs: list[StepCount]
    total_journeys: int
    total_customers: int
    distinct_journeys: int
    not_reached: int = 0


class DrillDown(BaseModel):
    """Which journeys to list the customers of: one journey, or a step, or a link."""

    model_config = ConfigDict(extra="forbid")

    journey: list[str] | None = None
    step: int | None = Field(None, ge=1, le=20, description="1-based, at most max_steps")
    event_type: str | None = None
    target: str | None = Field(None, description="with step and event_type: a link's target")
    limit: int = Field(100, ge=1, le=100_000)
    offset: int = Field(0, ge=0, le=1_000_000_000)

    @model_validator(mode="after")
    def _check_one(self) -> DrillDown:
        by_step = self.step is not None or self.event_type is not None
        if (self.journey is None) == (not by_step):
            raise ValueError("give either journey, or step and event_type (and target)")
        if by_step and (self.step is None or self.event_type is None):
            raise ValueError("step and event_type go together")
        return self


class CustomerList(BaseModel):
    """A page of customer ids behind a drill-down, and how many there are in all."""

    total: int
    customers: list[str]


class FrequencyAnalyzer:
    """Runs frequency and variant queries over the current timelines.

    ``timelines`` returns the timelines to read (``TimelineIndex.load``); ``segments``
    resolves a query's segment to customer ids. Answers are kept for the timelines
    they were counted on (up to ``cache_size`` queries, least recently asked out
    first): dashboards and widgets ask the same few queries over and over, and new
    data gives new timelines, which empties the cache.
    """

    def __init__(
        self,
        timelines: Callable[[], Timelines],
        segments: SegmentLookup | None = None,
        cache_size: int = 256,
        current: Callable[[], Timelines | None] | None = None,
    ) -> None:
        self.timelines = timelines
        self.segments = segments
        self.cache_size = cache_size
        self.current = current
        self._answers: OrderedDict[str, FrequencyResult] = OrderedDict()
        self._answered_on: Timelines | None = None
        self._lock = threading.Lock()
        self._counting: dict[str, threading.Lock] = {}

    def cached(self, query: FrequencyQuery | VariantQuery) -> FrequencyResult | None:
        """The answer counted last time if the timelines are still current; None (without
        waiting or counting anything) otherwise, or when no ``current`` was given.

        The service answers repeated widget queries with this on its event loop, and
        sends only the rest to a thread for ``run``.
        """
        timelines = self.current() if self.current is not None else None
        if timelines is None:
            return None
        key = f"{type(query).__name__}:{query.model_dump_json()}"
        with self._lock:
            if self._answered_on is not timelines:
                return None
            cached = self._answers.get(key)
            if cached is not None:
                self._answers.move_to_end(key)
            return cached

    def run(self, query: FrequencyQuery | VariantQuery) -> FrequencyResult:
        """Count the journeys a query asks for (or return the answer counted last time)."""
        timelines = self.timelines()
        key = f"{type(query).__name__}:{query.model_dump_json()}"
        with self._lock:
            if self._answered_on is not timelines:
                self._answers.clear()
                self._answered_on = timelines
            cached = self._answers.get(key)
            if cached is not None:
                self._answers.move_to_end(key)
                return cached
            gate = self._counting.setdefault(key, threading.Lock())
        # One count of a query at a time: a dashboard opened by many at once asks the
        # same new query many times before the first answer is in, and counting it
        # once each took seconds where once for all takes a fraction of one.
        with gate:
            with self._lock:
                cached = self._answers.get(key) if self._answered_on is timelines else None
            if cached is not None:
                return cached
            try:
                result = self._count(timelines, query)
            except BaseException:
                with self._lock:
                    self._counting.pop(key, None)
                raise
            with self._lock:
                self._counting.pop(key, None)
                if self._answered_on is timelines and self.cache_size > 0:
                    self._answers[key] = result
                    while len(self._answers) > self.cache_size:
                        self._answers.popitem(last=False)
        return result

    def _count(self, timelines: Timelines, query: FrequencyQuery | VariantQuery) -> FrequencyResult:
        selection, journeys, codes = self._journeys(timelines, query)
        counted = _paths.count(selection, journeys, codes)
        width = codes.dtype.itemsize
        names = timelines.event_types
        top = _top(counted, query.top)
        total = len(journeys)
        chosen = int(counted.counts[top].sum())
        customers_total = _distinct_customers(selection, journeys, None)
        in_top = np.zeros(len(counted.counts), bool)
        in_top[top] = True
        outside = np.flatnonzero(~in_top)
        if _paths.one_journey_per_customer(selection, journeys):
            other_customers = int(counted.counts[outside].sum())
        else:
            other_customers = _distinct_customers(selection, journeys, counted.journey, outside)
        max_steps = query.max_steps if isinstance(query, FrequencyQuery) else None
        steps = _paths.step_index(journeys, max_steps)
        vocabulary = len(names)
        found_links = []
        if query.links:
            times = journeys.gather(np.asarray(selection.ts))
            found_links = _paths.links(journeys, steps, codes, times, vocabulary)
        return FrequencyResult(
            journeys=[
                JourneyCount(
                    steps=[names[c] for c in _paths.decode(counted.distinct[j].as_py(), width)],
                    count=int(counted.counts[j]),
                    customers=int(counted.customers[j]),
                    share=_share(int(counted.counts[j]), total),
                )
                for j in top.tolist()
            ],
            other=OtherJourneys(
                journeys=len(outside),
                count=total - chosen,
                customers=other_customers,
                share=_share(total - chosen, total),
            ),
            step_counts=[
                StepCount(step=s + 1, event_type=names[c], count=n)
                for s, c, n in _paths.step_counts(steps, codes, vocabulary)
            ],
            links=[
                Link(
                    step=s + 1,
                    source=names[a],
                    target=names[b],
                    count=n,
                    median_seconds=median / 1000,
                )
                for s, a, b, n, median in found_links
            ],
            drop_offs=[
                StepCount(step=s + 1, event_type=names[c], count=n)
                for s, c, n in _paths.drop_offs(journeys, codes, max_steps, vocabulary)
            ],
            total_journeys=total,
            total_customers=customers_total,
            distinct_journeys=len(counted.counts),
            not_reached=journeys.not_reached,
        )

    def customers(self, query: FrequencyQuery | VariantQuery, drill: DrillDown) -> CustomerList:
        """The customers behind one journey, step or link of a query's answer."""
        timelines = self.timelines()
        selection, journeys, codes = self._journeys(timelines, query)
        if drill.journey is not None:
            wanted = timelines.codes_of("event", drill.journey, "journey")
            matches = _journeys_equal_to(journeys, codes, wanted)
        else:
            assert drill.step is not None and drill.event_type is not None
            max_steps = query.max_steps if isinstance(query, FrequencyQuery) else None
            steps = _paths.step_index(journeys, max_steps)
            (source,) = timelines.codes_of("event", [drill.event_type], "event_type")
            at = (steps == drill.step - 1) & (codes == source)
            if drill.target is not None:
                (target,) = timelines.codes_of("event", [drill.target], "target")
                following = np.zeros(len(codes), bool)
                following[:-1] = (codes[1:] == target) & (steps[1:] == drill.step)
                at &= following
            elements = np.flatnonzero(at)
            matches = np.searchsorted(journeys.offsets, elements, side="right") - 1
        owners = np.unique(selection.customer[journeys.timeline[matches]])
        ids = timelines.customers.take(pa.array(owners, pa.int64()))
        ids = ids.take(pc.sort_indices(ids))
        page = ids[drill.offset : drill.offset + drill.limit]
        return CustomerList(total=len(owners), customers=[str(c) for c in page.to_pylist()])

    def _journeys(
        self, timelines: Timelines, query: FrequencyQuery | VariantQuery
    ) -> tuple[_paths.Selection, _paths.Cut, Any]:
        selection = _paths.select(timelines, self._filters(timelines, query))
        if isinstance(query, VariantQuery):
            anchors, timeline = _paths.anchor(selection, None, end=False, every=False)
            journeys = _paths.cut(selection, anchors, timeline, None, end=False)
        else:
            (code,) = timelines.codes_of("event", [query.anchor], "anchor")
            until = None
            if query.between is not None:
                (until,) = timelines.codes_of("event", [query.between], "between")
            end = query.direction == "end"
            anchors, timeline = _paths.anchor(selection, code, end, query.occurrence == "every")
            journeys = _paths.cut(selection, anchors, timeline, query.max_steps, end, until)
        return selection, journeys, journeys.gather(selection.event)

    def _filters(self, timelines: Timelines, query: TimelineOptions) -> _paths.Filters:
        customers = None
        if query.segment is not None or query.customers is not None:
            customers = np.ones(timelines.customer_count, bool)
            if query.segment is not None:
                if self.segments is None:
                    raise InvalidInput("segment filters need segment definitions; none are loaded")
                ids = self.segments(query.segment.name, query.segment.values)
                customers &= _customer_mask(timelines, ids)
            if query.customers is not None:
                customers &= _customer_mask(timelines, pa.array(query.customers, pa.string()))
        return _paths.Filters(
            since_ms=_milliseconds(query.since),
            until_ms=_milliseconds(query.until),
            channels=None
            if query.channels is None
            else timelines.codes_of("channel", query.channels, "channels"),
            sources=None
            if query.sources is None
            else timelines.codes_of("source", query.sources, "sources"),
            exclude=timelines.codes_of("event", query.exclude, "exclude"),
            customers=customers,
            collapse_repeats=query.collapse_repeats,
            session_gap_ms=None
            if query.session_gap is None
            else int(query.session_gap.total_seconds() * 1000),
        )


def _customer_mask(timelines: Timelines, ids: pa.Array[Any]) -> npt.NDArray[np.bool_]:
    positions = pc.index_in(timelines.customers, value_set=ids)
    return np.asarray(pc.is_valid(positions).to_numpy(zero_copy_only=False), bool)


def _milliseconds(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _top(counted: _paths.Counted, top: int) -> npt.NDArray[np.int64]:
    """The ``top`` distinct journeys by count descending, then steps in name order.

    Only the journeys that can make the top are sorted: those above the ``top``-th
    count, and of those at it (often thousands of journeys seen once), the first
    in name order, picked by a partial sort.
    """
    counts = counted.counts
    if len(counts) > top:
        threshold = np.partition(counts, len(counts) - top)[len(counts) - top]
        above = np.flatnonzero(counts > threshold)
        tied = np.flatnonzero(counts == threshold)
        wanted = top - len(above)
        if len(tied) > wanted:
            first = pc.select_k_unstable(
                counted.distinct.take(tied), k=wanted, sort_keys=[("dummy", "ascending")]
            )
            tied = tied[np.asarray(first.to_numpy(), np.int64)]
        candidates = np.concatenate([above, tied])
    else:
        candidates = np.arange(len(counts))
    table = pa.table(
        {"count": pa.array(counts[candidates]), "steps": counted.distinct.take(candidates)}
    )
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("steps", "ascending")])
    return np.asarray(candidates[np.asarray(order.to_numpy(), np.int64)], np.int64)


def _distinct_customers(
    selection: _paths.Selection,
    journeys: _paths.Cut,
    journey: npt.NDArray[np.int64] | None,
    among: npt.NDArray[np.int64] | None = None,
) -> int:
    """Distinct customers with a journey (of the ``among`` distinct journeys, if given)."""
    timeline = journeys.timeline
    if journey is not None and among is not None:
        timeline = timeline[np.isin(journey, among)]
    if len(timeline) == 0:
        return 0
    owners = selection.customer[timeline]
    if _paths.one_journey_per_customer(selection, journeys):
        return len(owners)
    return len(np.unique(owners))


def _journeys_equal_to(
    journeys: _paths.Cut, codes: Any, wanted: list[int]
) -> npt.NDArray[np.int64]:
    """Indices of the journeys whose codes are exactly ``wanted``."""
    lengths = journeys.lengths
    candidates = np.flatnonzero(lengths == len(wanted))
    matches = np.ones(len(candidates), bool)
    for step, code in enumerate(wanted):
        matches &= codes[journeys.offsets[candidates] + step] == code
    found: npt.NDArray[np.int64] = candidates[matches].astype(np.int64)
    return found
