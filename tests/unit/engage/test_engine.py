"""The engine: one transaction a batch, resumable cursors, replays queue nothing twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engage._db import open_engage_db
from engage.engine import EngagementEngine, InputCursor, engagement_for
from engage.profiles import ProfileEvaluator
from engage.queue import EngagementQueue, QueuePolicy
from tests.unit.engage._probe_fixtures import probe, probe_table

ALICE = "+447700900001"
BOB = "+447700900002"


def _engine(path: Path) -> EngagementEngine:
    connection = open_engage_db(path)
    queue = EngagementQueue(connection, QueuePolicy(contact_cap=None))
    return EngagementEngine(connection, ProfileEvaluator(), queue)


def _bad_calls(subscriber: str, start: int, count: int, cell: str = "cell-1") -> list[dict]:
    """``count`` probe events a minute apart, each 5 calls with 40% dropped."""
    return [
        probe(
            f"{subscriber}-{start + i}",
            subscriber,
            start + i,
            cell=cell,
            weight=5,
            call_drop_rate=0.4,
        )  # fmt: skip
        for i in range(count)
    ]


def _states(connection: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return connection.execute(
        "SELECT engagement_id, subscriber, state FROM queue_engagements ORDER BY seq"
    ).fetchall()


def test_an_incident_queues_one_engagement_and_logs_its_cells(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "engage.db")
    calm = [probe("calm", BOB, 0, weight=5, call_drop_rate=0.01)]
    summary = engine.process(probe_table(_bad_calls(ALICE, 0, 3) + calm))

    assert summary.incidents == 1 and summary.queued == 1
    assert summary.incidents_by_rule == {"call_drop": 1}
    ((engagement_id, subscriber, state),) = _states(engine.connection)
    assert subscriber == ALICE and state == "pending"
    logged = engine.connection.execute(
        "SELECT subscriber, cell_id, engagement_id FROM cell_incidents"
    ).fetchall()
    assert logged == [(ALICE, "cell-1", engagement_id)]


def test_engagement_ids_follow_from_the_incident() -> None:
    from datetime import UTC, datetime

    from engage.model import Incident

    incident = Incident(ALICE, "call_drop", "call_drop_rate", 0.4, 0.16, 86_400,
                        datetime(2024, 5, 1, tzinfo=UTC), ("cell-1",))  # fmt: skip
    assert engagement_for(incident) == engagement_for(incident)
    later = Incident(ALICE, "call_drop", "call_drop_rate", 0.4, 0.16, 86_400,
                     datetime(2024, 5, 2, tzinfo=UTC), ("cell-1",))  # fmt: skip
    assert engagement_for(incident).engagement_id != engagement_for(later).engagement_id
    assert engagement_for(incident).dedupe_key == engagement_for(later).dedupe_key


def test_a_restarted_engine_resumes_its_cursor_and_queues_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "engage.db"
    events = _bad_calls(ALICE, 0, 4) + _bad_calls(BOB, 0, 4, cell="cell-2")
    first, second = probe_table(events[:4]), probe_table(events[4:])
    engine = _engine(path)
    engine.process(first, InputCursor("probes.jsonl", 4))
    engine.connection.close()

    again = _engine(path)
    assert again.cursor("probes.jsonl") == 4
    assert again.cursor("other.jsonl") == 0
    replayed = again.process(first, InputCursor("probes.jsonl", 4))  # a crash before the move
    assert replayed.incidents == 0 and replayed.queued == 0
    again.process(second, InputCursor("probes.jsonl", 8))
    assert [row[1] for row in _states(again.connection)] == [ALICE, BOB]
    assert again.cursor("probes.jsonl") == 8


def test_a_failed_batch_leaves_nothing_behind_and_can_be_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path / "engage.db")

    def broken(connection: sqlite3.Connection, engagements: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(engine.queue, "enqueue", broken)
    batch = probe_table(_bad_calls(ALICE, 0, 3))
    with pytest.raises(sqlite3.OperationalError):
        engine.process(batch, InputCursor("probes.jsonl", 3))
    assert _states(engine.connection) == []
    assert engine.cursor("probes.jsonl") == 0
    assert engine.connection.execute("SELECT COUNT(*) FROM cell_incidents").fetchone() == (0,)

    monkeypatch.undo()
    retried = engine.process(batch, InputCursor("probes.jsonl", 3))
    assert retried.incidents == 1 and retried.queued == 1
