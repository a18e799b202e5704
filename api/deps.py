"""Dependency aliases for routes (``Annotated[..., Depends(...)]``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.settings import Settings, get_settings
from graph import GraphStore
from ingest.pipeline import PushIngestor
from journeys.frequency import FrequencyAnalyzer
from journeys.kpis import KpiRunner
from journeys.milestones import MilestoneService
from journeys.similarity import SimilarityAnalyzer


def get_store(request: Request) -> GraphStore:
    """The graph store opened at start-up (see ``api.app.create_app``)."""
    store: GraphStore = request.app.state.store
    return store


def get_ingestor(request: Request) -> PushIngestor:
    """The push path's ingest pipeline, opened at start-up."""
    ingestor: PushIngestor = request.app.state.ingestor
    return ingestor


def get_frequency_analyzer(request: Request) -> FrequencyAnalyzer:
    """The frequency analyzer over the lake's timelines, opened at start-up."""
    analyzer: FrequencyAnalyzer = request.app.state.frequency
    return analyzer


def get_similarity_analyzer(request: Request) -> SimilarityAnalyzer:
    """The similarity analyzer over the lake's timelines, opened at start-up."""
    analyzer: SimilarityAnalyzer = request.app.state.similarity
    return analyzer


def get_kpi_runner(request: Request) -> KpiRunner:
    """The KPI runner over the lake, opened at start-up."""
    runner: KpiRunner = request.app.state.kpis
    return runner


def get_milestones(request: Request) -> MilestoneService:
    """The milestone service built at start-up."""
    milestones: MilestoneService = request.app.state.milestones
    return milestones


StoreDep = Annotated[GraphStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
IngestorDep = Annotated[PushIngestor, Depends(get_ingestor)]
FrequencyAnalyzerDep = Annotated[FrequencyAnalyzer, Depends(get_frequency_analyzer)]
SimilarityAnalyzerDep = Annotated[SimilarityAnalyzer, Depends(get_similarity_analyzer)]
KpiRunnerDep = Annotated[KpiRunner, Depends(get_kpi_runner)]
MilestonesDep = Annotated[MilestoneService, Depends(get_milestones)]
