"""The demo: a generated telco world, ingested and resolved like any real source.

``journeygraph serve --demo`` and ``journeygraph load-demo`` call ``load_demo``: it
generates the world's six source systems into a folder and runs each through the
ingest pipeline with its built-in mapping, richest keys first (CRM, then shops,
care, clickstream, network, billing), so identity resolution does the real work and
the demo graph is what an operator's data would give. The world's offers catalogue
is loaded first, so the offers touchpoints name carry their category and margin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from ingest.catalogue import CATALOGUE_SOURCE, load_offer_catalogue
from ingest.generator import OFFER_CATALOGUE_FILE, generate_world
from ingest.mapping import load_mapping
from ingest.pipeline import Ingestor, IngestSummary, Progress

SOURCE_ORDER: Final = ("crm", "retail", "care", "clickstream", "network", "billing")
"""The generator's sources, in the order that lets most customers form before merging."""


def ingest_world(
    ingestor: Ingestor, world: Path, progress: Progress | None = None
) -> IngestSummary:
    """Ingest every source of a generated world folder with the built-in mappings.

    The offers catalogue goes first when the folder has one (its rejected rows to the
    ingestor's quarantine folder); the NEXT chains are linked once, at the end.
    """
    catalogue = world / OFFER_CATALOGUE_FILE
    if catalogue.is_file():
        load_offer_catalogue(ingestor.store, catalogue, ingestor.quarantine_path(CATALOGUE_SOURCE))
    total = IngestSummary()
    for source in SOURCE_ORDER:
        total.add(ingestor.ingest_paths([world], load_mapping(source), progress, link=False))
    total.add(ingestor.link_chains())
    return total


def load_demo(
    ingestor: Ingestor,
    customers: int,
    seed: int,
    world: Path,
    progress: Progress | None = None,
) -> IngestSummary:
    """Generate ``customers`` customers with ``seed`` into ``world`` and ingest them."""
    if not (world / "manifest.json").exists():
        generate_world(world, customers, seed)
    return ingest_world(ingestor, world, progress)
