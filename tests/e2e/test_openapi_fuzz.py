"""Schemathesis against the OpenAPI spec: no generated input, valid or not, gets a 500.

The app serves a small demo world so that generated requests reach real code paths
(customers, lake, KPIs), not only empty-store early exits.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.bootstrap import open_ingestor, open_store
from api.settings import Settings
from ingest.demo import load_demo

DATA = Path(tempfile.mkdtemp(prefix="journeygraph-fuzz-"))
SETTINGS = Settings(data_dir=DATA)
APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def api_key() -> Iterator[str]:
    with open_store(SETTINGS) as store:
        ingestor = open_ingestor(SETTINGS, store)
        try:
            load_demo(ingestor, 40, 3, DATA / "world", lambda rows: None)
        finally:
            ingestor.close()
    # The lifespan runs once here; schemathesis' own calls find the app's state set up.
    with TestClient(APP):
        _, key = APP.state.guard.keys.create("fuzz", ["admin"])
        yield str(key)
    shutil.rmtree(DATA, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_input_gets_a_server_error(case: schemathesis.Case, api_key: str) -> None:
    case.call_and_validate(headers={"X-API-Key": api_key}, checks=[not_a_server_error])
