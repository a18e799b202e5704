"""Backfill and incremental evaluation agree with the brute-force reference, exactly.

Random timelines (timestamp ties, single touchpoints, conditions that never hold),
random conditions (counts, windows, sequences with gaps, attribute filters), and
random arrival orders: the incremental path sees touchpoints batch by batch in any
order, the backfill sees the final lake, and both must give every customer the
reach the reference gives, evidence included.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph import EdgeLabel, EmbeddedStore
from ingest.frame_writer import FrameWriter
from ingest.lake import Lake
from journeys.milestones import (
    FollowCursor,
    MilestoneBackfill,
    MilestoneDefinition,
    MilestoneFollower,
    read_reaches,
)
from journeys.milestones._chains import first_completion
from journeys.milestones._matching import CompiledDefinition
from journeys.milestones._vectorised import first_reaches
from journeys.milestones.reaches import milliseconds
from tests.unit.journeys.test_milestones_reference import (
    DAY_MS,
    T0,
    Event,
    definition,
    frame,
    reference_reaches,
)

HALF_DAY = DAY_MS // 2
T0_MS = milliseconds(T0)
EVENT_TYPES = ["call", "incident", "port", "survey"]


@st.composite
def timelines(draw: st.DrawFn, customers: int = 3, longest: int = 9) -> list[Event]:
    """Touchpoints of a few customers; few distinct times, so ties are common."""
    ids = iter(draw(st.permutations(range(customers * longest))))
    events = []
    for number in range(draw(st.integers(1, customers))):
        for _ in range(draw(st.integers(0, longest))):
            attributes: dict[str, Any] = {}
            if draw(st.booleans()):
                attributes["n"] = draw(st.integers(0, 4))
            if draw(st.booleans()):
                attributes["o"] = draw(st.sampled_from(["x", "y"]))
            events.append(
                Event(
                    customer=f"cust:c{number}",
                    event_id=f"e{next(ids):03d}",
                    ts=draw(st.integers(0, 24)) * HALF_DAY,
                    event_type=draw(st.sampled_from(EVENT_TYPES)),
                    source=draw(st.sampled_from(["care", "web"])),
                    channel=draw(st.sampled_from(["care", "app"])),
                    attributes=attributes,
                )
            )
    return events


@st.composite
def attribute_filters(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        operator = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"]))
        operand: Any = draw(st.integers(0, 4))
        if operator in ("in", "not_in"):
            operand = draw(st.lists(st.integers(0, 4), min_size=1, max_size=2))
        return {"n": {operator: operand}}
    return {"o": draw(st.sampled_from(["x", {"ne": "x"}, ["x", "y"], {"not_in": ["y"]}]))}


@st.composite
def touchpoint_filters(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    kind = draw(st.sampled_from(["in", "not_in", "source", "none"]))
    if kind == "in":
        rule["event_type"] = draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=2))
    elif kind == "not_in":
        rule["event_type"] = {"not_in": [draw(st.sampled_from(EVENT_TYPES))]}
    elif kind == "source":
        rule["source"] = draw(st.sampled_from(["care", "web"]))
    if draw(st.integers(0, 3)) == 0:
        rule["channel"] = draw(st.sampled_from(["care", "app"]))
    if draw(st.integers(0, 2)) == 0:
        rule["attributes"] = draw(attribute_filters())
    return rule


@st.composite
def conditions(draw: st.DrawFn) -> MilestoneDefinition:
    steps = []
    for index in range(draw(st.integers(1, 3))):
        step = draw(touchpoint_filters())
        if draw(st.integers(0, 4)) == 0:
            step["any_of"] = [draw(touchpoint_filters()), draw(touchpoint_filters())]
        count = draw(st.integers(1, 3))
        # Windows and gaps two times in three: bounded conditions are the ones the
        # incremental path evaluates on a window of the timeline.
        if count > 1:
            step["count"] = count
            if draw(st.integers(0, 2)):
                step["within"] = f"{draw(st.integers(1, 6))}d"
        if index and draw(st.integers(0, 2)):
            step["max_gap"] = f"{draw(st.integers(1, 8))}d"
        steps.append(step)
    return definition({"steps": steps})


def properties(event: Event) -> dict[str, Any]:
    return {
        "event_type": event.event_type,
        "source": event.source,
        "channel": event.channel,
        **event.attributes,
    }


def expected(milestone: MilestoneDefinition, events: list[Event]) -> dict[str, Any]:
    """The reference's reaches with reached_at in epoch milliseconds."""
    return {
        customer: (T0_MS + ts, evidence)
        for customer, (ts, evidence) in reference_reaches(milestone, events).items()
    }


@settings(max_examples=400, deadline=None)
@given(conditions(), timelines())
def test_both_evaluators_agree_with_the_reference(
    milestone: MilestoneDefinition, events: list[Event]
) -> None:
    compiled = CompiledDefinition.of(milestone)
    ordered = sorted(events, key=lambda e: (e.customer, e.ts, e.event_id))
    reference = reference_reaches(milestone, events)

    one_at_a_time = {}
    for customer in {e.customer for e in ordered}:
        timeline = [e for e in ordered if e.customer == customer]
        masks = [compiled.mask(properties(e)) for e in timeline]
        done = first_completion([e.ts for e in timeline], masks, compiled.steps)
        if done is not None:
            one_at_a_time[customer] = (done.ts, tuple(timeline[p].event_id for p in done.chain))
    assert one_at_a_time == reference

    codes = {customer: code for code, customer in enumerate(sorted({e.customer for e in ordered}))}
    masks = [compiled.mask(properties(e)) for e in ordered]
    found = first_reaches(
        np.array([codes[e.customer] for e in ordered], np.int64),
        np.array([e.ts for e in ordered], np.int64),
        [
            np.array([bool(mask >> k & 1) for mask in masks], bool)
            for k in range(len(compiled.steps))
        ],
        compiled.steps,
    )
    vectorised = {
        ordered[position].customer: (
            ordered[position].ts,
            tuple(ordered[p].event_id for p in chain),
        )
        for position, chain in zip(found.completion, found.evidence, strict=True)
    }
    assert vectorised == reference


@contextmanager
def deployment() -> Iterator[tuple[EmbeddedStore, Lake, Path]]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = EmbeddedStore(root / "graph.db")
        try:
            yield store, Lake(root / "lake"), root
        finally:
            store.close()


def arrive(store: EmbeddedStore, lake: Lake, events: list[Event], batch: int) -> None:
    """Ingest one batch of touchpoints into the graph and the lake."""
    table, customers = frame(events)
    FrameWriter(store).write(table, customers, {})
    lake.append(table, customers, f"part-{batch}", batch)


def stored_reaches(lake: Lake) -> dict[str, Any]:
    return {
        row["customer"]: (milliseconds(row["reached_at"]), tuple(row["evidence"]))
        for row in read_reaches(lake.root).to_pylist()
    }


def graph_reaches(store: EmbeddedStore) -> dict[str, Any]:
    table = store.export_edges(EdgeLabel.REACHED).to_pylist()
    return {
        row["source"]: (milliseconds(row["reached_at"]), row["evidence_count"]) for row in table
    }


def catch_up(follower: MilestoneFollower) -> None:
    while follower.step().changes:
        pass


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions(), timelines(), st.data())
def test_incremental_and_backfill_agree_with_the_reference(
    milestone: MilestoneDefinition, events: list[Event], data: st.DataObject
) -> None:
    """Touchpoints arrive in random batches, in random order; both paths end up right."""
    arrival = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), min_size=1, max_size=4)))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    want = expected(milestone, events)
    with deployment() as (store, lake, root):
        follower = MilestoneFollower(store, lake.root, [milestone], FollowCursor(root / "c.json"))
        for number, batch in enumerate(batches, start=1):
            if batch:
                arrive(store, lake, batch, number)
            catch_up(follower)
        assert stored_reaches(lake) == want
        in_graph = graph_reaches(store)
        assert in_graph == {c: (ts, len(evidence)) for c, (ts, evidence) in want.items()}

        again = MilestoneBackfill(lake, store).run([milestone])
        assert (again.new, again.updated, again.retracted) == (0, 0, 0)
        assert again.unchanged == len(want)
        files = len(list((lake.root / "milestones").glob("*.parquet")))

        reread = MilestoneFollower(store, lake.root, [milestone], FollowCursor(root / "d.json"))
        catch_up(reread)
        assert len(list((lake.root / "milestones").glob("*.parquet"))) == files
        assert graph_reaches(store) == in_graph


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions(), timelines())
def test_backfill_alone_agrees_with_the_reference(
    milestone: MilestoneDefinition, events: list[Event]
) -> None:
    with deployment() as (store, lake, _):
        if events:
            arrive(store, lake, events, 1)
        summary = MilestoneBackfill(lake, store).run([milestone])
        assert summary.new == len(expected(milestone, events))
        assert stored_reaches(lake) == expected(milestone, events)
        evidence = store.export_edges(EdgeLabel.EVIDENCED_BY).to_pylist()
        assert sorted(row["target"] for row in evidence) == sorted(
            "tp:" + event for _, chain in expected(milestone, events).values() for event in chain
        )
