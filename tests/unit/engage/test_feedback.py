"""Feedback: answers recorded once, the sentiment EWMA, the Customer vertex, atomicity."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage._db import open_engage_db
from engage.feedback import (
    MAX_FEEDBACK_TEXT,
    NO_GRAPH,
    NOT_IN_GRAPH,
    AlreadyAnswered,
    Conflict,
    FeedbackService,
    next_sentiment,
)
from engage.model import Engagement, Feedback, Incident, dedupe_key, engagement_id
from engage.queue import UnknownEngagement
from graph import EmbeddedStore, GraphStore
from graph.errors import GraphUnavailable, InvalidInput, NotFound
from tests.builders import Journey, add_journeys

T0 = datetime(2024, 6, 3, 18, 0, tzinfo=UTC)
ANN = "+447700900001"
BEN = "+447700900002"


def incident(subscriber: str, metric: str, cells: tuple[str, ...], ts: datetime) -> Incident:
    return Incident(
        subscriber=subscriber,
        rule=f"{metric}_high",
        metric=metric,
        value=0.3,
        threshold=0.16,
        window_seconds=3600,
        ts=ts,
        cells=cells,
    )


def engagement(
    subscriber: str, n: int, cells: tuple[str, ...] = ("C1",), metric: str = "call_drop_rate"
) -> Engagement:
    """The ``n``th engagement of a subscriber, an hour after the previous one."""
    created = T0 + timedelta(hours=n)
    rule = f"{metric}_high"
    key = dedupe_key(subscriber, rule)
    return Engagement(
        engagement_id=engagement_id(key, created),
        subscriber=subscriber,
        rule=rule,
        created_at=created,
        dedupe_key=key,
        incidents=(incident(subscriber, metric, cells, created),),
    )


class Engagements:
    """A hand-made engagement lookup (the queue's ``engagement`` method)."""

    def __init__(self, *engagements: Engagement) -> None:
        self.by_id = {e.engagement_id: e for e in engagements}

    def add(self, *engagements: Engagement) -> None:
        self.by_id.update((e.engagement_id, e) for e in engagements)

    def engagement(self, engagement_id: str) -> Engagement | None:
        return self.by_id.get(engagement_id)


class Clock:
    """A clock that moves a minute at each reading."""

    def __init__(self) -> None:
        self.now = T0 + timedelta(days=1)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = open_engage_db(tmp_path / "engage.db")
    yield db
    db.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GraphStore]:
    with EmbeddedStore(tmp_path / "graph.db") as graph:
        add_journeys(graph, Journey("ann", ["app_login"], msisdn=ANN))
        yield graph


def rows(connection: sqlite3.Connection, table: str) -> int:
    count: int = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


def test_the_sentiment_follows_the_ewma_computed_by_hand(
    connection: sqlite3.Connection, store: GraphStore
) -> None:
    answers = [engagement(ANN, n) for n in range(3)]
    service = FeedbackService(connection, Engagements(*answers), store, clock=Clock())
    # s <- 0.7 s + 0.3 (score - 3) / 2, from 0: scores 1, 5, 2.
    expected = [(0.0, -0.3), (-0.3, 0.09), (0.09, -0.087)]
    for answer, score, (before, after) in zip(answers, [1, 5, 2], expected, strict=True):
        update = service.record(answer.engagement_id, score, "")
        assert update.before == pytest.approx(before)
        assert update.after == pytest.approx(after)
        assert update.change == pytest.approx(after - before)
    assert service.sentiment(ANN) == pytest.approx(-0.087)
    assert connection.execute(
        "SELECT answers FROM sentiment_scores WHERE subscriber = ?", (ANN,)
    ).fetchone() == (3,)
    assert rows(connection, "sentiment_log") == 3


@settings(max_examples=50, deadline=None)
@given(
    scores=st.lists(st.integers(1, 5), min_size=1, max_size=12),
    alpha=st.floats(0.01, 1.0),
)
def test_the_sentiment_is_the_fold_of_the_formula_and_stays_in_range(
    tmp_path_factory: pytest.TempPathFactory, scores: list[int], alpha: float
) -> None:
    db = open_engage_db(tmp_path_factory.mktemp("fold") / "engage.db")
    try:
        answers = [engagement(BEN, n) for n in range(len(scores))]
        service = FeedbackService(db, Engagements(*answers), alpha=alpha, clock=Clock())
        reference = 0.0
        for answer, score in zip(answers, scores, strict=True):
            reference = (1 - alpha) * reference + alpha * (score - 3) / 2
            update = service.record(answer.engagement_id, score)
            assert -1.0 <= update.after <= 1.0
        assert service.sentiment(BEN) == pytest.approx(reference)
    finally:
        db.close()


def test_alpha_one_takes_the_latest_answer_alone() -> None:
    assert [next_sentiment(0.8, score, 1.0) for score in range(1, 6)] == [-1, -0.5, 0, 0.5, 1]


def test_the_customer_vertex_gets_the_sentiment_and_when(
    connection: sqlite3.Connection, store: GraphStore
) -> None:
    answer = engagement(ANN, 0, cells=("C7", "C2"))
    clock = Clock()
    update = FeedbackService(connection, Engagements(answer), store, clock=clock).record(
        answer.engagement_id, 5, "fixed now, thanks"
    )
    assert update.customers == ["cust:ann"] and update.in_graph and update.note is None
    assert update.cells == ["C7", "C2"]
    assert [i.metric for i in update.incidents] == ["call_drop_rate"]
    customer = store.get_vertex("cust:ann")
    assert customer is not None
    assert customer.properties["sentiment"] == pytest.approx(0.3)
    assert customer.properties["sentiment_updated_at"] == clock.now == update.received_at
    assert connection.execute("SELECT score, text FROM feedback_answers").fetchall() == [
        (5, "fixed now, thanks")
    ]
    assert sorted(connection.execute("SELECT cell_id, metric FROM feedback_cells")) == [
        ("C2", "call_drop_rate"),
        ("C7", "call_drop_rate"),
    ]


def test_a_subscriber_unknown_to_the_graph_keeps_the_score_in_the_database(
    connection: sqlite3.Connection, store: GraphStore
) -> None:
    answer = engagement(BEN, 0)
    update = FeedbackService(connection, Engagements(answer), store).record(answer.engagement_id, 1)
    assert (update.in_graph, update.customers, update.note) == (False, [], NOT_IN_GRAPH)
    assert update.after == pytest.approx(-0.3)
    assert FeedbackService(connection, Engagements()).sentiment(BEN) == pytest.approx(-0.3)
    customer = store.get_vertex("cust:ann")
    assert customer is not None and "sentiment" not in customer.properties


def test_without_a_store_the_answer_says_so(connection: sqlite3.Connection) -> None:
    answer = engagement(ANN, 0)
    update = FeedbackService(connection, Engagements(answer)).record(answer.engagement_id, 4)
    assert (update.in_graph, update.note) == (False, NO_GRAPH)


def test_an_engagement_takes_one_answer(connection: sqlite3.Connection) -> None:
    answer = engagement(ANN, 0)
    service = FeedbackService(connection, Engagements(answer), clock=Clock())
    service.record(answer.engagement_id, 1)
    with pytest.raises(AlreadyAnswered, match="answered already") as raised:
        service.record(answer.engagement_id, 5)
    assert isinstance(raised.value, Conflict)
    assert raised.value.details == {"engagement_id": answer.engagement_id}
    assert service.sentiment(ANN) == pytest.approx(-0.3)
    assert rows(connection, "feedback_answers") == rows(connection, "sentiment_log") == 1


def test_an_unknown_engagement_is_not_found(connection: sqlite3.Connection) -> None:
    service = FeedbackService(connection, Engagements(engagement(ANN, 0)))
    with pytest.raises(UnknownEngagement, match="eng-nope") as raised:
        service.record("eng-nope", 3)
    assert isinstance(raised.value, NotFound)
    assert rows(connection, "feedback_answers") == 0


@pytest.mark.parametrize(
    ("score", "text", "problem"),
    [
        (0, "", "score must be an integer from 1 to 5, got 0"),
        (6, "", "got 6"),
        ("x", "", "got 'x'"),
        (3.0, "", "got 3.0"),
        (True, "", "got True"),
        (None, "", "got None"),
        (3, "x" * (MAX_FEEDBACK_TEXT + 1), "the limit is 2000"),
        (3, 42, "text must be a string"),
    ],
)
def test_a_malformed_answer_is_refused_and_nothing_is_written(
    connection: sqlite3.Connection, score: Any, text: Any, problem: str
) -> None:
    answer = engagement(ANN, 0)
    service = FeedbackService(connection, Engagements(answer))
    with pytest.raises(InvalidInput, match=problem):
        service.record(answer.engagement_id, score, text)
    assert rows(connection, "feedback_answers") == rows(connection, "sentiment_scores") == 0


def test_a_malformed_engagement_id_or_alpha_is_refused(connection: sqlite3.Connection) -> None:
    with pytest.raises(InvalidInput, match="engagement_id"):
        FeedbackService(connection, Engagements()).record("", 3)
    with pytest.raises(InvalidInput, match="alpha"):
        FeedbackService(connection, Engagements(), alpha=0.0)


class FailingStore(EmbeddedStore):
    """An embedded store whose vertex writes fail while ``down`` is set."""

    down = True

    def upsert_vertices(self, label: str, records: Any) -> Any:
        if self.down:
            raise GraphUnavailable("the graph went away")
        return super().upsert_vertices(label, records)


def test_a_graph_failure_leaves_nothing_half_written(tmp_path: Path) -> None:
    db = open_engage_db(tmp_path / "engage.db")
    recorded: list[tuple[Feedback, Engagement]] = []
    with FailingStore(tmp_path / "graph.db") as graph:
        graph.down = False
        add_journeys(graph, Journey("ann", ["app_login"], msisdn=ANN))
        graph.down = True
        answer = engagement(ANN, 0)
        service = FeedbackService(
            db,
            Engagements(answer),
            graph,
            recorder=lambda feedback, about: recorded.append((feedback, about)),
        )
        with pytest.raises(GraphUnavailable):
            service.record(answer.engagement_id, 2)
        for table in ("feedback_answers", "feedback_cells", "sentiment_scores", "sentiment_log"):
            assert rows(db, table) == 0, table
        assert not db.in_transaction

        graph.down = False
        update = service.record(answer.engagement_id, 2)
        assert update.in_graph and update.after == pytest.approx(-0.15)
        assert [feedback.score for feedback, _ in recorded] == [2, 2]
        assert recorded[-1][1] is answer
    db.close()


def test_a_recorder_failure_rolls_the_answer_back(connection: sqlite3.Connection) -> None:
    answer = engagement(ANN, 0)

    def broken(feedback: Feedback, about: Engagement) -> None:
        raise OSError("lake disk full")

    with pytest.raises(OSError, match="disk full"):
        FeedbackService(connection, Engagements(answer), recorder=broken).record(
            answer.engagement_id, 5
        )
    assert rows(connection, "feedback_answers") == rows(connection, "sentiment_log") == 0
