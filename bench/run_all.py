"""Every registered benchmark in turn, each in a process of its own (``make bench``).

    .venv/bin/python -m bench.run_all [--only NAME ...] [--list]

A benchmark is registered by adding its module name and arguments to ``BENCHMARKS``;
each prints its own JSON, under a header naming it. Some take many minutes at their
defaults (the sizes docs/benchmarks.md reports); ``--only`` picks some.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Final

BENCHMARKS: Final[dict[str, list[str]]] = {
    "bench_generate": [],
    "bench_readers": [],
    "bench_store": [],
    "bench_embedded_bulk": [],
    "bench_ingest": [],
    "bench_splink": [],
    "bench_gremlin": [],
    "bench_frequency": [],
    "bench_similarity": [],
    "bench_kpis": [],
    "bench_milestones": [],
    "bench_cell_sentiment": [],
    "bench_engage": [],
    "bench_incidents": [],
    "bench_models": ["--data-dir", "var"],
    "bench_service": ["--customers", "1000000"],
}
"""Module (under ``bench``) -> its arguments."""


def main() -> None:
    """Run the chosen benchmarks; exit non-zero if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME")
    parser.add_argument("--list", action="store_true", help="print the registered names")
    args = parser.parse_args()
    if args.list:
        print("\n".join(BENCHMARKS))
        return
    failed = []
    for name in args.only or list(BENCHMARKS):
        print(f"== {name}", flush=True)
        command = [sys.executable, "-m", f"bench.{name}", *BENCHMARKS[name]]
        if subprocess.run(command, check=False).returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
