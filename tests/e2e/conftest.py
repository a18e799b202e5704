"""Shared fixtures for the HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.builders import with_key


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app over an empty data folder (embedded store, lake and all)."""
    with TestClient(create_app(Settings(data_dir=tmp_path))) as test_client:
        yield with_key(test_client)
