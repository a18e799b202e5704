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
    assert summary["customers"] == 60 and summary["touchpoints"] > 60
    status = runner.invoke(app, ["status", "--json"])
    counts = json.loads(status.stdout)
    assert counts["Customer"] == 60
    assert counts["Touchpoint"] == summary["touchpoints"]
    assert counts["PERFORMED"] == counts["Touchpoint"]
    assert counts["NEXT"] == counts["Touchpoint"] - counts["Customer"]
    assert (data_dir / "journeygraph.db").exists()


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
