"""``journeygraph journeys ...`` over a lake on disk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.settings import get_settings
from bench.synthetic_lake import write_lake

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JOURNEYGRAPH_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    write_lake(tmp_path / "var" / "ingest" / "lake", customers=300, seed=3)
    yield tmp_path / "var"
    get_settings.cache_clear()


def test_frequency_as_json_and_as_a_table() -> None:
    args = ["journeys", "frequency", "--anchor", "bill_shock", "--max-steps", "3"]
    result = runner.invoke(app, [*args, "--top", "3", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert len(answer["journeys"]) == 3
    assert all(j["steps"][0] == "bill_shock" for j in answer["journeys"])
    shares = sum(j["share"] for j in answer["journeys"]) + answer["other"]["share"]
    assert shares == pytest.approx(1.0)

    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "bill_shock >" in table.stdout

    steps = ",".join(answer["journeys"][0]["steps"])
    drilled = runner.invoke(app, [*args, "--drill-journey", steps])
    assert json.loads(drilled.stdout)["total"] == answer["journeys"][0]["customers"]


def test_variants_and_clear_errors() -> None:
    result = runner.invoke(app, ["journeys", "variants", "--top", "2", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)["journeys"]) == 2
    wrong = runner.invoke(app, ["journeys", "frequency", "--anchor", "chrun"])
    assert wrong.exit_code == 2 and "never occurs" in wrong.output
    steps = runner.invoke(app, ["journeys", "frequency", "--anchor", "login", "--max-steps", "1"])
    assert steps.exit_code == 2 and "max_steps" in steps.output
