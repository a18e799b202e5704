"""The incident log by cell and the cell sentiment report, on hand-built cases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage._db import open_engage_db, transaction
from engage.cells import (
    CellSentiment,
    CellSentimentQuery,
    CellSentimentRunner,
    Metric,
    ensure_schema,
    record_incidents,
)
from engage.feedback import FeedbackService
from engage.model import METRICS, Engagement, Incident, dedupe_key, engagement_id
from graph.errors import InvalidInput

T0 = datetime(2024, 6, 3, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def incident(subscriber: str, metric: str, hours: float, *cells: str) -> Incident:
    return Incident(
        subscriber=subscriber,
        rule=f"{metric}_high",
        metric=metric,
        value=0.25,
        threshold=0.1,
        window_seconds=3600,
        ts=T0 + hours * HOUR,
        cells=cells,
    )


def engagement_for(found: Incident) -> Engagement:
    key = dedupe_key(found.subscriber, found.rule)
    return Engagement(
        engagement_id=engagement_id(key, found.ts),
        subscriber=found.subscriber,
        rule=found.rule,
        created_at=found.ts,
        dedupe_key=key,
        incidents=(found,),
    )


class Engagements:
    """A hand-made engagement lookup."""

    def __init__(self, engagements: list[Engagement]) -> None:
        self.by_id = {e.engagement_id: e for e in engagements}

    def engagement(self, engagement_id: str) -> Engagement | None:
        return self.by_id.get(engagement_id)


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = open_engage_db(tmp_path / "engage.db")
    ensure_schema(db)
    yield db
    db.close()


def report(connection: sqlite3.Connection, **fields: Any) -> list[CellSentiment]:
    return CellSentimentRunner(connection).run(CellSentimentQuery.of(**fields)).cells


def row(cell: CellSentiment) -> tuple[Any, ...]:
    return (cell.rank, cell.cell_id, cell.subscribers, cell.incidents, cell.answers)


# Ann: a drop on A and B, then stalling on A; Ben: a drop on A; Cat: a drop on B;
# Dan: low bitrate on C. Ann answers 1 twice, Ben 2, Cat 5; Dan does not answer.
ANN_DROP = incident("ann", "call_drop_rate", 1, "A", "B")
ANN_STALL = incident("ann", "video_stalling_share", 2, "A")
BEN_DROP = incident("ben", "call_drop_rate", 3, "A")
CAT_DROP = incident("cat", "call_drop_rate", 4, "B")
DAN_SLOW = incident("dan", "low_bitrate_share", 5, "C")
INCIDENTS = [ANN_DROP, ANN_STALL, BEN_DROP, CAT_DROP, DAN_SLOW]
ANSWERS = [(ANN_DROP, 1), (BEN_DROP, 2), (CAT_DROP, 5), (ANN_STALL, 1)]
DAY_ONE = {"start": T0, "end": T0 + DAY}


@pytest.fixture
def hand_built(connection: sqlite3.Connection) -> sqlite3.Connection:
    engagements = [engagement_for(found) for found in INCIDENTS]
    with transaction(connection):
        record_incidents(connection, INCIDENTS, [e.engagement_id for e in engagements])
    service = FeedbackService(connection, Engagements(engagements), clock=lambda: T0 + 2 * DAY)
    for found, score in ANSWERS:
        service.record(engagement_for(found).engagement_id, score)
    return connection


def test_the_report_matches_the_hand_computation(hand_built: sqlite3.Connection) -> None:
    # Changes (after - before, EWMA alpha 0.3 from 0): Ann's drop 1 -> -0.3, Ben 2 ->
    # -0.15, Cat 5 -> +0.3, Ann's stalling 1 from -0.3 -> -0.51, so -0.21.
    # A: Ann, Ben; 3 incidents; answers -0.3, -0.15, -0.21: mean -0.22, priority 0.44.
    # B: Ann, Cat; 2 incidents; answers -0.3, +0.3: mean 0, priority 0.
    # C: Dan; 1 incident; no answers: priority 0, after B (fewer subscribers).
    a, b, c = report(hand_built, **DAY_ONE)
    assert [row(cell) for cell in (a, b, c)] == [
        (1, "A", 2, 3, 3),
        (2, "B", 2, 2, 2),
        (3, "C", 1, 1, 0),
    ]
    assert a.sentiment_change == pytest.approx(-0.22)
    assert a.mean_score == pytest.approx(4 / 3)
    assert a.priority == pytest.approx(0.44)
    assert b.sentiment_change == pytest.approx(0.0) and b.priority == pytest.approx(0.0)
    assert b.mean_score == pytest.approx(3.0)
    assert (c.sentiment_change, c.mean_score, c.priority) == (None, None, 0.0)


def test_a_metric_keeps_its_incidents_and_the_answers_about_it(
    hand_built: sqlite3.Connection,
) -> None:
    a, b = report(hand_built, metric="call_drop_rate", **DAY_ONE)
    assert [row(cell) for cell in (a, b)] == [(1, "A", 2, 2, 2), (2, "B", 2, 2, 2)]
    assert a.sentiment_change == pytest.approx(-0.225)
    assert a.priority == pytest.approx(0.45)
    assert report(hand_built, metric="low_bitrate_share", **DAY_ONE)[0].cell_id == "C"


def test_min_subscribers_and_limit_trim_the_ranking(hand_built: sqlite3.Connection) -> None:
    runner = CellSentimentRunner(hand_built)
    trimmed = runner.run(CellSentimentQuery.of(min_subscribers=2, **DAY_ONE))
    assert [c.cell_id for c in trimmed.cells] == ["A", "B"] and trimmed.cells_total == 2
    top = runner.run(CellSentimentQuery.of(limit=1, **DAY_ONE))
    assert [c.cell_id for c in top.cells] == ["A"] and top.cells_total == 3


def test_the_period_is_event_time(hand_built: sqlite3.Connection) -> None:
    # From hour 3 on: Ben on A, Cat on B, Dan on C, and only their answers.
    a, b, c = report(hand_built, start=T0 + 3 * HOUR, end=T0 + DAY)
    assert [row(cell) for cell in (a, b, c)] == [
        (1, "A", 1, 1, 1),
        (2, "B", 1, 1, 1),
        (3, "C", 1, 1, 0),
    ]
    assert a.sentiment_change == pytest.approx(-0.15)
    assert b.sentiment_change == pytest.approx(0.3)
    assert report(hand_built, start=T0 + DAY, end=T0 + 2 * DAY) == []


def test_ties_are_broken_by_subscribers_incidents_then_cell_id(
    connection: sqlite3.Connection,
) -> None:
    found = [
        incident("ann", "call_drop_rate", 1, "Z", "M", "Q"),
        incident("ben", "call_drop_rate", 1, "Q"),
        incident("ben", "low_bitrate_share", 2, "Q", "M"),
    ]
    record_incidents(connection, found, [None, None, None])
    cells = report(connection, **DAY_ONE)
    # No answers, so every priority is 0. Q and M both have Ann and Ben, but Q has three
    # incidents and M two; Z has Ann alone. Then X, Y and Z tie on everything.
    assert [row(cell) for cell in cells] == [
        (1, "Q", 2, 3, 0),
        (2, "M", 2, 2, 0),
        (3, "Z", 1, 1, 0),
    ]
    record_incidents(connection, [incident("cat", "call_drop_rate", 3, "Y", "X")], [None])
    names = [cell.cell_id for cell in report(connection, **DAY_ONE)]
    assert names == ["Q", "M", "X", "Y", "Z"]


def test_recording_incidents_again_adds_nothing(connection: sqlite3.Connection) -> None:
    engagements = [engagement_for(found).engagement_id for found in INCIDENTS]
    assert record_incidents(connection, INCIDENTS, engagements) == 6
    assert record_incidents(connection, INCIDENTS, engagements) == 0
    assert record_incidents(connection, INCIDENTS[:2], [None, None]) == 0
    stored = connection.execute(
        "SELECT subscriber, cell_id, rule, metric, value, ts_ms, engagement_id "
        "FROM cell_incidents WHERE subscriber = 'ann' ORDER BY ts_ms, cell_id"
    ).fetchall()
    ms = int(ANN_DROP.ts.timestamp() * 1000)
    assert stored == [
        ("ann", "A", "call_drop_rate_high", "call_drop_rate", 0.25, ms, engagements[0]),
        ("ann", "B", "call_drop_rate_high", "call_drop_rate", 0.25, ms, engagements[0]),
        (
            "ann",
            "A",
            "video_stalling_share_high",
            "video_stalling_share",
            0.25,
            ms + 3_600_000,
            engagements[1],
        ),
    ]


def test_recording_takes_part_in_the_callers_transaction(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN IMMEDIATE")
    ensure_schema(connection)
    record_incidents(connection, INCIDENTS, [None] * len(INCIDENTS))
    assert connection.in_transaction
    connection.execute("ROLLBACK")
    assert connection.execute("SELECT count(*) FROM cell_incidents").fetchone() == (0,)


def test_bad_input_is_refused(connection: sqlite3.Connection) -> None:
    with pytest.raises(InvalidInput, match="2 incidents but 1 engagement ids"):
        record_incidents(connection, INCIDENTS[:2], [None])
    naive = Incident("ann", "r", "call_drop_rate", 0.3, 0.1, 60, datetime(2024, 1, 1), ("A",))
    with pytest.raises(InvalidInput, match="incident 1 ts is a naive datetime"):
        record_incidents(connection, [ANN_DROP, naive], [None, None])
    assert connection.execute("SELECT count(*) FROM cell_incidents").fetchone() == (0,)
    with pytest.raises(InvalidInput, match="start must be before end"):
        CellSentimentQuery.of(start=T0, end=T0)
    with pytest.raises(InvalidInput, match="metric"):
        CellSentimentQuery.of(metric="latency")
    with pytest.raises(InvalidInput, match="start"):
        CellSentimentQuery.of(start=datetime(2024, 1, 1))
    with pytest.raises(InvalidInput, match="limit"):
        CellSentimentQuery.of(limit=0)
    # What the OpenAPI fuzzer found: a SQLite integer overflow and a date underflow.
    with pytest.raises(InvalidInput, match="min_subscribers"):
        CellSentimentQuery.of(min_subscribers=2**63)
    with pytest.raises(InvalidInput, match="end must be between 1970 and 9000"):
        CellSentimentQuery.of(end=datetime(1, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="start must be between 1970 and 9000"):
        CellSentimentQuery.of(start=datetime(9999, 1, 1, tzinfo=UTC))


def test_the_default_period_is_the_30_days_before_the_latest_incident(
    connection: sqlite3.Connection,
) -> None:
    record_incidents(connection, INCIDENTS, [None] * len(INCIDENTS))
    late = incident("eve", "call_drop_rate", 24 * 40, "E")
    record_incidents(connection, [late], [None])
    runner = CellSentimentRunner(connection)
    result = runner.run(CellSentimentQuery())
    assert result.end == late.ts + timedelta(milliseconds=1)
    assert result.start == result.end - timedelta(days=30)
    assert [cell.cell_id for cell in result.cells] == ["E"]
    from_start = runner.run(CellSentimentQuery(start=T0))
    assert from_start.end == result.end and from_start.cells_total == 4


def test_with_no_incidents_the_period_ends_now(connection: sqlite3.Connection) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    result = CellSentimentRunner(connection, clock=lambda: now).run(CellSentimentQuery())
    assert (result.start, result.end, result.cells_total, result.cells) == (
        now - timedelta(days=30),
        now,
        0,
        [],
    )


# --- against a plain-Python reference ---------------------------------------------------

SUBSCRIBERS = ["s1", "s2", "s3", "s4"]
CELLS = ["A", "B", "C", "D"]
SOME_METRICS = ["call_drop_rate", "video_stalling_share"]

incidents_strategy = st.lists(
    st.builds(
        incident,
        st.sampled_from(SUBSCRIBERS),
        st.sampled_from(SOME_METRICS),
        st.integers(0, 47),
        st.sampled_from(CELLS),
        st.sampled_from(CELLS),
    ),
    min_size=1,
    max_size=20,
)


def reference(
    incidents: list[Incident],
    answered: list[tuple[Engagement, float, int]],
    start: datetime,
    end: datetime,
    metric: str | None,
) -> dict[str, tuple[int, int, int, float | None]]:
    """Per cell: subscribers, incidents, answers, mean change (module docstring)."""
    unique = {(i.subscriber, i.rule, i.ts, cell): i for i in incidents for cell in i.cells}
    subscribers: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for (subscriber, _, ts, cell), found in unique.items():
        if start <= ts < end and metric in (None, found.metric):
            subscribers.setdefault(cell, set()).add(subscriber)
            counts[cell] = counts.get(cell, 0) + 1
    changes: dict[str, list[float]] = {}
    for about, change, _ in answered:
        if not start <= about.created_at < end:
            continue
        cells = {c for i in about.incidents if metric in (None, i.metric) for c in i.cells}
        for cell in cells:
            changes.setdefault(cell, []).append(change)
    return {
        cell: (
            len(subscribers[cell]),
            counts[cell],
            len(changes.get(cell, [])),
            sum(changes[cell]) / len(changes[cell]) if cell in changes else None,
        )
        for cell in subscribers
    }


@settings(max_examples=60, deadline=None)
@given(
    incidents=incidents_strategy,
    answer_picks=st.lists(st.tuples(st.integers(0, 19), st.integers(1, 5)), max_size=10),
    window=st.tuples(st.integers(0, 47), st.integers(1, 48)).filter(lambda w: w[0] < w[1]),
    metric=st.sampled_from([None, *SOME_METRICS]),
)
def test_the_report_agrees_with_a_plain_python_reference(
    tmp_path_factory: pytest.TempPathFactory,
    incidents: list[Incident],
    answer_picks: list[tuple[int, int]],
    window: tuple[int, int],
    metric: str | None,
) -> None:
    db = open_engage_db(tmp_path_factory.mktemp("cells") / "engage.db")
    try:
        engagements = {e.engagement_id: e for e in map(engagement_for, incidents)}
        ensure_schema(db)
        record_incidents(db, incidents, [engagement_for(i).engagement_id for i in incidents])
        service = FeedbackService(db, Engagements(list(engagements.values())))
        answered, seen = [], set()
        ids = list(engagements)
        for pick, score in answer_picks:
            chosen = ids[pick % len(ids)]
            if chosen not in seen:
                seen.add(chosen)
                update = service.record(chosen, score)
                answered.append((engagements[chosen], update.change, score))
        start, end = T0 + window[0] * HOUR, T0 + window[1] * HOUR
        result = CellSentimentRunner(db).run(
            CellSentimentQuery(start=start, end=end, metric=metric)  # type: ignore[arg-type]
        )
        expected = reference(incidents, answered, start, end, metric)
        got = {
            c.cell_id: (c.subscribers, c.incidents, c.answers, c.sentiment_change)
            for c in result.cells
        }
        assert got.keys() == expected.keys() and result.cells_total == len(expected)
        for cell, (subscribers, count, answers, change) in expected.items():
            assert got[cell][:3] == (subscribers, count, answers), cell
            assert got[cell][3] == (None if change is None else pytest.approx(change)), cell
        order = sorted(
            result.cells,
            key=lambda c: (-round(c.priority, 9), -c.subscribers, -c.incidents, c.cell_id),
        )
        assert result.cells == order
        assert [c.rank for c in result.cells] == list(range(1, len(result.cells) + 1))
        for ranked in result.cells:
            harm = max(0.0, -(ranked.sentiment_change or 0.0))
            assert ranked.priority == pytest.approx(ranked.subscribers * harm)
    finally:
        db.close()


def test_the_metric_filter_knows_every_metric() -> None:
    assert get_args(Metric) == METRICS
