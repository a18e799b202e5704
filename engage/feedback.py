"""Feedback: a subscriber's answer to an engagement, and the sentiment score it moves.

``FeedbackService.record(engagement_id, score, text)`` links the answer to its
engagement and the incidents (and cells) it was about, and updates the subscriber's
sentiment score, an exponentially weighted moving average of their answers::

    s <- (1 - alpha) * s + alpha * (score - 3) / 2        s starts at 0, alpha = 0.3

so a score of 1 pulls towards -1, 3 towards 0 and 5 towards +1, and the score stays in
[-1, 1]. The score lives per subscriber in ``sentiment_scores``; every answer adds a row
to ``sentiment_log`` (before, after), which the cell report (``engage.cells``) reads.

The subscriber's Customer vertex (found through the Identifier ``id:msisdn:<E.164>``
and its HAS_IDENTIFIER edge) gets ``sentiment`` and ``sentiment_updated_at``. A
subscriber the graph does not know keeps the score in the engagement database only,
and the answer says so.

One answer, one transaction: the answer, the score and its log row are written inside
``BEGIN IMMEDIATE``, then the touchpoint is recorded and the Customer vertex updated,
then the transaction commits. Anything failing before the commit rolls the database
back, so an answer is either wholly recorded or not at all and may be sent again; the
touchpoint (deterministic event id) and the vertex properties it may have left behind
are rewritten, unchanged, by that retry.

Errors (in the tree of ``graph.errors``; ``AlreadyAnswered`` is new here,
``UnknownEngagement`` is the queue's)::

    JourneyGraphError
     +-- InvalidInput             a score outside 1-5, over-long text (HTTP 422)
     +-- NotFound
     |    +-- UnknownEngagement   no engagement has this id (HTTP 404)
     +-- Conflict                 the request clashes with what is recorded (HTTP 409)
          +-- AlreadyAnswered     the engagement has an answer already
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Protocol

from pydantic import BaseModel, Field

from engage._db import epoch_ms, from_epoch_ms, transaction
from engage.model import Engagement, Feedback, Incident
from engage.queue import UnknownEngagement
from graph import EdgeLabel, GraphStore, IdentifierKind, VertexLabel
from graph.errors import Conflict, InvalidInput
from graph.model import PropertyValue, identifier_id

__all__ = [
    "DEFAULT_ALPHA",
    "MAX_ENGAGEMENT_ID",
    "MAX_FEEDBACK_TEXT",
    "NO_GRAPH",
    "NOT_IN_GRAPH",
    "AlreadyAnswered",
    "EngagementLookup",
    "FeedbackIncident",
    "FeedbackRecorder",
    "FeedbackService",
    "SentimentUpdate",
    "ensure_schema",
    "next_sentiment",
]

DEFAULT_ALPHA: Final = 0.3
"""Weight of the newest answer in the sentiment EWMA."""
MAX_FEEDBACK_TEXT: Final = 2000
"""Characters of free text an answer may carry."""
MAX_ENGAGEMENT_ID: Final = 200
"""Characters of an engagement id (ids are ``eng-`` and 20 hex digits; this is slack)."""
NOT_IN_GRAPH: Final = (
    "the subscriber is not in the graph: the sentiment score is kept in the engagement "
    "database only"
)
"""The answer's note when no Customer vertex has the subscriber's MSISDN."""
NO_GRAPH: Final = "no graph store: the sentiment score is kept in the engagement database only"
"""The answer's note when the service has no graph store."""

# feedback_cells is keyed by the engagement's event time first: the cell report
# (engage.cells) reads it by period.
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS feedback_answers (
    engagement_id TEXT PRIMARY KEY,
    subscriber    TEXT NOT NULL,
    rule          TEXT NOT NULL,
    score         INTEGER NOT NULL,
    text          TEXT NOT NULL,
    received_ms   INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback_cells (
    created_ms    INTEGER NOT NULL,
    cell_id       TEXT NOT NULL,
    engagement_id TEXT NOT NULL,
    metric        TEXT NOT NULL,
    PRIMARY KEY (created_ms, cell_id, engagement_id, metric)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sentiment_scores (
    subscriber TEXT PRIMARY KEY,
    sentiment  REAL NOT NULL,
    answers    INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sentiment_log (
    engagement_id TEXT PRIMARY KEY,
    subscriber    TEXT NOT NULL,
    score         INTEGER NOT NULL,
    before        REAL NOT NULL,
    after         REAL NOT NULL,
    received_ms   INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sentiment_log_by_subscriber
    ON sentiment_log (subscriber, received_ms);
"""


class AlreadyAnswered(Conflict):
    """The engagement has an answer already; an engagement takes one."""

    code = "already_answered"


class EngagementLookup(Protocol):
    """Finds an engagement by id (the engagement queue is one)."""

    def engagement(self, engagement_id: str) -> Engagement | None:
        """The engagement with this id, or ``None``."""
        ...


FeedbackRecorder = Callable[[Feedback, Engagement], object]
"""Records an answer as a touchpoint (``engage._recording.record_feedback`` bound to an
ingestor); it must be idempotent, as a retried answer records it again."""


class FeedbackIncident(BaseModel):
    """An incident the answered engagement was about."""

    rule: str
    metric: str
    value: float
    threshold: float
    window_seconds: int
    ts: datetime
    cells: list[str]

    @classmethod
    def of(cls, incident: Incident) -> FeedbackIncident:
        """From the domain object."""
        return cls(
            rule=incident.rule,
            metric=incident.metric,
            value=incident.value,
            threshold=incident.threshold,
            window_seconds=incident.window_seconds,
            ts=incident.ts,
            cells=list(incident.cells),
        )


class SentimentUpdate(BaseModel):
    """What an answer did: the subscriber's sentiment before and after, and what it was about."""

    engagement_id: str
    subscriber: str
    score: int
    before: float = Field(description="the subscriber's sentiment before the answer, in [-1, 1]")
    after: float = Field(description="the sentiment after it (EWMA, see engage.feedback)")
    change: float = Field(description="after - before")
    received_at: datetime
    customers: list[str] = Field(description="Customer vertices that got the new sentiment")
    in_graph: bool = Field(description="whether the sentiment reached the graph")
    note: str | None = Field(default=None, description="why the graph was not updated")
    cells: list[str] = Field(description="cells of the engagement's incidents, worst first")
    incidents: list[FeedbackIncident]


def next_sentiment(before: float, score: int, alpha: float = DEFAULT_ALPHA) -> float:
    """The EWMA step: ``(1 - alpha) * before + alpha * (score - 3) / 2``."""
    return (1.0 - alpha) * before + alpha * (score - 3) / 2.0


def ensure_schema(connection: sqlite3.Connection) -> None:
    """Create the feedback and sentiment tables if they are missing (idempotent)."""
    # One statement at a time: executescript would commit a caller's open transaction.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            connection.execute(statement)


class FeedbackService:
    """Records answers to engagements and keeps subscribers' sentiment scores.

    ``lookup`` finds engagements; ``store`` (optional) receives the sentiment on the
    subscriber's Customer vertex; ``recorder`` (optional) records each answer as a
    touchpoint; ``clock`` stamps answers; ``alpha`` weighs the newest answer.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        lookup: EngagementLookup,
        store: GraphStore | None = None,
        recorder: FeedbackRecorder | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise InvalidInput(f"sentiment alpha must be in (0, 1], got {alpha!r}")
        self.connection = connection
        self.lookup = lookup
        self.store = store
        self.recorder = recorder
        self.clock = clock
        self.alpha = alpha
        ensure_schema(connection)

    def record(self, engagement_id: str, score: int, text: str = "") -> SentimentUpdate:
        """Record the answer to an engagement and move the subscriber's sentiment.

        Raises ``InvalidInput`` for a score that is not an int from 1 to 5 or text over
        ``MAX_FEEDBACK_TEXT`` characters, ``UnknownEngagement`` and ``AlreadyAnswered``.
        """
        _check_answer(engagement_id, score, text)
        engagement = self.lookup.engagement(engagement_id)
        if engagement is None:
            raise UnknownEngagement(
                f"no engagement has id {engagement_id!r}", details={"engagement_id": engagement_id}
            )
        feedback = Feedback(engagement_id, score, text, self.clock())
        received_ms = epoch_ms(feedback.received_at, "the clock's time")
        created_ms = epoch_ms(engagement.created_at, f"engagement {engagement_id} created_at")
        with transaction(self.connection) as connection:
            answered = connection.execute(
                "SELECT received_ms FROM feedback_answers WHERE engagement_id = ?",
                (engagement_id,),
            ).fetchone()
            if answered is not None:
                raise AlreadyAnswered(
                    f"engagement {engagement_id!r} was answered already, at "
                    f"{from_epoch_ms(answered[0]).isoformat()}; it takes one answer",
                    details={"engagement_id": engagement_id},
                )
            before = self.sentiment(engagement.subscriber) or 0.0
            after = next_sentiment(before, score, self.alpha)
            _write_answer(connection, engagement, feedback, before, after, received_ms, created_ms)
            if self.recorder is not None:
                self.recorder(feedback, engagement)
            customers, note = self._write_graph(engagement.subscriber, after, feedback.received_at)
        return SentimentUpdate(
            engagement_id=engagement_id,
            subscriber=engagement.subscriber,
            score=score,
            before=before,
            after=after,
            change=after - before,
            received_at=feedback.received_at,
            customers=customers,
            in_graph=bool(customers),
            note=note,
            cells=list(engagement.cells),
            incidents=[FeedbackIncident.of(incident) for incident in engagement.incidents],
        )

    def sentiment(self, subscriber: str) -> float | None:
        """The subscriber's sentiment score, or ``None`` before their first answer."""
        found = self.connection.execute(
            "SELECT sentiment FROM sentiment_scores WHERE subscriber = ?", (subscriber,)
        ).fetchone()
        return None if found is None else float(found[0])

    def _write_graph(
        self, subscriber: str, sentiment: float, updated_at: datetime
    ) -> tuple[list[str], str | None]:
        """Set the sentiment on the subscriber's Customer vertices; why not, if none."""
        if self.store is None:
            return [], NO_GRAPH
        identifier = identifier_id(IdentifierKind.MSISDN, subscriber)
        customers = sorted(
            {
                link.vertex.id
                for link in self.store.neighbours(identifier, "in", [EdgeLabel.HAS_IDENTIFIER])
                if link.vertex.label == VertexLabel.CUSTOMER
            }
        )
        if not customers:
            return [], NOT_IN_GRAPH
        properties: dict[str, PropertyValue | None] = {
            "sentiment": sentiment,
            "sentiment_updated_at": updated_at,
        }
        self.store.upsert_vertices(
            VertexLabel.CUSTOMER, [(customer, properties) for customer in customers]
        )
        return customers, None


def _check_answer(engagement_id: object, score: object, text: object) -> None:
    if not isinstance(engagement_id, str) or not 0 < len(engagement_id) <= MAX_ENGAGEMENT_ID:
        raise InvalidInput(
            f"engagement_id must be a string of 1-{MAX_ENGAGEMENT_ID} characters, "
            f"got {engagement_id!r:.80}"
        )
    # bool is an int to Python, but True is no score.
    if type(score) is not int or not 1 <= score <= 5:
        raise InvalidInput(
            f"score must be an integer from 1 to 5, got {score!r:.40}",
            details={"engagement_id": engagement_id},
        )
    if not isinstance(text, str):
        raise InvalidInput(
            f"text must be a string, got {type(text).__name__}",
            details={"engagement_id": engagement_id},
        )
    if len(text) > MAX_FEEDBACK_TEXT:
        raise InvalidInput(
            f"text is {len(text)} characters long; the limit is {MAX_FEEDBACK_TEXT}",
            details={"engagement_id": engagement_id},
        )


def _write_answer(
    connection: sqlite3.Connection,
    engagement: Engagement,
    feedback: Feedback,
    before: float,
    after: float,
    received_ms: int,
    created_ms: int,
) -> None:
    connection.execute(
        "INSERT INTO feedback_answers VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            engagement.engagement_id,
            engagement.subscriber,
            engagement.rule,
            feedback.score,
            feedback.text,
            received_ms,
            created_ms,
        ),
    )
    connection.executemany(
        "INSERT OR IGNORE INTO feedback_cells VALUES (?, ?, ?, ?)",
        [
            (created_ms, cell, engagement.engagement_id, incident.metric)
            for incident in engagement.incidents
            for cell in incident.cells
        ],
    )
    connection.execute(
        "INSERT INTO sentiment_log VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            engagement.engagement_id,
            engagement.subscriber,
            feedback.score,
            before,
            after,
            received_ms,
            created_ms,
        ),
    )
    connection.execute(
        """
        INSERT INTO sentiment_scores (subscriber, sentiment, answers, updated_ms)
        VALUES (?, ?, 1, ?)
        ON CONFLICT (subscriber) DO UPDATE SET
            sentiment = excluded.sentiment,
            answers = answers + 1,
            updated_ms = excluded.updated_ms
        """,
        (engagement.subscriber, after, received_ms),
    )
