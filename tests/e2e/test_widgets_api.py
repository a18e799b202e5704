"""Widget data over HTTP: a read key or an embed token, and what a token fixes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.security import issue_embed_token
from api.settings import DEFAULT_SECRET
from tests.builders import push_journey


@pytest.fixture
def world(client: TestClient) -> TestClient:
    push_journey(client, "ann", ["login", "bill_shock", "care_call", "port_out"])
    push_journey(client, "bob", ["bill_shock", "care_call", "port_out"])
    push_journey(client, "cat", ["bill_shock", "payment"])
    return client


def token(client: TestClient, widget: str, ttl: float = 3600, **params: str) -> str:
    record, _ = client.app.state.guard.keys.create("embedder", ["read"])  # type: ignore[attr-defined]
    signed, _ = issue_embed_token(DEFAULT_SECRET, widget, params, timedelta(seconds=ttl), record.id)
    return signed


def as_embed(client: TestClient, url: str, signed: str, **params: Any) -> Any:
    return client.get(url, params={"token": signed, **params}, headers={"X-API-Key": ""})


def ann(client: TestClient) -> str:
    """Ann's customer id (the one journey that starts with a login)."""
    [customer] = client.post(
        "/api/v1/journeys/frequency/customers",
        json={
            "query": {"anchor": "login", "max_steps": 2},
            "drill": {"journey": ["login", "bill_shock"]},
        },
    ).json()["customers"]
    return str(customer)


def test_a_read_key_gets_every_journey_widget(world: TestClient) -> None:
    sankey = world.get("/widgets/sankey/data", params={"anchor": "bill_shock", "max_steps": "3"})
    assert sankey.status_code == 200, sankey.text
    assert [link["count"] for link in sankey.json()["links"]] == [2, 1, 2]
    table = world.get("/widgets/journey-table/data", params={"anchor": "bill_shock", "top": "1"})
    assert table.json()["journeys"][0]["steps"] == ["bill_shock", "care_call", "port_out"]
    drilled = world.get(
        "/widgets/sankey/customers",
        params={"anchor": "bill_shock", "step": 2, "event_type": "care_call"},
    )
    assert drilled.json()["total"] == 2
    by_journey = world.get(
        "/widgets/journey-table/customers",
        params={"anchor": "bill_shock", "journey": "bill_shock>payment"},
    )
    assert by_journey.json()["total"] == 1


def test_an_embed_token_fixes_its_parameters(world: TestClient) -> None:
    signed = token(world, "sankey", anchor="bill_shock", max_steps="3")
    shown = as_embed(world, "/widgets/sankey/data", signed)
    assert shown.status_code == 200 and shown.json()["total_journeys"] == 3
    same = as_embed(world, "/widgets/sankey/data", signed, anchor="bill_shock", top="2")
    assert same.status_code == 200, "unfixed parameters stay free"
    widened = as_embed(world, "/widgets/sankey/data", signed, anchor="login")
    assert widened.status_code == 403
    assert "fixes anchor to 'bill_shock'" in widened.json()["error"]["message"]
    drilled = as_embed(world, "/widgets/sankey/customers", signed, step="2", event_type="care_call")
    assert drilled.json()["total"] == 2, "drill-downs inherit the fixed query"
    other = as_embed(world, "/widgets/journey-table/data", signed)
    assert other.status_code == 403 and "opens the 'sankey' widget" in other.text
    bearer = world.get(
        "/widgets/sankey/data", headers={"X-API-Key": "", "Authorization": f"Bearer {signed}"}
    )
    assert bearer.status_code == 200


def test_expired_tampered_and_revoked_tokens_are_401(world: TestClient) -> None:
    expired = token(world, "sankey", ttl=0.001, anchor="bill_shock")
    response = as_embed(world, "/widgets/sankey/data", expired)
    assert response.status_code == 401 and response.json()["error"]["code"] == "expired_token"
    good = token(world, "sankey", anchor="bill_shock")
    tampered = good[:5] + ("x" if good[5] != "x" else "y") + good[6:]
    response = as_embed(world, "/widgets/sankey/data", tampered)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"
    key_id = world.app.state.guard.keys.keys()[-1].id  # type: ignore[attr-defined]
    world.delete(f"/api/v1/admin/keys/{key_id}")
    response = as_embed(world, "/widgets/sankey/data", good)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    anonymous = world.get("/widgets/sankey/data?anchor=x", headers={"X-API-Key": ""})
    assert anonymous.status_code == 401


def test_pages_check_their_token_before_showing_anything(world: TestClient) -> None:
    good = token(world, "funnel", steps="a,b")
    page = world.get("/widgets/funnel", params={"token": good})
    assert page.status_code == 200 and 'data-widget="funnel"' in page.text
    wrong = world.get("/widgets/sankey", params={"token": good})
    assert wrong.status_code == 403 and "This embedded view is not allowed" in wrong.text
    expired = token(world, "funnel", ttl=0.001, steps="a,b")
    gone = world.get("/widgets/funnel", params={"token": expired})
    assert gone.status_code == 401 and "has expired" in gone.text
    assert gone.headers["content-type"].startswith("text/html")
    forged = world.get("/widgets/funnel", params={"token": "abc.def"})
    assert forged.status_code == 401 and "link is not valid" in forged.text
    assert "<script" not in world.get("/widgets/funnel", params={"token": "<script>"}).text


def test_the_customer_timeline_and_bad_parameters(world: TestClient) -> None:
    customer = ann(world)
    view = world.get("/widgets/customer-timeline/data", params={"customer_id": customer}).json()
    assert view["customer_id"] == customer and view["touchpoints_total"] == 4
    assert [t["event_type"] for t in view["touchpoints"]][:2] == ["login", "bill_shock"]
    assert view["identifiers"][0]["kind"] == "email" and view["scores"] == {}
    unknown = world.get("/widgets/customer-timeline/data", params={"customer_id": "cust:nobody"})
    assert unknown.status_code == 404
    for url, params, message in [
        ("/widgets/sankey/data", {}, "anchor is required"),
        ("/widgets/sankey/data", {"anchor": "x", "segment": "tenure"}, "expected NAME=VALUE"),
        ("/widgets/sankey/data", {"anchor": "x", "max_steps": "99"}, "max_steps"),
        ("/widgets/kpi-tile/data", {}, "kpi is required"),
        ("/widgets/kpi-tile/data", {"kpi": "nope"}, "nope"),
        ("/widgets/funnel/data", {}, "steps is required"),
        ("/widgets/customer-timeline/data", {}, "customer_id is required"),
        ("/widgets/sankey/customers", {"anchor": "bill_shock"}, "either journey"),
    ]:
        response = world.get(url, params=params)
        assert response.status_code in (404, 422), (url, response.text)
        assert message in response.json()["error"]["message"], (url, response.text)


def test_a_timeline_token_fixes_since_too(world: TestClient) -> None:
    customer = ann(world)
    view = world.get("/widgets/customer-timeline/data", params={"customer_id": customer}).json()
    third = view["touchpoints"][2]["ts"]
    signed = token(world, "customer-timeline", customer_id=customer, since=third)
    locked = as_embed(world, "/widgets/customer-timeline/data", signed)
    assert locked.status_code == 200, locked.text
    assert [t["ts"] for t in locked.json()["touchpoints"]] == [
        t["ts"] for t in view["touchpoints"][2:]
    ]
    widened = as_embed(world, "/widgets/customer-timeline/data", signed, since="2000-01-01")
    assert widened.status_code == 403 and "fixes since" in widened.json()["error"]["message"]
    bad = world.get(
        "/widgets/customer-timeline/data", params={"customer_id": customer, "since": "soon"}
    )
    assert bad.status_code == 422 and "since='soon'" in bad.json()["error"]["message"]
