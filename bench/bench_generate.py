"""Generator benchmark: customers per second and peak memory of ``generate_world``.

    .venv/bin/python -m bench.bench_generate [--customers 100000] [--runs 3] [--workers 1]

Each run is a fresh Python process (so peak RSS is that run's own) writing a world
into a temporary folder; the medians of the runs are printed as JSON. Peak RSS is
the generating process's ``ru_maxrss`` (with ``--workers`` > 1, also the largest
worker's). CPU seconds are reported beside wall seconds because on a shared machine
the wall clock also counts other jobs. ``--flat`` adds one run at a tenth of the
customers, to show that memory does not grow with the size of the world.
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
from pathlib import Path
from typing import Any


def one_run(customers: int, seed: int, workers: int) -> dict[str, Any]:
    """Generate one world in this process and report its summary."""
    from ingest.generator import generate_world

    with tempfile.TemporaryDirectory() as folder:
        cpu_before = _cpu_seconds()
        summary = generate_world(Path(folder) / "world", customers, seed, workers=workers)
        cpu = _cpu_seconds() - cpu_before
        size_mb = sum(f.stat().st_size for f in (Path(folder) / "world").rglob("*")) / 1e6
    return {
        "seconds": summary.seconds,
        "customers_per_s": summary.customers_per_second,
        "cpu_seconds": cpu,
        "customers_per_cpu_s": customers / cpu,
        "peak_rss_mb": summary.peak_rss_mb,
        "peak_worker_rss_mb": summary.peak_worker_rss_mb,
        "rows": sum(summary.rows_by_source.values()),
        "output_mb": size_mb,
    }


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (a shared machine's wall clock
    also counts other people's jobs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _in_fresh_process(customers: int, seed: int, workers: int) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.bench_generate", "--child",
        "--customers", str(customers), "--seed", str(seed), "--workers", str(workers),
    ]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def main() -> None:
    """Run the benchmark and print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--flat", action="store_true", help="also run at a tenth of the size")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.customers, args.seed, args.workers)))
        return
    runs = [_in_fresh_process(args.customers, args.seed, args.workers) for _ in range(args.runs)]
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "customers": args.customers,
        "workers": args.workers,
        "runs": args.runs,
        "rows": runs[0]["rows"],
        "output_mb": round(runs[0]["output_mb"], 1),
    }
    for key in (
        "seconds",
        "customers_per_s",
        "cpu_seconds",
        "customers_per_cpu_s",
        "peak_rss_mb",
        "peak_worker_rss_mb",
    ):
        result[key] = round(statistics.median(run[key] for run in runs), 1)
    if args.flat:
        small = _in_fresh_process(args.customers // 10, args.seed, args.workers)
        result["peak_rss_mb_at_a_tenth"] = round(small["peak_rss_mb"], 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
