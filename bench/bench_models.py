"""GNN propensity models benchmark: training time, peak memory, GNN vs LightGBM, scoring.

    .venv/bin/python -m bench.bench_models --data-dir /tmp/world100k [--tasks churn,nbo]
        [--runs 3] [--epochs 5] [--predictions 50]

``--data-dir`` is a journeygraph data folder with a loaded world (``JOURNEYGRAPH_DATA_DIR=DIR
journeygraph load-demo --customers 100000``): the embedded store, the lake and the
identity index. Measured, each run in a process of its own so its peak RSS is its own:

* ``tables``: reading what the models need, from the graph alone (``GraphTables.from_store``
  over the store's bulk export) and with touchpoints from the lake (the default path);
* ``train``: a whole ``train`` run per task (tables, the two snapshots, the GNN's epochs,
  the LightGBM baseline, both scored on the temporal hold-out), seconds and peak RSS;
  the hold-out metrics of both models, their difference (AUROC) or ratio (revenue@5);
* ``score``: batch scoring of every active customer with the promoted model, scores
  written back to the graph;
* ``predict``: request-time prediction latency (the neighbourhood read from the store).

The targets (issue 5): churn AUROC at least 0.03 above the baseline's, NBO revenue@5 at
least 10% above, training churn on 100k customers under 10 minutes, scoring 100k under
60 s. Results are JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _child(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["JOURNEYGRAPH_DATA_DIR"] = str(args.data_dir)
    from api.bootstrap import model_tables, open_registry, open_store, train_config
    from api.settings import get_settings
    from models import GraphTables, Predictor, score_customers
    from models.schedule import retrain

    settings = get_settings()
    started = time.perf_counter()
    result: dict[str, Any] = {}
    with open_store(settings) as store:
        if args.child == "tables-graph":
            tables = GraphTables.from_store(store)
            result["touchpoints"] = len(tables.ts)
        elif args.child == "tables-lake":
            tables = model_tables(settings, store)
            result["touchpoints"] = len(tables.ts)
        elif args.child == "train":
            registry = open_registry(settings)
            config = train_config(settings, epochs=args.epochs)
            outcome = retrain(
                store, registry, args.task, config, tables=model_tables(settings, store)
            )
            if outcome.candidate is None:
                raise SystemExit(outcome.reason)
            card = registry.card(args.task, outcome.candidate)
            registry.promote(args.task, card.version)
            result |= {"metrics": card.metrics, "seconds_by_part": card.seconds}
            result["best_epoch"] = card.best_epoch
        elif args.child == "score":
            loaded = open_registry(settings).load(args.task)
            summary = score_customers(store, loaded, tables=model_tables(settings, store))
            result["customers"] = summary.customers
        elif args.child == "predict":
            predictor = Predictor(store, open_registry(settings))
            customers = store.export_vertices("Customer")["id"].to_pylist()[::997][
                : args.predictions
            ]
            predictor.predict(args.task, customers[0])
            latencies = []
            for customer in customers:
                begun = time.perf_counter()
                predictor.predict(args.task, customer)
                latencies.append(time.perf_counter() - begun)
            latencies.sort()
            result["p50_ms"] = round(1000 * latencies[len(latencies) // 2], 1)
            result["p99_ms"] = round(1000 * latencies[int(len(latencies) * 0.99)], 1)
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def _run(args: argparse.Namespace, child: str, task: str = "churn") -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.bench_models", "--data-dir", str(args.data_dir),
        "--child", child, "--task", task, "--epochs", str(args.epochs),
        "--predictions", str(args.predictions),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{child} {task} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {child} {task}: {result}", file=sys.stderr, flush=True)
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--tasks", default="churn,nbo")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--predictions", type=int, default=50)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--task", default="churn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "runs": args.runs,
        "epochs": args.epochs,
    }
    graph = [_run(args, "tables-graph") for _ in range(args.runs)]
    lake = [_run(args, "tables-lake") for _ in range(args.runs)]
    report["tables"] = {
        "touchpoints": lake[0]["touchpoints"],
        "graph_seconds": _median(graph, "seconds"),
        "lake_seconds": _median(lake, "seconds"),
        "speedup": round(_median(graph, "seconds") / _median(lake, "seconds"), 2),
        "graph_peak_rss_mb": _median(graph, "peak_rss_mb"),
        "lake_peak_rss_mb": _median(lake, "peak_rss_mb"),
    }
    for task in args.tasks.split(","):
        runs = [_run(args, "train", task) for _ in range(args.runs)]
        metric = "auroc" if task != "nbo" else "revenue@5"
        gnn = [run["metrics"]["gnn"][metric] for run in runs]
        baseline = [run["metrics"]["baseline"][metric] for run in runs]
        entry: dict[str, Any] = {
            "seconds": _median(runs, "seconds"),
            "peak_rss_mb": _median(runs, "peak_rss_mb"),
            "gnn_seconds": statistics.median(run["seconds_by_part"]["gnn"] for run in runs),
            f"gnn_{metric}": gnn,
            f"baseline_{metric}": baseline,
            "metrics_last_run": runs[-1]["metrics"],
        }
        if task == "nbo":
            entry["revenue_ratio"] = [
                round(g / b, 3) if b else None for g, b in zip(gnn, baseline, strict=True)
            ]
        else:
            entry["auroc_gain"] = [round(g - b, 4) for g, b in zip(gnn, baseline, strict=True)]
        scoring = [_run(args, "score", task) for _ in range(args.runs)]
        entry["score"] = {
            "customers": scoring[0]["customers"],
            "seconds": _median(scoring, "seconds"),
            "peak_rss_mb": _median(scoring, "peak_rss_mb"),
        }
        entry["predict"] = _run(args, "predict", task)
        report[task] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
