"""The HTTP API on the embedded store, through FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from graph import EmbeddedStore
from tests.builders import alice_and_bob, with_key


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = EmbeddedStore(tmp_path / "g.db")
    alice_and_bob(store)
    app = create_app(Settings(data_dir=tmp_path), store=store)
    with TestClient(app) as test_client:
        yield with_key(test_client)
    store.close()


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "backend": None, "detail": None}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_customer_profile_with_or_without_prefix(client: TestClient) -> None:
    for customer in ("cust:alice", "alice"):
        body = client.get(f"/api/v1/customers/{customer}").json()
        assert body["id"] == "cust:alice"
        assert body["touchpoints"] == 4 and body["identifiers"] == 1


def test_journey_in_time_order(client: TestClient) -> None:
    body = client.get("/api/v1/customers/alice/journey").json()
    assert [tp["event_type"] for tp in body["touchpoints"]] == [
        "bill_shock",
        "care_call",
        "care_call",
        "port_out_request",
    ]
    limited = client.get("/api/v1/customers/alice/journey", params={"limit": 1}).json()
    assert len(limited["touchpoints"]) == 1


def test_identifiers_with_provenance(client: TestClient) -> None:
    body = client.get("/api/v1/customers/bob/identifiers").json()
    assert body == [
        {
            "id": "id:msisdn:+447700900002",
            "kind": "msisdn",
            "value": "+447700900002",
            "link": {"method": "det", "rule": "msisdn", "score": 1.0},
        }
    ]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/customers/nobody", 404, "unknown_customer"),
        ("/api/v1/customers/nobody/journey", 404, "unknown_customer"),
        ("/api/v1/customers/alice/journey?limit=0", 422, "invalid_request"),
        ("/api/v1/customers/alice/journey?start=2024-01-01T00:00:00", 422, "invalid_input"),
        ("/api/v1/customers/al%0Aice", 422, "malformed_id"),
    ],
)
def test_errors_are_json_with_a_code(client: TestClient, path: str, status: int, code: str) -> None:
    response = client.get(path)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_production_mode_refuses_the_default_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        create_app(Settings(mode="production", data_dir=tmp_path))


def test_lists_page_with_total_and_next_link(client: TestClient) -> None:
    first = client.get("/api/v1/customers/cust:alice/identifiers", params={"limit": 1})
    assert first.status_code == 200 and len(first.json()) == 1
    assert first.headers["X-Total-Count"] == "1" and "Link" not in first.headers
    journey = client.get("/api/v1/customers/cust:alice/journey", params={"limit": 3}).json()
    assert len(journey["touchpoints"]) == 3 and journey["next_cursor"]
    rest = client.get(
        "/api/v1/customers/cust:alice/journey",
        params={"limit": 3, "cursor": journey["next_cursor"]},
    ).json()
    assert [t["event_type"] for t in rest["touchpoints"]] == ["port_out_request"]
    assert rest["next_cursor"] is None
    for _ in range(3):
        client.post("/api/v1/admin/keys", json={"name": "k", "scopes": ["read"]})
    keys = client.get("/api/v1/admin/keys", params={"limit": 2, "offset": 1})
    assert keys.headers["X-Total-Count"] == "4" and len(keys.json()) == 2
    assert keys.headers["Link"].endswith('offset=3&limit=2>; rel="next"')
    bad = client.get("/api/v1/customers/cust:alice/journey", params={"cursor": "nope"})
    assert bad.status_code == 422 and "cursor" in bad.json()["error"]["message"]
