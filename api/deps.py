"""Dependency aliases for routes (``Annotated[..., Depends(...)]``).

The dependencies are ``async``: they only read the app's state, and FastAPI runs a
plain ``def`` dependency in the thread pool, a hand-off that cost more than the
lookup (a third of a customer request's CPU under load).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Annotated

from fastapi import Depends, Request

from api.bootstrap import open_cell_sentiment, open_feedback
from api.settings import Settings
from engage.cells import CellSentimentRunner
from engage.feedback import FeedbackService
from graph import GraphStore
from ingest.push import PushIngestor
from journeys.frequency import FrequencyAnalyzer
from journeys.kpis import KpiRunner
from journeys.milestones import MilestoneService
from journeys.similarity import SimilarityAnalyzer
from models.scoring import Predictor


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with.

    Read from the app's state rather than through ``dependency_overrides``: FastAPI
    rebuilds every dependency of every route on each request while any override is
    set, which was a fifth of a cached widget answer's CPU.
    """
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> GraphStore:
    """The graph store opened at start-up (see ``api.app.create_app``)."""
    store: GraphStore = request.app.state.store
    return store


async def get_ingestor(request: Request) -> PushIngestor:
    """The push path's ingest pipeline, opened at start-up."""
    ingestor: PushIngestor = request.app.state.ingestor
    return ingestor


async def get_frequency_analyzer(request: Request) -> FrequencyAnalyzer:
    """The frequency analyzer over the lake's timelines, opened at start-up."""
    analyzer: FrequencyAnalyzer = request.app.state.frequency
    return analyzer


async def get_similarity_analyzer(request: Request) -> SimilarityAnalyzer:
    """The similarity analyzer over the lake's timelines, opened at start-up."""
    analyzer: SimilarityAnalyzer = request.app.state.similarity
    return analyzer


async def get_kpi_runner(request: Request) -> KpiRunner:
    """The KPI runner over the lake, opened at start-up."""
    runner: KpiRunner = request.app.state.kpis
    return runner


async def get_predictor(request: Request) -> Predictor:
    """Request-time model prediction, built at start-up."""
    predictor: Predictor = request.app.state.predictor
    return predictor


async def get_milestones(request: Request) -> MilestoneService:
    """The milestone service built at start-up."""
    milestones: MilestoneService = request.app.state.milestones
    return milestones


FeedbackOpener = Callable[[], AbstractContextManager[FeedbackService]]
"""Opens a feedback service for the block it is used in (``with opener() as service``)."""
CellSentimentOpener = Callable[[], AbstractContextManager[CellSentimentRunner]]
"""Opens a cell sentiment runner for the block it is used in."""


async def get_feedback(
    request: Request, settings: Annotated[Settings, Depends(get_app_settings)]
) -> FeedbackOpener:
    """Opens the feedback service in the route's own thread.

    SQLite connections stay on the thread that opened them, and FastAPI may run a
    dependency and its route on different threads, so the route opens it.
    """
    return partial(open_feedback, settings, request.app.state.store, request.app.state.ingestor)


async def get_cell_sentiment(
    settings: Annotated[Settings, Depends(get_app_settings)],
) -> CellSentimentOpener:
    """Opens the cell sentiment runner in the route's own thread (see ``get_feedback``)."""
    return partial(open_cell_sentiment, settings)


StoreDep = Annotated[GraphStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
IngestorDep = Annotated[PushIngestor, Depends(get_ingestor)]
FrequencyAnalyzerDep = Annotated[FrequencyAnalyzer, Depends(get_frequency_analyzer)]
SimilarityAnalyzerDep = Annotated[SimilarityAnalyzer, Depends(get_similarity_analyzer)]
KpiRunnerDep = Annotated[KpiRunner, Depends(get_kpi_runner)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
MilestonesDep = Annotated[MilestoneService, Depends(get_milestones)]
FeedbackDep = Annotated[FeedbackOpener, Depends(get_feedback)]
CellSentimentDep = Annotated[CellSentimentOpener, Depends(get_cell_sentiment)]
