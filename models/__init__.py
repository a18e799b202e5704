"""GNN propensity models (churn, next-best-offer, fraud, CSAT) trained on the journey graph.

Reads like a PyG example: ``to_hetero_data(store, cutoff)`` exports the graph as of a
cutoff (``models.export``), ``JourneyGNN`` is a heterogeneous GraphSAGE
(``models.nets``), ``train`` / ``evaluate`` are the loop (``models.training``), with a
LightGBM baseline beside it (``models.baseline``), a registry of versions
(``models.registry``), batch scoring and request-time prediction
(``models.scoring``) and scheduled retraining (``models.schedule``). See docs/models.md.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models._tables import GraphTables
    from models.export import FeatureSchema, Snapshot, build_snapshot, to_hetero_data
    from models.nets import JourneyGNN
    from models.registry import ModelCard, ModelRegistry, UnknownModel
    from models.schedule import RetrainSchedule, RetrainScheduler, retrain
    from models.scoring import Prediction, Predictor, score_customers
    from models.tasks import TASKS, Task, get_task
    from models.training import TrainConfig, evaluate, predict, train, train_run

_HOMES = {
    "GraphTables": "models._tables",
    "FeatureSchema": "models.export",
    "Snapshot": "models.export",
    "build_snapshot": "models.export",
    "to_hetero_data": "models.export",
    "JourneyGNN": "models.nets",
    "ModelCard": "models.registry",
    "ModelRegistry": "models.registry",
    "UnknownModel": "models.registry",
    "RetrainSchedule": "models.schedule",
    "RetrainScheduler": "models.schedule",
    "retrain": "models.schedule",
    "Prediction": "models.scoring",
    "Predictor": "models.scoring",
    "score_customers": "models.scoring",
    "TASKS": "models.tasks",
    "Task": "models.tasks",
    "get_task": "models.tasks",
    "TrainConfig": "models.training",
    "evaluate": "models.training",
    "predict": "models.training",
    "train": "models.training",
    "train_run": "models.training",
}


def __getattr__(name: str) -> Any:
    """Import on first use: torch and PyG load only when a model is touched, not with the CLI."""
    if name not in _HOMES:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)


__all__ = [
    "TASKS",
    "FeatureSchema",
    "GraphTables",
    "JourneyGNN",
    "ModelCard",
    "ModelRegistry",
    "Prediction",
    "Predictor",
    "RetrainSchedule",
    "RetrainScheduler",
    "Snapshot",
    "Task",
    "TrainConfig",
    "UnknownModel",
    "build_snapshot",
    "evaluate",
    "get_task",
    "predict",
    "retrain",
    "score_customers",
    "to_hetero_data",
    "train",
    "train_run",
]
