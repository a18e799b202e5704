"""Reader benchmark: every file of a generated world read, mapped, validated and normalised.

    .venv/bin/python -m bench.bench_readers [--customers 100000] [--seed 7] [--runs 3]
        [--cache data/bench] [--chunk-rows 100000]

The world (``generate_world``; 5.37M records, 357 MB at 100,000 customers) is written
once under ``--cache`` and reused by later runs while its manifest matches. Each run is
a fresh Python process (so peak RSS is that run's own) reading all eleven files with
the built-in mappings through ``ingest.readers.read_file``, in one process: the frames
are made and dropped, nothing is resolved or written. The medians of the runs are
printed as JSON: seconds, rows per second and CPU seconds per file and in all, peak
RSS, and rows quarantined (none are expected). CPU seconds are given beside wall
seconds because on a shared machine the wall clock also counts other jobs.
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


def world_folder(cache: Path, customers: int, seed: int) -> Path:
    """The cached world of ``customers`` and ``seed``, generated when missing."""
    from ingest.generator import GENERATOR_VERSION, generate_world

    folder = cache / f"world-{customers}-{seed}"
    manifest = folder / "manifest.json"
    if manifest.exists():
        written = json.loads(manifest.read_text())
        if (written.get("customers"), written.get("seed")) == (customers, seed) and written.get(
            "generator_version"
        ) == GENERATOR_VERSION:
            return folder
    print(f"generating {customers:,} customers (seed {seed}) into {folder}", file=sys.stderr)
    generate_world(folder, customers, seed)
    return folder


def one_run(world: Path, chunk_rows: int) -> dict[str, Any]:
    """Read every file of ``world`` in this process and time each."""
    from ingest.generator import SOURCE_FILES
    from ingest.mapping import builtin_mappings
    from ingest.readers import read_file

    mappings = builtin_mappings()
    files: dict[str, dict[str, float]] = {}
    for source_file in SOURCE_FILES:
        rows = quarantined = 0
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        for batch in read_file(
            world / source_file.path,
            mappings[source_file.source],
            origin=source_file.path,
            chunk_rows=chunk_rows,
        ):
            rows += batch.rows_read
            quarantined += len(batch.quarantined)
        files[source_file.path] = {
            "rows": rows,
            "quarantined": quarantined,
            "seconds": time.perf_counter() - wall_before,
            "cpu_seconds": time.process_time() - cpu_before,
        }
    return {
        "files": files,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _in_fresh_process(world: Path, chunk_rows: int) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.bench_readers", "--child",
        "--world", str(world), "--chunk-rows", str(chunk_rows),
    ]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def _median(runs: list[dict[str, Any]], path: str, key: str) -> float:
    return float(statistics.median(run["files"][path][key] for run in runs))


def main() -> None:
    """Run the benchmark and print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=Path("data/bench"))
    parser.add_argument("--world", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.world, args.chunk_rows)))
        return
    world = world_folder(args.cache, args.customers, args.seed)
    runs = [_in_fresh_process(world, args.chunk_rows) for _ in range(args.runs)]
    files: dict[str, dict[str, float]] = {}
    for path in runs[0]["files"]:
        rows = runs[0]["files"][path]["rows"]
        seconds = _median(runs, path, "seconds")
        files[path] = {
            "rows": rows,
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            "cpu_seconds": round(_median(runs, path, "cpu_seconds"), 2),
            "quarantined": runs[0]["files"][path]["quarantined"],
        }
    totals = [sum(file["seconds"] for file in run["files"].values()) for run in runs]
    cpu = [sum(file["cpu_seconds"] for file in run["files"].values()) for run in runs]
    rows = sum(file["rows"] for file in files.values())
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "customers": args.customers,
        "seed": args.seed,
        "runs": args.runs,
        "chunk_rows": args.chunk_rows,
        "rows": rows,
        "seconds": round(statistics.median(totals), 2),
        "rows_per_s": round(rows / statistics.median(totals)),
        "cpu_seconds": round(statistics.median(cpu), 2),
        "peak_rss_mb": round(statistics.median(run["peak_rss_mb"] for run in runs), 1),
        "quarantined": sum(file["quarantined"] for file in files.values()),
        "files": files,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
