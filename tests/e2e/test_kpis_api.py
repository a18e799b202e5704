"""GET /api/v1/kpis: touchpoints pushed in through HTTP, KPIs computed over the lake."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.builders import with_key
from tests.unit.journeys.test_kpis_lake import write_reaches


def _event(
    customer: str, n: int, event_type: str, channel: str, ts: str, **attributes: Any
) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-{n}",
        "source": "care" if channel in ("care", "ivr", "sms") else "app",
        "event_type": event_type,
        "channel": channel,
        "ts": ts,
        "identifiers": {"email": f"{customer}@example.com"},
        "attributes": attributes,
    }


# ann calls twice within two days (a repeat), then answers a CSAT survey about the
# second call; bob calls once, resolved, and uses the app.
EVENTS = [
    _event("ann", 1, "bill_dispute", "care", "2024-05-06T10:00:00Z", outcome="resolved"),
    _event("ann", 2, "bill_dispute", "care", "2024-05-08T10:00:00Z", outcome="resolved"),
    _event("ann", 3, "csat_response", "sms", "2024-05-08T12:00:00Z", csat=2, call_id="2"),
    _event("bob", 1, "general_enquiry", "ivr", "2024-05-13T09:00:00Z", outcome="resolved"),
    _event("bob", 2, "login", "app", "2024-05-20T09:00:00Z"),
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as test_client:
        with_key(test_client)
        response = test_client.post("/api/v1/events", json={"events": EVENTS})
        assert response.status_code == 200, response.text
        yield test_client


def test_the_catalog_lists_kpis_segments_and_grains(client: TestClient) -> None:
    catalog = client.get("/api/v1/kpis").json()
    names = {kpi["name"] for kpi in catalog["kpis"]}
    assert {"funnel_conversion", "repeat_contacts", "csat_by_journey", "channel_mix"} <= names
    repeat = next(kpi for kpi in catalog["kpis"] if kpi["name"] == "repeat_contacts")
    assert repeat["parameters"]["days"]["default"] == 7 and repeat["description"]
    assert "sql" not in repeat
    assert {s["name"] for s in catalog["segments"]} >= {"tenure_band", "primary_channel"}
    assert catalog["grains"] == ["none", "day", "week", "month"]


def test_a_kpi_by_week_with_parameters(client: TestClient) -> None:
    response = client.get("/api/v1/kpis/repeat_contacts", params={"grain": "week"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["kpi"] == "repeat_contacts" and result["grain"] == "week"
    assert [(r["period"], r["numerator"], r["denominator"]) for r in result["rows"]] == [
        ("2024-05-06", 1, 2),  # ann's first call is repeated two days later
        ("2024-05-13", 0, 1),
    ]
    one_day = client.get("/api/v1/kpis/repeat_contacts", params={"param": "days=1"}).json()
    assert one_day["parameters"]["days"] == 1 and one_day["rows"][0]["numerator"] == 0
    csat = client.get("/api/v1/kpis/csat_by_journey").json()
    assert [(r["dimension"], r["value"]) for r in csat["rows"]] == [("bill_dispute", 2.0)]


def test_a_kpi_by_segment_and_window(client: TestClient) -> None:
    params = {"segment": "primary_channel", "since": "2024-05-07T00:00:00Z"}
    result = client.get("/api/v1/kpis/channel_mix", params=params).json()
    assert result["segment"] == "primary_channel"
    rows = {(r["segment"], r["dimension"]): r["numerator"] for r in result["rows"]}
    assert rows == {("care", "care"): 1, ("care", "sms"): 1, ("app", "app"): 1, ("app", "ivr"): 1}


def test_a_funnel_over_milestone_reaches(client: TestClient, tmp_path: Path) -> None:
    at = datetime(2024, 5, 6, 10, tzinfo=UTC)
    lake_root = tmp_path / "ingest" / "lake"
    write_reaches(lake_root, [[("nobody-yet", "first", 1, at)]])
    params = {"param": ["steps=first,second", "window_days=3"]}
    result = client.get("/api/v1/kpis/funnel_conversion", params=params).json()
    assert [(r["step"], r["numerator"], r["denominator"]) for r in result["rows"]] == [
        (1, 1, 1),
        (2, 0, 1),
    ]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/kpis/nps", {}, 404, "unknown_kpi"),
        ("/api/v1/kpis/repeat_contacts", {"param": "dayz=1"}, 422, "invalid_input"),
        ("/api/v1/kpis/repeat_contacts", {"param": "days"}, 422, "invalid_input"),
        ("/api/v1/kpis/repeat_contacts", {"grain": "year"}, 422, "invalid_request"),
        ("/api/v1/kpis/repeat_contacts", {"segment": "age"}, 422, "invalid_input"),
        ("/api/v1/kpis/repeat_contacts", {"since": "2024-05-01T00:00:00"}, 422, "invalid_input"),
        ("/api/v1/kpis/funnel_conversion", {}, 422, "invalid_input"),
    ],
)
def test_errors_are_json_with_a_code(
    client: TestClient, path: str, params: dict[str, str], status: int, code: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
