"""POST /api/v1/events: the push path, end to end through the HTTP app."""

from __future__ import annotations

from fastapi.testclient import TestClient


def _event(n: int, **identifiers: str) -> dict[str, object]:
    return {
        "event_id": f"push-{n}",
        "source": "app",
        "event_type": "login",
        "channel": "app",
        "ts": f"2024-05-01T10:0{n}:00Z",
        "identifiers": identifiers,
    }


def test_pushed_events_are_resolved_and_bad_ones_reported(client: TestClient) -> None:
    body = {
        "events": [
            _event(1, msisdn="07700 900123"),
            {"event_id": "broken", "source": "app"},
            _event(2, msisdn="+44 7700 900123", email="ann@example.com"),
        ]
    }
    response = client.post("/api/v1/events", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["received"], result["accepted"], result["quarantined"]) == (3, 2, 1)
    assert result["customers_created"] == 1
    [rejected] = result["rejected"]
    assert rejected["row"] == 2 and any("ts" in reason for reason in rejected["reasons"])

    again = client.post("/api/v1/events", json=body).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)


def test_an_empty_or_oversized_push_is_refused(client: TestClient) -> None:
    assert client.post("/api/v1/events", json={"events": []}).status_code == 422
    assert client.post("/api/v1/events", json={"nope": 1}).status_code == 422
