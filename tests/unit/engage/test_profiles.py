"""Incident profiles: the vectorised evaluator against a plain-Python one, and by hand.

``Reference`` below is written from the semantics in ``engage.profiles``'s docstring,
one event at a time, with Python integers for the fixed-point sums.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage import profiles
from engage._db import transaction
from engage.model import METRICS, Incident
from engage.profiles import (
    INCIDENT_SCHEMA,
    PROBE_IDS_PER_INCIDENT,
    SCALE,
    ProfileEvaluator,
    ensure_schema,
    incidents_from_table,
    read_saved_profiles,
)
from engage.rules import DecisionTable, Rule
from graph.errors import InvalidInput
from tests.unit.engage._probe_fixtures import T0, at, probe, probe_table

MS = 1_000


# -- the reference ---------------------------------------------------------------------


@dataclass
class _Held:
    ts: int
    event_id: str
    cell: str
    weight: float
    metrics: dict[str, float | None]

    @property
    def key(self) -> tuple[int, str]:
        return (self.ts, self.event_id)


@dataclass
class _Subscriber:
    last: tuple[int, str] | None = None
    held: list[_Held] = field(default_factory=list)
    armed: dict[str, bool] = field(default_factory=dict)


class Reference:
    """One event at a time, as the docstring of ``engage.profiles`` says."""

    def __init__(self, table: DecisionTable, forget_after: timedelta | None = None) -> None:
        self.rules = table.enabled_rules
        self.longest = max(rule.window_seconds for rule in self.rules) * MS
        forget = forget_after if forget_after is not None else 2 * table.longest_window
        self.forget = int(forget.total_seconds()) * MS
        self.subscribers: dict[str, _Subscriber] = {}
        self.high_water: int | None = None

    def evaluate(self, rows: list[dict[str, Any]]) -> list[Incident]:
        found: list[tuple[tuple[Any, ...], Incident]] = []
        before = {name: state.last for name, state in self.subscribers.items()}
        touched: set[str] = set()
        ordered = sorted(rows, key=lambda row: (row["subscriber"], _ms(row["ts"]), row["event_id"]))
        for row in ordered:
            name = row["subscriber"]
            touched.add(name)
            state = self.subscribers.setdefault(name, _Subscriber())
            event = _Held(
                _ms(row["ts"]),
                row["event_id"],
                row["cell_id"],
                row["weight"],
                {metric: row[metric] for metric in METRICS},
            )
            if any(held.key == event.key for held in state.held):
                continue
            last = before.get(name)
            state.held.append(event)
            state.held.sort(key=lambda held: held.key)
            if last is not None and event.key <= last:
                continue
            for order, rule in enumerate(self.rules):
                incident = self._observe(name, state, event, rule)
                if incident is not None:
                    found.append(((incident.ts, name, event.event_id, order), incident))
            state.last = event.key
        for name in touched:
            state = self.subscribers[name]
            assert state.last is not None
            state.held = [held for held in state.held if held.ts > state.last[0] - self.longest]
        newest = max(_ms(row["ts"]) for row in rows)
        self.high_water = newest if self.high_water is None else max(self.high_water, newest)
        for name in list(self.subscribers):
            last = self.subscribers[name].last
            assert last is not None
            if last[0] < self.high_water - self.forget:
                del self.subscribers[name]
        return [incident for _, incident in sorted(found, key=lambda pair: pair[0])]

    def _observe(self, name: str, state: _Subscriber, event: _Held, rule: Rule) -> Incident | None:
        window = [
            held
            for held in state.held
            if event.ts - rule.window_seconds * MS < held.ts
            and held.key <= event.key
            and held.metrics[rule.metric] is not None
        ]
        before = [held for held in window if held.key < event.key]
        armed = state.armed.get(rule.name, True)
        if not _active(before, rule):
            armed = True
        incident = None
        if _active(window, rule) and armed:
            weight, total = _sums(window, rule)
            incident = Incident(
                subscriber=name,
                rule=rule.name,
                metric=rule.metric,
                value=total / weight,
                threshold=rule.threshold,
                window_seconds=rule.window_seconds,
                ts=datetime.fromtimestamp(event.ts / MS, T0.tzinfo),
                cells=_worst_cells(window, rule),
                probe_ids=tuple(held.event_id for held in reversed(window))[
                    :PROBE_IDS_PER_INCIDENT
                ],
            )
            armed = False
        elif not _active(window, rule):
            armed = True
        state.armed[rule.name] = armed
        return incident


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * MS)


def _fixed(held: _Held, rule: Rule) -> tuple[int, int]:
    metric = held.metrics[rule.metric]
    assert metric is not None
    return round(held.weight * SCALE), round(held.weight * metric * SCALE)


def _sums(window: list[_Held], rule: Rule) -> tuple[int, int]:
    pairs = [_fixed(held, rule) for held in window]
    return sum(weight for weight, _ in pairs), sum(total for _, total in pairs)


def _active(window: list[_Held], rule: Rule) -> bool:
    weight, total = _sums(window, rule)
    return weight >= round(rule.min_weight * SCALE) and total > rule.threshold * weight


def _worst_cells(window: list[_Held], rule: Rule) -> tuple[str, ...]:
    by_cell: dict[str, int] = {}
    for held in window:
        by_cell[held.cell] = by_cell.get(held.cell, 0) + _fixed(held, rule)[1]
    ranked = sorted((-total, cell) for cell, total in by_cell.items() if total > 0)
    return tuple(cell for _, cell in ranked)


# -- helpers -------------------------------------------------------------------------


def table_of(*rules: Rule) -> DecisionTable:
    return DecisionTable(rules=rules)


DROP = Rule(
    name="drop", metric="call_drop_rate", threshold=0.5, window=timedelta(hours=1), min_weight=2
)


def evaluate(evaluator: ProfileEvaluator, rows: list[dict[str, Any]]) -> list[Incident]:
    return evaluator.evaluate(probe_table(rows))


def short(incidents: list[Incident]) -> list[tuple[str, str, datetime]]:
    return [(incident.subscriber, incident.rule, incident.ts) for incident in incidents]


# -- by hand -------------------------------------------------------------------------


def test_a_crossing_fires_once_and_rearms_when_the_value_falls_back() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    rows = [
        probe("e1", minutes=0, call_drop_rate=1.0),  # weight 1 < min_weight 2
        probe("e2", minutes=1, call_drop_rate=1.0),  # crosses
        probe("e3", minutes=2, call_drop_rate=1.0),  # still above: nothing
        probe("e4", minutes=3, call_drop_rate=0.0, weight=4),  # 3/7: back down
        probe("e5", minutes=4, call_drop_rate=1.0, weight=4),  # 7/11: crosses again
    ]
    incidents = evaluate(evaluator, rows)
    assert [incident.ts for incident in incidents] == [at(1), at(4)]
    assert incidents[0].value == 1.0
    assert incidents[1].value == pytest.approx(7 / 11)
    assert incidents[0].probe_ids == ("e2", "e1")
    assert incidents[0].window_seconds == 3600


def test_a_value_equal_to_the_threshold_is_not_above_it() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    rows = [
        probe("e1", minutes=0, call_drop_rate=1.0),
        probe("e2", minutes=1, call_drop_rate=0.0),
    ]
    assert evaluate(evaluator, rows) == []
    assert len(evaluate(evaluator, [probe("e3", minutes=2, call_drop_rate=0.6)])) == 1


def test_one_bad_call_is_not_enough_evidence() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    assert evaluate(evaluator, [probe("e1", call_drop_rate=1.0, weight=1.5)]) == []
    assert len(evaluate(evaluator, [probe("e2", minutes=1, call_drop_rate=1.0, weight=0.5)])) == 1


def test_events_that_age_out_of_the_window_rearm_the_rule() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    first = evaluate(
        evaluator,
        [probe("e1", minutes=0, call_drop_rate=1.0), probe("e2", minutes=1, call_drop_rate=1.0)],
    )
    assert len(first) == 1
    # 90 minutes on, the window (1h) has emptied: the rule re-armed in between.
    later = evaluate(
        evaluator,
        [probe("e3", minutes=90, call_drop_rate=1.0), probe("e4", minutes=91, call_drop_rate=1.0)],
    )
    assert [incident.ts for incident in later] == [at(91)]
    assert later[0].probe_ids == ("e4", "e3")


def test_a_good_event_ageing_out_makes_the_next_event_cross() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    rows = [
        probe("e1", minutes=0, call_drop_rate=0.0, weight=10),
        probe("e2", minutes=30, call_drop_rate=1.0, weight=2),  # 2/12: below
        probe("e3", minutes=59, call_drop_rate=1.0, weight=1),  # 3/13: below
        probe("e4", minutes=61, call_drop_rate=1.0, weight=1),  # e1 gone: 4/4
    ]
    assert [incident.ts for incident in evaluate(evaluator, rows)] == [at(61)]


def test_null_metrics_are_not_evidence() -> None:
    rules = table_of(
        DROP,
        Rule(
            name="stall",
            metric="video_stalling_share",
            threshold=0.1,
            window=timedelta(hours=1),
            min_weight=1,
        ),
    )
    evaluator = ProfileEvaluator(rules)
    rows = [
        probe("e1", minutes=0, call_drop_rate=1.0, weight=1, video_stalling_share=0.5),
        probe("e2", minutes=1, weight=5, video_stalling_share=0.0),  # no calls measured
        probe("e3", minutes=2, call_drop_rate=1.0, weight=1),
    ]
    incidents = evaluate(evaluator, rows)
    assert short(incidents) == [
        ("+447700900001", "stall", at(0)),
        ("+447700900001", "drop", at(2)),
    ]
    assert incidents[1].probe_ids == ("e3", "e1")


def test_cells_come_worst_first_and_only_those_that_contributed() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    rows = [
        probe("e1", minutes=0, cell="good", call_drop_rate=0.0, weight=3),
        probe("e2", minutes=1, cell="b-cell", call_drop_rate=1.0, weight=2),
        probe("e3", minutes=2, cell="a-cell", call_drop_rate=0.5, weight=4),
        probe("e4", minutes=3, cell="worst", call_drop_rate=1.0, weight=5),
    ]
    incidents = evaluate(evaluator, rows)
    assert len(incidents) == 1
    # Contributions: worst 5, a-cell 2 and b-cell 2 (a tie, by name), good 0.
    assert incidents[0].cells == ("worst", "a-cell", "b-cell")
    assert incidents[0].value == pytest.approx(9 / 14)


def test_probe_ids_are_the_latest_few_newest_first() -> None:
    evaluator = ProfileEvaluator(table_of(DROP.model_copy(update={"min_weight": 8})))
    rows = [probe(f"e{i}", minutes=i, call_drop_rate=1.0) for i in range(8)]
    (incident,) = evaluate(evaluator, rows)
    assert incident.probe_ids == ("e7", "e6", "e5", "e4", "e3")


def test_ties_in_time_go_by_event_id() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    rows = [
        probe("b", minutes=5, call_drop_rate=1.0),
        probe("c", minutes=5, call_drop_rate=0.0, weight=9),
        probe("a", minutes=5, call_drop_rate=1.0),
    ]
    (incident,) = evaluate(evaluator, rows)
    assert incident.probe_ids == ("b", "a")
    assert incident.value == 1.0


def test_a_late_event_counts_for_later_events_but_never_fires() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    assert evaluate(evaluator, [probe("e5", minutes=10, call_drop_rate=1.0)]) == []
    # Late: before e5. Alone it would make the window cross; it is not evaluated.
    assert evaluate(evaluator, [probe("e1", minutes=5, call_drop_rate=1.0)]) == []
    assert evaluator.counters.late_events == 1
    (incident,) = evaluate(evaluator, [probe("e9", minutes=20, call_drop_rate=1.0)])
    assert incident.probe_ids == ("e9", "e5", "e1")


def test_a_late_event_older_than_every_window_is_dropped() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    evaluate(evaluator, [probe("e5", minutes=100, call_drop_rate=1.0)])
    evaluate(evaluator, [probe("e1", minutes=0, call_drop_rate=1.0)])
    assert evaluator.counters.held_events == 1


def test_duplicates_are_dropped() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    first = probe("e1", minutes=0, call_drop_rate=1.0)
    assert evaluate(evaluator, [first, first]) == []
    assert evaluate(evaluator, [first]) == []
    assert evaluator.counters.duplicate_events == 2
    assert len(evaluate(evaluator, [probe("e2", minutes=1, call_drop_rate=1.0)])) == 1


def test_incidents_of_a_batch_come_by_time_then_subscriber_then_rule() -> None:
    rules = table_of(
        Rule(
            name="z-drop",
            metric="call_drop_rate",
            threshold=0.1,
            window=timedelta(hours=1),
            min_weight=1,
        ),
        Rule(
            name="a-low",
            metric="low_bitrate_share",
            threshold=0.1,
            window=timedelta(hours=1),
            min_weight=1,
        ),
    )
    evaluator = ProfileEvaluator(rules)
    rows = [
        probe("x", "+447700900002", 1, call_drop_rate=1.0, low_bitrate_share=1.0),
        probe("y", "+447700900001", 1, call_drop_rate=1.0),
        probe("z", "+447700900003", 0, low_bitrate_share=1.0),
    ]
    assert short(evaluate(evaluator, rows)) == [
        ("+447700900003", "a-low", at(0)),
        ("+447700900001", "z-drop", at(1)),
        ("+447700900002", "z-drop", at(1)),
        ("+447700900002", "a-low", at(1)),
    ]


def test_disabled_rules_do_not_run() -> None:
    evaluator = ProfileEvaluator(
        table_of(DROP, DROP.model_copy(update={"name": "off", "enabled": False}))
    )
    rows = [probe(f"e{i}", minutes=i, call_drop_rate=1.0) for i in range(3)]
    assert {incident.rule for incident in evaluate(evaluator, rows)} == {"drop"}


def test_a_table_with_no_enabled_rule_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no enabled rule"):
        ProfileEvaluator(table_of(DROP.model_copy(update={"enabled": False})))


def test_idle_subscribers_are_forgotten_and_held_events_stay_in_the_window() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    evaluate(
        evaluator, [probe(f"a{i}", "+447700900001", i, call_drop_rate=0.0) for i in range(100)]
    )
    assert evaluator.counters.held_events == 60  # minutes 40..99 of a 1h window
    evaluate(evaluator, [probe("b1", "+447700900002", 221, call_drop_rate=0.0)])
    counters = evaluator.counters
    assert counters.subscribers == 1  # the first one idled > 2h behind the stream
    assert counters.forgotten_subscribers == 1


def test_a_newcomer_never_sees_the_events_of_a_forgotten_subscriber() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    bad = [probe(f"a{i}", SUBSCRIBERS[0], i, call_drop_rate=1.0) for i in range(2)]
    assert len(evaluate(evaluator, bad)) == 1
    evaluate(evaluator, [probe("c1", SUBSCRIBERS[2], 200, call_drop_rate=0.0)])
    assert evaluator.counters.forgotten_subscribers == 1
    # A lagging newcomer, maybe given the forgotten one's slot, has one call: too little.
    assert evaluate(evaluator, [probe("b1", SUBSCRIBERS[1], 1.5, call_drop_rate=1.0)]) == []


def test_an_empty_batch_changes_nothing() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    assert evaluator.evaluate_table(probe_table([])).num_rows == 0
    assert evaluator.counters.events == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weight": -1.0}, "weight"),
        ({"weight": float("inf")}, "weight"),
        ({"weight": 2e6}, "weight"),
        ({"call_drop_rate": 1.5}, "call_drop_rate"),
        ({"video_stalling_share": -0.1}, "video_stalling_share"),
        ({"low_bitrate_share": float("nan")}, "low_bitrate_share"),
    ],
)
def test_a_batch_breaking_the_schema_is_refused_naming_row_and_field(
    change: dict[str, float], message: str
) -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    rows = [probe("e1", call_drop_rate=0.1), {**probe("e2", call_drop_rate=0.1), **change}]
    with pytest.raises(InvalidInput, match=f"row 1, {message}"):
        evaluate(evaluator, rows)
    assert evaluator.counters.events == 0


def test_a_batch_without_a_column_or_with_a_missing_value_is_refused() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    table = probe_table([probe("e1")])
    with pytest.raises(InvalidInput, match="cell_id"):
        evaluator.evaluate_table(table.drop_columns(["cell_id"]))
    with_null = table.set_column(
        table.schema.get_field_index("subscriber"), "subscriber", pa.array([None], pa.string())
    )
    with pytest.raises(InvalidInput, match="row 0, subscriber"):
        evaluator.evaluate_table(with_null)


def test_the_table_form_matches_the_incident_objects() -> None:
    evaluator = ProfileEvaluator(table_of(DROP))
    rows = [probe(f"e{i}", minutes=i, call_drop_rate=1.0) for i in range(3)]
    table = evaluator.evaluate_table(probe_table(rows))
    assert table.schema == INCIDENT_SCHEMA
    assert table.column("event_id").to_pylist() == ["e1"]
    (incident,) = incidents_from_table(table)
    assert incident.as_dict()["ts"] == at(1).isoformat()


# -- against the reference -----------------------------------------------------------

SUBSCRIBERS = ["+447700900001", "+447700900002", "+447700900003"]
CELLS = ["c1", "c2", "c3"]
SHARES = [None, 0.0, 0.05, 0.1, 0.16, 0.2, 0.5, 0.9, 1.0]
WEIGHTS = [0.0, 0.5, 1.0, 1.0, 2.0, 3.0, 7.25]


@st.composite
def decision_tables(draw: st.DrawFn) -> DecisionTable:
    rules = []
    for index in range(draw(st.integers(1, 3))):
        rules.append(
            Rule(
                name=f"rule{index}",
                metric=draw(st.sampled_from(METRICS[:2])),
                threshold=draw(st.sampled_from([0.0, 0.1, 0.16, 0.2, 0.5, 1.0])),
                window=timedelta(minutes=draw(st.sampled_from([5, 10, 30, 60]))),
                min_weight=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5])),
            )
        )
    return DecisionTable(rules=tuple(rules))


@st.composite
def streams(draw: st.DrawFn, ordered: bool = False) -> list[dict[str, Any]]:
    """Probe events of a few subscribers on a few cells, with many ties, repeated
    event ids and null metrics; in processing order (ts, event_id), or not."""
    rows = []
    for _ in range(draw(st.integers(1, 60))):
        rows.append(
            probe(
                f"e{draw(st.integers(0, 40)):02d}",
                draw(st.sampled_from(SUBSCRIBERS)),
                draw(st.integers(0, 300)),
                cell=draw(st.sampled_from(CELLS)),
                weight=draw(st.sampled_from(WEIGHTS)),
                call_drop_rate=draw(st.sampled_from(SHARES)),
                call_quality_impairment=draw(st.sampled_from(SHARES)),
            )
        )
    if ordered:
        rows.sort(key=lambda row: (row["ts"], row["event_id"]))
    return rows


def batches(rows: list[dict[str, Any]], cuts: list[int]) -> list[list[dict[str, Any]]]:
    points = sorted({0, len(rows), *(cut % (len(rows) + 1) for cut in cuts)})
    return [rows[start:end] for start, end in zip(points, points[1:], strict=False) if end > start]


def run_all(evaluator: Any, pieces: list[list[dict[str, Any]]]) -> list[Incident]:
    found: list[Incident] = []
    for piece in pieces:
        if isinstance(evaluator, Reference):
            found += evaluator.evaluate(piece)
        else:
            found += evaluate(evaluator, piece)
    return found


def per_subscriber(incidents: list[Incident]) -> dict[str, list[Incident]]:
    found: dict[str, list[Incident]] = {}
    for incident in incidents:
        found.setdefault(incident.subscriber, []).append(incident)
    return found


@settings(max_examples=400, deadline=None)
@given(decision_tables(), streams(), st.lists(st.integers(0, 60), max_size=5))
def test_the_evaluator_equals_the_reference(
    table: DecisionTable, rows: list[dict[str, Any]], cuts: list[int]
) -> None:
    pieces = batches(rows, cuts)
    assert run_all(ProfileEvaluator(table), pieces) == run_all(Reference(table), pieces)


@settings(max_examples=150, deadline=None)
@given(
    decision_tables(),
    st.lists(streams(), min_size=1, max_size=4),
    st.lists(st.integers(0, 240), max_size=30),
)
def test_many_small_batches_equal_the_reference(
    table: DecisionTable, parts: list[list[dict[str, Any]]], cuts: list[int]
) -> None:
    """Long streams in many pieces: several held runs, merges, forgotten subscribers."""
    rows = [
        {**row, "ts": row["ts"] + timedelta(minutes=200 * index)}
        for index, part in enumerate(parts)
        for row in part
    ]
    pieces = batches(rows, cuts)
    assert run_all(ProfileEvaluator(table), pieces) == run_all(Reference(table), pieces)


@settings(max_examples=150, deadline=None)
@given(decision_tables(), streams(ordered=True), st.lists(st.integers(0, 60), max_size=5))
def test_a_time_ordered_stream_gives_the_same_incidents_however_it_is_cut(
    table: DecisionTable, rows: list[dict[str, Any]], cuts: list[int]
) -> None:
    whole = run_all(ProfileEvaluator(table), [rows])
    # Batches report in turn, so only each subscriber's own order is the same.
    assert per_subscriber(run_all(ProfileEvaluator(table), batches(rows, cuts))) == (
        per_subscriber(whole)
    )
    assert whole == run_all(Reference(table), [rows])


# -- surviving restarts --------------------------------------------------------------


def database() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    ensure_schema(connection)
    return connection


def saved(evaluator: ProfileEvaluator, connection: sqlite3.Connection) -> int:
    with transaction(connection):
        return evaluator.save(connection)


@settings(max_examples=150, deadline=None)
@given(
    decision_tables(),
    streams(),
    st.lists(st.integers(0, 60), max_size=4),
    st.lists(st.integers(0, 10), min_size=1, max_size=3),
)
def test_save_then_load_continues_exactly_as_an_uninterrupted_run(
    table: DecisionTable, rows: list[dict[str, Any]], cuts: list[int], restarts: list[int]
) -> None:
    pieces = batches(rows, cuts)
    expected = run_all(ProfileEvaluator(table), pieces)
    connection = database()
    evaluator = ProfileEvaluator(table)
    found: list[Incident] = []
    for index, piece in enumerate(pieces):
        found += evaluate(evaluator, piece)
        saved(evaluator, connection)
        if index % (restarts[0] + 1) == 0:
            evaluator = ProfileEvaluator(table)
            evaluator.load(connection)
    assert found == expected


def test_save_writes_only_changed_subscribers_and_never_commits() -> None:
    connection = database()
    evaluator = ProfileEvaluator(table_of(DROP))
    evaluate(evaluator, [probe("a1", SUBSCRIBERS[0], 0), probe("b1", SUBSCRIBERS[1], 0)])
    assert saved(evaluator, connection) == 2
    evaluate(evaluator, [probe("a2", SUBSCRIBERS[0], 1)])
    connection.execute("BEGIN")
    assert evaluator.save(connection) == 1
    assert connection.in_transaction
    connection.execute("ROLLBACK")
    stored = read_saved_profiles(connection)
    assert sorted(map(str, stored.events.column("event_id").to_pylist())) == ["a1", "b1"]
    assert stored.subscribers.column("last_event_id").to_pylist() == ["a1", "b1"]


def test_saved_state_holds_only_the_window_and_forgets_idle_subscribers() -> None:
    connection = database()
    evaluator = ProfileEvaluator(table_of(DROP))
    evaluate(evaluator, [probe(f"a{i:03d}", SUBSCRIBERS[0], i) for i in range(100)])
    saved(evaluator, connection)
    assert read_saved_profiles(connection).events.num_rows == 60
    evaluate(evaluator, [probe("b1", SUBSCRIBERS[1], 300)])
    saved(evaluator, connection)
    stored = read_saved_profiles(connection)
    assert stored.subscribers.column("subscriber").to_pylist() == [SUBSCRIBERS[1]]
    assert stored.events.column("event_id").to_pylist() == ["b1"]
    # The chunk of the forgotten subscriber's events is older than every window.
    assert connection.execute("SELECT count(*) FROM profile_event_chunk").fetchone() == (1,)


def test_a_forgotten_subscriber_seen_again_does_not_get_its_old_events_back() -> None:
    connection = database()
    evaluator = ProfileEvaluator(table_of(DROP))
    evaluate(evaluator, [probe("a1", SUBSCRIBERS[0], 100, call_drop_rate=1.0)])
    saved(evaluator, connection)
    evaluate(evaluator, [probe("c1", SUBSCRIBERS[2], 250, call_drop_rate=0.0)])
    assert evaluator.counters.forgotten_subscribers == 1
    # Lagging behind the stream, the first subscriber comes back within an hour of its
    # old event: as a newcomer, whose window does not hold it.
    evaluate(evaluator, [probe("a2", SUBSCRIBERS[0], 150, call_drop_rate=1.0)])
    saved(evaluator, connection)
    reloaded = ProfileEvaluator(table_of(DROP))
    reloaded.load(connection)
    later = [probe("a3", SUBSCRIBERS[0], 151, call_drop_rate=1.0)]
    (incident,) = evaluate(reloaded, later)
    assert incident.probe_ids == ("a3", "a2")
    assert evaluate(evaluator, later) == [incident]
    stored = read_saved_profiles(connection)
    assert sorted(map(str, stored.events.column("event_id").to_pylist())) == ["a2", "c1"]


def test_saved_chunks_stay_bounded_on_a_long_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiles, "_COMPACT_SLACK", 5)
    connection = database()
    evaluator = ProfileEvaluator(table_of(DROP))
    for minute in range(0, 2_000, 20):
        rows = [
            probe(f"e{minute}-{i}", f"+4477009{i:05d}", minute, call_drop_rate=(minute // 60) % 2)
            for i in range(3)
        ]
        evaluate(evaluator, rows)
        saved(evaluator, connection)
    (states,) = connection.execute("SELECT sum(subscribers) FROM profile_state_chunk").fetchone()
    (events,) = connection.execute("SELECT sum(events) FROM profile_event_chunk").fetchone()
    assert states <= 2 * 3 + 5 + 3
    assert events <= 2 * 9 + 5 + 3
    reloaded = ProfileEvaluator(table_of(DROP))
    reloaded.load(connection)
    later = [
        probe(f"f{minute}-{i}", f"+4477009{i:05d}", minute, call_drop_rate=(minute // 60) % 2)
        for minute in range(2_000, 2_300, 20)
        for i in range(3)
    ]
    incidents = evaluate(reloaded, later)
    assert len(incidents) == 9
    assert incidents == evaluate(evaluator, later)


def test_load_keeps_the_rule_state_by_rule_name() -> None:
    connection = database()
    evaluator = ProfileEvaluator(table_of(DROP))
    rows = [probe(f"e{i}", minutes=i, call_drop_rate=1.0) for i in range(3)]
    assert len(evaluate(evaluator, rows)) == 1
    saved(evaluator, connection)
    renamed = DROP.model_copy(update={"name": "drop-renamed"})
    same, other = ProfileEvaluator(table_of(DROP)), ProfileEvaluator(table_of(renamed))
    same.load(connection)
    other.load(connection)
    more = [probe("e9", minutes=9, call_drop_rate=1.0)]
    assert evaluate(same, more) == []  # still above: no new incident
    assert len(evaluate(other, more)) == 1  # a new rule starts armed


def test_ensure_schema_is_idempotent() -> None:
    connection = database()
    ensure_schema(connection)
    tables = {
        name
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert {"profile_state_chunk", "profile_event_chunk", "profile_meta"} <= tables
