"""Cell sentiment benchmark: the incident log and the report at 100k subscribers / 1M incidents.

    .venv/bin/python -m bench.bench_cell_sentiment [--subscribers 100000]
        [--incidents 1000000] [--cells 5000] [--answers 100000] [--runs 5]
        [--folder /tmp/jgbench-cells]

A synthetic network over 60 days: each subscriber has a home cell where most of their
incidents happen (uniform event times, one of the four metrics, a second cell on 40%
of incidents). The incidents go through ``engage.cells.record_incidents`` in batches
of 10,000 inside ``transaction`` (as the engine writes them); ``--answers`` engagements
get a feedback answer, a sample of 2,000 through ``FeedbackService.record`` (timed one
by one: no graph, no recorder) and the rest written to the same tables in bulk.

The report (``CellSentimentRunner.run``) is then timed ``--runs`` times for four
queries: the default (last 30 days), one metric, one day, and all 60 days. Peers in
the same run, over the same rows: the same report in DuckDB (in memory, from Arrow),
and in SQLite with the cell-first layout (a rowid table with an index on (cell, event
time)) instead of the event-time-first key. The writes are also timed into a table
clustered cell first (``PRIMARY KEY (cell_id, ts_ms, ...)``), the layout this replaced.
Medians are printed as JSON with the machine; the tops of the three are checked to agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa

from engage._db import open_engage_db, transaction
from engage.cells import (
    CellSentimentQuery,
    CellSentimentRunner,
    ensure_schema,
    record_incidents,
)
from engage.feedback import FeedbackService
from engage.feedback import ensure_schema as ensure_feedback_schema
from engage.model import METRICS, Engagement, Incident, dedupe_key, engagement_id

END: Final = datetime(2024, 6, 30, tzinfo=UTC)
SPAN_MS: Final = 60 * 86_400_000
BATCH: Final = 10_000
SAMPLE: Final = 2_000

QUERIES: Final[dict[str, dict[str, Any]]] = {
    "default_30_days": {},
    "one_metric": {"metric": "call_drop_rate"},
    "one_day": {"start": END - timedelta(days=2), "end": END - timedelta(days=1)},
    "all_60_days": {"start": END - timedelta(days=61), "end": END},
}

_DUCKDB_REPORT: Final = """
WITH incidents AS (
    SELECT cell_id, count(DISTINCT subscriber) AS subscribers, count(*) AS incidents
    FROM cell_incidents
    WHERE ts_ms >= $start AND ts_ms < $end AND ($metric IS NULL OR metric = $metric)
    GROUP BY cell_id
),
answered AS (
    SELECT DISTINCT cell_id, engagement_id FROM feedback_cells
    WHERE created_ms >= $start AND created_ms < $end
      AND ($metric IS NULL OR metric = $metric)
),
answers AS (
    SELECT a.cell_id, count(*) AS answers, avg(l.after - l.before) AS change
    FROM answered a JOIN sentiment_log l ON l.engagement_id = a.engagement_id
    GROUP BY a.cell_id
)
SELECT i.cell_id, subscribers, incidents, coalesce(answers, 0),
       round(subscribers * greatest(0.0, -coalesce(change, 0.0)), 9) AS priority
FROM incidents i LEFT JOIN answers a ON a.cell_id = i.cell_id
ORDER BY priority DESC, subscribers DESC, incidents DESC, i.cell_id
LIMIT 50
"""


def synthetic_incidents(subscribers: int, count: int, cells: int, seed: int = 7) -> list[Incident]:
    """Incidents mostly on each subscriber's home cell, over the 60 days before ``END``."""
    rng = np.random.default_rng(seed)
    home = rng.integers(0, cells, subscribers)
    who = rng.integers(0, subscribers, count)
    first = np.where(rng.random(count) < 0.8, home[who], rng.integers(0, cells, count))
    second = np.where(rng.random(count) < 0.4, rng.integers(0, cells, count), -1)
    # The engine records incidents in event-time order.
    ts_ms = np.sort(int(END.timestamp() * 1000) - rng.integers(1, SPAN_MS, count))
    metric = rng.integers(0, len(METRICS), count)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    found = []
    for s, c1, c2, ms, m in zip(
        who.tolist(), first.tolist(), second.tolist(), ts_ms.tolist(), metric.tolist(), strict=True
    ):
        name = METRICS[m]
        found.append(
            Incident(
                subscriber=f"+44770{s:07d}",
                rule=f"{name}_high",
                metric=name,
                value=0.3,
                threshold=0.16,
                window_seconds=3600,
                ts=epoch + timedelta(milliseconds=ms),
                cells=(f"C{c1:05d}",) if c2 < 0 else (f"C{c1:05d}", f"C{c2:05d}"),
            )
        )
    return found


def engagement_of(found: Incident) -> Engagement:
    """The engagement an incident raised (one each, for the benchmark)."""
    key = dedupe_key(found.subscriber, found.rule)
    return Engagement(
        engagement_id(key, found.ts), found.subscriber, found.rule, found.ts, key, (found,)
    )


class Lookup:
    """Engagements by id, for ``FeedbackService``."""

    def __init__(self, engagements: dict[str, Engagement]) -> None:
        self.engagements = engagements

    def engagement(self, engagement_id: str) -> Engagement | None:
        """The engagement or None."""
        return self.engagements.get(engagement_id)


def median_seconds(function: Callable[[], object], runs: int) -> float:
    """The median wall time of ``runs`` calls."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fill(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write the incidents and answers; returns what the writes cost."""
    connection = open_engage_db(folder / "engage.db")
    ensure_schema(connection)
    ensure_feedback_schema(connection)
    started = time.perf_counter()
    found = synthetic_incidents(args.subscribers, args.incidents, args.cells)
    made = time.perf_counter() - started
    engagements = [engagement_of(incident) for incident in found]
    ids = [e.engagement_id for e in engagements]
    write_seconds, rows = 0.0, 0
    for at in range(0, len(found), BATCH):
        began = time.perf_counter()
        with transaction(connection):
            rows += record_incidents(connection, found[at : at + BATCH], ids[at : at + BATCH])
        write_seconds += time.perf_counter() - began

    cell_first = open_engage_db(folder / "cell_first.db")
    cell_first.execute(
        "CREATE TABLE cell_incidents (ts_ms INTEGER, subscriber TEXT, rule TEXT, cell_id TEXT,"
        " metric TEXT, value REAL, engagement_id TEXT,"
        " PRIMARY KEY (cell_id, ts_ms, subscriber, rule)) WITHOUT ROWID"
    )
    cell_first_seconds = 0.0
    for at in range(0, len(found), BATCH):
        began = time.perf_counter()
        with transaction(cell_first):
            record_incidents(cell_first, found[at : at + BATCH], ids[at : at + BATCH])
        cell_first_seconds += time.perf_counter() - began
    cell_first.close()

    rng = np.random.default_rng(11)
    chosen = rng.choice(len(engagements), size=min(args.answers, len(engagements)), replace=False)
    sample, bulk = chosen[:SAMPLE].tolist(), chosen[SAMPLE:].tolist()
    scores = rng.integers(1, 6, len(bulk)).tolist()
    created = int(END.timestamp() * 1000)
    with transaction(connection):
        connection.executemany(
            "INSERT OR IGNORE INTO feedback_cells VALUES (?, ?, ?, ?)",
            (
                (_ms(engagements[i].created_at), cell, ids[i], found[i].metric)
                for i in bulk
                for cell in found[i].cells
            ),
        )
        connection.executemany(
            "INSERT OR IGNORE INTO sentiment_log VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    ids[i],
                    found[i].subscriber,
                    score,
                    0.0,
                    0.3 * (score - 3) / 2,
                    created,
                    _ms(engagements[i].created_at),
                )
                for i, score in zip(bulk, scores, strict=True)
            ),
        )
    service = FeedbackService(connection, Lookup({ids[i]: engagements[i] for i in sample}))
    latencies = []
    for i, score in zip(sample, rng.integers(1, 6, len(sample)).tolist(), strict=True):
        began = time.perf_counter()
        service.record(ids[i], score, "")
        latencies.append(time.perf_counter() - began)
    connection.close()
    return {
        "incidents": len(found),
        "incident_rows": rows,
        "generate_seconds": round(made, 2),
        "record_incidents_seconds": round(write_seconds, 2),
        "record_incidents_per_second": round(len(found) / write_seconds),
        "cell_first_key_incidents_per_second": round(len(found) / cell_first_seconds),
        "answers": len(chosen),
        "feedback_record_ms_p50": round(statistics.median(latencies) * 1000, 3),
        "feedback_record_ms_p99": round(float(np.percentile(latencies, 99)) * 1000, 3),
        "database_mb": round((folder / "engage.db").stat().st_size / 2**20, 1),
    }


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def rowid_copy(folder: Path) -> Path:
    """The same data in a rowid table indexed on (cell, event time)."""
    path = folder / "rowid.db"
    path.unlink(missing_ok=True)
    connection = open_engage_db(path)
    connection.execute("ATTACH DATABASE ? AS source", (str(folder / "engage.db"),))
    connection.executescript(
        """
        CREATE TABLE cell_incidents AS SELECT * FROM source.cell_incidents;
        CREATE INDEX cell_incidents_by_cell ON cell_incidents (cell_id, ts_ms);
        CREATE TABLE feedback_cells AS SELECT * FROM source.feedback_cells;
        CREATE INDEX feedback_cells_by_cell ON feedback_cells (cell_id, created_ms);
        CREATE TABLE sentiment_log AS SELECT * FROM source.sentiment_log;
        CREATE UNIQUE INDEX sentiment_log_id ON sentiment_log (engagement_id);
        """
    )
    connection.execute("DETACH DATABASE source")
    connection.close()
    return path


def duckdb_copy(folder: Path) -> duckdb.DuckDBPyConnection:
    """The same tables in an in-memory DuckDB, loaded through Arrow."""
    source = open_engage_db(folder / "engage.db")
    database = duckdb.connect()
    for table in ("cell_incidents", "feedback_cells", "sentiment_log"):
        cursor = source.execute(f"SELECT * FROM {table}")
        names = [column[0] for column in cursor.description]
        columns = list(zip(*cursor.fetchall(), strict=True))
        database.register(
            f"{table}_arrow", pa.table(dict(zip(names, map(list, columns), strict=True)))
        )
        database.execute(f"CREATE TABLE {table} AS SELECT * FROM {table}_arrow")
    source.close()
    return database


def _timed(function: Callable[[], object], runs: int) -> float:
    return round(median_seconds(function, runs), 4)


def _fetch_all(database: duckdb.DuckDBPyConnection, sql: str, bound: dict[str, Any]) -> object:
    return database.execute(sql, bound).fetchall()


def measure(folder: Path, runs: int) -> dict[str, Any]:
    """Median report times per query, on the clustered layout and the peers."""
    results: dict[str, Any] = {}
    clustered = open_engage_db(folder / "engage.db")
    runner = CellSentimentRunner(clustered)
    rowid = open_engage_db(rowid_copy(folder))
    rowid_runner = CellSentimentRunner(rowid)
    database = duckdb_copy(folder)
    for name, fields in QUERIES.items():
        query = CellSentimentQuery(**fields)
        start, end = runner.period(query)
        report = runner.run(query)
        bound = {
            "start": _ms(start),
            "end": _ms(end),
            "metric": query.metric,
        }
        peer = database.execute(_DUCKDB_REPORT, bound).fetchall()
        top = [(c.cell_id, c.subscribers, c.incidents, c.answers) for c in report.cells[:10]]
        assert top == [tuple(row[:4]) for row in peer[:10]], name
        assert top == [
            (c.cell_id, c.subscribers, c.incidents, c.answers)
            for c in rowid_runner.run(query).cells[:10]
        ], name
        results[name] = {
            "cells": report.cells_total,
            "sqlite_seconds": _timed(partial(runner.run, query), runs),
            "sqlite_rowid_cell_index_seconds": _timed(partial(rowid_runner.run, query), runs),
            "duckdb_in_memory_seconds": _timed(
                partial(_fetch_all, database, _DUCKDB_REPORT, bound), runs
            ),
        }
    clustered.close()
    rowid.close()
    database.close()
    return results


def main() -> None:
    """Fill, measure, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--cells", type=int, default=5_000)
    parser.add_argument("--answers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/jgbench-cells"))
    args = parser.parse_args()
    shutil.rmtree(args.folder, ignore_errors=True)
    args.folder.mkdir(parents=True)
    written = fill(args.folder, args)
    reports = measure(args.folder, args.runs)
    print(
        json.dumps(
            {
                "machine": {
                    "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "parameters": vars(args) | {"folder": str(args.folder)},
                "writes": written,
                "reports": reports,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
