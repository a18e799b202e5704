"""Engagements and feedback recorded as touchpoints through the real push path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from engage._recording import (
    engagement_event,
    feedback_event,
    record_engagements,
    record_feedback,
)
from engage.model import (
    ENGAGEMENT_EVENT,
    ENGAGEMENT_SOURCE,
    FEEDBACK_EVENT,
    Engagement,
    Feedback,
    Incident,
    dedupe_key,
    engagement_id,
)
from graph import EmbeddedStore, GraphStore
from ingest.lake import Lake
from ingest.pipeline import Ingestor
from ingest.push import PushIngestor
from ingest.touchpoint import Channel, Touchpoint

T0 = datetime(2024, 6, 3, 18, 0, tzinfo=UTC)
ANN = "+447700900001"


def engagement(subscriber: str, cells: tuple[str, ...], hours: int = 0) -> Engagement:
    created = T0 + timedelta(hours=hours)
    key = dedupe_key(subscriber, "drops")
    found = Incident(subscriber, "drops", "call_drop_rate", 0.3, 0.16, 3600, created, cells)
    return Engagement(engagement_id(key, created), subscriber, "drops", created, key, (found,))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GraphStore]:
    with EmbeddedStore(tmp_path / "graph.db") as graph:
        yield graph


@pytest.fixture
def ingestor(store: GraphStore, tmp_path: Path) -> Iterator[PushIngestor]:
    pusher = PushIngestor(lambda: Ingestor(store, tmp_path / "ingest"), tmp_path / "ingest")
    yield pusher
    pusher.close()


def test_events_are_valid_canonical_touchpoints() -> None:
    sent = engagement(ANN, ("C7", "C2"))
    answer = Feedback(sent.engagement_id, 2, "calls keep dropping", T0 + timedelta(hours=3))
    for record in (engagement_event(sent), feedback_event(answer, sent)):
        Touchpoint.model_validate(record)
    assert engagement_event(sent)["event_id"] == f"engage-{sent.engagement_id}-sent"
    assert feedback_event(answer, sent)["attributes"] == {
        "engagement_id": sent.engagement_id,
        "rule": "drops",
        "cells": "C7,C2",
        "cell_id": "C7",
        "csat": 2,
    }
    assert "calls keep dropping" not in str(feedback_event(answer, sent))
    no_cells = engagement_event(engagement(ANN, ()))["attributes"]
    assert "cells" not in no_cells and "cell_id" not in no_cells


def test_an_engagement_lands_on_the_subscribers_customer_in_graph_and_lake(
    store: GraphStore, ingestor: PushIngestor
) -> None:
    login = {
        "event_id": "app-1",
        "source": "app",
        "event_type": "login",
        "channel": "app",
        "ts": "2024-06-01T10:00:00Z",
        "identifiers": {"msisdn": "07700 900001"},
    }
    ingestor.push([login])
    sent = engagement(ANN, ("C7", "C2"))
    summary, rejected = record_engagements(ingestor, [sent])
    assert (summary.accepted, summary.customers_created, rejected) == (1, 0, [])

    touchpoint_id = f"tp:engage-{sent.engagement_id}-sent"
    vertex = store.get_vertex(touchpoint_id)
    assert vertex is not None
    assert vertex.properties["event_type"] == ENGAGEMENT_EVENT
    assert vertex.properties["source"] == ENGAGEMENT_SOURCE
    assert vertex.properties["channel"] == Channel.OUTBOUND
    assert vertex.properties["ts"] == T0
    [performer] = store.neighbours(touchpoint_id, "in", ["PERFORMED"])
    [login_performer] = store.neighbours("tp:app-1", "in", ["PERFORMED"])
    assert performer.vertex.id == login_performer.vertex.id
    [cell] = store.neighbours(touchpoint_id, "out", ["AT_CELL"])
    assert cell.vertex.id == "cell:C7"

    lake = Lake(ingestor.workdir / "lake").touchpoints()
    mine = lake.filter(pc.equal(lake.column("source"), ENGAGEMENT_SOURCE))
    assert mine.column("event_id").to_pylist() == [f"engage-{sent.engagement_id}-sent"]


def test_recording_again_is_a_no_op(store: GraphStore, ingestor: PushIngestor) -> None:
    sent = [engagement(ANN, ("C1",), hours) for hours in range(3)]
    first, _ = record_engagements(ingestor, sent)
    again, _ = record_engagements(ingestor, sent)
    assert (first.accepted, again.accepted, again.duplicates) == (3, 0, 3)
    answer = Feedback(sent[0].engagement_id, 4, "", T0 + timedelta(days=1))
    assert record_feedback(ingestor, answer, sent[0])[0].accepted == 1
    assert record_feedback(ingestor, answer, sent[0])[0].duplicates == 1
    assert store.count("Touchpoint") == 4
    assert record_engagements(ingestor, [])[0].read == 0


def test_feedback_is_a_touchpoint_with_its_score(store: GraphStore, ingestor: PushIngestor) -> None:
    sent = engagement(ANN, ("C3",))
    received = T0 + timedelta(hours=5)
    record_feedback(ingestor, Feedback(sent.engagement_id, 1, "awful", received), sent)
    vertex = store.get_vertex(f"tp:engage-{sent.engagement_id}-feedback")
    assert vertex is not None
    assert vertex.properties["event_type"] == FEEDBACK_EVENT
    assert vertex.properties["channel"] == Channel.SMS
    assert vertex.properties["ts"] == received
    assert vertex.properties["csat"] == 1
    assert vertex.properties["engagement_id"] == sent.engagement_id
