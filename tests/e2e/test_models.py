"""The propensity models end to end: CLI train / score / models, and the HTTP routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app
from api.settings import Settings, get_settings
from graph.embedded import EmbeddedStore
from tests.builders import with_key

runner = CliRunner()
CUSTOMERS = 1500


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A demo world with churn and next-best-offer models trained, promoted and scored."""
    data_dir = tmp_path_factory.mktemp("models") / "var"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JOURNEYGRAPH_DATA_DIR", str(data_dir))
        patch.setenv("JOURNEYGRAPH_TRAIN_EPOCHS", "2")
        get_settings.cache_clear()
        loaded = runner.invoke(app, ["load-demo", "--customers", str(CUSTOMERS), "--json"])
        assert loaded.exit_code == 0, loaded.output
        for task in ("churn", "nbo"):
            result = runner.invoke(app, ["train", task, "--json"])
            assert result.exit_code == 0, result.output
            scored = runner.invoke(app, ["score", task, "--json"])
            assert scored.exit_code == 0, scored.output
        yield data_dir
    get_settings.cache_clear()


@pytest.fixture
def cli(trained: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JOURNEYGRAPH_DATA_DIR", str(trained))
    get_settings.cache_clear()
    yield trained
    get_settings.cache_clear()


@pytest.fixture
def client(trained: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=trained))) as test_client:
        yield with_key(test_client)


def _a_scored_customer(data_dir: Path) -> str:
    with EmbeddedStore(data_dir / "journeygraph.db") as store:
        customers = store.export_frame("Customer")
    return str(customers.dropna(subset=["churn_score"])["id"].iloc[0])


def test_training_reports_gnn_and_baseline_on_a_temporal_holdout(cli: Path) -> None:
    listed = json.loads(runner.invoke(app, ["models", "list", "churn", "--json"]).stdout)
    assert len(listed) == 1 and listed[0]["promoted"]
    card = json.loads(runner.invoke(app, ["models", "show", "churn"]).stdout)
    assert set(card["metrics"]) == {"gnn", "baseline"}
    assert {"auroc", "auprc", "positives"} <= set(card["metrics"]["gnn"])
    assert card["train_cutoff"] < card["holdout_cutoff"] < card["data_cutoff"]
    assert card["config"]["epochs"] == 2
    assert card["code_version"].startswith("0.1.0")
    assert card["schema"]["customer"][0].startswith("events:")
    nbo = json.loads(runner.invoke(app, ["models", "show", "nbo"]).stdout)
    assert {"revenue@5", "ndcg@5"} <= set(nbo["metrics"]["baseline"])
    runs = json.loads(runner.invoke(app, ["models", "runs", "--json"]).stdout)
    assert [run["task"] for run in runs] == ["churn", "nbo"]
    assert all(run["promoted"] and run["reason"] == "first model of the task" for run in runs)


def test_scores_are_written_back_with_the_model_version(cli: Path) -> None:
    with EmbeddedStore(cli / "journeygraph.db") as store:
        customers = store.export_frame("Customer")
    scored = customers.dropna(subset=["churn_score"])
    version = json.loads(runner.invoke(app, ["models", "show", "churn"]).stdout)["version"]
    assert len(scored) > CUSTOMERS * 0.8
    assert scored["churn_score"].between(0, 1).all()
    assert set(scored["churn_model_version"]) == {version}
    offers = scored["nbo_offers"].str.split(",")
    assert offers.map(len).eq(5).all()
    assert offers.map(lambda ids: len(set(ids)) == 5).all()


def test_predict_is_deterministic_and_close_to_the_batch_score(cli: Path) -> None:
    customer = _a_scored_customer(cli)
    first = runner.invoke(app, ["models", "predict", "churn", customer, "--json"])
    second = runner.invoke(app, ["models", "predict", "churn", customer, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == json.loads(second.stdout)
    assert 0 <= json.loads(first.stdout)["score"] <= 1


def test_a_model_that_is_not_worse_is_promoted_and_a_missing_version_is_refused(
    cli: Path,
) -> None:
    again = runner.invoke(app, ["train", "churn", "--epochs", "1", "--no-promote", "--json"])
    assert again.exit_code == 0, again.output
    outcome = json.loads(again.stdout)
    assert outcome["promoted"] is False
    assert "promotion not asked for" in outcome["reason"]
    listed = json.loads(runner.invoke(app, ["models", "list", "churn", "--json"]).stdout)
    assert len(listed) == 2 and listed[0]["promoted"] and not listed[1]["promoted"]
    missing = runner.invoke(app, ["models", "promote", "churn", "churn-19990101T000000Z"])
    assert missing.exit_code == 2
    assert "no churn model version" in missing.output
    listed = json.loads(runner.invoke(app, ["models", "list", "churn", "--json"]).stdout)
    assert listed[0]["promoted"]


def test_bad_training_requests_fail_clearly(cli: Path) -> None:
    unknown = runner.invoke(app, ["train", "upsell"])
    assert unknown.exit_code == 2 and "unknown task 'upsell'" in unknown.output
    too_long = runner.invoke(app, ["train", "churn", "--horizon-days", "400"])
    assert too_long.exit_code == 2
    assert "no positive labels" in too_long.output
    unscored = runner.invoke(app, ["score", "csat"])
    assert unscored.exit_code == 2 and "no csat model" in unscored.output


def test_training_on_an_empty_graph_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYGRAPH_DATA_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["train", "churn"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "no customers" in result.output
    assert not (tmp_path / "empty" / "models" / "churn").exists()


def test_predict_route(client: TestClient, trained: Path) -> None:
    customer = _a_scored_customer(trained)
    response = client.post("/api/v1/models/churn/predict", json={"customer_id": customer})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == customer and 0 <= body["score"] <= 1
    assert body["model_version"].startswith("churn-")
    offers = client.post("/api/v1/models/nbo/predict", json={"customer_id": customer}).json()
    assert len(offers["offers"]) == 5
    revenue = [offer["expected_revenue"] for offer in offers["offers"]]
    assert revenue == sorted(revenue, reverse=True)
    assert offers["score"] == pytest.approx(revenue[0])


def test_scores_and_model_routes(client: TestClient, trained: Path) -> None:
    customer = _a_scored_customer(trained)
    scores = client.get(f"/api/v1/customers/{customer}/scores").json()["scores"]
    assert set(scores) == {"churn", "nbo"}
    assert scores["churn"]["model_version"].startswith("churn-")
    card = client.get("/api/v1/models/churn").json()
    assert set(card["metrics"]) == {"gnn", "baseline"}


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/api/v1/models/upsell/predict", {"customer_id": "cust:x"}, 422, "unknown task"),
        ("/api/v1/models/churn/predict", {"customer_id": "cust:nobody"}, 404, "not in the graph"),
        ("/api/v1/models/fraud/predict", {"customer_id": "cust:nobody"}, 404, "no fraud model"),
        ("/api/v1/models/churn/predict", {"customer": "cust:x"}, 422, "customer_id"),
    ],
)
def test_predict_route_errors(
    client: TestClient, path: str, body: dict[str, str], status: int, fragment: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert fragment in json.dumps(response.json())
