"""The milestone routes end to end: pushed events, a backfill, counts, dry runs.

These run once ``api/app.py`` mounts ``api.routes.milestones`` under ``/api/v1`` and
builds ``app.state.milestones`` with ``api.bootstrap.open_milestones``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.builders import with_key


def _call(
    n: int, day: int, event_type: str = "general_enquiry", **attributes: Any
) -> dict[str, Any]:
    return {
        "event_id": f"call-{n}",
        "source": "care",
        "event_type": event_type,
        "channel": "care",
        "ts": f"2024-05-{day:02d}T10:00:00Z",
        "identifiers": {"msisdn": "+447700900123"},
        "attributes": attributes,
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as test_client:
        with_key(test_client)
        events = [_call(1, 1), _call(2, 3), _call(3, 6), _call(4, 7, "csat_response", csat=1)]
        assert test_client.post("/api/v1/events", json={"events": events}).status_code == 200
        yield test_client


def _customer(client: TestClient) -> str:
    service = client.app.state.milestones  # type: ignore[attr-defined]
    return str(service.store.find_vertices("Customer", limit=1)[0].id)


def test_definitions_with_reach_counts_after_a_backfill(client: TestClient) -> None:
    before = {m["name"]: m for m in client.get("/api/v1/milestones").json()}
    assert before["repeat_care_3_in_7d"]["reached"] == 0
    assert before["repeat_care_3_in_7d"]["definition"]["condition"]["steps"][0]["count"] == 3
    client.app.state.milestones.backfill()  # type: ignore[attr-defined]
    after = {m["name"]: m for m in client.get("/api/v1/milestones").json()}
    assert after["repeat_care_3_in_7d"]["reached"] == 1
    assert after["low_csat"]["reached"] == 1 and after["churned"]["reached"] == 0
    one = client.get("/api/v1/milestones/first_care_contact").json()
    assert one["reached"] == 1 and one["first_reached_at"].startswith("2024-05-01T10:00:00")


def test_a_customers_milestones_in_time_order(client: TestClient) -> None:
    client.app.state.milestones.backfill()  # type: ignore[attr-defined]
    customer = _customer(client)
    body = client.get(f"/api/v1/customers/{customer}/milestones").json()
    assert [m["milestone"] for m in body] == [
        "first_care_contact",
        "repeat_care_3_in_7d",
        "low_csat",
    ]
    assert body[1]["evidence"] == ["call-1", "call-2", "call-3"]
    assert client.get("/api/v1/customers/nobody/milestones").status_code == 404


def test_dry_runs_by_name_and_inline(client: TestClient) -> None:
    named = client.post("/api/v1/milestones/dry-run", json={"name": "repeat_care_3_in_7d"})
    assert named.status_code == 200, named.text
    assert named.json()["reached"] == 1
    assert named.json()["sample"][0]["evidence"] == ["call-1", "call-2", "call-3"]
    inline = {
        "name": "two_calls_in_two_days",
        "description": "two care calls within two days",
        "condition": {"source": "care", "count": 2, "within": "2d"},
    }
    body = client.post("/api/v1/milestones/dry-run", json={"definition": inline}).json()
    assert body["reached"] == 1 and body["sample"][0]["evidence"] == ["call-1", "call-2"]
    assert client.get("/api/v1/milestones").json()[0]["reached"] == 0  # nothing written


BAD_DEFINITION = {"name": "x", "description": "d", "condition": {"count": 0}}


@pytest.mark.parametrize(
    ("request_body", "status", "code"),
    [
        ({"name": "nothing"}, 404, "unknown_milestone"),
        ({}, 422, "invalid_request"),
        (
            {"definition": {"name": "x", "description": "d", "condition": {"count": 0}}},
            422,
            "invalid_input",
        ),
    ],
)
def test_dry_run_errors(client: TestClient, request_body: Any, status: int, code: str) -> None:
    response = client.post("/api/v1/milestones/dry-run", json=request_body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_an_unknown_milestone_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/milestones/nothing")
    assert response.status_code == 404
    assert "repeat_care_3_in_7d" in response.json()["error"]["message"]
