"""The engine: probe events in, incidents logged and engagements queued, one batch at a time.

``EngagementEngine.process`` evaluates a batch of probe events against the rolling
profiles, turns each incident into an engagement (one per incident; the queue
deduplicates repeats within its window) and then, in ONE transaction of the
engagement database, saves the changed profiles, logs the incidents per cell, queues
the engagements and moves the input's cursor. A process killed at any point leaves
either the whole batch applied or none of it; restarted from the saved cursor it
reads the same events again, and since engagement ids are derived from the incident
(subscriber, rule, event time) nothing is queued twice.

The engine never sends: a ``Dispatcher`` (``engage.dispatcher``) reads the queue,
in another thread or process; ``on_queued`` tells it that new work is there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from engage import cells
from engage._db import transaction
from engage.model import Engagement, Incident, InputCursor, dedupe_key, engagement_id
from engage.profiles import ProfileEvaluator
from engage.queue import EngagementQueue, EnqueueResult

__all__ = ["BatchSummary", "EngagementEngine", "InputCursor", "applied_rows", "engagement_for"]

_CURSOR_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS engine_cursors ("
    " input TEXT PRIMARY KEY, position INTEGER NOT NULL, updated_us INTEGER NOT NULL)"
)


def applied_rows(connection: sqlite3.Connection, input_name: str) -> int:
    """How many rows of ``input_name`` committed batches applied (0 for a new input).

    Reads the cursor alone, so finding where a rerun starts loads no profiles.
    """
    connection.execute(_CURSOR_SCHEMA)
    found = connection.execute(
        "SELECT position FROM engine_cursors WHERE input = ?", (input_name,)
    ).fetchone()
    return 0 if found is None else int(found[0])


def engagement_for(incident: Incident) -> Engagement:
    """The engagement an incident asks for (its id is a function of the incident)."""
    key = dedupe_key(incident.subscriber, incident.rule)
    return Engagement(
        engagement_id=engagement_id(key, incident.ts),
        subscriber=incident.subscriber,
        rule=incident.rule,
        created_at=incident.ts,
        dedupe_key=key,
        incidents=(incident,),
    )


@dataclass(slots=True)
class BatchSummary:
    """What the engine did with one batch, or a run of them (``add``)."""

    batches: int = 0
    probe_events: int = 0
    incidents: int = 0
    queued: int = 0
    deduplicated: int = 0
    already_queued: int = 0
    incidents_by_rule: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchSummary) -> None:
        """Fold another summary into this one."""
        self.batches += other.batches
        self.probe_events += other.probe_events
        self.incidents += other.incidents
        self.queued += other.queued
        self.deduplicated += other.deduplicated
        self.already_queued += other.already_queued
        for rule, count in other.incidents_by_rule.items():
            self.incidents_by_rule[rule] = self.incidents_by_rule.get(rule, 0) + count

    def as_dict(self) -> dict[str, object]:
        """The summary as JSON-ready data."""
        return {
            "batches": self.batches,
            "probe_events": self.probe_events,
            "incidents": self.incidents,
            "queued": self.queued,
            "deduplicated": self.deduplicated,
            "already_queued": self.already_queued,
            "incidents_by_rule": dict(sorted(self.incidents_by_rule.items())),
        }


class EngagementEngine:
    """Applies batches of probe events to profiles, the incident log and the queue.

    ``connection`` is the engagement database (the engine's thread owns it);
    ``evaluator`` holds the profiles (its saved state is loaded here); ``queue``
    takes the engagements inside the engine's transaction.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        evaluator: ProfileEvaluator,
        queue: EngagementQueue,
        on_queued: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connection = connection
        self.evaluator = evaluator
        self.queue = queue
        self.on_queued = on_queued
        self.clock = clock
        with transaction(connection):
            evaluator.ensure_schema(connection)
            cells.ensure_schema(connection)
            connection.execute(_CURSOR_SCHEMA)
        evaluator.load(connection)

    def cursor(self, input_name: str) -> int:
        """How many rows of ``input_name`` earlier runs have applied (0 for a new input)."""
        return applied_rows(self.connection, input_name)

    def process(self, batch: pa.Table, cursor: InputCursor | None = None) -> BatchSummary:
        """Apply one batch of probe events (``PROBE_SCHEMA``), moving ``cursor`` with it."""
        incidents = self.evaluator.evaluate(batch)
        engagements = [engagement_for(incident) for incident in incidents]
        try:
            with transaction(self.connection):
                self.evaluator.save(self.connection)
                cells.record_incidents(
                    self.connection,
                    incidents,
                    [engagement.engagement_id for engagement in engagements],
                )
                enqueued = self.queue.enqueue(self.connection, engagements)
                if cursor is not None:
                    self._move(cursor)
        except BaseException:
            # The evaluator moved on in memory; the database did not. Start again
            # from what was committed, so a retried batch is evaluated once.
            self.evaluator.load(self.connection)
            raise
        if enqueued.queued and self.on_queued is not None:
            self.on_queued()
        return _summary(batch.num_rows, incidents, enqueued)

    def _move(self, cursor: InputCursor) -> None:
        self.connection.execute(
            "INSERT INTO engine_cursors (input, position, updated_us) VALUES (?, ?, ?) "
            "ON CONFLICT (input) DO UPDATE SET position = excluded.position, "
            "updated_us = excluded.updated_us",
            (cursor.input, cursor.position, int(self.clock().timestamp() * 1_000_000)),
        )


def _summary(events: int, incidents: Sequence[Incident], enqueued: EnqueueResult) -> BatchSummary:
    by_rule: dict[str, int] = {}
    for incident in incidents:
        by_rule[incident.rule] = by_rule.get(incident.rule, 0) + 1
    return BatchSummary(
        batches=1,
        probe_events=events,
        incidents=len(incidents),
        queued=enqueued.queued,
        deduplicated=enqueued.deduplicated,
        already_queued=enqueued.duplicate_id,
        incidents_by_rule=by_rule,
    )
