"""``journeygraph train``, ``score`` and ``models ...``: the GNN propensity models."""

from __future__ import annotations

import resource
import time
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.bootstrap import model_tables, open_registry, open_store, train_config
from api.commands._output import JsonFlag, console, emit, fail, print_json, progress_bar
from api.settings import get_settings
from graph import JourneyGraphError
from models.tasks import TASKS

app = typer.Typer(
    name="models",
    help="The model registry: versions, metrics, promotion, runs, prediction, retraining.",
    no_args_is_help=True,
)
TaskArgument = Annotated[str, typer.Argument(help=f"one of: {', '.join(TASKS)}")]
VersionOption = Annotated[
    str | None, typer.Option(help="a registry version; default: the promoted one")
]


def train(
    task: TaskArgument,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="default JOURNEYGRAPH_TRAIN_EPOCHS")
    ] = None,
    horizon_days: Annotated[int, typer.Option(min=1, help="label window after the cutoff")] = 60,
    ranking: Annotated[
        str, typer.Option(help="nbo: 'revenue' (P x margin) or 'likelihood' (P)")
    ] = "revenue",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    promote: Annotated[
        bool, typer.Option(help="promote only if not worse than the current model")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Train the GNN and the LightGBM baseline for TASK on a temporal hold-out."""
    from models.schedule import retrain

    settings = get_settings()
    overrides: dict[str, Any] = {"horizon_days": horizon_days, "ranking": ranking, "device": device}
    if epochs is not None:
        overrides["epochs"] = epochs
    started = time.perf_counter()
    try:
        config = train_config(settings, **overrides)
        registry = open_registry(settings)
        with open_store(settings) as store, progress_bar() as bar:
            job = bar.add_task(f"training {task}", total=config.epochs)

            def on_epoch(report: Any) -> None:
                bar.update(
                    job,
                    completed=report.epoch,
                    description=f"training {task} (loss {report.loss:.4f}, "
                    f"validation {report.validation:.4f})",
                )

            tables = model_tables(settings, store)
            outcome = retrain(store, registry, task, config, on_epoch, tables, promote=promote)
    except (JourneyGraphError, ValueError) as error:
        raise fail(error) from error
    if outcome.candidate is None:
        raise fail(RuntimeError(outcome.reason))
    card = registry.card(task, outcome.candidate)
    result = {
        "task": task,
        "version": card.version,
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "train_cutoff": card.train_cutoff.isoformat(),
        "holdout_cutoff": card.holdout_cutoff.isoformat(),
        "best_epoch": card.best_epoch,
        "metrics": card.metrics,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if as_json:
        print_json(result)
        return
    _print_metrics(card.metrics, f"{task} {card.version} (hold-out {card.holdout_cutoff:%Y-%m-%d})")
    emit({k: v for k, v in result.items() if k != "metrics"}, False, "training run")


def score(
    task: TaskArgument,
    version: VersionOption = None,
    cutoff: Annotated[
        datetime | None, typer.Option(help="score as of this UTC time; default: end of the data")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score every active customer for TASK and write the scores onto the Customer vertices."""
    from datetime import UTC

    from models.scoring import score_customers

    settings = get_settings()
    try:
        loaded = open_registry(settings).load(task, version)
        with open_store(settings) as store, progress_bar() as bar:
            job = bar.add_task(f"scoring {task}", total=None)
            summary = score_customers(
                store,
                loaded,
                cutoff.replace(tzinfo=cutoff.tzinfo or UTC) if cutoff else None,
                progress=lambda done, total: bar.update(job, completed=done, total=total),
                tables=model_tables(settings, store),
            )
    except JourneyGraphError as error:
        raise fail(error) from error
    emit(summary.as_dict(), as_json, f"{task} scores written")


@app.command("list")
def list_models(task: TaskArgument, as_json: JsonFlag = False) -> None:
    """Every trained version of TASK with its hold-out metrics (* marks the promoted one)."""
    try:
        registry = open_registry(get_settings())
        cards = registry.cards(task)
        current = registry.current_version(task)
    except JourneyGraphError as error:
        raise fail(error) from error
    rows: list[dict[str, Any]] = [
        {
            "version": card.version,
            "promoted": card.version == current,
            "train_cutoff": card.train_cutoff.isoformat(),
            "gnn": card.metrics["gnn"],
            "baseline": card.metrics["baseline"],
        }
        for card in cards
    ]
    if as_json:
        print_json(rows)
        return
    metric = TASKS[task].metric if task in TASKS else ""
    table = Table(title=f"{len(rows)} {task} models")
    for name in ("version", "train cutoff", f"GNN {metric}", f"baseline {metric}"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            ("* " if row["promoted"] else "  ") + row["version"],
            row["train_cutoff"][:10],
            f"{row['gnn'].get(metric, float('nan')):.4f}",
            f"{row['baseline'].get(metric, float('nan')):.4f}",
        )
    Console().print(table)


@app.command()
def show(task: TaskArgument, version: VersionOption = None) -> None:
    """The whole card of a model as JSON: config, schema, cutoffs, metrics, code version."""
    try:
        card = open_registry(get_settings()).card(task, version)
    except JourneyGraphError as error:
        raise fail(error) from error
    print_json(card.to_dict())


@app.command()
def promote(task: TaskArgument, version: Annotated[str, typer.Argument()]) -> None:
    """Make VERSION the model that scores and predicts for TASK."""
    try:
        open_registry(get_settings()).promote(task, version)
    except JourneyGraphError as error:
        raise fail(error) from error
    console.print(f"{task}: {version} promoted")


@app.command()
def runs(as_json: JsonFlag = False) -> None:
    """Every training and retraining run, with what it decided and why."""
    logged = open_registry(get_settings()).runs()
    if as_json:
        print_json(logged)
        return
    table = Table(title=f"{len(logged)} runs")
    for name in ("finished", "task", "candidate", "promoted", "reason"):
        table.add_column(name)
    for run in logged:
        table.add_row(
            str(run.get("finished_at", ""))[:19],
            str(run.get("task")),
            str(run.get("candidate")),
            str(run.get("promoted")),
            str(run.get("reason")),
        )
    Console().print(table)


@app.command()
def predict(
    task: TaskArgument,
    customer: Annotated[str, typer.Argument(help="customer id, with or without cust:")],
    as_json: JsonFlag = False,
) -> None:
    """Score one customer now from their neighbourhood (works for customers new since training)."""
    from api.schemas import PredictionOut
    from journeys.customer360 import canonical_customer_id
    from models.scoring import Predictor

    settings = get_settings()
    try:
        with open_store(settings) as store:
            prediction = Predictor(store, open_registry(settings)).predict(
                task, canonical_customer_id(customer)
            )
    except JourneyGraphError as error:
        raise fail(error) from error
    result = PredictionOut.of(prediction).model_dump(exclude_defaults=True)
    if as_json:
        print_json(result)
        return
    emit(result, False, f"{task} prediction")


def _print_metrics(metrics: dict[str, dict[str, float]], title: str) -> None:
    names = list(dict.fromkeys(name for values in metrics.values() for name in values))
    table = Table(title=title)
    table.add_column("metric")
    for model in metrics:
        table.add_column(model)
    for name in names:
        table.add_row(name, *(f"{metrics[m].get(name, float('nan')):.4f}" for m in metrics))
    Console().print(table)
