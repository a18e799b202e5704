"""Probabilistic resolution benchmark: Splink training, prediction and incremental scoring.

    .venv/bin/python -m bench.bench_splink [--records 100000] [--runs 3] [--world PATH]

Three measurements, each the median of ``--runs``, printed as JSON:

* FEBRL3 (5,000 records, ``tests/fixtures/febrl``): unsupervised training and dedupe
  prediction with the settings the FEBRL tests use, and the pairwise F1 reached.
* ``--records`` person records (CRM customers and shop visits) of a generated world
  (``--customers`` 100,000 by default, about 143k records, sampled down with a fixed seed)
  with ``person_settings()``: training, prediction, and pairwise precision and recall of
  the links and of the clusters against the world's truth.
* ``predict_incremental``: milliseconds per record for micro-batches of ``--batch``
  records against ``--known`` known records (the same world's other records), scored with
  the model trained above; each run adds the known records to a fresh linker (timed
  apart) and scores ``--batches`` micro-batches.

CPU seconds are given beside wall seconds: on a shared machine the wall clock also counts
other people's jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from ingest.generator import generate_world
from ingest.resolution._splink_evaluation import (
    ordered_pairs,
    pairs_in_groups,
    pairwise_scores,
    world_person_records,
)
from ingest.resolution.probabilistic import ProbabilisticLinker, person_settings
from tests.unit.resolution.test_febrl import febrl_settings, load_febrl

T = TypeVar("T")
_LABELS = ["person_id", "household_id", "fraud"]


def timed(work: Callable[..., T], *args: Any) -> tuple[T, float, float]:
    """``work(*args)``'s result with its wall and CPU seconds."""
    cpu, wall = _cpu_seconds(), time.perf_counter()
    result = work(*args)
    return result, time.perf_counter() - wall, _cpu_seconds() - cpu


def bench_febrl3(runs: int) -> dict[str, Any]:
    """Train and predict on FEBRL3 ``runs`` times."""
    records, entity = load_febrl("dataset3")
    train, predict, train_cpu, predict_cpu = [], [], [], []
    f1 = 0.0
    for _ in range(runs):
        linker = ProbabilisticLinker(febrl_settings())
        _, wall, cpu = timed(linker.train, records)
        train.append(wall)
        train_cpu.append(cpu)
        pairs, wall, cpu = timed(linker.predict, records)
        predict.append(wall)
        predict_cpu.append(cpu)
        clusters = linker.cluster(records, pairs)
        f1 = pairwise_scores(pairs_in_groups(clusters), pairs_in_groups(entity)).f1
    return {
        "records": len(records),
        "train_seconds": _median(train),
        "train_cpu_seconds": _median(train_cpu),
        "predict_seconds": _median(predict),
        "predict_cpu_seconds": _median(predict_cpu),
        "pairwise_f1": round(f1, 4),
    }


def bench_world(records: pd.DataFrame, runs: int) -> tuple[dict[str, Any], ProbabilisticLinker]:
    """Train and predict with the defaults ``runs`` times; quality from the last run."""
    unlabelled = records.drop(columns=_LABELS)
    train, predict, train_cpu, predict_cpu = [], [], [], []
    linker = ProbabilisticLinker(person_settings())
    pairs = pd.DataFrame()
    for _ in range(runs):
        linker = ProbabilisticLinker(person_settings())
        _, wall, cpu = timed(linker.train, unlabelled)
        train.append(wall)
        train_cpu.append(cpu)
        pairs, wall, cpu = timed(linker.predict, unlabelled)
        predict.append(wall)
        predict_cpu.append(cpu)
    truth = pairs_in_groups(records.set_index("unique_id")["person_id"])
    links = pairs.loc[pairs["decision"] == "link"]
    linked = pairwise_scores(ordered_pairs(links["unique_id_l"], links["unique_id_r"]), truth)
    clustered = pairwise_scores(pairs_in_groups(linker.cluster(records, pairs)), truth)
    result = {
        "records": len(records),
        "train_seconds": _median(train),
        "train_cpu_seconds": _median(train_cpu),
        "predict_seconds": _median(predict),
        "predict_cpu_seconds": _median(predict_cpu),
        "pairs_scored": len(pairs),
        "links": linked.as_dict(),
        "clusters": clustered.as_dict(),
        "training_stage_seconds": linker.model.training["seconds"],
    }
    return result, linker


def bench_incremental(
    trained: ProbabilisticLinker,
    known: pd.DataFrame,
    incoming: pd.DataFrame,
    batch: int,
    batches: int,
    runs: int,
) -> dict[str, Any]:
    """Milliseconds per record of ``predict_incremental`` against ``known``."""
    per_record, per_record_cpu, add_known = [], [], []
    for _ in range(runs):
        linker = ProbabilisticLinker(trained.settings, trained.model)
        _, wall, _cpu = timed(linker.add_known, known)
        add_known.append(wall)
        wall_total = cpu_total = 0.0
        for number in range(batches):
            micro = incoming.iloc[number * batch : (number + 1) * batch]
            _, wall, cpu = timed(linker.predict_incremental, micro)
            wall_total += wall
            cpu_total += cpu
        linker.close()
        per_record.append(1000 * wall_total / (batch * batches))
        per_record_cpu.append(1000 * cpu_total / (batch * batches))
    return {
        "known_records": len(known),
        "batch_records": batch,
        "batches_per_run": batches,
        "ms_per_record": _median(per_record),
        "cpu_ms_per_record": _median(per_record_cpu),
        "add_known_seconds": _median(add_known),
    }


def main() -> None:
    """Run the benchmark and print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--known", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--world", type=Path, help="a generated world to reuse")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        world = args.world
        if world is None:
            world = Path(folder) / "world"
            generate_world(world, args.customers, args.seed)
        records = world_person_records(world)
    shuffled = records.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    if len(shuffled) < args.known + args.batch * args.batches:
        parser.error(f"the world has {len(shuffled)} person records, too few for the runs")

    febrl = bench_febrl3(args.runs)
    world_result, trained = bench_world(shuffled.head(args.records), args.runs)
    known = shuffled.head(args.known).drop(columns=_LABELS)
    incoming = shuffled.iloc[args.known :].drop(columns=_LABELS)
    incremental = bench_incremental(trained, known, incoming, args.batch, args.batches, args.runs)
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "runs": args.runs,
        "febrl3": febrl,
        "generated_world": {"customers": args.customers, "seed": args.seed, **world_result},
        "predict_incremental": incremental,
    }
    print(json.dumps(result, indent=2))


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
