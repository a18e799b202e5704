"""Scheduled retraining: train a candidate, compare it with the current model, promote.

``retrain(store, registry, task)`` trains a candidate on the graph as it is now,
evaluates the candidate and the promoted model on the *same* fresh hold-out, and
promotes the candidate only if it is not worse on the task's primary metric (the
first model of a task is always promoted). Every run, promoted or not, failed or not,
is a line in the registry's ``runs.jsonl``.

``RetrainSchedule`` parses the schedule setting (``"mon,thu 03:00"``: days of the
week and a UTC time; the default is twice a week) and ``RetrainScheduler`` runs the
retraining in a background thread of the service at those times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np

from graph.errors import InvalidInput, JourneyGraphError
from graph.store import GraphStore
from models._tables import GraphTables
from models.export import build_snapshot
from models.registry import ModelRegistry
from models.tasks import get_task
from models.training import EpochCallback, TrainConfig, evaluate, holdout_cutoffs, train_run

log = logging.getLogger(__name__)

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_SCHEDULE: Final = "mon,thu 03:00"


@dataclass(frozen=True)
class RetrainOutcome:
    """What one retraining run decided, and why."""

    task: str
    candidate: str | None
    previous: str | None
    promoted: bool
    reason: str
    candidate_metric: float | None = None
    previous_metric: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (also the ``runs.jsonl`` line)."""
        return {
            "task": self.task,
            "candidate": self.candidate,
            "previous": self.previous,
            "promoted": self.promoted,
            "reason": self.reason,
            "candidate_metric": self.candidate_metric,
            "previous_metric": self.previous_metric,
        }


def retrain(
    store: GraphStore,
    registry: ModelRegistry,
    task_name: str,
    config: TrainConfig | None = None,
    on_epoch: EpochCallback | None = None,
    tables: GraphTables | None = None,
    *,
    promote: bool = True,
) -> RetrainOutcome:
    """Train a candidate; promote it unless the current model does better on the hold-out.

    ``promote=False`` saves the candidate and compares, but promotes nothing.
    """
    task = get_task(task_name)
    config = config or TrainConfig()
    started = datetime.now(UTC)
    previous = registry.current_version(task.name)
    try:
        tables = tables or GraphTables.from_store(store)
        run = train_run(tables, task, config, on_epoch)
        card = registry.save(run)
        candidate_metric = run.metrics["gnn"][task.metric]
        previous_metric = None
        if previous is not None:
            current = registry.load(task.name, previous)
            holdout = build_snapshot(
                tables,
                holdout_cutoffs(tables, timedelta(days=config.horizon_days))[1],
                timedelta(days=config.horizon_days),
                current.card.schema,
            )
            previous_metric = evaluate(current.model, holdout, task, current.config)[task.metric]
        better = previous_metric is None or not _worse(
            candidate_metric, previous_metric, task.higher_is_better
        )
        if better and promote:
            registry.promote(task.name, card.version)
        reason = (
            "first model of the task"
            if previous_metric is None
            else f"candidate {task.metric} {candidate_metric:.4f} vs current {previous_metric:.4f}"
        )
        outcome = RetrainOutcome(
            task.name,
            card.version,
            previous,
            better and promote,
            reason if promote else f"{reason} (promotion not asked for)",
            candidate_metric,
            previous_metric,
        )
    except JourneyGraphError as error:
        outcome = RetrainOutcome(task.name, None, previous, False, f"failed: {error}")
    registry.log_run(
        {"started_at": started.isoformat(), "finished_at": datetime.now(UTC).isoformat()}
        | outcome.as_dict()
    )
    return outcome


def _worse(candidate: float, current: float, higher_is_better: bool) -> bool:
    if np.isnan(candidate):
        return True
    if np.isnan(current):
        return False
    return candidate < current if higher_is_better else candidate > current


@dataclass(frozen=True)
class RetrainSchedule:
    """Days of the week and a UTC time of day, e.g. ``"mon,thu 03:00"``."""

    days: tuple[int, ...]
    hour: int
    minute: int

    @classmethod
    def parse(cls, text: str) -> RetrainSchedule:
        """Parse ``"mon,thu 03:00"`` (``daily 03:00`` for every day)."""
        try:
            day_part, time_part = text.strip().lower().split()
            hour_text, minute_text = time_part.split(":")
            hour, minute = int(hour_text), int(minute_text)
        except ValueError:
            raise InvalidInput(
                f"retrain schedule {text!r} is not 'DAYS HH:MM' (e.g. 'mon,thu 03:00')"
            ) from None
        names = DAYS if day_part == "daily" else tuple(day_part.split(","))
        unknown = [name for name in names if name not in DAYS]
        if unknown or not (0 <= hour < 24 and 0 <= minute < 60):
            raise InvalidInput(
                f"retrain schedule {text!r}: days must be among {', '.join(DAYS)} or 'daily', "
                "and the time a valid HH:MM"
            )
        return cls(tuple(sorted({DAYS.index(name) for name in names})), hour, minute)

    def next_run(self, after: datetime) -> datetime:
        """The first scheduled instant strictly after ``after``."""
        base = after.astimezone(UTC).replace(second=0, microsecond=0)
        for offset in range(8):
            day = base + timedelta(days=offset)
            candidate = day.replace(hour=self.hour, minute=self.minute)
            if candidate.weekday() in self.days and candidate > after:
                return candidate
        raise AssertionError("a weekly schedule always has a run within eight days")


class RetrainScheduler:
    """Runs ``job`` at every scheduled time in a daemon thread until ``stop``."""

    def __init__(
        self,
        schedule: RetrainSchedule,
        job: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_seconds: float = 60.0,
    ) -> None:
        self.schedule = schedule
        self.job = job
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread."""
        self._thread = threading.Thread(target=self._loop, name="retrain", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop waiting; a retraining already running finishes first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            due = self.schedule.next_run(self.clock())
            while not self._stop.is_set() and self.clock() < due:
                # Short sleeps, not one long one: a suspended laptop or a changed clock
                # must not push a run days late.
                left = (due - self.clock()).total_seconds()
                self._stop.wait(min(self.poll_seconds, max(left, 0.01)))
            if self._stop.is_set():
                return
            started = time.perf_counter()
            try:
                self.job()
            except Exception:  # a failed run must not end the schedule
                log.exception("scheduled retraining failed")
            log.info("scheduled retraining took %.1f s", time.perf_counter() - started)
