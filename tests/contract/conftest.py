"""The ``store`` fixture: every contract test runs once per graph backend.

The Gremlin run needs a server: ``JOURNEYGRAPH_GREMLIN_URL`` (for example
``ws://127.0.0.1:8182/gremlin`` with ``JOURNEYGRAPH_GREMLIN_DIALECT=janusgraph``),
or a Docker engine for testcontainers' JanusGraph image. Without either it is
skipped with the reason shown in the summary (``-ra``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from graph import EmbeddedStore, GraphStore

JANUSGRAPH_IMAGE = "janusgraph/janusgraph:1.0.0"


def _docker_reachable() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def gremlin_url() -> Iterator[tuple[str, str]]:
    """A Gremlin server URL and dialect, or a skip that says why there is none."""
    url = os.environ.get("JOURNEYGRAPH_GREMLIN_URL")
    if url:
        yield url, os.environ.get("JOURNEYGRAPH_GREMLIN_DIALECT", "janusgraph")
        return
    if not _docker_reachable():
        pytest.skip(
            "Gremlin backend: JOURNEYGRAPH_GREMLIN_URL is not set and no Docker engine is "
            "reachable for testcontainers (see docs/gremlin.md to run JanusGraph locally)"
        )
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(JANUSGRAPH_IMAGE).with_exposed_ports(8182)
    with container:
        wait_for_logs(container, "Channel started at port 8182", timeout=180)
        host = container.get_container_host_ip()
        port = container.get_exposed_port(8182)
        yield f"ws://{host}:{port}/gremlin", "janusgraph"


@pytest.fixture(params=["embedded", "gremlin"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """A fresh, empty store of each backend."""
    if request.param == "embedded":
        with EmbeddedStore(tmp_path / "graph.db") as embedded:
            yield embedded
        return
    url, dialect = request.getfixturevalue("gremlin_url")
    from graph import GremlinStore

    with GremlinStore(url, dialect=dialect) as remote:
        remote.drop_all()
        yield remote
        remote.drop_all()
