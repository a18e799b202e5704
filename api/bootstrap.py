"""The composition root: builds stores and services from ``Settings``.

Only the HTTP app and the CLI call this module; library code takes its
collaborators as arguments.
"""

from __future__ import annotations

from api.settings import Settings
from graph import EmbeddedStore, GraphStore
from ingest.pipeline import Ingestor
from ingest.resolution.deterministic import ResolutionSettings


def open_store(settings: Settings) -> GraphStore:
    """The graph store the settings name: the embedded file, or a Gremlin server."""
    if settings.backend == "gremlin":
        from graph import GremlinStore

        assert settings.gremlin_url is not None  # enforced by Settings validation
        remote: GraphStore = GremlinStore(
            settings.gremlin_url,
            dialect=settings.gremlin_dialect,
            batch_size=settings.gremlin_batch_size,
            neptune_iam=settings.neptune_iam,
            aws_region=settings.aws_region,
        )
        return remote
    return EmbeddedStore(settings.embedded_path, durability=settings.durability)


def open_ingestor(settings: Settings, store: GraphStore) -> Ingestor:
    """The ingest pipeline over ``store`` with its working folder and resolution rules."""
    return Ingestor(
        store,
        settings.ingest_path,
        ResolutionSettings(hub_threshold=settings.hub_threshold),
        chunk_rows=settings.ingest_chunk_rows,
    )
