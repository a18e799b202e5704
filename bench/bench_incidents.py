"""Incident evaluation benchmark: probe events per second through ``ProfileEvaluator``.

    .venv/bin/python -m bench.bench_incidents [--events 1000000] [--subscribers 100000]
        [--cells 3000] [--hours 24] [--seed 7] [--runs 5] [--batch 1000000 100000 10000 1000]
        [--sample 20000] [--world data/bench/world-100000-7]

A seeded synthetic probe stream (``synthetic_probes``): ``--events`` events of
``--subscribers`` subscribers over ``--hours`` hours in time order, each subscriber
mostly on a home cell, 3% of cells bad, call and data metrics null where the event
had no calls or no data session, weights 1-5. The shipped decision table (four
rules, 24-hour windows) evaluates it in batches of each ``--batch`` size, a fresh
evaluator per run, in this one process (one core: NumPy and Arrow here run the
evaluator's work on the calling thread). The medians of ``--runs`` runs are printed
as JSON: seconds, events per second (wall and CPU), incidents.

Peers measured in the same run, on the same events and table:

* ``python_per_event``: a plain-Python evaluator a stream processor would run per
  message (per subscriber and rule a deque of the window's events and running
  sums), on the first ``--sample`` events;
* ``duckdb_window``: DuckDB computing every event's window sums with a
  ``RANGE`` window per subscriber and the crossings with ``lag`` (one SQL query
  over the whole stream: the batch-analytics way, no state between batches);
* ``pandas_rolling``: pandas ``groupby().rolling('24h')`` sums, on the sample.

Also the stream with the state saved after every batch (the engine's way, into the
engagement database) and the load of what was saved; and, when ``--world`` holds a
generated world, ``engage.probes`` reading its ``network/cell_kpis.parquet`` (rows
per second, quarantined rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from engage._db import open_engage_db, transaction
from engage.model import METRICS, PROBE_SCHEMA
from engage.profiles import ProfileEvaluator, ensure_schema
from engage.rules import DecisionTable, default_decision_table

_START = datetime(2024, 5, 1, tzinfo=UTC)
_BASE_SHARE = {
    "call_drop_rate": 0.02,
    "call_quality_impairment": 0.04,
    "low_bitrate_share": 0.03,
    "video_stalling_share": 0.03,
}
_BAD_SHARE = 0.3


def synthetic_probes(
    events: int, subscribers: int, cells: int, hours: float, seed: int
) -> pa.Table:
    """A seeded probe stream in time order (``PROBE_SCHEMA``)."""
    rng = np.random.default_rng(seed)
    start_ms = int(_START.timestamp() * 1000)
    ts = np.sort(start_ms + rng.integers(0, int(hours * 3_600_000), events))
    who = rng.integers(0, subscribers, events)
    home = rng.integers(0, cells, subscribers)
    roaming = rng.random(events) < 0.2
    cell = np.where(roaming, rng.integers(0, cells, events), home[who])
    bad = rng.random(cells) < 0.03
    voice = rng.random(events) < 0.7
    data = ~voice | (rng.random(events) < 0.5)
    columns: dict[str, Any] = {
        "event_id": pa.array(np.char.add("probe-", np.arange(events).astype(str))),
        "subscriber": pa.array(np.char.add("+4477009", np.char.zfill(who.astype(str), 5))),
        "cell_id": pa.array(np.char.add("234-10-", cell.astype(str))),
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "weight": rng.integers(1, 6, events).astype(np.float64),
    }
    for metric, base in _BASE_SHARE.items():
        mean = np.where(bad[cell], _BAD_SHARE, base)
        values = np.clip(rng.beta(2.0, 2.0 / mean - 2.0), 0.0, 1.0).round(4)
        measured = voice if metric.startswith("call") else data
        columns[metric] = pa.array(values, mask=~measured)
    return pa.table(columns, schema=PROBE_SCHEMA)


def evaluator_run(table: pa.Table, rules: DecisionTable, batch: int) -> dict[str, float]:
    """Every batch through a fresh evaluator: seconds (wall and CPU) and incidents."""
    evaluator = ProfileEvaluator(rules)
    incidents = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for offset in range(0, table.num_rows, batch):
        incidents += evaluator.evaluate_table(table.slice(offset, batch)).num_rows
    return {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "incidents": incidents,
        "held_events": evaluator.counters.held_events,
    }


def save_run(table: pa.Table, rules: DecisionTable, batch: int) -> dict[str, float]:
    """The stream with a save into a fresh engagement database after every batch (as
    the engine does), then a load of the saved state into a fresh evaluator."""
    evaluator = ProfileEvaluator(rules)
    with tempfile.TemporaryDirectory() as folder:
        connection = open_engage_db(Path(folder) / "engage.db")
        ensure_schema(connection)
        evaluating = saving = 0.0
        for offset in range(0, table.num_rows, batch):
            cpu = time.process_time()
            evaluator.evaluate_table(table.slice(offset, batch))
            evaluating += time.process_time() - cpu
            cpu = time.process_time()
            with transaction(connection):
                evaluator.save(connection)
            saving += time.process_time() - cpu
        cpu = time.process_time()
        ProfileEvaluator(rules).load(connection)
        loading = time.process_time() - cpu
        size = (Path(folder) / "engage.db").stat().st_size + sum(
            path.stat().st_size for path in Path(folder).glob("engage.db-*")
        )
        connection.close()
    return {
        "batch": batch,
        "evaluate_cpu_seconds": round(evaluating, 3),
        "save_cpu_seconds": round(saving, 3),
        "events_per_cpu_s_with_saves": round(table.num_rows / (evaluating + saving)),
        "load_cpu_seconds": round(loading, 3),
        "database_mb": round(size / 2**20, 1),
    }


# -- peers ---------------------------------------------------------------------------


class PerEventPython:
    """Per message, as a Python stream processor would: for each rule a deque of the
    subscriber's window and running sums; fires on a crossing (no late events)."""

    def __init__(self, rules: DecisionTable) -> None:
        self.rules = [
            (rule.name, rule.metric, rule.threshold, rule.window_seconds * 1000, rule.min_weight)
            for rule in rules.enabled_rules
        ]
        self.windows: dict[tuple[str, str], tuple[deque[tuple[int, float, float]], list[float]]]
        self.windows = {}
        self.active: dict[tuple[str, str], bool] = {}

    def process(self, event: dict[str, Any]) -> int:
        """Apply one event; the number of incidents it raised."""
        fired = 0
        ts = event["ts"]
        for name, metric, threshold, window, min_weight in self.rules:
            key = (event["subscriber"], name)
            events, sums = self.windows.setdefault(key, (deque(), [0.0, 0.0]))
            while events and events[0][0] <= ts - window:
                _, weight, weighted = events.popleft()
                sums[0] -= weight
                sums[1] -= weighted
            value = event[metric]
            if value is not None:
                weight = event["weight"]
                events.append((ts, weight, weight * value))
                sums[0] += weight
                sums[1] += weight * value
            active = sums[0] >= min_weight and sums[1] > threshold * sums[0]
            if active and not self.active.get(key, False):
                fired += 1
            self.active[key] = active
        return fired


def python_per_event(rows: list[dict[str, Any]], rules: DecisionTable) -> dict[str, float]:
    """The per-message evaluator over ``rows``."""
    evaluator = PerEventPython(rules)
    cpu, wall = time.process_time(), time.perf_counter()
    incidents = sum(evaluator.process(row) for row in rows)
    return {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "incidents": incidents,
    }


def _plain_rows(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.drop_columns(["ts"]).to_pylist()
    millis = table.column("ts").cast(pa.int64()).to_pylist()
    for row, ts in zip(rows, millis, strict=True):
        row["ts"] = ts
    return rows


def duckdb_window(table: pa.Table, rules: DecisionTable) -> dict[str, float] | None:
    """Window sums and crossings for every event in one DuckDB query."""
    try:
        import duckdb
    except ImportError:
        return None
    parts = []
    for index, rule in enumerate(rules.enabled_rules):
        seconds = rule.window_seconds
        metric = rule.metric
        parts.append(
            f"""SELECT subscriber, ts, event_id, '{rule.name}' AS rule,
                sum(CASE WHEN {metric} IS NULL THEN 0 ELSE weight END) OVER w{index}
                    AS weight_sum,
                sum(weight * {metric}) OVER w{index} AS weighted_sum
            FROM probes
            WINDOW w{index} AS (PARTITION BY subscriber ORDER BY ts
                RANGE BETWEEN INTERVAL '{seconds} seconds' PRECEDING AND CURRENT ROW)"""
        )
    thresholds = " ".join(
        f"WHEN '{rule.name}' THEN weight_sum >= {rule.min_weight} "
        f"AND weighted_sum > {rule.threshold} * weight_sum"
        for rule in rules.enabled_rules
    )
    query = f"""
        WITH sums AS ({" UNION ALL ".join(parts)}),
        flagged AS (
            SELECT *, CASE rule {thresholds} END AS active FROM sums
        ),
        crossed AS (
            SELECT active AND NOT coalesce(
                lag(active) OVER (PARTITION BY subscriber, rule ORDER BY ts, event_id), false
            ) AS fires
            FROM flagged
        )
        SELECT count(*) FILTER (WHERE fires) FROM crossed"""
    connection = duckdb.connect()
    connection.execute("SET threads TO 1")
    connection.register("probes", table)
    cpu, wall = time.process_time(), time.perf_counter()
    (incidents,) = connection.execute(query).fetchone() or (0,)
    result = {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "incidents": int(incidents),
    }
    connection.close()
    return result


def pandas_rolling(table: pa.Table, rules: DecisionTable) -> dict[str, float]:
    """Window sums per event with pandas ``groupby().rolling()`` and crossings by shift."""
    frame = table.to_pandas()
    cpu, wall = time.process_time(), time.perf_counter()
    frame = frame.sort_values(["subscriber", "ts", "event_id"]).reset_index(drop=True)
    incidents = 0
    for rule in rules.enabled_rules:
        measured = frame[rule.metric].notna()
        sums = frame.assign(
            weight_sum=frame["weight"].where(measured, 0.0),
            weighted_sum=(frame["weight"] * frame[rule.metric]).fillna(0.0),
        )
        rolled = (
            sums.groupby("subscriber")
            .rolling(f"{rule.window_seconds}s", on="ts")[["weight_sum", "weighted_sum"]]
            .sum()
            .reset_index(drop=True)
        )
        active = (rolled["weight_sum"] >= rule.min_weight) & (
            rolled["weighted_sum"] > rule.threshold * rolled["weight_sum"]
        )
        before = active.groupby(frame["subscriber"]).shift(1, fill_value=False)
        incidents += int((active & ~before.astype(bool)).sum())
    return {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "incidents": incidents,
    }


def reader_run(world: Path) -> dict[str, float] | None:
    """``engage.probes`` reading a generated world's probe KPIs."""
    path = world / "network" / "cell_kpis.parquet"
    if not path.exists():
        return None
    from engage.probes import known_cells_from_file, read_probe_file

    known = known_cells_from_file(world / "truth" / "cells.parquet")
    rows = quarantined = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in read_probe_file(path, known_cells=known):
        rows += batch.rows_read
        quarantined += len(batch.quarantined)
    seconds = time.perf_counter() - wall
    return {
        "rows": rows,
        "quarantined": quarantined,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "rows_per_s": round(rows / seconds),
    }


def _medians(runs: list[dict[str, float]], events: int) -> dict[str, float]:
    seconds = statistics.median(run["seconds"] for run in runs)
    cpu = statistics.median(run["cpu_seconds"] for run in runs)
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "events_per_s": round(events / seconds),
        "events_per_cpu_s": round(events / cpu),
        "incidents": int(runs[0]["incidents"]),
    }


def _timed(runs: int, events: int, work: Callable[[], dict[str, float] | None]) -> Any:
    measured = [work() for _ in range(runs)]
    if measured[0] is None:
        return None
    return _medians([run for run in measured if run is not None], events)


def main() -> None:
    """Run the benchmark and print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--cells", type=int, default=3_000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, nargs="+", default=[1_000_000, 100_000, 10_000, 1_000])
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--peer-runs", type=int, default=3)
    parser.add_argument("--world", type=Path, default=Path("data/bench/world-100000-7"))
    args = parser.parse_args()
    # One core: Arrow's own thread pool would otherwise take the others.
    pa.set_cpu_count(1)
    rules = default_decision_table()
    table = synthetic_probes(args.events, args.subscribers, args.cells, args.hours, args.seed)
    sample = table.slice(0, args.sample)

    def batches_of(size: int) -> Callable[[], dict[str, float]]:
        return lambda: evaluator_run(table, rules, size)

    evaluator = {
        str(batch): _timed(args.runs, args.events, batches_of(batch)) for batch in args.batch
    }
    sample_rows = _plain_rows(sample)
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "events": args.events,
        "subscribers": args.subscribers,
        "cells": args.cells,
        "hours": args.hours,
        "seed": args.seed,
        "runs": args.runs,
        "rules": [rule.name for rule in rules.enabled_rules],
        "evaluator_by_batch": evaluator,
        "evaluator_sample_one_batch": _timed(
            args.runs, args.sample, lambda: evaluator_run(sample, rules, args.sample)
        ),
        "with_saves_by_batch": [save_run(table, rules, batch) for batch in args.batch],
        "python_per_event_sample": _timed(
            args.peer_runs, args.sample, lambda: python_per_event(sample_rows, rules)
        ),
        "pandas_rolling_sample": _timed(
            args.peer_runs, args.sample, lambda: pandas_rolling(sample, rules)
        ),
        "duckdb_window_all": _timed(
            args.peer_runs, args.events, lambda: duckdb_window(table, rules)
        ),
        "reader_cell_kpis": reader_run(args.world),
        "metrics": list(METRICS),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
