"""The incident log by cell, and the cell sentiment report: which cells to fix first.

``record_incidents`` keeps one row per (incident, cell) in ``cell_incidents``, with the
engagement the incident raised (``NULL`` when the queue deduplicated it into an earlier
one). ``CellSentimentRunner.run`` answers, for each cell over a period of event time:

``subscribers``
    distinct subscribers with at least one incident on the cell in the period;
``incidents``
    incidents in the period that named the cell (an incident on three cells counts on
    each of them);
``answers``
    feedback answers to engagements created in the period that named the cell
    (``Engagement.cells``, the cells of its incidents);
``sentiment_change``
    the mean, over those answers, of ``after - before``: how far each answer moved its
    subscriber's sentiment score (``engage.feedback``, an EWMA in [-1, 1]). Negative:
    the subscribers this cell hurt came out of their engagement unhappier. ``None``
    without answers;
``mean_score``
    the mean feedback score (1-5) of those answers;
``priority``
    ``subscribers * max(0, -sentiment_change)`` (0 without answers): reach times harm,
    rounded to 9 decimals so that equal priorities tie whatever order the mean summed in.

Cells are ranked by ``priority`` (highest first), then ``subscribers``, then
``incidents`` (most first), then cell id, so cells without answers still come in order
of how many subscribers they touched. A ``metric`` filter keeps only incidents of that
metric, and only answers whose engagement had an incident of that metric on the cell.

The period is event time, like everything about incidents: an answer belongs to the
period of the engagement it answers (its ``created_at``, the incident's time), not to
the wall-clock time it arrived. Without ``end`` the period ends just after the latest
recorded incident; without ``start`` it spans the 30 days before ``end``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from engage._db import epoch_ms, from_epoch_ms
from engage.feedback import ensure_schema as ensure_feedback_schema
from engage.model import Incident
from graph.errors import InvalidInput

__all__ = [
    "DEFAULT_PERIOD",
    "CellSentiment",
    "CellSentimentQuery",
    "CellSentimentReport",
    "CellSentimentRunner",
    "Metric",
    "ensure_schema",
    "record_incidents",
]

DEFAULT_PERIOD: Final = timedelta(days=30)
_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)
"""The period's bounds: incidents are stored in epoch milliseconds, and a default start
of 30 days before ``end`` must still be a date."""
"""The span of a report that names no ``start``."""

Metric = Literal[
    "call_drop_rate", "call_quality_impairment", "low_bitrate_share", "video_stalling_share"
]
"""One of ``engage.model.METRICS``."""

_MS: Final = timedelta(milliseconds=1)

# Clustered by event time: the engine writes incidents in event-time order, so rows
# are appended to the end of the one B-tree (a cell-first key made every insert a
# random write, five times slower at 1M incidents), and the report reads its period as
# one contiguous range. The key is the incident's identity (subscriber, rule, event
# time) plus the cell, so a replayed batch inserts nothing.
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cell_incidents (
    ts_ms         INTEGER NOT NULL,
    subscriber    TEXT NOT NULL,
    rule          TEXT NOT NULL,
    cell_id       TEXT NOT NULL,
    metric        TEXT NOT NULL,
    value         REAL NOT NULL,
    engagement_id TEXT,
    PRIMARY KEY (ts_ms, subscriber, rule, cell_id)
) WITHOUT ROWID
"""

_INSERT: Final = """
INSERT INTO cell_incidents (ts_ms, subscriber, rule, cell_id, metric, value, engagement_id)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

_REPORT: Final = """
WITH incidents AS (
    SELECT cell_id, count(DISTINCT subscriber) AS subscribers, count(*) AS incidents
    FROM cell_incidents
    WHERE ts_ms >= :start AND ts_ms < :end AND (:metric IS NULL OR metric = :metric)
    GROUP BY cell_id
),
answered AS (
    SELECT DISTINCT cell_id, engagement_id
    FROM feedback_cells
    WHERE created_ms >= :start AND created_ms < :end
      AND (:metric IS NULL OR metric = :metric)
),
answers AS (
    SELECT answered.cell_id,
           count(*) AS answers,
           avg(log.after - log.before) AS change,
           avg(log.score) AS mean_score
    FROM answered JOIN sentiment_log AS log ON log.engagement_id = answered.engagement_id
    GROUP BY answered.cell_id
),
scored AS (
    SELECT incidents.cell_id, subscribers, incidents,
           coalesce(answers, 0) AS answers, change, mean_score,
           round(subscribers * max(0.0, -coalesce(change, 0.0)), 9) AS priority
    FROM incidents LEFT JOIN answers ON answers.cell_id = incidents.cell_id
    WHERE subscribers >= :min_subscribers
)
SELECT cell_id, subscribers, incidents, answers, change, mean_score, priority,
       count(*) OVER () AS cells_total
FROM scored
ORDER BY priority DESC, subscribers DESC, incidents DESC, cell_id
LIMIT :limit
"""


def ensure_schema(connection: sqlite3.Connection) -> None:
    """Create the incident log's table if it is missing (idempotent)."""
    # Not executescript: it would commit a caller's open transaction.
    connection.execute(_SCHEMA)


def record_incidents(
    connection: sqlite3.Connection,
    incidents: Sequence[Incident],
    engagement_ids: Sequence[str | None],
) -> int:
    """Log each incident once per cell it names; returns the rows added.

    ``engagement_ids[i]`` is the engagement ``incidents[i]`` raised, or ``None`` when it
    was deduplicated into an earlier engagement. An incident without cells adds no row.
    Never commits: the engine calls this inside its batch transaction. Recording the
    same incidents again adds nothing.
    """
    if len(incidents) != len(engagement_ids):
        raise InvalidInput(
            f"record_incidents got {len(incidents)} incidents but "
            f"{len(engagement_ids)} engagement ids; give one id (or None) per incident"
        )
    # Every row is made (and checked) before the first is written, so bad input
    # writes nothing even outside a transaction.
    rows: list[tuple[int, str, str, str, str, float, str | None]] = []
    for position, (incident, engaged) in enumerate(zip(incidents, engagement_ids, strict=True)):
        ts_ms = epoch_ms(incident.ts, f"incident {position} ts")
        rows.extend(
            (
                ts_ms,
                incident.subscriber,
                incident.rule,
                cell,
                incident.metric,
                incident.value,
                engaged,
            )
            for cell in incident.cells
        )
    before = connection.total_changes
    connection.executemany(_INSERT, rows)
    return connection.total_changes - before


class CellSentimentQuery(BaseModel):
    """Which period and cells the cell sentiment report covers (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime | None = Field(
        default=None, description="event time, inclusive; default 30 days before end"
    )
    end: AwareDatetime | None = Field(
        default=None, description="event time, exclusive; default just after the latest incident"
    )
    limit: int = Field(default=50, ge=1, le=10_000, description="the top cells to return")
    min_subscribers: int = Field(
        default=1,
        ge=1,
        le=1_000_000_000,
        description="leave out cells with fewer distinct subscribers",
    )
    metric: Metric | None = Field(default=None, description="only incidents of this metric")

    @model_validator(mode="after")
    def _check_period(self) -> CellSentimentQuery:
        for name, moment in (("start", self.start), ("end", self.end)):
            if moment is not None and not _EARLIEST <= moment <= _LATEST:
                raise ValueError(f"{name} must be between 1970 and 9000, got {moment.isoformat()}")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    @classmethod
    def of(cls, **fields: Any) -> CellSentimentQuery:
        """A query from loose fields; what is wrong is ``InvalidInput``, field by field."""
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or 'query'}: {problem['msg']}"
                for problem in error.errors()
            )
            raise InvalidInput(f"cell sentiment query: {problems}") from None


class CellSentiment(BaseModel):
    """One cell's row of the report."""

    rank: int = Field(description="1 = fix first")
    cell_id: str
    subscribers: int = Field(description="distinct subscribers with incidents on the cell")
    incidents: int = Field(description="incidents that named the cell")
    answers: int = Field(description="feedback answers to engagements that named the cell")
    sentiment_change: float | None = Field(
        description="mean (sentiment after - before) over those answers; none without answers"
    )
    mean_score: float | None = Field(description="mean feedback score (1-5) of those answers")
    priority: float = Field(description="subscribers * max(0, -sentiment_change)")


class CellSentimentReport(BaseModel):
    """Cells ranked by what to fix first, over a period of event time."""

    start: datetime = Field(description="the period's start (inclusive)")
    end: datetime = Field(description="the period's end (exclusive)")
    metric: Metric | None
    min_subscribers: int
    cells_total: int = Field(description="cells in the report before the limit")
    cells: list[CellSentiment]


class CellSentimentRunner:
    """Runs cell sentiment reports over the engagement database.

    ``clock`` places the default period when no incident is recorded yet.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connection = connection
        self.clock = clock
        ensure_schema(connection)
        ensure_feedback_schema(connection)

    def run(self, query: CellSentimentQuery) -> CellSentimentReport:
        """The ranked cells of the query's period (see the module docstring)."""
        start, end = self.period(query)
        found = self.connection.execute(
            _REPORT,
            {
                "start": epoch_ms(start, "start"),
                "end": epoch_ms(end, "end"),
                "metric": query.metric,
                "min_subscribers": query.min_subscribers,
                "limit": query.limit,
            },
        ).fetchall()
        return CellSentimentReport(
            start=start,
            end=end,
            metric=query.metric,
            min_subscribers=query.min_subscribers,
            cells_total=found[0][7] if found else 0,
            cells=[
                CellSentiment(
                    rank=rank,
                    cell_id=cell,
                    subscribers=subscribers,
                    incidents=incidents,
                    answers=answers,
                    sentiment_change=change,
                    mean_score=mean_score,
                    priority=priority,
                )
                for rank, (
                    cell,
                    subscribers,
                    incidents,
                    answers,
                    change,
                    mean_score,
                    priority,
                    _,
                ) in enumerate(found, start=1)
            ],
        )

    def period(self, query: CellSentimentQuery) -> tuple[datetime, datetime]:
        """The query's ``[start, end)`` with the defaults filled in."""
        end = query.end
        if end is None:
            latest = self.connection.execute("SELECT max(ts_ms) FROM cell_incidents").fetchone()[0]
            end = self.clock() if latest is None else from_epoch_ms(latest + 1)
            if query.start is not None and end <= query.start:
                end = query.start + _MS
        start = query.start if query.start is not None else end - DEFAULT_PERIOD
        return start.astimezone(UTC), end.astimezone(UTC)
