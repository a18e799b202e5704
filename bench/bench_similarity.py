"""Similarity benchmark: index build, warm query latency and recall@10 of the LSH path.

    .venv/bin/python -m bench.bench_similarity [--lake /tmp/jgbench/lake-1m]
        [--customers 1000000] [--queries 200] [--recall-queries 100] [--runs 3]
        [--real-lake /tmp/run10/ingest/lake --real-identity /tmp/run10/ingest/identity.sqlite]
        [--sweep]

The synthetic lake (``bench.synthetic_lake``, ~10 touchpoints a customer) is written
once at ``--lake`` and reused. For each lake:

* **build**: ``SimilarityIndex.build`` over the timelines (the sorted copy is loaded
  first and not counted), median of ``--runs``; then save and open times;
* **query**: ``SimilarityAnalyzer.run`` for ``--queries`` random customers (default
  query: top 10, outcomes included), index warm in memory after 20 warm-up queries,
  wired as the service wires it (each query first asks ``TimelineIndex.load`` whether
  the lake changed: ``lake_check_ms`` of it); p50 and p99 per run, medians over
  ``--runs``. The peer is the exact scan
  (rapidfuzz over every distinct journey, ``method="exact"``) on 20 of them;
* **recall@10** of the LSH path against that exact scan on ``--recall-queries``
  customers. Similarities tie often (many journeys are a step or two apart), so a
  result counts as a hit when its similarity is at least the exact 10th best (the
  ann-benchmarks convention); ``recall_ids`` is the stricter share of the exact
  top-10 customer ids found (ties there are broken by id, which no index can see);
* a second peer: datasketch's own ``MinHash.update_batch`` + ``MinHashLSH.insert``
  on 20,000 of the distinct journeys, extrapolated to all of them.

``--sweep`` adds recall and latency for other shingle sizes and bandings (the
evidence behind the defaults in docs/similarity.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def timeline_index(lake_root: Path, identity: Path | None) -> Any:
    """The lake's ``TimelineIndex`` (its sorted copy is built once and then reused)."""
    from ingest.lake import Lake
    from ingest.resolution.merges import read_merge_map
    from journeys.timelines import TimelineIndex

    if identity is not None:
        return TimelineIndex(Lake(lake_root), lambda: read_merge_map(identity))
    return TimelineIndex(Lake(lake_root), dict)


def recall(index: Any, customers: list[str], exact: list[Any], top: int = 10) -> dict[str, float]:
    """Tie-aware and id recall@top of ``index.search`` against exact rankings."""
    tie_aware, by_id, lsh_seconds = [], [], []
    for customer, truth in zip(customers, exact, strict=True):
        steps = index.steps_of(index.journey_of(customer))
        started = time.perf_counter()
        found, _ = index.search(steps, top, 0.7, customer)
        lsh_seconds.append(time.perf_counter() - started)
        wanted = min(top, len(truth.customers))
        if wanted == 0:
            continue
        threshold = truth.similarities[wanted - 1] - 1e-9
        tie_aware.append(sum(s >= threshold for s in found.similarities[:top]) / wanted)
        by_id.append(len(set(found.customers) & set(truth.customers[:wanted])) / wanted)
    return {
        "recall_at_10": round(float(np.mean(tie_aware)), 4),
        "recall_at_10_min": round(float(np.min(tie_aware)), 2),
        "recall_ids": round(float(np.mean(by_id)), 4),
        "search_p50_ms": round(1000 * float(np.median(lsh_seconds)), 2),
    }


def exact_rankings(index: Any, customers: list[str], top: int = 10) -> tuple[list[Any], float]:
    """The exact top of each customer, and the median seconds a scan took."""
    rankings, seconds = [], []
    for customer in customers:
        steps = index.steps_of(index.journey_of(customer))
        started = time.perf_counter()
        rankings.append(index.exact(steps, top, 0.7, customer))
        seconds.append(time.perf_counter() - started)
    return rankings, float(np.median(seconds))


def incremental(timelines: Any, folder: Path, changed: int = 1000) -> dict[str, float]:
    """Update, refresh and compaction times after ``changed`` customers' journeys changed.

    The changed timelines are spliced in as ``TimelineIndex`` does after an ingest:
    each chosen customer's touchpoints in reverse order, one more step at the end.
    """
    import pyarrow as pa

    from journeys.similarity import SimilarityIndex
    from journeys.timelines import Timelines, splice

    rng = np.random.default_rng(5)
    picked = np.sort(rng.choice(timelines.customer_count, changed, replace=False))
    names = np.array(timelines.event_types, dtype=object)
    rows: dict[str, list[Any]] = {k: [] for k in ("customer", "event_id", "event_type", "ts")}
    for position in picked.tolist():
        start, stop = int(timelines.offsets[position]), int(timelines.offsets[position + 1])
        steps = [*names[np.asarray(timelines.event[start:stop])][::-1], "port_out"]
        customer = timelines.customers[position].as_py()
        rows["customer"] += [customer] * len(steps)
        rows["event_id"] += [f"{customer}-{n}" for n in range(len(steps))]
        rows["event_type"] += steps
        rows["ts"] += list(range(len(steps)))
    table = pa.table(rows).append_column("channel", pa.array(["app"] * len(rows["ts"])))
    table = table.append_column("source", pa.array(["bench"] * len(rows["ts"])))
    ids = timelines.customers.take(pa.array(picked))
    spliced = splice(timelines, Timelines.from_table(table), ids)

    index = SimilarityIndex.open(folder)
    assert index is not None
    started = time.perf_counter()
    signed = index.update(spliced, ids.to_pylist())
    updated = time.perf_counter() - started
    started = time.perf_counter()
    index.compact()
    compacted = time.perf_counter() - started
    index = SimilarityIndex.open(folder)
    assert index is not None
    started = time.perf_counter()
    index.refresh(spliced)
    refreshed = time.perf_counter() - started
    return {
        "changed_customers": changed,
        "journeys_signed": signed,
        "update_seconds": round(updated, 3),
        "refresh_seconds": round(refreshed, 2),
        "compact_seconds": round(compacted, 2),
    }


def datasketch_peer(index: Any, sample: int = 20_000) -> dict[str, float]:
    """datasketch's per-object MinHash + MinHashLSH on a sample, extrapolated."""
    from datasketch import MinHash, MinHashLSH

    from journeys.similarity._minhash import fold, shingles

    settings = index.settings
    base = index._base
    count = min(sample, len(base.journeys))
    rows = np.asarray(base.journeys[:count])
    lengths = np.count_nonzero(rows, axis=1)
    packed, exists = shingles(rows, lengths, settings.shingle, index._symbols())
    hashed = fold(packed)
    bands = settings.num_perm // settings.band_rows
    lsh = MinHashLSH(num_perm=settings.num_perm, params=(bands, settings.band_rows))
    started = time.perf_counter()
    for journey in range(count):
        minhash = MinHash(num_perm=settings.num_perm, seed=settings.seed, hashfunc=int)
        minhash.update_batch(hashed[journey][exists[journey]].tolist())
        lsh.insert(journey, minhash)
    seconds = time.perf_counter() - started
    return {
        "sample_journeys": count,
        "sample_seconds": round(seconds, 2),
        "extrapolated_seconds": round(seconds * len(base.journeys) / max(count, 1), 1),
    }


def measure(
    name: str,
    timelines_index: Any,
    queries: int,
    recall_queries: int,
    runs: int,
    sweep: bool,
    folder: Path,
) -> dict[str, Any]:
    """Every measurement of one lake."""
    started = time.perf_counter()
    timelines = timelines_index.load()
    loaded = time.perf_counter() - started
    from journeys.similarity import (
        IndexSettings,
        SimilarityAnalyzer,
        SimilarityIndex,
        SimilarityQuery,
    )

    builds = []
    index = None
    for _ in range(runs):
        started = time.perf_counter()
        index = SimilarityIndex.build(timelines)
        builds.append(time.perf_counter() - started)
    assert index is not None
    started = time.perf_counter()
    index.save(folder)
    saved = time.perf_counter() - started
    started = time.perf_counter()
    SimilarityIndex.open(folder)
    opened = time.perf_counter() - started
    arrays = index._base
    memory = sum(
        getattr(arrays, field).nbytes
        for field in ("journeys", "rank_key", "hash_sorted", "hash_ids", "band_keys", "band_ids")
        + ("journey_of", "members", "member_offsets")
    )

    rng = np.random.default_rng(11)
    with_journey = [
        c
        for c in timelines.customers.take(
            rng.choice(timelines.customer_count, min(timelines.customer_count, 4 * queries), False)
        ).to_pylist()
        if index.journey_of(c) >= 0
    ]
    chosen = with_journey[:queries]
    # Wired as the service wires it: every query asks the TimelineIndex whether the lake
    # changed (a stat of every lake file), as a request would.
    analyzer = SimilarityAnalyzer(timelines_index.load, folder=folder)
    analyzer.warm()
    checks = []
    for _ in range(20):
        started = time.perf_counter()
        timelines_index.load()
        checks.append(time.perf_counter() - started)
    for customer in chosen[:20]:
        analyzer.run(SimilarityQuery(customer=customer))
    p50s, p99s = [], []
    for _ in range(runs):
        seconds = []
        for customer in chosen:
            started = time.perf_counter()
            analyzer.run(SimilarityQuery(customer=customer))
            seconds.append(time.perf_counter() - started)
        p50s.append(float(np.percentile(seconds, 50)))
        p99s.append(float(np.percentile(seconds, 99)))
    exact_seconds = []
    for customer in chosen[:20]:
        started = time.perf_counter()
        analyzer.run(SimilarityQuery(customer=customer, method="exact"))
        exact_seconds.append(time.perf_counter() - started)

    measured = chosen[:recall_queries]
    truth, _ = exact_rankings(index, measured)
    result: dict[str, Any] = {
        "lake": name,
        "customers": timelines.customer_count,
        "touchpoints": len(timelines),
        "timelines_load_seconds": round(loaded, 2),
        "lake_check_ms": round(1000 * float(np.median(checks)), 2),
        "indexed_customers": index.customer_count,
        "distinct_journeys": index.journey_count,
        "settings": index.settings.model_dump(mode="json"),
        "build_seconds": round(statistics.median(builds), 2),
        "build_runs": [round(b, 2) for b in builds],
        "save_seconds": round(saved, 2),
        "open_seconds": round(opened, 3),
        "index_mb": round(memory / 2**20, 1),
        "query_p50_ms": round(1000 * statistics.median(p50s), 2),
        "query_p99_ms": round(1000 * statistics.median(p99s), 2),
        "queries": len(chosen),
        "exact_scan_p50_ms": round(1000 * float(np.median(exact_seconds)), 1),
        "recall_queries": len(measured),
        **recall(index, measured, truth),
        "incremental": incremental(timelines, folder),
        "datasketch_peer": datasketch_peer(index),
    }
    if sweep:
        result["sweep"] = []
        for shingle, num_perm, band_rows, candidates in (
            (2, 64, 2, 5000),
            (3, 32, 2, 5000),
            (3, 64, 2, 1000),
            (3, 64, 2, 5000),
            (3, 96, 3, 5000),
            (3, 128, 2, 5000),
            (4, 64, 2, 5000),
        ):
            settings = IndexSettings(
                shingle=shingle, num_perm=num_perm, band_rows=band_rows, candidates=candidates
            )
            started = time.perf_counter()
            other = SimilarityIndex.build(timelines, settings)
            built = time.perf_counter() - started
            result["sweep"].append(
                {
                    "shingle": shingle,
                    "num_perm": num_perm,
                    "band_rows": band_rows,
                    "candidates": candidates,
                    "build_seconds": round(built, 2),
                    **recall(other, measured, truth),
                }
            )
    return result


def main() -> None:
    """Run the benchmark and print the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", type=Path, default=Path("/tmp/jgbench/lake-1m"))
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--real-lake", type=Path, default=None)
    parser.add_argument("--real-identity", type=Path, default=None)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()

    from bench.synthetic_lake import write_lake

    write_lake(args.lake, args.customers)
    # The indexes go to a scratch folder: the benchmark leaves the lakes as they were.
    scratch = Path(tempfile.mkdtemp(prefix="bench-similarity-"))
    lakes = [
        measure(
            f"synthetic {args.customers:,}",
            timeline_index(args.lake, None),
            args.queries,
            args.recall_queries,
            args.runs,
            args.sweep,
            scratch / "synthetic",
        )
    ]
    if args.real_lake is not None:
        lakes.append(
            measure(
                "real ingest",
                timeline_index(args.real_lake, args.real_identity),
                args.queries,
                args.recall_queries,
                args.runs,
                args.sweep,
                scratch / "real",
            )
        )
    shutil.rmtree(scratch, ignore_errors=True)
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
                "lakes": lakes,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
