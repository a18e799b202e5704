"""Incremental evaluation: milestones kept current from the graph's change feed.

``MilestoneFollower`` reads ``GraphStore.changes`` from a persisted cursor. Each new
PERFORMED edge names a customer and a touchpoint that arrived; the touchpoint's
properties say which steps of which definitions it matches (most match none and
cost one dictionary look-up). For each customer and definition a batch touches, with
``e`` the earliest matching arrival:

* a reach already stored at or before ``e`` stands: whether a condition holds at a
  touchpoint depends only on the touchpoints up to it, and a customer reaches a
  milestone once, at its first hold;
* a definition of one step counting one touchpoint is reached at ``e`` (unless
  reached earlier), without reading anything;
* otherwise the customer's touchpoints from ``ts(e)`` minus the definition's horizon
  (``Condition.horizon``: the longest span of a satisfying chain; all of them when
  unbounded) are evaluated by ``_chains.first_completion`` for the first hold at or
  after ``e``. That covers touchpoints arriving out of order, and customers whose
  history predates the follower: a late touchpoint can only move a reach earlier.

The touchpoints come from a small per-customer state: for recently active
customers, the touchpoints matching some step of a windowed definition since some
time (read once from the store's timeline, then kept up to date from the feed) and
their REACHED edges. A customer the feed shows created after the cursor starts with
an empty state that is complete: its edges are newer than its vertex, so every one
comes through the feed (the store's log keeps everything after a reader's cursor).
A customer whose touchpoints were taken away (a split, a merge) is forgotten and
read again; a REACHED edge changed by someone else (a merge moves the loser's onto
the survivor) is evaluated again on the merged timeline.

The feed is read for the labels and kinds the follower uses only, with each PERFORMED
edge's touchpoint read in the same pass (``GraphStore.changes`` with ``labels`` and
``targets``).

A reach is written (REACHED and EVIDENCED_BY edges, a row in the reach files) only
when it differs from what the graph holds, so re-reading the feed writes nothing.
The cursor is saved after a batch's writes; a restart re-reads at most that batch,
which then writes nothing. A follower sees the touchpoints of the feed after its
cursor: started on a store with history, run a backfill first (or follow from 0).
"""

from __future__ import annotations

import bisect
import gc
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Generic, TypeVar

from pydantic import BaseModel

from graph import ChangeKind, EdgeLabel, GraphStore, UnknownCustomer, Vertex, VertexLabel
from journeys.milestones._chains import first_completion
from journeys.milestones._graph import ReachedEdge, reached_edges, write_milestones, write_reaches
from journeys.milestones._matching import CompiledDefinition, TouchpointMatcher
from journeys.milestones.definitions import MilestoneDefinition
from journeys.milestones.reaches import Reach, ReachStore, milliseconds, moment, reach_table

_PERFORMED: Final = f"{EdgeLabel.PERFORMED}:"
_REACHED: Final = f"{EdgeLabel.REACHED}:"
_TOUCHPOINT: Final = ">tp:"
_MILESTONE: Final = ">ms:"

_FOLLOWED: Final = {
    # Arrivals (with their touchpoints, read in the same pass) and removals.
    EdgeLabel.PERFORMED: tuple(ChangeKind),
    EdgeLabel.REACHED: tuple(ChangeKind),
    # A touchpoint's creation comes with its PERFORMED edge; only corrections matter.
    VertexLabel.TOUCHPOINT: (ChangeKind.UPDATED, ChangeKind.DELETED),
    # A customer created after the cursor needs no timeline read: all of it follows.
    VertexLabel.CUSTOMER: (ChangeKind.CREATED, ChangeKind.DELETED),
}
"""What the follower reads of the feed: everything else is skipped by the store."""

Arrival = tuple[str, Vertex]
"""A touchpoint that arrived: its customer and its vertex."""
EventKey = tuple[int, str]
"""Where a touchpoint sits in a timeline: ``(ts in ms, event id)``."""
Masks = dict[int, int]
"""Step masks of a touchpoint by definition index (only the definitions it matches)."""
T = TypeVar("T")


class FollowSummary(BaseModel):
    """What following the change feed did."""

    batches: int = 0
    changes: int = 0
    touchpoints: int = 0
    customers_evaluated: int = 0
    timelines_read: int = 0
    new: int = 0
    updated: int = 0
    cursor: int = 0
    seconds: float = 0.0

    def add(self, other: FollowSummary) -> None:
        """Accumulate another batch's counts (the cursor is the later one)."""
        counts = ("batches", "changes", "touchpoints", "customers_evaluated", "timelines_read")
        for name in (*counts, "new", "updated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cursor = other.cursor
        self.seconds = round(self.seconds + other.seconds, 3)


class FollowCursor:
    """The feed position a follower has fully handled, in a small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> int:
        """The saved cursor (0 when none)."""
        if not self.path.exists():
            return 0
        return int(json.loads(self.path.read_text(encoding="utf-8"))["cursor"])

    def save(self, cursor: int) -> None:
        """Save atomically (a crash leaves the old or the new cursor, never half)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps({"cursor": cursor}), encoding="utf-8")
        os.replace(temporary, self.path)


@dataclass(frozen=True)
class FeedBatch:
    """What one read of the change feed brought."""

    arrivals: list[Arrival]
    reached: list[tuple[str, str]]
    """``(customer, milestone)`` of REACHED edges written or deleted (by anyone)."""
    forgotten: set[str]
    """Customers who lost touchpoints (a split) or were merged away."""
    born: set[str]
    """Customers created after the cursor: every touchpoint of theirs is in the feed."""
    touchpoints_changed: bool
    """Some touchpoint's properties changed (rare: a correction re-upserted)."""
    cursor: int
    changes: int


@dataclass
class _Window:
    """One customer's touchpoints matching a step of a windowed definition, from ``start``.

    Complete from ``start`` (None: from the beginning) for what the follower has read:
    the store's timeline when it was read, and every arrival since.
    """

    start: int | None
    keys: list[EventKey]
    masks: list[Masks]

    def covers(self, start: int | None) -> bool:
        return self.start is None or (start is not None and self.start <= start)

    def add(self, key: EventKey, masks: Masks) -> None:
        position = bisect.bisect_left(self.keys, key)
        if position < len(self.keys) and self.keys[position] == key:
            return  # read with the timeline before its arrival came through the feed
        self.keys.insert(position, key)
        self.masks.insert(position, masks)

    def events(self, index: int) -> tuple[list[EventKey], list[int]]:
        """The keys and step masks of the touchpoints matching definition ``index``."""
        keys, masks = [], []
        for key, found in zip(self.keys, self.masks, strict=True):
            mask = found.get(index)
            if mask:
                keys.append(key)
                masks.append(mask)
        return keys, masks


class _Recent(Generic[T]):
    """The ``capacity`` most recently used entries by customer."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, T] = OrderedDict()

    def get(self, customer: str) -> T | None:
        found = self._entries.get(customer)
        if found is not None:
            self._entries.move_to_end(customer)
        return found

    def put(self, customer: str, entry: T) -> None:
        self._entries[customer] = entry
        self._entries.move_to_end(customer)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def forget(self, customer: str) -> None:
        self._entries.pop(customer, None)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class _Outcome:
    reaches: list[Reach] = field(default_factory=list)
    replaced: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    new: int = 0
    updated: int = 0
    timelines_read: int = 0


@dataclass(frozen=True)
class _Pending:
    """A definition to evaluate on a customer's touchpoints."""

    index: int
    arrival: EventKey | None  # None: re-evaluate from the start
    current: ReachedEdge | None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for one batch, and back as it was after it.

    A batch makes a few hundred thousand objects (changes, touchpoints, their
    properties) that live until it ends and form no cycles; with the collector on,
    its full passes over them and everything else the process holds took a fifth of
    the follower's time (measured on the real 10k lake's feed). Garbage is freed by
    reference counting meanwhile; anything cyclic waits for the next collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _arrival_key(vertex: Vertex) -> EventKey | None:
    ts = vertex.properties.get("ts")
    return (milliseconds(ts), vertex.id[3:]) if isinstance(ts, datetime) else None


def performed_pair(edge_id: str) -> tuple[str, str] | None:
    """``(customer, touchpoint)`` of a PERFORMED edge id, or None for another edge.

    Ids are ``PERFORMED:<customer>><touchpoint>``; customer keys come from the
    resolver and never hold ``>tp:``, so the first one ends the customer.
    """
    if not edge_id.startswith(_PERFORMED):
        return None
    customer, found, rest = edge_id[len(_PERFORMED) :].partition(_TOUCHPOINT)
    return (customer, "tp:" + rest) if found else None


def _reached_pair(edge_id: str) -> tuple[str, str] | None:
    """``(customer, milestone name)`` of a REACHED edge id."""
    customer, found, name = edge_id.removeprefix(_REACHED).partition(_MILESTONE)
    return (customer, name) if found and edge_id.startswith(_REACHED) else None


class MilestoneFollower:
    """Keeps reaches of definitions current from a store's change feed."""

    def __init__(
        self,
        store: GraphStore,
        lake_root: Path,
        definitions: Sequence[MilestoneDefinition],
        cursor: FollowCursor,
        batch_size: int = 20_000,
        remembered_customers: int = 100_000,
    ) -> None:
        self.store = store
        self.reaches = ReachStore(lake_root)
        self.definitions = [CompiledDefinition.of(definition) for definition in definitions]
        self.matcher = TouchpointMatcher(self.definitions)
        self.cursor = cursor
        self.batch_size = batch_size
        self._by_name = {c.definition.name: i for i, c in enumerate(self.definitions)}
        self._windowed = frozenset(
            index for index, compiled in enumerate(self.definitions) if compiled.horizon_ms != 0
        )
        self._windows: _Recent[_Window] = _Recent(remembered_customers)
        self._reached: _Recent[dict[str, ReachedEdge]] = _Recent(remembered_customers)
        write_milestones(store, definitions)

    # --- the feed -----------------------------------------------------------------

    def read(self, since: int) -> FeedBatch:
        """What the feed holds after cursor ``since`` (one batch of it)."""
        batch = self.store.changes(since, self.batch_size, labels=_FOLLOWED, targets=True)
        arrivals: list[Arrival] = []
        reached: list[tuple[str, str]] = []
        forgotten: set[str] = set()
        born: set[str] = set()
        touchpoints_changed = False
        for change in batch.changes:
            if change.element == "edge":
                if change.label == EdgeLabel.PERFORMED:
                    pair = performed_pair(change.id)
                    if pair is None:
                        continue
                    if change.kind is ChangeKind.DELETED:
                        forgotten.add(pair[0])
                    elif change.target is not None:
                        arrivals.append((pair[0], change.target))
                elif change.label == EdgeLabel.REACHED:
                    milestone = _reached_pair(change.id)
                    if milestone is not None:
                        reached.append(milestone)
            elif change.label == VertexLabel.TOUCHPOINT:
                touchpoints_changed |= change.kind is not ChangeKind.CREATED
            elif change.label == VertexLabel.CUSTOMER:
                if change.kind is ChangeKind.DELETED:
                    forgotten.add(change.id)
                elif change.kind is ChangeKind.CREATED:
                    born.add(change.id)
        return FeedBatch(
            arrivals,
            reached,
            forgotten,
            born,
            touchpoints_changed,
            batch.cursor,
            len(batch.changes),
        )

    def step(self) -> FollowSummary:
        """Handle one batch of the feed and save the cursor."""
        started = time.perf_counter()
        since = self.cursor.load()
        with _collector_paused():
            feed = self.read(since)
            summary = self.apply(feed)
        summary.changes = feed.changes
        summary.batches = 1
        summary.cursor = feed.cursor
        if feed.cursor != since:
            self.cursor.save(feed.cursor)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def follow(
        self,
        idle_exit: float | None = None,
        poll_seconds: float = 0.5,
        on_batch: Callable[[FollowSummary], None] | None = None,
    ) -> FollowSummary:
        """Handle batches until the feed has been quiet for ``idle_exit`` seconds (or forever)."""
        total = FollowSummary(cursor=self.cursor.load())
        quiet_since = time.monotonic()
        while True:
            done = self.step()
            total.add(done)
            if on_batch is not None:
                on_batch(total)
            if done.changes:
                quiet_since = time.monotonic()
                continue
            if idle_exit is not None and time.monotonic() - quiet_since >= idle_exit:
                return total
            time.sleep(poll_seconds)

    # --- evaluation ---------------------------------------------------------------

    def apply(self, feed: FeedBatch) -> FollowSummary:
        """Evaluate what a batch of the feed can change and write the reaches that did."""
        if feed.touchpoints_changed:
            self._windows.clear()
        for customer in feed.forgotten:
            self._windows.forget(customer)
            self._reached.forget(customer)
        for customer in feed.born:
            # Its PERFORMED and REACHED edges are all newer than the vertex: every one
            # is in this batch or a later one, so the feed alone keeps these complete.
            self._windows.put(customer, _Window(None, [], []))
            self._reached.put(customer, {})
        candidates: dict[str, dict[int, EventKey | None]] = {}
        for customer, milestone in feed.reached:
            self._reached.forget(customer)
            index = self._by_name.get(milestone)
            if index is not None:
                candidates.setdefault(customer, {}).setdefault(index, None)
        masks_of = self.matcher.masks
        windowed = self._windowed
        for customer, vertex in feed.arrivals:
            matched = masks_of(vertex.properties)
            if not matched:
                continue
            key = _arrival_key(vertex)
            if key is None:
                continue
            window = self._windows.get(customer)
            if window is not None:
                kept = {index: mask for index, mask in matched.items() if index in windowed}
                if kept:
                    window.add(key, kept)
            earliest = candidates.setdefault(customer, {})
            for index in matched:
                known = earliest.get(index)
                if known is None or key < known:
                    earliest[index] = key
        outcome = _Outcome()
        for customer, earliest in candidates.items():
            self._evaluate_customer(customer, earliest, outcome)
        if outcome.reaches:
            write_reaches(self.store, outcome.reaches, outcome.replaced)
            self.reaches.append(reach_table(outcome.reaches))
            for reach in outcome.reaches:
                self._remember(reach)
        return FollowSummary(
            touchpoints=len(feed.arrivals),
            customers_evaluated=len(candidates),
            timelines_read=outcome.timelines_read,
            new=outcome.new,
            updated=outcome.updated,
        )

    def _reached_of(self, customer: str) -> dict[str, ReachedEdge]:
        found = self._reached.get(customer)
        if found is None:
            found = reached_edges(self.store, customer)
            self._reached.put(customer, found)
        return found

    def _remember(self, reach: Reach) -> None:
        known = self._reached.get(reach.customer)
        if known is not None:
            known[reach.milestone] = ReachedEdge(
                reach.customer,
                reach.milestone,
                reach.version,
                reach.reached_at,
                reach.evidence,
                reach.customer,
            )

    def _evaluate_customer(
        self, customer: str, earliest: dict[int, EventKey | None], outcome: _Outcome
    ) -> None:
        existing = self._reached_of(customer)
        windowed: list[_Pending] = []
        again: list[_Pending] = []
        start: int | None = None
        full = False
        for index, arrival in earliest.items():
            compiled = self.definitions[index]
            definition = compiled.definition
            edge = existing.get(definition.name)
            current = edge if edge is not None and edge.version == definition.version else None
            moved = current is not None and current.evaluated_for != customer
            if moved:
                again.append(_Pending(index, None, current))
                continue
            if arrival is None or (current is not None and _reach_key(current) <= arrival):
                continue
            if compiled.horizon_ms == 0:
                at = moment(arrival[0])
                found = Reach(customer, definition.name, definition.version, at, (arrival[1],))
                self._record(found, current, outcome)
                continue
            windowed.append(_Pending(index, arrival, current))
            if compiled.horizon_ms is None:
                full = True
            else:
                begins = arrival[0] - compiled.horizon_ms
                start = begins if start is None else min(start, begins)
        if windowed:
            window = self._window(customer, None if full else start, outcome)
            if window is not None:
                for pending in windowed:
                    keys, masks = window.events(pending.index)
                    self._complete(customer, pending, keys, masks, outcome)
        if again:
            self._evaluate_again(customer, again, outcome)

    def _complete(
        self,
        customer: str,
        pending: _Pending,
        keys: list[EventKey],
        masks: list[int],
        outcome: _Outcome,
    ) -> None:
        """Find the first hold at or after the arrival and record it if it is news."""
        compiled = self.definitions[pending.index]
        first = 0 if pending.arrival is None else bisect.bisect_left(keys, pending.arrival)
        done = first_completion([key[0] for key in keys], masks, compiled.steps, first)
        if done is None:
            return
        definition = compiled.definition
        found = Reach(
            customer,
            definition.name,
            definition.version,
            moment(done.ts),
            tuple(keys[position][1] for position in done.chain),
        )
        self._record(found, pending.current, outcome)

    def _evaluate_again(self, customer: str, again: list[_Pending], outcome: _Outcome) -> None:
        """Definitions whose REACHED edge a merge moved here: evaluate the whole timeline."""
        vertices = self._timeline(customer, None, outcome)
        if vertices is None:
            return
        timeline = [(key, vertex) for vertex in vertices if (key := _arrival_key(vertex))]
        for pending in again:
            compiled = self.definitions[pending.index]
            masks = [compiled.mask(vertex.properties) for _, vertex in timeline]
            keys = [key for key, _ in timeline]
            # The survivor's own earlier evidence edges are not in the moved edge.
            name = compiled.definition.name
            outcome.replaced[(customer, name)] = tuple(event for _, event in keys)
            self._complete(customer, pending, keys, masks, outcome)

    def _window(self, customer: str, start: int | None, outcome: _Outcome) -> _Window | None:
        """The customer's touchpoints from ``start`` (None: all): remembered, or read."""
        cached = self._windows.get(customer)
        if cached is not None and cached.covers(start):
            return cached
        vertices = self._timeline(customer, start, outcome)
        if vertices is None:
            return None
        window = _Window(start, [], [])
        for vertex in vertices:
            key = _arrival_key(vertex)
            if key is None:
                continue
            matched = self.matcher.masks(vertex.properties)
            kept = {index: mask for index, mask in matched.items() if index in self._windowed}
            if kept:
                window.keys.append(key)
                window.masks.append(kept)
        self._windows.put(customer, window)
        return window

    def _timeline(self, customer: str, start: int | None, outcome: _Outcome) -> list[Vertex] | None:
        try:
            vertices = self.store.timeline(customer, None if start is None else moment(start))
        except UnknownCustomer:
            return None  # merged away since; the survivor's arrivals follow in the feed
        outcome.timelines_read += 1
        return vertices

    def _record(self, found: Reach, current: ReachedEdge | None, outcome: _Outcome) -> None:
        if current is not None and current.same_as(found):
            return
        outcome.reaches.append(found)
        if current is None:
            outcome.new += 1
            return
        outcome.updated += 1
        replaced = outcome.replaced.setdefault((found.customer, found.milestone), ())
        outcome.replaced[(found.customer, found.milestone)] = replaced + current.evidence


def _reach_key(edge: ReachedEdge) -> EventKey:
    return milliseconds(edge.reached_at), edge.evidence[-1] if edge.evidence else ""
