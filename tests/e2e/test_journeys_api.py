"""POST /api/v1/journeys/*: touchpoints pushed in, journeys counted out, through HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.builders import push_journey


def test_frequency_counts_pushed_journeys_and_drills_down(client: TestClient) -> None:
    push_journey(client, "ann", ["login", "bill_shock", "care_call", "port_out"])
    push_journey(client, "bob", ["bill_shock", "care_call", "port_out"])
    push_journey(client, "cat", ["bill_shock", "payment"])
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
    push_journey(client, "dan", ["bill_shock", "payment"])
    again = client.post("/api/v1/journeys/frequency", json=query).json()
    assert again["journeys"][0]["count"] == 2 and again["journeys"][1]["count"] == 2


def test_variants_and_bad_queries(client: TestClient) -> None:
    push_journey(client, "ann", ["login", "bill_shock"])
    variants = client.post("/api/v1/journeys/variants", json={"top": 5}).json()
    assert variants["journeys"] == [
        {"steps": ["login", "bill_shock"], "count": 1, "customers": 1, "share": 1.0}
    ]
    unknown = client.post("/api/v1/journeys/frequency", json={"anchor": "chrun"})
    assert unknown.status_code == 422
    assert "'chrun' never occurs" in unknown.json()["error"]["message"]
    invalid = client.post("/api/v1/journeys/frequency", json={"anchor": "login", "max_steps": 50})
    assert invalid.status_code == 422


def test_a_drill_down_that_matches_nothing_is_empty_not_an_error(client: TestClient) -> None:
    push_journey(client, "ann", ["login", "bill_shock", "care_call"])
    push_journey(client, "bob", ["payment"])
    drill = {"query": {"anchor": "login"}, "drill": {"journey": ["login", "payment"]}}
    response = client.post("/api/v1/journeys/frequency/customers", json=drill)
    assert response.status_code == 200, response.text
    assert response.json() == {"total": 0, "customers": []}
