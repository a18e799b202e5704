"""POST /api/v1/journeys/similar and ``journeygraph journeys similar``, end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from api.settings import get_settings
from bench.synthetic_lake import write_lake
from tests.builders import push_journey


def test_similar_customers_of_pushed_journeys(client: TestClient) -> None:
    journey = ["login", "bill_shock", "care_call", "port_out"]
    push_journey(client, "ann", journey)
    push_journey(client, "bob", ["bill_shock", "care_call", "port_out"])
    push_journey(client, "cat", ["login", "payment"])
    query = {"steps": journey, "top": 2, "min_similarity": 0.5}
    response = client.post("/api/v1/journeys/similar", json=query)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["steps"] == journey and result["count"] == 2
    best, second = result["similar"]
    assert best["similarity"] == 1.0 and best["outcome"] == "churned"
    assert second["similarity"] == 0.75 and second["shared_steps"] == journey[1:]
    assert result["outcomes"]["churned"] == 2

    # Whose journeys are most like ann's? Ask by customer id; a new push is seen.
    push_journey(client, "dan", ["login", "bill_shock", "care_call", "offer_accepted"])
    query = {"customer": best["customer"], "top": 2}
    like_ann = client.post("/api/v1/journeys/similar", json=query).json()["similar"]
    assert [m["similarity"] for m in like_ann] == [0.75, 0.75]
    assert second["customer"] in {m["customer"] for m in like_ann}
    assert sorted(m["outcome"] for m in like_ann) == ["accepted_offer", "churned"]


def test_bad_similarity_queries_are_clear(client: TestClient) -> None:
    push_journey(client, "ann", ["login", "payment"])
    unknown = client.post("/api/v1/journeys/similar", json={"customer": "cust:nobody"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_customer"
    steps = client.post("/api/v1/journeys/similar", json={"steps": ["login", "chrun"]})
    assert steps.status_code == 422 and "'chrun'" in steps.json()["error"]["message"]
    both = client.post("/api/v1/journeys/similar", json={"customer": "x", "steps": ["login"]})
    assert both.status_code == 422


@pytest.fixture
def lake_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JOURNEYGRAPH_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    lake = tmp_path / "var" / "ingest" / "lake"
    write_lake(lake, customers=300, seed=3)
    yield lake
    get_settings.cache_clear()


def test_the_command_line_answers_as_json_and_as_a_table(lake_on_disk: Path) -> None:
    runner = CliRunner()
    args = ["journeys", "similar", "--steps", "bill_shock,general_enquiry,bill_dispute"]
    result = runner.invoke(cli, [*args, "--top", "3", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert len(answer["similar"]) == 3 and answer["method"] in ("lsh", "lsh+exact")
    assert (lake_on_disk / "similarity" / "meta.json").exists()  # kept beside the lake

    customer = answer["similar"][0]["customer"]
    table = runner.invoke(cli, ["journeys", "similar", "--customer", customer, "--top", "2"])
    assert table.exit_code == 0, table.output
    assert "similarity" in table.stdout

    wrong = runner.invoke(cli, ["journeys", "similar", "--steps", "bill_shock,chrun"])
    assert wrong.exit_code == 2 and "chrun" in wrong.output
    neither = runner.invoke(cli, ["journeys", "similar"])
    assert neither.exit_code == 2 and "customer or steps" in neither.output
