"""The cell-heatmap widget: the page, the plotly.js it loads, the data it fetches.

The page's script also runs under Node (when installed) against stand-ins for the
DOM, ``fetch`` and ``Plotly``, fed the app's real answer, so what it asks for and what
it draws are checked without a browser.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from engage._db import open_engage_db
from engage.cells import ensure_schema, record_incidents
from engage.model import Incident

PAGE = "http://testserver/widgets/cell-heatmap"
NODE = shutil.which("node")


def page(client: TestClient) -> str:
    response = client.get("/widgets/cell-heatmap")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def script_sources(html: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)"', html)


def inline_script(html: str) -> str:
    [script] = re.findall(r"<script>\n(.*?)</script>", html, re.DOTALL)
    return script


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
    from api.settings import get_settings

    resolved: Settings = client.app.dependency_overrides[get_settings]()  # type: ignore[attr-defined]
    return resolved


def test_the_page_loads_the_bundled_plotly_never_a_cdn(client: TestClient) -> None:
    html = page(client)
    [source] = script_sources(html)
    assert urlsplit(source).netloc == "" and not source.startswith("//")
    script_url = urljoin(PAGE, source)
    assert script_url == "http://testserver/widgets/static/plotly.min.js"
    response = client.get(script_url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.text.startswith("/**\n* plotly.js v")
    assert "://" not in html  # no absolute URL anywhere, so nothing loads from elsewhere


def test_the_page_fetches_the_cell_sentiment_endpoint(
    client: TestClient, settings: Settings
) -> None:
    seed(settings)
    html = page(client)
    [data_path] = re.findall(r'const DATA_URL = "([^"]+)"', html)
    data_url = urljoin(PAGE, data_path)
    assert data_url == "http://testserver/api/v1/cells/sentiment"
    report = client.get(data_url, params={"metric": "call_drop_rate"}).json()
    assert [cell["cell_id"] for cell in report["cells"]] == ["C2", "C7"]


def test_an_unknown_widget_is_not_found(client: TestClient) -> None:
    response = client.get("/widgets/no-such-widget")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_widget"
    assert "cell-heatmap" in response.json()["error"]["details"]["widgets"]


HARNESS = r"""
const [script, reportJson, search, status] = JSON.parse(require("fs").readFileSync(0, "utf8"));
const elements = {};
globalThis.document = {
  getElementById: (id) => (elements[id] ??= { textContent: "", hidden: true, className: "" }),
};
globalThis.location = { search };
let asked = null;
let plotted = null;
globalThis.fetch = async (url) => {
  asked = url;
  const body = JSON.parse(reportJson);
  return { ok: status < 400, status, statusText: "error", json: async () => body };
};
globalThis.Plotly = {
  newPlot: async (id, data, layout, config) => { plotted = { id, data, layout, config }; },
};
eval(script);
setTimeout(() => console.log(JSON.stringify({ asked, plotted, elements })), 20);
"""


def run_page_script(html: str, report: dict[str, Any], search: str, status: int = 200) -> Any:
    assert NODE is not None
    stdin = json.dumps([inline_script(html), json.dumps(report), search, status])
    done = subprocess.run(
        [NODE, "-e", HARNESS], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_script_draws_cells_sized_by_subscribers_coloured_by_change(
    client: TestClient, settings: Settings
) -> None:
    seed(settings)
    html = page(client)
    search = "?metric=call_drop_rate&limit=5&token=secret"
    report = client.get("/api/v1/cells/sentiment?metric=call_drop_rate&limit=5").json()
    ran = run_page_script(html, report, search)
    assert ran["asked"] == "../api/v1/cells/sentiment?limit=5&metric=call_drop_rate"
    [trace] = ran["plotted"]["data"]
    assert ran["plotted"]["id"] == "chart" and trace["type"] == "treemap"
    assert trace["labels"][1:] == ["C2", "C7"]
    assert trace["values"][1:] == [2, 1]
    assert trace["marker"]["colors"][1:] == [0, 0]
    assert trace["marker"]["colorscale"][0][1] == "#b2182b"  # red at the worst end
    assert trace["marker"]["cmin"] == -trace["marker"]["cmax"]
    assert "Top 2 of 2 cells" in ran["elements"]["summary"]["textContent"]
    assert ran["elements"].get("message", {"hidden": True})["hidden"]


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_script_says_when_there_is_no_data_or_an_error(client: TestClient) -> None:
    html = page(client)
    empty = client.get("/api/v1/cells/sentiment").json()
    assert empty["cells"] == []
    ran = run_page_script(html, empty, "")
    assert ran["asked"] == "../api/v1/cells/sentiment" and ran["plotted"] is None
    message = ran["elements"]["message"]
    assert not message["hidden"] and message["textContent"].startswith("No cell incidents")

    refused = client.get("/api/v1/cells/sentiment?metric=latency")
    ran = run_page_script(html, refused.json(), "?metric=latency", refused.status_code)
    message = ran["elements"]["message"]
    assert message["className"] == "error"
    assert message["textContent"].startswith("Could not load cell sentiment: ")


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_colour_scale_is_symmetric_about_no_change(client: TestClient) -> None:
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

    report = {
        "start": "2024-05-04T00:00:00Z",
        "end": "2024-06-03T00:00:00Z",
        "metric": None,
        "min_subscribers": 1,
        "cells_total": 3,
        "cells": [cell(1, "A", -0.25), cell(2, "B", 0.1), cell(3, "C", None)],
    }
    [trace] = run_page_script(page(client), report, "")["plotted"]["data"]
    assert trace["marker"]["colors"] == [0, -0.25, 0.1, 0]
    assert (trace["marker"]["cmin"], trace["marker"]["cmax"]) == (-0.25, 0.25)
    assert [row[3] for row in trace["customdata"][1:]] == ["-0.250", "+0.100", "no answers yet"]
