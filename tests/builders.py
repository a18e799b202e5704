"""Small hand-made graphs with named customers, shared by the test suites."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from graph import GraphStore
from graph.model import customer_id, identifier_id, touchpoint_id

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Journey:
    """A customer and the event types of their touchpoints, one hour apart from ``start``."""

    name: str
    events: list[str]
    start: datetime = T0
    msisdn: str | None = None
    touchpoint_ids: list[str] = field(default_factory=list)

    @property
    def customer(self) -> str:
        return customer_id(self.name)


def add_journeys(store: GraphStore, *journeys: Journey, channel: str = "app") -> None:
    """Write customers, their touchpoints, PERFORMED and NEXT edges and MSISDN identifiers."""
    store.upsert_vertices("Customer", [(j.customer, {"name": j.name.title()}) for j in journeys])
    touchpoints, performed, next_edges, identifiers, has_identifier = [], [], [], [], []
    for journey in journeys:
        journey.touchpoint_ids = []
        for step, event_type in enumerate(journey.events):
            tp = touchpoint_id(f"{journey.name}-{step:03d}")
            ts = journey.start + timedelta(hours=step)
            touchpoints.append(
                (tp, {"event_type": event_type, "channel": channel, "ts": ts, "source": "test"})
            )
            performed.append((journey.customer, tp, {}))
            if journey.touchpoint_ids:
                next_edges.append((journey.touchpoint_ids[-1], tp, {"dt_seconds": 3600}))
            journey.touchpoint_ids.append(tp)
        if journey.msisdn:
            ident = identifier_id("msisdn", journey.msisdn)
            identifiers.append((ident, {"kind": "msisdn", "value": journey.msisdn}))
            has_identifier.append(
                (journey.customer, ident, {"method": "det", "rule": "msisdn", "score": 1.0})
            )
    store.upsert_vertices("Touchpoint", touchpoints)
    store.upsert_edges("PERFORMED", performed)
    store.upsert_edges("NEXT", next_edges)
    if identifiers:
        store.upsert_vertices("Identifier", identifiers)
        store.upsert_edges("HAS_IDENTIFIER", has_identifier)


def alice_and_bob(store: GraphStore) -> tuple[Journey, Journey]:
    """Alice: bill shock, two care calls, port-out; Bob: app login then an offer accepted."""
    alice = Journey(
        "alice",
        ["bill_shock", "care_call", "care_call", "port_out_request"],
        msisdn="+447700900001",
    )
    bob = Journey("bob", ["app_login", "offer_accepted"], msisdn="+447700900002")
    add_journeys(store, alice, bob)
    return alice, bob


def push_journey(client: Any, customer: str, events: list[str]) -> None:
    """POST one customer's events (a minute apart, known by an email) to /api/v1/events."""
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


def with_key(client: Any, *scopes: str) -> Any:
    """A started ``TestClient`` that sends a new API key (admin unless ``scopes`` say)."""
    _, key = client.app.state.guard.keys.create("tests", list(scopes) or ["admin"])
    client.headers["X-API-Key"] = key
    return client
