"""Frequency analyzer benchmark: 10M touchpoints of 1M customers, against DuckDB and pm4py.

    .venv/bin/python -m bench.bench_frequency [--customers 1000000] [--runs 3]
        [--cache /tmp/jgbench] [--no-pm4py] [--no-drop-caches]

The lake is ``bench.synthetic_lake`` (about 10 touchpoints a customer, written once
under ``--cache``). Measured, each the median of ``--runs``:

- ``index_build_s``: sorting the lake into the timeline index (``TimelineIndex``),
  what the first query after an ingest pays once.
- ``first_query``: a fresh Python process opens the index on disk and answers one
  query (5 steps from each customer's first ``login``). The OS page cache is dropped
  before each run where the process may (root), so the index is read from disk.
  ``query_s`` is the analyzer alone; ``imports_s`` the imports; ``process_s`` the
  whole process as the parent sees it.
- ``warm``: query shapes on timelines already in memory.
- Peers, in the same run, same answer checked: a DuckDB window query over the lake's
  Parquet files and over the same columns already in memory; pm4py's variant count
  (``pm4py.get_variants``) on the same touchpoints as a pandas frame already in
  memory, against ``VariantQuery`` on timelines in memory. pm4py is AGPL: it runs
  only in a throwaway virtual environment this script creates under ``--cache``;
  nothing of the product imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIRST_QUERY = textwrap.dedent(
    """
    import json, time
    started = time.perf_counter()
    from pathlib import Path
    from ingest.lake import Lake
    from journeys.frequency import FrequencyAnalyzer, FrequencyQuery
    from journeys.timelines import TimelineIndex
    imported = time.perf_counter()
    index = TimelineIndex(Lake(Path({lake!r})), dict)
    result = FrequencyAnalyzer(index.load).run(FrequencyQuery(anchor="login", max_steps=5))
    done = time.perf_counter()
    print(json.dumps({{"imports_s": imported - started, "query_s": done - imported,
                      "journeys": result.total_journeys}}))
    """
)

DUCKDB_QUERY = """
WITH ordered AS (
    SELECT customer, event_type,
           row_number() OVER (PARTITION BY customer ORDER BY ts, event_id) AS position
    FROM touchpoints
), anchors AS (
    SELECT customer, min(position) AS position FROM ordered
    WHERE event_type = 'login' GROUP BY customer
), journeys AS (
    SELECT o.customer, list(o.event_type ORDER BY o.position) AS steps
    FROM ordered o JOIN anchors a
      ON o.customer = a.customer AND o.position BETWEEN a.position AND a.position + 4
    GROUP BY o.customer
)
SELECT steps, count(*) AS journeys FROM journeys GROUP BY steps
ORDER BY journeys DESC, steps LIMIT 10
"""

PM4PY_SCRIPT = textwrap.dedent(
    """
    import json, statistics, sys, time
    import pandas as pd
    import pm4py
    frame = pd.read_parquet(sys.argv[1], columns=["customer", "event_id", "event_type", "ts"])
    frame = frame.sort_values(["customer", "ts", "event_id"], kind="stable")
    frame = frame.rename(columns={"customer": "case:concept:name",
                                  "event_type": "concept:name", "ts": "time:timestamp"})
    seconds = []
    for _ in range(int(sys.argv[2])):
        started = time.perf_counter()
        variants = pm4py.get_variants(frame)
        seconds.append(time.perf_counter() - started)
    top = sorted(variants.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    print(json.dumps({"seconds": statistics.median(seconds), "runs": seconds,
                      "variants": len(variants), "version": pm4py.__version__,
                      "top": [[list(k), v] for k, v in top]}))
    """
)


def median_seconds(action: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """The median wall seconds of ``runs`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def drop_caches() -> bool:
    """Ask Linux to drop its page cache (root only); whether it did."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def first_queries(lake: Path, runs: int, cold: bool) -> dict[str, Any]:
    script = FIRST_QUERY.format(lake=str(lake))
    rows, dropped = [], False
    for _ in range(runs):
        dropped = drop_caches() if cold else False
        started = time.perf_counter()
        output = subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout
        row = json.loads(output)
        row["process_s"] = time.perf_counter() - started
        rows.append(row)
    return {
        key: statistics.median(r[key] for r in rows)
        for key in ("imports_s", "query_s", "process_s")
    } | {"page_cache_dropped": dropped, "runs": rows}


def warm_queries(analyzer: Any, runs: int) -> dict[str, Any]:
    from journeys.frequency import FrequencyQuery, VariantQuery

    shapes: dict[str, Any] = {
        "login start first 5": FrequencyQuery(anchor="login", max_steps=5),
        "bill_shock start first 5": FrequencyQuery(anchor="bill_shock", max_steps=5),
        "port_out end first 5": FrequencyQuery(anchor="port_out", direction="end", max_steps=5),
        "login start every 20": FrequencyQuery(anchor="login", max_steps=20, occurrence="every"),
        "bill_shock between port_out 10": FrequencyQuery(
            anchor="bill_shock", between="port_out", max_steps=10
        ),
        "login filtered, collapsed 5": FrequencyQuery(
            anchor="login",
            channels=["app", "web", "care"],
            exclude=["page_view"],
            collapse_repeats=True,
        ),
        "login sessions of 1 day 5": FrequencyQuery(anchor="login", session_gap=86_400),
        "variants (whole timelines)": VariantQuery(),
    }
    results = {}
    for name, query in shapes.items():
        seconds, result = median_seconds(lambda q=query: analyzer.run(q), runs)
        results[name] = {"seconds": seconds, "journeys": result.total_journeys}
    return results


def duckdb_peer(lake: Path, timelines_top: list[Any], runs: int) -> dict[str, Any]:
    import duckdb

    from ingest.lake import Lake

    connection = duckdb.connect()
    relation = Lake(lake).relation(connection)
    assert relation is not None
    connection.register("touchpoints", relation)
    on_files, rows = median_seconds(lambda: connection.sql(DUCKDB_QUERY).fetchall(), runs)
    table = relation.select("customer, event_id, event_type, ts").to_arrow_table()
    connection.register("touchpoints", table)
    in_memory, rows_memory = median_seconds(lambda: connection.sql(DUCKDB_QUERY).fetchall(), runs)
    expected = [(j.steps, j.count) for j in timelines_top]
    same = [(list(s), n) for s, n in rows] == expected == [(list(s), n) for s, n in rows_memory]
    return {"parquet_s": on_files, "in_memory_s": in_memory, "same_answer": same}


def pm4py_peer(cache: Path, lake: Path, runs: int) -> dict[str, Any]:
    """Variant counts by pm4py, in a virtual environment of its own (AGPL: never ours)."""
    venv = cache / "pm4py-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "pm4py", "pyarrow"],
        check=True,
        capture_output=True,
    )
    data = cache / f"pm4py-input-{lake.name}.parquet"
    if not data.exists():
        import duckdb

        from ingest.lake import Lake

        connection = duckdb.connect()
        relation = Lake(lake).relation(connection)
        assert relation is not None
        relation.select("customer, event_id, event_type, ts").write_parquet(str(data))
    output = subprocess.run(
        [str(python), "-c", PM4PY_SCRIPT, str(data), str(runs)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output))


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/jgbench"))
    parser.add_argument("--no-pm4py", action="store_true")
    parser.add_argument("--no-drop-caches", action="store_true")
    args = parser.parse_args()

    import shutil

    from bench.synthetic_lake import write_lake
    from journeys.frequency import FrequencyAnalyzer, FrequencyQuery, VariantQuery
    from journeys.timelines import TimelineIndex

    root = args.cache / f"lake-{args.customers}"
    lake = write_lake(root, args.customers)
    index = TimelineIndex(lake, dict)

    def rebuild() -> Any:
        shutil.rmtree(index.folder, ignore_errors=True)
        index._loaded = None
        return index.load()

    build_s, timelines = median_seconds(rebuild, args.runs)
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "customers": timelines.customer_count,
        "touchpoints": len(timelines),
        "index_build_s": build_s,
        "index_mb": sum(p.stat().st_size for p in index.folder.iterdir()) / 1e6,
    }
    report["first_query"] = first_queries(root, args.runs, not args.no_drop_caches)
    analyzer = FrequencyAnalyzer(index.load)
    report["warm"] = warm_queries(analyzer, max(args.runs, 5))
    top = analyzer.run(FrequencyQuery(anchor="login", max_steps=5)).journeys
    report["duckdb"] = duckdb_peer(root, top, args.runs)
    report["duckdb"]["ratio_parquet"] = (
        report["duckdb"]["parquet_s"] / report["first_query"]["query_s"]
    )
    if not args.no_pm4py:
        ours_s, ours = median_seconds(lambda: analyzer.run(VariantQuery()), args.runs)
        peer = pm4py_peer(args.cache, root, args.runs)
        report["pm4py"] = peer | {
            "ours_s": ours_s,
            "ours_variants": ours.distinct_journeys,
            "same_count": ours.distinct_journeys == peer["variants"],
            "ratio": peer["seconds"] / ours_s,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
