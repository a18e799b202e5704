"""A served demo world and a headless chromium for the browser tests.

The browser is Debian's chromium at /usr/bin/chromium (never one a tool downloads);
without it the tests skip and say how to install it. The server is the real app under
uvicorn on 127.0.0.1 with a free port, over a small generated world with milestones
and a few cell incidents, so every widget has something to draw.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from api.bootstrap import open_ingestor, open_milestones, open_store
from api.security import issue_embed_token
from api.settings import Settings
from engage._db import open_engage_db
from engage.cells import ensure_schema, record_incidents
from engage.model import Incident
from ingest.demo import load_demo

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Served:
    """The running service: its address, settings, an admin key and a sample customer."""

    url: str
    settings: Settings
    key: str
    key_id: str
    customer: str
    anchor: str

    def token(self, widget: str, ttl: timedelta = timedelta(hours=1), **params: str) -> str:
        token, _ = issue_embed_token(
            self.settings.secret_key.get_secret_value(), widget, params, ttl, self.key_id
        )
        return token


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed(settings: Settings) -> str:
    with open_store(settings) as store:
        ingestor = open_ingestor(settings, store)
        try:
            load_demo(ingestor, 300, 7, settings.data_dir / "world", lambda rows: None)
        finally:
            ingestor.close()
        open_milestones(settings, store).backfill()
        customers = store.find_vertices("Customer", limit=400)
        busiest = max(customers, key=lambda c: len(store.timeline(c.id)))
    connection = open_engage_db(settings.engage_db)
    ensure_schema(connection)
    now = datetime.now(UTC) - timedelta(days=1)
    incidents = [
        Incident(f"+4477009000{n:02d}", "drops", "call_drop_rate", 0.3, 0.16, 60, now, cells)
        for n, cells in enumerate([("C7", "C2"), ("C2",), ("C2", "C9"), ("C9",), ("C4",)])
    ]
    record_incidents(connection, incidents, [None] * len(incidents))
    connection.close()
    return busiest.id


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("served"), retrain_schedule="")
    customer = _seed(settings)
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    record, key = app.state.guard.keys.create("browser", ["admin"])
    try:
        yield Served(f"http://127.0.0.1:{port}", settings, key, record.id, customer, "bill_shock")
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module: Playwright's sync API keeps an event loop running in the
    main thread while it is open, which later tests' ``asyncio.run`` cannot share."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh page; its screenshot is saved under the test's tmp_path (and test-output/)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    shot = tmp_path / f"{request.node.name}.png"
    opened.screenshot(path=str(shot), full_page=True)
    keep = Path("test-output") / "browser"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / shot.name)
    context.close()
    assert not problems, f"script errors on the page: {problems}"
