"""The cell-heatmap widget: its data route, and the figure the shared script draws.

The script's figure function also runs under Node (when installed) with the app's real
answer, so what it draws is checked without a browser; tests/browser checks it in one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from engage._db import open_engage_db
from engage.cells import ensure_schema, record_incidents
from engage.model import Incident

NODE = shutil.which("node")
SCRIPT = Path(__file__).parents[2] / "api" / "widgets" / "static" / "widgets.js"


def seed(settings: Settings) -> None:
    connection = open_engage_db(settings.engage_db)
    ensure_schema(connection)
    ts = datetime(2024, 6, 3, 18, 0, tzinfo=UTC)
    found = [
        Incident("+447700900001", "drops", "call_drop_rate", 0.3, 0.16, 60, ts, ("C7", "C2")),
        Incident("+447700900002", "drops", "call_drop_rate", 0.3, 0.16, 60, ts, ("C2",)),
    ]
    record_incidents(connection, found, [None, None])
    connection.close()


@pytest.fixture
def settings(client: TestClient) -> Settings:
    resolved: Settings = client.app.state.settings  # type: ignore[attr-defined]
    return resolved


def test_the_page_loads_the_bundled_plotly_never_a_cdn(client: TestClient) -> None:
    html = client.get("/widgets/cell-heatmap").text
    assert '<script src="static/plotly.min.js"></script>' in html
    assert 'data-widget="cell-heatmap"' in html
    assert "://" not in html  # no absolute URL anywhere, so nothing loads from elsewhere
    script = client.get("/widgets/static/plotly.min.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.text.startswith("/**\n* plotly.js v")


def test_the_data_route_ranks_cells(client: TestClient, settings: Settings) -> None:
    seed(settings)
    report = client.get(
        "/widgets/cell-heatmap/data", params={"metric": "call_drop_rate", "limit": "5"}
    ).json()
    assert [cell["cell_id"] for cell in report["cells"]] == ["C2", "C7"]
    bad = client.get("/widgets/cell-heatmap/data", params={"metric": "latency"})
    assert bad.status_code == 422 and "metric" in bad.json()["error"]["message"]


def test_an_unknown_widget_is_not_found(client: TestClient) -> None:
    response = client.get("/widgets/no-such-widget")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_widget"
    assert "cell-heatmap" in response.json()["error"]["details"]["widgets"]


HARNESS = r"""
const [script, reportJson] = JSON.parse(require("fs").readFileSync(0, "utf8"));
globalThis.window = globalThis;
globalThis.document = { readyState: "complete", querySelector: () => null };
globalThis.sessionStorage = { getItem: () => null };
eval(script);
console.log(JSON.stringify(window.JG.figures.cellFigure(JSON.parse(reportJson))));
"""


def figure(report: dict[str, Any]) -> Any:
    assert NODE is not None
    stdin = json.dumps([SCRIPT.read_text(encoding="utf-8"), json.dumps(report)])
    done = subprocess.run(
        [NODE, "-e", HARNESS], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_cells_are_sized_by_subscribers_and_coloured_by_change(
    client: TestClient, settings: Settings
) -> None:
    seed(settings)
    report = client.get("/widgets/cell-heatmap/data?metric=call_drop_rate&limit=5").json()
    [trace] = figure(report)["data"]
    assert trace["type"] == "treemap"
    assert trace["labels"][1:] == ["C2", "C7"]
    assert trace["values"][1:] == [2, 1]
    assert trace["marker"]["colors"][1:] == [0, 0]
    assert trace["marker"]["colorscale"][0][1] == "#b2182b"  # red at the worst end
    assert trace["marker"]["cmin"] == -trace["marker"]["cmax"]


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_colour_scale_is_symmetric_about_no_change() -> None:
    def cell(rank: int, name: str, change: float | None) -> dict[str, Any]:
        return {
            "rank": rank,
            "cell_id": name,
            "subscribers": 10 - rank,
            "incidents": 12,
            "answers": 0 if change is None else 3,
            "sentiment_change": change,
            "mean_score": None,
            "priority": 0.0,
        }

    report = {"cells": [cell(1, "A", -0.25), cell(2, "B", 0.1), cell(3, "C", None)]}
    [trace] = figure(report)["data"]
    assert trace["marker"]["colors"] == [0, -0.25, 0.1, 0]
    assert (trace["marker"]["cmin"], trace["marker"]["cmax"]) == (-0.25, 0.25)
    assert [row[3] for row in trace["customdata"][1:]] == ["-0.250", "+0.100", "no answers yet"]
