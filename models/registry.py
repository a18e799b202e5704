"""The model registry: every trained model with what is needed to trust and reuse it.

Layout under ``root`` (``JOURNEYGRAPH_MODELS_DIR``, default ``<data_dir>/models``)::

    <task>/<version>/card.json      task, config, feature schema, metrics (GNN and
                                    baseline), data cutoffs, code version, offers
    <task>/<version>/model.pt       the GNN's state dict (scalers included)
    <task>/<version>/baseline.txt   the LightGBM baseline
    <task>/CURRENT                  the promoted version
    runs.jsonl                      one line per training or retraining run

A version is written to a hidden folder and renamed into place, so a crash never
leaves half a model; ``CURRENT`` is replaced atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb
import torch

from graph.errors import InvalidInput, NotFound
from models.baseline import Baseline
from models.export import FeatureSchema
from models.nets import JourneyGNN
from models.tasks import Task, get_task
from models.training import TrainConfig, TrainingRun


class UnknownModel(NotFound):
    """No model of that task or version in the registry."""


@dataclass(frozen=True)
class ModelCard:
    """What the registry knows of one trained model (``card.json``)."""

    task: str
    version: str
    created_at: datetime
    train_cutoff: datetime
    holdout_cutoff: datetime
    horizon_days: int
    config: dict[str, Any]
    schema: FeatureSchema
    metrics: dict[str, dict[str, float]]
    best_epoch: int
    code_version: str
    in_channels: dict[str, int]
    edge_types: list[tuple[str, str, str]]
    seconds: dict[str, float]

    @property
    def data_cutoff(self) -> datetime:
        """The last instant whose data the run read (the hold-out's label window end)."""
        return self.holdout_cutoff + timedelta(days=self.horizon_days)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "task": self.task,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "train_cutoff": self.train_cutoff.isoformat(),
            "holdout_cutoff": self.holdout_cutoff.isoformat(),
            "data_cutoff": self.data_cutoff.isoformat(),
            "horizon_days": self.horizon_days,
            "config": self.config,
            "schema": self.schema.to_dict(),
            "metrics": self.metrics,
            "best_epoch": self.best_epoch,
            "code_version": self.code_version,
            "in_channels": self.in_channels,
            "edge_types": [list(edge_type) for edge_type in self.edge_types],
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        """The inverse of ``to_dict``."""
        return cls(
            task=raw["task"],
            version=raw["version"],
            created_at=datetime.fromisoformat(raw["created_at"]),
            train_cutoff=datetime.fromisoformat(raw["train_cutoff"]),
            holdout_cutoff=datetime.fromisoformat(raw["holdout_cutoff"]),
            horizon_days=int(raw["horizon_days"]),
            config=raw["config"],
            schema=FeatureSchema.from_dict(raw["schema"]),
            metrics=raw["metrics"],
            best_epoch=int(raw["best_epoch"]),
            code_version=raw["code_version"],
            in_channels={key: int(value) for key, value in raw["in_channels"].items()},
            edge_types=[(a, b, c) for a, b, c in raw["edge_types"]],
            seconds=raw.get("seconds", {}),
        )


@dataclass
class LoadedModel:
    """A model read back from the registry, ready to score."""

    card: ModelCard
    task: Task
    config: TrainConfig
    model: JourneyGNN
    baseline: Baseline


class ModelRegistry:
    """Trained models on disk, one folder per task and version."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, run: TrainingRun) -> ModelCard:
        """Store a training run's GNN and baseline as a new version (not yet promoted)."""
        if run.snapshot is None:
            raise InvalidInput("a training run without its snapshot cannot be saved")
        created = datetime.now(UTC)
        version = f"{run.task.name}-{created:%Y%m%dT%H%M%S%f}Z"
        data = run.snapshot.data
        card = ModelCard(
            task=run.task.name,
            version=version,
            created_at=created,
            train_cutoff=run.train_cutoff,
            holdout_cutoff=run.holdout_cutoff,
            horizon_days=run.config.horizon_days,
            config=run.config.to_dict(),
            schema=run.snapshot.schema,
            metrics=run.metrics,
            best_epoch=run.best_epoch,
            code_version=code_version(),
            in_channels={kind: int(data[kind].x.shape[1]) for kind in data.node_types},
            edge_types=list(data.edge_types),
            seconds=run.seconds,
        )
        final = self.root / card.task / version
        partial = final.parent / f".{version}.partial"
        partial.mkdir(parents=True, exist_ok=False)
        try:
            torch.save(run.model.state_dict(), partial / "model.pt")
            run.baseline.booster.save_model(str(partial / "baseline.txt"))
            (partial / "card.json").write_text(json.dumps(card.to_dict(), indent=2))
            partial.rename(final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return card

    def promote(self, task: str, version: str) -> None:
        """Make ``version`` the one that scores and predicts for ``task``."""
        self.card(task, version)
        target = self.root / task / "CURRENT"
        partial = target.with_name(".CURRENT.partial")
        partial.write_text(version + "\n")
        os.replace(partial, target)

    def current_version(self, task: str) -> str | None:
        """The promoted version of ``task``, or None before the first promotion."""
        path = self.root / get_task(task).name / "CURRENT"
        return path.read_text().strip() if path.exists() else None

    def card(self, task: str, version: str | None = None) -> ModelCard:
        """The card of ``version`` (default: the promoted one)."""
        chosen = version or self.current_version(task)
        if chosen is None:
            raise UnknownModel(f"no {task} model has been trained and promoted yet")
        path = self.root / get_task(task).name / chosen / "card.json"
        if not path.exists():
            raise UnknownModel(f"no {task} model version {chosen!r} in {self.root}")
        return ModelCard.from_dict(json.loads(path.read_text()))

    def cards(self, task: str) -> list[ModelCard]:
        """Every version of ``task``, oldest first."""
        folder = self.root / get_task(task).name
        if not folder.exists():
            return []
        versions = sorted(p.name for p in folder.iterdir() if (p / "card.json").exists())
        return [self.card(task, version) for version in versions]

    def load(self, task: str, version: str | None = None) -> LoadedModel:
        """The model of ``version`` (default: the promoted one), ready to score."""
        card = self.card(task, version)
        folder = self.root / card.task / card.version
        config = TrainConfig.from_dict(card.config)
        model = JourneyGNN(
            in_channels=card.in_channels,
            edge_types=card.edge_types,
            head="offer" if get_task(task).kind == "ranking" else "node",
            hidden=config.hidden,
            layers=config.layers,
            dropout=config.dropout,
        )
        model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        model.eval()
        booster = lgb.Booster(model_file=str(folder / "baseline.txt"))
        return LoadedModel(card, get_task(task), config, model, Baseline(get_task(task), booster))

    def log_run(self, record: dict[str, Any]) -> None:
        """Append one run to ``runs.jsonl``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "runs.jsonl").open("a") as log:
            log.write(json.dumps(record, default=str) + "\n")

    def runs(self) -> list[dict[str, Any]]:
        """Every logged run, oldest first."""
        path = self.root / "runs.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def code_version() -> str:
    """The package version, and the git commit when run from a checkout."""
    version = metadata.version("journeygraph")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+{commit}"
