"""The composition root: builds stores and services from ``Settings``.

Only the HTTP app and the CLI call this module; library code takes its
collaborators as arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from api.settings import Settings
from graph import EmbeddedStore, GraphStore
from ingest.lake import Lake

if TYPE_CHECKING:
    from ingest.pipeline import Ingestor
    from journeys.frequency import FrequencyAnalyzer
    from journeys.kpis import KpiRunner
    from journeys.milestones import MilestoneService
    from journeys.similarity import SimilarityAnalyzer
    from journeys.timelines import TimelineIndex

MergeMap = Callable[[], dict[str, str]]
"""Reads the identity merge map as it is now (loser -> survivor)."""


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
    from ingest.pipeline import Ingestor
    from ingest.resolution.deterministic import ResolutionSettings

    return Ingestor(
        store,
        settings.ingest_path,
        ResolutionSettings(hub_threshold=settings.hub_threshold),
        chunk_rows=settings.ingest_chunk_rows,
    )


def open_lake(settings: Settings) -> tuple[Lake, MergeMap]:
    """The lake the ingest pipeline writes, and a reader of the merge map to apply to it."""
    from ingest.resolution.merges import MergeMapFile

    return Lake(settings.ingest_path / "lake"), MergeMapFile(
        settings.ingest_path / "identity.sqlite"
    )


def open_timelines(settings: Settings) -> TimelineIndex:
    """The sorted copy of the lake's timelines that the journey analyzers read."""
    from journeys.timelines import TimelineIndex

    return TimelineIndex(*open_lake(settings))


def open_frequency_analyzer(timelines: TimelineIndex) -> FrequencyAnalyzer:
    """The frequency analyzer over ``timelines``."""
    from journeys.frequency import FrequencyAnalyzer
    from journeys.segments import segment_lookup

    return FrequencyAnalyzer(timelines.load, segment_lookup(timelines.lake, timelines.merge_map))


def open_kpi_runner(settings: Settings) -> KpiRunner:
    """The KPI runner over the lake and its merge map."""
    from journeys.kpis import KpiRunner

    return KpiRunner(*open_lake(settings))


def open_similarity_analyzer(timelines: TimelineIndex) -> SimilarityAnalyzer:
    """The similarity analyzer over ``timelines``; its index is kept beside the lake."""
    from journeys.similarity import SimilarityAnalyzer

    return SimilarityAnalyzer(timelines.load, folder=timelines.lake.root / "similarity")


def open_milestones(settings: Settings, store: GraphStore) -> MilestoneService:
    """Milestone definitions (shipped, and the configured folder's) over the store and lake."""
    from journeys.milestones import MilestoneCatalog, MilestoneService

    lake, merge_map = open_lake(settings)
    folder = settings.milestones_path
    return MilestoneService(MilestoneCatalog(folder), store, lake, merge_map, folder / "state")
