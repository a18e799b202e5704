"""A brute-force milestone evaluator (the oracle), its own checks, and test builders.

The reference reads the semantics in docs/milestones.md as literally as possible:
the condition holds at a touchpoint when *some* chain of touchpoints ending there
satisfies every step (found by trying every combination), a customer reaches the
milestone at the first such touchpoint, and the evidence is the chain chosen by the
documented rule (each step's latest group, the latest completion of the previous
step before it). It shares no code with the package's evaluators; other test
modules import it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pyarrow as pa

from ingest.frame import FRAME_SCHEMA
from journeys.milestones import MilestoneDefinition, Step, TouchpointFilter, parse_definition

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Event:
    """A touchpoint as the tests write it: one customer's, at ``ts`` ms after ``T0``."""

    customer: str
    event_id: str
    ts: int
    event_type: str
    source: str = "care"
    channel: str = "care"
    attributes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def moment(self) -> datetime:
        return T0 + timedelta(milliseconds=self.ts)

    @property
    def epoch_ms(self) -> int:
        return (self.moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def definition(condition: dict[str, Any], name: str = "m", version: int = 1) -> MilestoneDefinition:
    return parse_definition(
        {"name": name, "version": version, "description": "test", "condition": condition}
    )


# --- the oracle ---------------------------------------------------------------------


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _same(value: Any, operand: Any) -> bool:
    return _kind(value) is not None and _kind(value) == _kind(operand) and value == operand


def _attribute_holds(value: Any, operator: str, operand: Any) -> bool:
    if _kind(value) is None:
        return False
    if operator == "eq":
        return _same(value, operand)
    if operator == "ne":
        return not _same(value, operand)
    if operator == "in":
        return any(_same(value, x) for x in operand)
    if operator == "not_in":
        return not any(_same(value, x) for x in operand)
    if _kind(value) != "number":
        return False
    comparisons: dict[str, bool] = {
        "lt": value < operand,
        "le": value <= operand,
        "gt": value > operand,
        "ge": value >= operand,
    }
    return comparisons[operator]


def filter_holds(rule: TouchpointFilter, event: Event) -> bool:
    for name in ("event_type", "source", "channel"):
        test = getattr(rule, name)
        if test is None:
            continue
        value = getattr(event, name)
        if test.in_ is not None and value not in test.in_:
            return False
        if test.not_in is not None and value in test.not_in:
            return False
    for name, test in rule.attributes.items():
        value = event.attributes.get(name)
        for operator, operand in test.operators():
            if not _attribute_holds(value, operator, operand):
                return False
    return True


def step_holds(step: Step, event: Event) -> bool:
    if not filter_holds(step, event):
        return False
    return not step.any_of or any(filter_holds(option, event) for option in step.any_of)


def _ms(value: timedelta | None) -> float:
    return float("inf") if value is None else value.total_seconds() * 1000


def reference_reach(
    milestone: MilestoneDefinition, events: list[Event]
) -> tuple[int, tuple[str, ...]] | None:
    """``(reached_at ms, evidence event ids)`` of one customer, or None."""
    timeline = sorted(events, key=lambda e: (e.ts, e.event_id))
    steps = milestone.condition.steps
    matching = [
        [p for p, event in enumerate(timeline) if step_holds(step, event)] for step in steps
    ]

    @cache
    def completes(k: int, p: int) -> bool:
        """Some chain of steps 0..k ends at p (every combination tried)."""
        step = steps[k]
        if p not in matching[k]:
            return False
        earlier = [q for q in matching[k] if q < p]
        for others in itertools.combinations(earlier, step.count - 1):
            group = (*others, p)
            if timeline[p].ts - timeline[group[0]].ts > _ms(step.within):
                continue
            if k == 0:
                return True
            for q in range(group[0]):
                if completes(k - 1, q) and timeline[p].ts - timeline[q].ts <= _ms(step.max_gap):
                    return True
        return False

    def evidence(k: int, p: int) -> tuple[int, ...]:
        """The documented chain: latest group, latest previous completion before it."""
        step = steps[k]
        group = tuple(q for q in matching[k] if q <= p)[-step.count :]
        assert len(group) == step.count
        assert timeline[p].ts - timeline[group[0]].ts <= _ms(step.within)
        if k == 0:
            return group
        previous = [q for q in range(group[0]) if completes(k - 1, q)]
        assert previous, "the latest group must leave room for the previous step"
        assert timeline[p].ts - timeline[previous[-1]].ts <= _ms(step.max_gap)
        return evidence(k - 1, previous[-1]) + group

    last = len(steps) - 1
    for p in range(len(timeline)):
        if completes(last, p):
            return timeline[p].ts, tuple(timeline[q].event_id for q in evidence(last, p))
    return None


def reference_reaches(
    milestone: MilestoneDefinition, events: list[Event]
) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Every customer's reach, by customer."""
    by_customer: dict[str, list[Event]] = {}
    for event in events:
        by_customer.setdefault(event.customer, []).append(event)
    found = {}
    for customer, timeline in by_customer.items():
        reach = reference_reach(milestone, timeline)
        if reach is not None:
            found[customer] = reach
    return found


# --- builders -----------------------------------------------------------------------


def frame(events: list[Event]) -> tuple[pa.Table, pa.Array[Any]]:
    """A touchpoint frame (``FRAME_SCHEMA``) of events, and their customers."""
    columns: dict[str, list[Any]] = {name: [None] * len(events) for name in FRAME_SCHEMA.names}
    columns["event_id"] = [e.event_id for e in events]
    columns["source"] = [e.source for e in events]
    columns["event_type"] = [e.event_type for e in events]
    columns["channel"] = [e.channel for e in events]
    columns["ts"] = [e.moment for e in events]
    columns["attributes"] = [json.dumps(e.attributes) for e in events]
    columns["origin"] = ["test"] * len(events)
    columns["origin_row"] = list(range(1, len(events) + 1))
    table = pa.table(columns, schema=FRAME_SCHEMA)
    return table, pa.array([e.customer for e in events], pa.string())


# --- the oracle's own checks --------------------------------------------------------


def _events(customer: str, *specs: tuple[float, str]) -> list[Event]:
    return [
        Event(customer, f"{customer}-{n:02d}", int(days * DAY_MS), event_type)
        for n, (days, event_type) in enumerate(specs)
    ]


def test_three_in_seven_days_needs_a_window_of_seven_days() -> None:
    milestone = definition({"event_type": "call", "count": 3, "within": "7d"})
    spread = _events("cust:a", (0, "call"), (4, "call"), (8, "call"), (10, "call"))
    assert reference_reach(milestone, spread) == (
        10 * DAY_MS,
        ("cust:a-01", "cust:a-02", "cust:a-03"),
    )
    exact = _events("cust:a", (0, "call"), (3, "call"), (7, "call"))
    assert reference_reach(milestone, exact) == (
        7 * DAY_MS,
        ("cust:a-00", "cust:a-01", "cust:a-02"),
    )
    assert reference_reach(milestone, _events("cust:a", (0, "call"), (8, "call"))) is None


def test_sequence_takes_the_latest_previous_step_within_the_gap() -> None:
    milestone = definition(
        {"steps": [{"event_type": "incident"}, {"event_type": "port", "max_gap": "30d"}]}
    )
    timeline = _events("cust:a", (0, "incident"), (10, "incident"), (35, "port"))
    assert reference_reach(milestone, timeline) == (35 * DAY_MS, ("cust:a-01", "cust:a-02"))
    too_late = _events("cust:a", (0, "incident"), (31, "port"))
    assert reference_reach(milestone, too_late) is None
    wrong_order = _events("cust:a", (0, "port"), (1, "incident"))
    assert reference_reach(milestone, wrong_order) is None


def test_ties_are_ordered_by_event_id() -> None:
    milestone = definition({"steps": [{"event_type": "a"}, {"event_type": "b"}]})
    tied = [Event("cust:a", "e2", 0, "a"), Event("cust:a", "e1", 0, "b")]
    assert reference_reach(milestone, tied) is None
    tied = [Event("cust:a", "e1", 0, "a"), Event("cust:a", "e2", 0, "b")]
    assert reference_reach(milestone, tied) == (0, ("e1", "e2"))


def test_one_touchpoint_never_serves_two_steps() -> None:
    milestone = definition({"steps": [{"event_type": "a"}, {"event_type": "a"}]})
    assert reference_reach(milestone, _events("cust:a", (0, "a"))) is None
    assert reference_reach(milestone, _events("cust:a", (0, "a"), (1, "a"))) == (
        DAY_MS,
        ("cust:a-00", "cust:a-01"),
    )


def test_attribute_filters_skip_missing_and_other_kinds() -> None:
    milestone = definition({"event_type": "csat", "attributes": {"csat": {"le": 2}}})
    timeline = [
        Event("cust:a", "e1", 0, "csat", attributes={}),
        Event("cust:a", "e2", 1, "csat", attributes={"csat": "1"}),
        Event("cust:a", "e3", 2, "csat", attributes={"csat": 3}),
        Event("cust:a", "e4", 3, "csat", attributes={"csat": 2.0}),
    ]
    assert reference_reach(milestone, timeline) == (3, ("e4",))
    unlike = definition({"event_type": "csat", "attributes": {"csat": {"ne": 3}}})
    assert reference_reach(unlike, timeline) == (1, ("e2",))
