"""The journeygraph CLI end to end on a temporary data folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.settings import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JOURNEYGRAPH_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


def test_load_demo_then_status(data_dir: Path) -> None:
    loaded = runner.invoke(app, ["load-demo", "--customers", "60", "--seed", "3", "--json"])
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.stdout)
    assert summary["read"] == summary["accepted"] > 60 * 20
    assert summary["quarantined"] == 0
    status = runner.invoke(app, ["status", "--json"])
    counts = json.loads(status.stdout)
    # Resolution, not the truth, decides: a few keyless records stay customers of their own.
    assert 60 <= counts["Customer"] < 60 * 1.5
    assert counts["Touchpoint"] == summary["accepted"]
    assert counts["PERFORMED"] == counts["Touchpoint"]
    assert counts["NEXT"] == counts["Touchpoint"] - counts["Customer"]
    assert (data_dir / "journeygraph.db").exists()
    assert (data_dir / "ingest" / "lake").is_dir()


def test_ingest_then_evaluate_against_the_truth(data_dir: Path, tmp_path: Path) -> None:
    world = tmp_path / "world"
    assert (
        runner.invoke(app, ["generate", "--customers", "200", "--out", str(world)]).exit_code == 0
    )
    for source in ("crm", "retail", "care", "clickstream", "network", "billing"):
        ingested = runner.invoke(app, ["ingest", str(world), "--source", source, "--json"])
        assert ingested.exit_code == 0, ingested.output
    again = runner.invoke(app, ["ingest", str(world), "--source", "crm", "--json"])
    assert json.loads(again.stdout)["files_skipped"] == 1
    scored = runner.invoke(
        app, ["resolve", "--no-probabilistic", "--evaluate", str(world), "--json"]
    )
    assert scored.exit_code == 0, scored.output
    evaluation = json.loads(scored.stdout)["evaluation"]
    assert evaluation["not_in_lake"] == 0
    assert evaluation["pairwise"]["precision"] > 0.98
    assert evaluation["bcubed"]["f1"] > 0.9
    listed = json.loads(runner.invoke(app, ["customers", "--limit", "3", "--json"]).stdout)
    assert len(listed) == 3 and all(row["id"].startswith("cust:") for row in listed)


def test_ingest_names_a_wrong_source(data_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path), "--source", "nonsense"])
    assert result.exit_code == 2
    assert "nonsense" in result.output


def test_generate_writes_sources_and_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "world"
    result = runner.invoke(app, ["generate", "--customers", "50", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["customers"] == 50


def test_generate_refuses_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = runner.invoke(app, ["generate", "--customers", "10", "--out", str(out)])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (out / "precious.txt").read_text() == "keep me"
