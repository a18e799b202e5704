"""POST /api/v1/journeys/*: touchpoints pushed in, journeys counted out, through HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as test_client:
        yield test_client


def _push(client: TestClient, customer: str, events: list[str]) -> None:
    body = {
        "events": [
            {
                "event_id": f"{customer}-{n}",
                "source": "app",
                "event_type": event,
                "channel": "app",
                "ts": f"2024-05-01T10:{n:02d}:00Z",
                "identifiers": {"email": f"{customer}@example.com"},
            }
            for n, event in enumerate(events)
        ]
    }
    response = client.post("/api/v1/events", json=body)
    assert response.status_code == 200, response.text


def test_frequency_counts_pushed_journeys_and_drills_down(client: TestClient) -> None:
    _push(client, "ann", ["login", "bill_shock", "care_call", "port_out"])
    _push(client, "bob", ["bill_shock", "care_call", "port_out"])
    _push(client, "cat", ["bill_shock", "payment"])
    query = {"anchor": "bill_shock", "max_steps": 3}
    response = client.post("/api/v1/journeys/frequency", json=query)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [(j["steps"], j["count"]) for j in result["journeys"]] == [
        (["bill_shock", "care_call", "port_out"], 2),
        (["bill_shock", "payment"], 1),
    ]
    assert result["links"][0]["median_seconds"] == 60.0

    drill = {"query": query, "drill": {"journey": ["bill_shock", "payment"]}}
    customers = client.post("/api/v1/journeys/frequency/customers", json=drill).json()
    assert customers["total"] == 1 and customers["customers"][0].startswith("cust:")

    # A new push is seen by the next query: the timelines are rebuilt from the lake.
    _push(client, "dan", ["bill_shock", "payment"])
    again = client.post("/api/v1/journeys/frequency", json=query).json()
    assert again["journeys"][0]["count"] == 2 and again["journeys"][1]["count"] == 2


def test_variants_and_bad_queries(client: TestClient) -> None:
    _push(client, "ann", ["login", "bill_shock"])
    variants = client.post("/api/v1/journeys/variants", json={"top": 5}).json()
    assert variants["journeys"] == [
        {"steps": ["login", "bill_shock"], "count": 1, "customers": 1, "share": 1.0}
    ]
    unknown = client.post("/api/v1/journeys/frequency", json={"anchor": "chrun"})
    assert unknown.status_code == 422
    assert "'chrun' never occurs" in unknown.json()["error"]["message"]
    invalid = client.post("/api/v1/journeys/frequency", json={"anchor": "login", "max_steps": 50})
    assert invalid.status_code == 422
