"""Ingest benchmark: a whole generated world in, resolved, scored; and the stream's rate.

    .venv/bin/python -m bench.bench_ingest [--customers 100000] [--world DIR] [--runs 1]
    .venv/bin/python -m bench.bench_ingest --stream [--lines 200000]

World mode: generates (or reuses ``--world``) a world, then in a fresh process per
run ingests its six sources into a new embedded store (``journeygraph ingest`` for
each, richest keys first), runs the Splink pass, and scores the result against the
truth. Reports seconds per stage and in total, records per second, peak RSS and the
pairwise / cluster / B-cubed scores.

Stream mode: writes ``--lines`` canonical JSON lines of a generated world (network
and clickstream events, the bulk of a live feed) and times ``run_stream`` over them
with deterministic resolution (the graph, the lake and the NEXT relinks included),
then ``predict_incremental`` micro-batches of the Splink model.
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
import tempfile
import time
from pathlib import Path
from typing import Any


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def world_run(world: Path) -> dict[str, Any]:
    """Ingest, link and score one world into a fresh store (in this process)."""
    from graph import EmbeddedStore
    from ingest.demo import SOURCE_ORDER
    from ingest.mapping import load_mapping
    from ingest.pipeline import Ingestor
    from ingest.resolution.evaluation import evaluate_lake
    from ingest.resolution.resolver import link_customers

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = EmbeddedStore(Path(folder) / "graph.db")
        ingestor = Ingestor(store, Path(folder) / "ingest")
        started = time.perf_counter()
        read = 0
        for source in SOURCE_ORDER:
            begun = time.perf_counter()
            summary = ingestor.ingest_paths([world], load_mapping(source), link=False)
            result[f"{source}_seconds"] = round(time.perf_counter() - begun, 2)
            read += summary.read
            result["quarantined"] = result.get("quarantined", 0) + summary.quarantined
        begun = time.perf_counter()
        chains = ingestor.link_chains()
        result["chain_seconds"] = round(time.perf_counter() - begun, 2)
        result["next_edges"] = chains.next_added
        result["ingest_seconds"] = time.perf_counter() - started
        begun = time.perf_counter()
        linked = link_customers(ingestor, Path(folder) / "models")
        result["splink_seconds"] = time.perf_counter() - begun
        result["seconds"] = time.perf_counter() - started
        result["records"] = read
        result["records_per_s"] = read / result["seconds"]
        result["customers_merged_by_splink"] = linked.customers_merged
        result["review_pairs"] = linked.review_pairs
        scores = evaluate_lake(
            ingestor.lake, ingestor.index.merge_map(), world / "truth" / "records.parquet"
        )
        result["scores"] = {k: scores[k] for k in ("pairwise", "cluster", "bcubed")}
        result["predicted_customers"] = scores["predicted_customers"]
        result["db_mb"] = (Path(folder) / "graph.db").stat().st_size / 1e6
        ingestor.close()
        store.close()
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def stream_run(lines: int, seed: int) -> dict[str, Any]:
    """Stream canonical JSON lines through ``run_stream``; then Splink micro-batches."""
    import orjson

    from graph import EmbeddedStore
    from ingest.generator import iter_world
    from ingest.mapping import load_mapping
    from ingest.pipeline import Ingestor
    from ingest.stream import StreamOptions, run_stream

    payload: list[bytes] = []
    for _, touchpoint in iter_world(max(lines // 30, 100), seed):
        if touchpoint.source in ("network", "clickstream", "care"):
            payload.append(orjson.dumps(touchpoint.model_dump(mode="json")))
            if len(payload) >= lines:
                break
    with tempfile.TemporaryDirectory() as folder:
        store = EmbeddedStore(Path(folder) / "graph.db")
        ingestor = Ingestor(store, Path(folder) / "ingest")
        summary = run_stream(
            ingestor,
            iter(payload),
            load_mapping("canonical"),
            StreamOptions(batch_size=20_000, max_wait=1.0, link_every=5.0),
        )
        ingestor.close()
        store.close()
    return {
        "lines": len(payload),
        "accepted": summary.accepted,
        "seconds": summary.seconds,
        "touchpoints_per_s": summary.accepted / summary.seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _child(args: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.bench_ingest", "--child", *args]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run the benchmark and print medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--world", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.stream:
            print(json.dumps(stream_run(args.lines, args.seed)))
        else:
            print(json.dumps(world_run(args.world)))
        return
    header: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "runs": args.runs,
    }
    if args.stream:
        runs = [
            _child(["--stream", "--lines", str(args.lines), "--seed", str(args.seed)])
            for _ in range(args.runs)
        ]
    else:
        with tempfile.TemporaryDirectory(prefix="jg-bench-ingest-") as scratch:
            world = args.world
            if world is None:
                # A generated world is scratch: it goes when the runs are done.
                world = Path(scratch) / "world"
                from ingest.generator import generate_world

                generate_world(world, args.customers, args.seed)
            header["world"] = str(world)
            runs = [_child(["--world", str(world)]) for _ in range(args.runs)]
    result = dict(header)
    for key, value in runs[0].items():
        if isinstance(value, int | float):
            result[key] = round(statistics.median(run[key] for run in runs), 2)
        else:
            result[key] = value
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
