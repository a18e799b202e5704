"""POST /api/v1/engagement/feedback and GET /api/v1/cells/sentiment through the HTTP app.

The engagement lookup is a hand-made one (the queue's ``engagement`` method), put in
with a dependency override; everything else is the app's own wiring.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import open_feedback
from api.deps import FeedbackOpener, get_feedback
from api.settings import Settings
from engage._db import open_engage_db, transaction
from engage.cells import ensure_schema, record_incidents
from engage.model import Engagement, Incident, dedupe_key, engagement_id
from tests.builders import with_key

T0 = datetime(2024, 6, 3, 18, 0, tzinfo=UTC)
ANN = "+447700900001"
BEN = "+447700900002"


def engagement(subscriber: str, hours: int, *cells: str) -> Engagement:
    created = T0 + timedelta(hours=hours)
    key = dedupe_key(subscriber, "drops")
    found = Incident(subscriber, "drops", "call_drop_rate", 0.3, 0.16, 3600, created, cells)
    return Engagement(engagement_id(key, created), subscriber, "drops", created, key, (found,))


ANN_FIRST = engagement(ANN, 0, "C7", "C2")
ANN_SECOND = engagement(ANN, 1, "C7")
BEN_FIRST = engagement(BEN, 2, "C2")
ENGAGEMENTS = {e.engagement_id: e for e in (ANN_FIRST, ANN_SECOND, BEN_FIRST)}


class Engagements:
    """The hand-made lookup."""

    def engagement(self, engagement_id: str) -> Engagement | None:
        return ENGAGEMENTS.get(engagement_id)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)

    def feedback(request: Request) -> FeedbackOpener:
        state = request.app.state
        return partial(
            open_feedback, settings, state.store, state.ingestor, lambda _: Engagements()
        )

    app.dependency_overrides[get_feedback] = feedback
    with TestClient(app) as test_client:
        with_key(test_client)
        login = {
            "event_id": "app-1",
            "source": "app",
            "event_type": "login",
            "channel": "app",
            "ts": "2024-06-01T10:00:00Z",
            "identifiers": {"msisdn": "07700 900001"},
        }
        assert test_client.post("/api/v1/events", json={"events": [login]}).status_code == 200
        yield test_client


def answer(client: TestClient, about: Engagement, score: object, text: str = "") -> dict[str, Any]:
    body = {"engagement_id": about.engagement_id, "score": score, "text": text}
    response = client.post("/api/v1/engagement/feedback", json=body)
    return {"status": response.status_code, **response.json()}


def test_an_answer_moves_the_customers_sentiment(client: TestClient) -> None:
    first = answer(client, ANN_FIRST, 1, "calls drop all the time")
    assert first["status"] == 200, first
    assert (first["before"], first["after"]) == (0.0, pytest.approx(-0.3))
    assert first["in_graph"] and first["note"] is None
    assert first["cells"] == ["C7", "C2"]
    assert first["incidents"][0]["metric"] == "call_drop_rate"
    [customer] = first["customers"]

    second = answer(client, ANN_SECOND, 5)
    assert (second["before"], second["after"]) == (
        pytest.approx(-0.3),
        pytest.approx(0.7 * -0.3 + 0.3),
    )
    profile = client.get(f"/api/v1/customers/{customer}").json()
    assert profile["properties"]["sentiment"] == pytest.approx(0.09)
    assert profile["properties"]["sentiment_updated_at"] == second["received_at"]

    journey = client.get(f"/api/v1/customers/{customer}/journey").json()["touchpoints"]
    feedback = [t for t in journey if t["event_type"] == "engagement_feedback"]
    assert sorted(t["attributes"]["csat"] for t in feedback) == [1, 5]


def test_a_subscriber_first_seen_in_feedback_becomes_a_customer(client: TestClient) -> None:
    result = answer(client, BEN_FIRST, 2)
    assert result["status"] == 200 and result["in_graph"]
    [customer] = result["customers"]
    profile = client.get(f"/api/v1/customers/{customer}").json()
    assert profile["properties"]["sentiment"] == pytest.approx(-0.15)


def test_a_second_answer_is_a_conflict(client: TestClient) -> None:
    assert answer(client, ANN_FIRST, 4)["status"] == 200
    again = answer(client, ANN_FIRST, 1)
    assert again["status"] == 409, again
    assert again["error"]["code"] == "already_answered"
    assert again["error"]["details"] == {"engagement_id": ANN_FIRST.engagement_id}


def test_an_unknown_engagement_is_not_found(client: TestClient) -> None:
    body = {"engagement_id": "eng-00000000000000000000", "score": 3}
    response = client.post("/api/v1/engagement/feedback", json=body)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_engagement"


@pytest.mark.parametrize("score", [0, 6, "x", None])
def test_a_score_outside_1_to_5_is_refused(client: TestClient, score: object) -> None:
    result = answer(client, ANN_FIRST, score)
    assert result["status"] == 422
    assert result["error"]["details"]["problems"][0]["where"] == "body.score"
    assert answer(client, ANN_FIRST, 3)["status"] == 200


def test_over_long_text_is_refused(client: TestClient) -> None:
    assert answer(client, ANN_FIRST, 3, "x" * 2001)["status"] == 422


def test_cells_are_ranked_by_what_to_fix_first(client: TestClient, settings: Settings) -> None:
    connection = open_engage_db(settings.engage_db)
    ensure_schema(connection)
    with transaction(connection):
        found = [incident for e in ENGAGEMENTS.values() for incident in e.incidents]
        record_incidents(connection, found, [None] * len(found))
    connection.close()
    assert answer(client, ANN_FIRST, 1)["status"] == 200  # C7 and C2: -0.3
    assert answer(client, BEN_FIRST, 4)["status"] == 200  # C2: +0.15

    response = client.get(
        "/api/v1/cells/sentiment",
        params={"start": "2024-06-01T00:00:00Z", "end": "2024-06-05T00:00:00Z"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["cells_total"] == 2
    c7, c2 = report["cells"]
    assert (c7["cell_id"], c7["rank"], c7["subscribers"], c7["incidents"]) == ("C7", 1, 1, 2)
    assert c7["sentiment_change"] == pytest.approx(-0.3) and c7["priority"] == pytest.approx(0.3)
    assert (c2["cell_id"], c2["subscribers"], c2["answers"]) == ("C2", 2, 2)
    assert c2["sentiment_change"] == pytest.approx(-0.075)
    assert c2["priority"] == pytest.approx(0.15)

    defaults = client.get("/api/v1/cells/sentiment", params={"limit": 1}).json()
    assert defaults["end"].startswith("2024-06-03T20:00:00.001")
    assert [cell["cell_id"] for cell in defaults["cells"]] == ["C7"]


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"start": "2024-06-05T00:00:00Z", "end": "2024-06-01T00:00:00Z"}, "query"),
        ({"metric": "latency"}, "query.metric"),
        ({"start": "2024-06-01T00:00:00"}, "query.start"),
        ({"limit": "0"}, "query.limit"),
    ],
)
def test_a_malformed_cell_query_is_refused(
    client: TestClient, params: dict[str, str], where: str
) -> None:
    response = client.get("/api/v1/cells/sentiment", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["problems"][0]["where"] == where


def test_the_apps_own_wiring_finds_engagements_in_the_queue(tmp_path: Path) -> None:
    from engage.queue import EngagementQueue

    settings = Settings(data_dir=tmp_path)
    connection = open_engage_db(settings.engage_db)
    EngagementQueue(connection).enqueue(connection, [ANN_FIRST])
    connection.close()
    with TestClient(create_app(settings)) as test_client:
        with_key(test_client)
        result = answer(test_client, ANN_FIRST, 2)
        assert result["status"] == 200, result
        assert result["after"] == pytest.approx(-0.15) and result["cells"] == ["C7", "C2"]
        assert answer(test_client, ANN_SECOND, 2)["status"] == 404
