"""The Splink pass over ingested data, batch and incremental (the stream's stage)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from graph import EmbeddedStore
from ingest.generator import generate_world
from ingest.identifiers import normalise_identifier
from ingest.mapping import load_mapping
from ingest.pipeline import Ingestor
from ingest.resolution.operations import review_queue
from ingest.resolution.resolver import IncrementalLinker, link_customers


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """A 1,000-customer world's CRM ingested, and a model trained on it."""
    root = tmp_path_factory.mktemp("resolver")
    world = root / "world"
    generate_world(world, 1_000, 5)
    store = EmbeddedStore(root / "graph.db")
    ingestor = Ingestor(store, root / "work")
    ingestor.ingest_paths([world], load_mapping("crm"))
    summary = link_customers(ingestor, root / "models")
    assert summary.trained and summary.records > 900
    assert summary.candidate_pairs > 0  # CRM duplicates, mostly already joined by keys
    crm = pd.read_csv(world / "crm" / "customers.csv", dtype=str)
    ingestor.close()
    store.close()
    return root, root / "models" / summary.model, crm


def test_a_keyless_visit_with_a_customers_details_joins_that_customer(
    trained: tuple[Path, Path, pd.DataFrame],
) -> None:
    root, model, crm = trained
    store = EmbeddedStore(root / "graph.db")
    ingestor = Ingestor(store, root / "work")
    ingestor.incremental = IncrementalLinker(ingestor, model)
    person = crm.dropna(subset=["first_name", "last_name", "date_of_birth", "postcode", "msisdn"])
    person = person.iloc[0]
    owner = ingestor.index.customer_of(
        "id:msisdn:" + normalise_identifier("msisdn", person["msisdn"])
    )
    visit = {
        "event_id": "shop-visit-1",
        "source": "retail",
        "event_type": "enquiry",
        "channel": "retail",
        "ts": "2024-06-01T10:00:00Z",
        "person": {
            "first_name": person["first_name"],
            "last_name": person["last_name"],
            "dob": person["date_of_birth"],
            "postcode": person["postcode"],
        },
    }
    impostor = {
        **visit,
        "event_id": "shop-visit-2",
        "identifiers": {"msisdn": "+447700900999"},
    }
    summary, rejected = ingestor.ingest_records([visit, impostor], load_mapping("canonical"), "t")
    assert not rejected and summary.accepted == 2
    [visit_tp] = store.neighbours("tp:shop-visit-1", "in", ["PERFORMED"])
    assert visit_tp.vertex.id == owner
    [other_tp] = store.neighbours("tp:shop-visit-2", "in", ["PERFORMED"])
    assert other_tp.vertex.id != owner  # another line: a person decides, not the model
    queued = review_queue(ingestor)
    assert any("shop-visit-2" in (q["record_l"], q["record_r"]) for q in queued)
    assert ingestor.incremental.records_scored == 2
    ingestor.close()
