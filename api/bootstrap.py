"""The composition root: builds stores and services from ``Settings``.

Only the HTTP app and the CLI call this module; library code takes its
collaborators as arguments.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from api.settings import Settings
from graph import EmbeddedStore, GraphStore
from ingest.lake import Lake

if TYPE_CHECKING:
    from api.security import Guard, KeyStore
    from engage._recording import TouchpointPusher
    from engage.cells import CellSentimentRunner
    from engage.channels import Channel
    from engage.feedback import EngagementLookup, FeedbackService
    from engage.queue import QueuePolicy
    from engage.runner import EngagementLoop
    from ingest.pipeline import Ingestor
    from ingest.push import PushIngestor
    from ingest.quarantine import QuarantineWriter
    from journeys.frequency import FrequencyAnalyzer
    from journeys.kpis import KpiRunner
    from journeys.milestones import MilestoneService
    from journeys.similarity import SimilarityAnalyzer
    from journeys.timelines import TimelineIndex
    from models import GraphTables
    from models.registry import ModelRegistry
    from models.schedule import RetrainScheduler
    from models.scoring import Predictor
    from models.training import TrainConfig

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


def open_key_store(settings: Settings) -> KeyStore:
    """The API keys, hashed with the settings' secret."""
    from api.security import KeyStore

    return KeyStore(settings.keys_path, settings.secret_key.get_secret_value())


def open_guard(settings: Settings) -> Guard:
    """Credentials checking for the HTTP app: keys, embed token secret, rate limits."""
    from api.security import Guard, RateLimiter

    return Guard(
        open_key_store(settings),
        settings.secret_key.get_secret_value(),
        RateLimiter(settings.rate_limit, settings.rate_burst),
    )


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


def open_push_ingestor(settings: Settings, store: GraphStore) -> PushIngestor:
    """The push path: this process ingests if it leads the data folder, else hands over."""
    from ingest.push import PushIngestor

    return PushIngestor(partial(open_ingestor, settings, store), settings.ingest_path)


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

    return FrequencyAnalyzer(
        timelines.load,
        segment_lookup(timelines.lake, timelines.merge_map),
        current=timelines.current,
    )


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


def open_engagement_lookup(connection: sqlite3.Connection) -> EngagementLookup:
    """The engagement queue on ``connection``, as feedback looks engagements up in it."""
    from engage.queue import EngagementQueue

    return EngagementQueue(connection)


@contextmanager
def open_feedback(
    settings: Settings,
    store: GraphStore,
    ingestor: PushIngestor,
    lookup: Callable[[sqlite3.Connection], EngagementLookup] = open_engagement_lookup,
) -> Iterator[FeedbackService]:
    """A feedback service on a connection of its own to the engagement database.

    The connection is closed on leaving the block. SQLite connections stay on the
    thread that opened them, so each HTTP request opens its own.
    """
    from engage._db import open_engage_db
    from engage._recording import record_feedback
    from engage.feedback import FeedbackService

    connection = open_engage_db(settings.engage_db)
    try:
        yield FeedbackService(
            connection,
            lookup(connection),
            store,
            recorder=partial(record_feedback, ingestor),
            alpha=settings.sentiment_alpha,
        )
    finally:
        connection.close()


@contextmanager
def open_cell_sentiment(settings: Settings) -> Iterator[CellSentimentRunner]:
    """The cell sentiment report runner on a connection of its own (closed on exit)."""
    from engage._db import open_engage_db
    from engage.cells import CellSentimentRunner

    connection = open_engage_db(settings.engage_db)
    try:
        yield CellSentimentRunner(connection)
    finally:
        connection.close()


def engage_policy(settings: Settings) -> QueuePolicy:
    """The engagement queue's policy from the settings."""
    from datetime import timedelta

    from engage.queue import QueuePolicy

    return QueuePolicy(
        dedupe_window=timedelta(hours=settings.engage_dedupe_hours),
        max_attempts=settings.engage_max_attempts,
        quiet_hours=settings.engage_quiet_hours or None,
        timezone=settings.engage_timezone,
        contact_cap=settings.engage_contact_cap,
        # Longer than a send can take (its timeout) with room to record the outcome, and
        # short, since a lease left by a killed process delays that engagement by it.
        lease=timedelta(seconds=2 * settings.engage_webhook_timeout + 5),
    )


def open_channel(
    settings: Settings, webhook_url: str | None = None, dry_run: Path | None = None
) -> Channel:
    """Where engagements go: a dry-run file if asked, else the webhook, else the dry-run file."""
    from engage.channels import FileChannel, WebhookChannel

    url = None if dry_run is not None else webhook_url or settings.engage_webhook_url
    if url is None:
        return FileChannel(dry_run or settings.engage_path / "sent.jsonl")
    secret = settings.engage_webhook_secret or settings.secret_key
    return WebhookChannel(url, secret.get_secret_value(), settings.engage_webhook_timeout)


def open_engagement_loop(
    settings: Settings,
    channel: Channel,
    recorder: TouchpointPusher | None,
    quarantine: QuarantineWriter | None,
) -> EngagementLoop:
    """The engagement loop over the settings' database, decision table and queue policy."""
    from engage.rules import load_decision_table
    from engage.runner import EngagementLoop

    return EngagementLoop(
        settings.engage_db,
        load_decision_table(settings.engage_rules).with_thresholds(settings.engage_thresholds),
        engage_policy(settings),
        channel,
        recorder=recorder,
        quarantine=quarantine,
        workers=settings.engage_workers,
    )


def open_registry(settings: Settings) -> ModelRegistry:
    """The model registry in the configured folder."""
    from models.registry import ModelRegistry

    return ModelRegistry(settings.models_path)


def train_config(settings: Settings, **overrides: object) -> TrainConfig:
    """Training hyper-parameters: the defaults, the settings' epochs, then ``overrides``."""
    from models.training import TrainConfig

    return TrainConfig.from_dict(
        TrainConfig().to_dict() | {"epochs": settings.train_epochs} | overrides
    )


def model_tables(settings: Settings, store: GraphStore) -> GraphTables:
    """The graph as the models read it: touchpoints from the lake when there is one."""
    from models import GraphTables

    lake, merge_map = open_lake(settings)
    return GraphTables.from_store(store, lake, merge_map())


def open_predictor(settings: Settings, store: GraphStore) -> Predictor:
    """Request-time prediction from the registry's promoted models."""
    from models.scoring import Predictor

    return Predictor(store, open_registry(settings))


def open_retrain_scheduler(settings: Settings, store: GraphStore) -> RetrainScheduler | None:
    """The service's retraining schedule, or None when ``retrain_schedule`` is empty."""
    if not settings.retrain_schedule.strip():
        return None
    from models.schedule import RetrainSchedule, RetrainScheduler, retrain

    schedule = RetrainSchedule.parse(settings.retrain_schedule)
    registry = open_registry(settings)
    config = train_config(settings)

    def retrain_all() -> None:
        tables = model_tables(settings, store)
        for task in settings.retrain_tasks:
            retrain(store, registry, task, config, tables=tables)

    return RetrainScheduler(schedule, retrain_all)
