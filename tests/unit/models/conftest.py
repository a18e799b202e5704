"""Fixtures for the model tests: an empty embedded store, and the planted-churn graph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from graph import EmbeddedStore
from models._tables import GraphTables
from tests.unit.models._graphs import PlantedChurn, planted_churn_graph


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Train on one thread: on a shared, busy machine two intra-op threads that wait
    on each other made a small training run ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """A fresh embedded store, closed after the test."""
    with EmbeddedStore(tmp_path / "graph.db") as graph_store:
        yield graph_store


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[GraphTables, PlantedChurn]:
    """The planted-churn households (``_graphs.planted_churn_graph``), read as tables."""
    graph, plant = planted_churn_graph()
    with EmbeddedStore(tmp_path_factory.mktemp("planted") / "graph.db") as graph_store:
        graph.write(graph_store)
        return GraphTables.from_store(graph_store), plant
