"""``journeygraph kpis`` over a hand-made lake on disk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.settings import get_settings
from tests.unit.journeys.test_kpis_lake import build_lake

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JOURNEYGRAPH_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    build_lake(tmp_path / "var" / "ingest" / "lake")
    yield tmp_path / "var"
    get_settings.cache_clear()


def test_list_the_kpis() -> None:
    listed = runner.invoke(app, ["kpis", "--json"])
    assert listed.exit_code == 0, listed.output
    catalog = json.loads(listed.stdout)
    assert "repeat_contacts" in {kpi["name"] for kpi in catalog["kpis"]}
    table = runner.invoke(app, ["kpis"])
    assert table.exit_code == 0 and "funnel_conversion" in table.stdout


def test_one_kpi_by_week_and_segment_as_json() -> None:
    # No identity index here, so nothing is merged: eve's last two calls stay eve2's,
    # and eve and eve2 have two contacts each (medium care intensity).
    args = ["kpis", "repeat_contacts", "--grain", "month", "--segment", "care_intensity"]
    result = runner.invoke(app, [*args, "--since", "2024-01-01", "--param", "days=7", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["parameters"]["days"] == 7
    assert answer["since"].startswith("2024-01-01T00:00:00")
    rows = [(r["period"], r["segment"], r["numerator"], r["denominator"]) for r in answer["rows"]]
    assert rows == [
        ("2024-01-01", "medium", 2, 6),  # ann and bob
        ("2024-04-01", "low", 0, 1),  # cat
        ("2024-05-01", "medium", 2, 4),  # E1 and E3 repeated
    ]


def test_a_funnel_as_a_table_and_clear_errors() -> None:
    args = ["kpis", "funnel_conversion", "--param", "steps=bill_shock,care_call"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "care_call" in table.stdout
    missing = runner.invoke(app, ["kpis", "funnel_conversion"])
    assert missing.exit_code == 2 and "needs parameter steps" in missing.output
    unknown = runner.invoke(app, ["kpis", "nps"])
    assert unknown.exit_code == 2 and "no KPI 'nps'" in unknown.output
