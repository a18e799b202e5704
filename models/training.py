"""Training and evaluation: the PyG loop, and a run that compares GNN and baseline.

``train_run(tables, task, config)`` is the whole experiment on a temporal hold-out:

1. the *training* snapshot has its cutoff two horizons before the data ends, the
   *hold-out* snapshot one horizon before; so the hold-out's features and labels lie
   entirely after what the model learned from;
2. the GNN trains on mini-batches of sampled neighbourhoods (``train``), keeping the
   epoch that scores best on a random tenth of the training customers (``evaluate``);
3. the LightGBM baseline trains on the same customers' aggregate features;
4. both are scored on the hold-out, side by side.
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch_geometric.data import HeteroData

from graph.errors import InvalidInput
from models._tables import GraphTables
from models.baseline import Baseline
from models.export import DAY, Snapshot, build_snapshot
from models.nets import JourneyGNN
from models.sampler import neighbour_loader
from models.tasks import Ranking, Task

DeviceName = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and the data window of one training run (saved with the model)."""

    horizon_days: int = 60
    hidden: int = 64
    layers: int = 2
    fanouts: tuple[int, ...] = (10, 5)
    batch_size: int = 1024
    epochs: int = 5
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.4
    seed: int = 7
    k: int = 5
    ranking: Ranking = "revenue"
    device: DeviceName = "auto"
    validation_share: float = 0.1
    windows: int = 2
    """Training snapshots, one horizon apart, ending at the training cutoff: more windows,
    more labelled examples (and one more snapshot per epoch to train on)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """The inverse of ``to_dict`` (JSON turns tuples into lists)."""
        fields: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()
        }
        return cls(**fields)


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did: mean training loss and the validation metric."""

    epoch: int
    epochs: int
    loss: float
    validation: float
    seconds: float


EpochCallback = Callable[[EpochReport], None]


@dataclass
class TrainingRun:
    """The outcome of ``train_run``: the trained GNN, the baseline, and their metrics."""

    task: Task
    config: TrainConfig
    model: JourneyGNN
    baseline: Baseline
    train_cutoff: datetime
    holdout_cutoff: datetime
    metrics: dict[str, dict[str, float]]
    """``{"gnn": {...}, "baseline": {...}}`` on the hold-out."""
    best_epoch: int
    seconds: dict[str, float] = field(default_factory=dict)
    snapshot: Snapshot | None = field(default=None, repr=False)
    """The training snapshot (its schema and offers go into the registry)."""


def pick_device(name: DeviceName = "auto") -> torch.device:
    """CUDA when asked for or available (``auto``), else the CPU."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def holdout_cutoffs(tables: GraphTables, horizon: timedelta) -> tuple[datetime, datetime]:
    """Training and hold-out cutoffs: two horizons and one horizon before the data ends."""
    _, last = tables.span()
    end = datetime.fromtimestamp((last // DAY + 1) * DAY, UTC)
    return end - 2 * horizon, end - horizon


def train_run(
    tables: GraphTables,
    task: Task,
    config: TrainConfig = TrainConfig(),
    on_epoch: EpochCallback | None = None,
) -> TrainingRun:
    """Train the GNN and the baseline for ``task`` and compare them on the hold-out."""
    horizon = timedelta(days=config.horizon_days)
    train_cutoff, holdout_cutoff = holdout_cutoffs(tables, horizon)
    started = time.perf_counter()
    train_snapshot = build_snapshot(tables, train_cutoff, horizon)
    holdout = build_snapshot(tables, holdout_cutoff, horizon, train_snapshot.schema)
    task.check_labels(train_snapshot.data, "training")
    task.check_labels(holdout.data, "hold-out")
    snapshots = [train_snapshot, *_earlier_windows(tables, task, config, train_snapshot)]
    seconds = {"snapshots": time.perf_counter() - started}

    validations = [_validation_split(snapshot.data, config) for snapshot in snapshots]
    started = time.perf_counter()
    model, best_epoch = fit_gnn(snapshots, task, config, validations, on_epoch)
    seconds["gnn"] = time.perf_counter() - started
    started = time.perf_counter()
    baseline = Baseline.fit(task, snapshots, validations, config.seed)
    seconds["baseline"] = time.perf_counter() - started

    customers = np.flatnonzero(task.labelled(holdout.data).numpy())
    metrics = {
        "gnn": _judge(
            holdout, customers, predict(model, holdout, customers, task, config), task, config
        ),
        "baseline": _judge(holdout, customers, baseline.predict(holdout, customers), task, config),
    }
    return TrainingRun(
        task=task,
        config=config,
        model=model,
        baseline=baseline,
        train_cutoff=train_cutoff,
        holdout_cutoff=holdout_cutoff,
        metrics=metrics,
        best_epoch=best_epoch,
        seconds=seconds,
        snapshot=train_snapshot,
    )


def _earlier_windows(
    tables: GraphTables, task: Task, config: TrainConfig, latest: Snapshot
) -> list[Snapshot]:
    """Training snapshots before the latest one, while the data reaches back far enough."""
    horizon = timedelta(days=config.horizon_days)
    first, _ = tables.span()
    earlier = []
    for step in range(1, config.windows):
        cutoff = latest.cutoff - step * horizon
        if cutoff.timestamp() <= first:
            break
        snapshot = build_snapshot(tables, cutoff, horizon, latest.schema)
        try:
            task.check_labels(snapshot.data, "training")
        except InvalidInput:
            break  # the data holds no outcomes that far back
        earlier.append(snapshot)
    return earlier


def build_model(snapshot: Snapshot, task: Task, config: TrainConfig) -> JourneyGNN:
    """An untrained ``JourneyGNN`` shaped for the snapshot's node and edge types."""
    data = snapshot.data
    return JourneyGNN(
        in_channels={kind: data[kind].x.shape[1] for kind in data.node_types},
        edge_types=list(data.edge_types),
        head="offer" if task.kind == "ranking" else "node",
        hidden=config.hidden,
        layers=config.layers,
        dropout=config.dropout,
    )


def fit_gnn(
    snapshots: Sequence[Snapshot],
    task: Task,
    config: TrainConfig,
    validations: Sequence[NDArray[np.bool_]],
    on_epoch: EpochCallback | None = None,
) -> tuple[JourneyGNN, int]:
    """Train ``epochs`` epochs; return the model of the best validation epoch.

    Each epoch goes through every training snapshot (``snapshots[0]`` the latest, whose
    held-back customers pick the best epoch). Seeded by ``config.seed`` (starting
    weights, dropout, sampling), without touching the caller's global random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return _fit_gnn(snapshots, task, config, validations, on_epoch)


def _fit_gnn(
    snapshots: Sequence[Snapshot],
    task: Task,
    config: TrainConfig,
    validations: Sequence[NDArray[np.bool_]],
    on_epoch: EpochCallback | None,
) -> tuple[JourneyGNN, int]:
    device = pick_device(config.device)
    snapshot = snapshots[0]
    data = snapshot.data
    model = build_model(snapshot, task, config)
    model.fit_scalers({kind: data[kind].x for kind in data.node_types})
    if task.kind == "regression":
        # Start from the mean label: an L1 loss moves a zero-initialised output slowly.
        labels = data["customer"][task.label][task.labelled(data)]
        model.start_at(float(labels.float().mean()))
    model.to(device)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    seeds = [
        torch.from_numpy(np.flatnonzero(task.labelled(window.data).numpy() & ~held_back))
        for window, held_back in zip(snapshots, validations, strict=True)
    ]
    held = np.flatnonzero(task.labelled(data).numpy() & validations[0])
    best: tuple[float, int, dict[str, Tensor]] | None = None
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        losses = [
            train(model, window, window_seeds, task, config, optimiser, device, epoch)
            for window, window_seeds in zip(snapshots, seeds, strict=True)
        ]
        loss = float(np.average(losses, weights=[len(s) for s in seeds]))
        scores = predict(model, snapshot, held, task, config)
        metric = _judge(snapshot, held, scores, task, config)[task.metric]
        if best is None or _better(metric, best[0], task):
            best = (metric, epoch, copy.deepcopy(model.state_dict()))
        if on_epoch is not None:
            on_epoch(EpochReport(epoch, config.epochs, loss, metric, time.perf_counter() - started))
    assert best is not None
    model.load_state_dict(best[2])
    return model.cpu(), best[1]


def train(
    model: JourneyGNN,
    snapshot: Snapshot,
    seeds: Tensor,
    task: Task,
    config: TrainConfig,
    optimiser: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
) -> float:
    """One epoch over mini-batches of seed customers; the mean loss."""
    model.train()
    loader = neighbour_loader(
        snapshot.data,
        seeds,
        list(config.fanouts),
        config.batch_size,
        shuffle=True,
        seed=config.seed * 1000 + epoch,
    )
    offer_x = snapshot.data["offer"].x.to(device)
    launched = snapshot.data["offer"].launched.to(device)
    total, count = 0.0, 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the loader makes many short-lived tensors; collection is pure overhead
    try:
        for batch in loader:
            batch = batch.to(device)
            size = batch["customer"].batch_size
            optimiser.zero_grad()
            out = model(batch.x_dict, batch.edge_index_dict, offer_x, size)
            loss = _loss(out, batch["customer"][task.label][:size], task, launched)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += loss.item() * size
            count += size
    finally:
        if gc_was_enabled:
            gc.enable()
    return total / max(count, 1)


@torch.no_grad()
def predict(
    model: JourneyGNN,
    snapshot: Snapshot,
    customers: NDArray[np.int64],
    task: Task,
    config: TrainConfig,
) -> NDArray[np.float64]:
    """Scores of customer nodes: probabilities (binary, NBO) or values (regression)."""
    model.eval()
    device = next(model.parameters()).device
    loader = neighbour_loader(
        snapshot.data,
        torch.from_numpy(customers),
        list(config.fanouts),
        config.batch_size * 4,
        shuffle=False,
        seed=config.seed,
    )
    offer_x = snapshot.data["offer"].x.to(device)
    parts = []
    for batch in loader:
        batch = batch.to(device)
        size = batch["customer"].batch_size
        out = model(batch.x_dict, batch.edge_index_dict, offer_x, size)
        parts.append(out if task.kind == "regression" else out.sigmoid())
    scores = torch.cat(parts).cpu().numpy().astype(np.float64)
    return scores


def evaluate(
    model: JourneyGNN,
    snapshot: Snapshot,
    task: Task,
    config: TrainConfig,
) -> dict[str, float]:
    """The task's metrics of ``model`` on every labelled customer of ``snapshot``."""
    customers = np.flatnonzero(task.labelled(snapshot.data).numpy())
    return _judge(
        snapshot, customers, predict(model, snapshot, customers, task, config), task, config
    )


def _judge(
    snapshot: Snapshot,
    customers: NDArray[np.int64],
    scores: NDArray[np.float64],
    task: Task,
    config: TrainConfig,
) -> dict[str, float]:
    """The task's metrics of ``scores`` for ``customers`` (NBO: launched offers only)."""
    truth = snapshot.data["customer"][task.label].numpy()[customers]
    margin = snapshot.offer_margin
    if task.kind == "ranking":
        launched = snapshot.data["offer"].launched.numpy()
        scores, truth, margin = scores[:, launched], truth[:, launched], margin[launched]
    return task.evaluate(truth, scores, margin, config.k, config.ranking)


def _loss(out: Tensor, labels: Tensor, task: Task, launched: Tensor) -> Tensor:
    if task.kind == "regression":
        return torch.nn.functional.l1_loss(out, labels.float())
    if task.kind == "ranking":
        return torch.nn.functional.binary_cross_entropy_with_logits(
            out[:, launched], labels[:, launched].float()
        )
    return torch.nn.functional.binary_cross_entropy_with_logits(out, labels.float())


def _better(metric: float, best: float, task: Task) -> bool:
    if np.isnan(metric):
        return False
    if np.isnan(best):
        return True
    return metric > best if task.higher_is_better else metric < best


def _validation_split(data: HeteroData, config: TrainConfig) -> NDArray[np.bool_]:
    rng = np.random.default_rng(config.seed)
    split: NDArray[np.bool_] = rng.random(data["customer"].num_nodes) < config.validation_share
    return split
