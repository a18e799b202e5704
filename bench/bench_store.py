"""EmbeddedStore benchmark: bulk upserts at 1M elements, re-upserts, and timelines at 10M.

    .venv/bin/python -m bench.bench_store [--elements 1000000] [--runs 3]
        [--timeline-elements 10000000] [--paths records,tables]

Vertices are a telco mix (10% Customer, 10% Identifier, 80% Touchpoint with four
properties); edges are PERFORMED and HAS_IDENTIFIER between them. Each run writes
into a fresh file in batches of ``--batch`` through the public API (validation
included): as records (``upsert_vertices``) and, in a second fresh file, as Arrow
tables of the same batches (``upsert_vertex_table``; keys prefixed ``table_``).
The timeline part builds one store of ``--timeline-elements`` elements in which one
customer has 1,000 touchpoints and times ``timeline()`` on it. Results are printed
as JSON and recorded by hand in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from graph import EmbeddedStore
from graph.store import EdgeRecord, VertexRecord

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVENT_TYPES = ("app_login", "bill_issued", "care_call", "data_session", "offer_viewed")


def vertex_batches(total: int, batch: int) -> Iterator[tuple[str, list[VertexRecord]]]:
    """Customers, identifiers and touchpoints, ``batch`` at a time, ``total`` in all."""
    customers = total // 10
    for label, count, make in (
        ("Customer", customers, lambda i: (f"cust:C{i:08d}", {"segment": "consumer"})),
        (
            "Identifier",
            customers,
            lambda i: (f"id:msisdn:+4477{i:08d}", {"kind": "msisdn", "value": f"+4477{i:08d}"}),
        ),
        (
            "Touchpoint",
            total - 2 * customers,
            lambda i: (
                f"tp:E{i:09d}",
                {
                    "event_type": EVENT_TYPES[i % 5],
                    "channel": "app",
                    "ts": T0 + timedelta(seconds=i),
                    "source": "bench",
                },
            ),
        ),
    ):
        for start in range(0, count, batch):
            yield label, [make(i) for i in range(start, min(start + batch, count))]


def edge_batches(total: int, batch: int) -> Iterator[tuple[str, list[EdgeRecord]]]:
    """PERFORMED (customer -> touchpoint) and HAS_IDENTIFIER edges over the vertices above."""
    customers = total // 10
    touchpoints = total - 2 * customers
    for start in range(0, touchpoints, batch):
        yield (
            "PERFORMED",
            [
                (f"cust:C{i % customers:08d}", f"tp:E{i:09d}", {})
                for i in range(start, min(start + batch, touchpoints))
            ],
        )
    for start in range(0, customers, batch):
        yield (
            "HAS_IDENTIFIER",
            [
                (
                    f"cust:C{i:08d}",
                    f"id:msisdn:+4477{i:08d}",
                    {"method": "det", "rule": "msisdn", "score": 1.0},
                )
                for i in range(start, min(start + batch, customers))
            ],
        )


def as_table(key_columns: tuple[str, ...], records: list[Any]) -> pa.Table:
    """Records of one batch as the Arrow table ``upsert_*_table`` takes."""
    columns: dict[str, Any] = {
        name: [record[position] for record in records] for position, name in enumerate(key_columns)
    }
    properties = pa.Table.from_pylist([record[-1] for record in records])
    for name in properties.column_names:
        columns[name] = properties[name]
    return pa.table(columns)


def _timed(upsert: Any, batches: Iterator[tuple[str, Any]]) -> tuple[float, int]:
    """Seconds spent in ``upsert`` over the batches, and the elements written.

    Batches are made one at a time, outside the timing, as a streaming caller would
    hold them: a run that builds all of them first keeps millions of tuples alive,
    which CPython's collector then rescans during the timed upserts.
    """
    seconds, elements = 0.0, 0
    for label, batch in batches:
        started = time.perf_counter()
        upsert(label, batch)
        seconds += time.perf_counter() - started
        elements += len(batch)
    return seconds, elements


def bulk_run(elements: int, batch: int, tables: bool) -> dict[str, float]:
    """One run: vertices, then edges, then the same again (re-upsert).

    With ``tables`` the batches go in as Arrow tables (converted outside the timing).
    """

    def vertices() -> Iterator[tuple[str, Any]]:
        for label, records in vertex_batches(elements, batch):
            yield label, as_table(("id",), records) if tables else records

    def edges() -> Iterator[tuple[str, Any]]:
        for label, records in edge_batches(elements, batch):
            yield label, as_table(("source", "target"), records) if tables else records

    with tempfile.TemporaryDirectory() as folder:
        with EmbeddedStore(Path(folder) / "g.db") as store:
            upsert_vertices = store.upsert_vertex_table if tables else store.upsert_vertices
            upsert_edges = store.upsert_edge_table if tables else store.upsert_edges
            v_seconds, n_vertices = _timed(upsert_vertices, vertices())
            e_seconds, n_edges = _timed(upsert_edges, edges())
            rv_seconds, _ = _timed(upsert_vertices, vertices())
            re_seconds, _ = _timed(upsert_edges, edges())
        # Closing checkpoints the write-ahead log into the file.
        size_mb = (Path(folder) / "g.db").stat().st_size / 1e6
    prefix = "table_" if tables else ""
    return {
        f"{prefix}vertices_per_s": n_vertices / v_seconds,
        f"{prefix}edges_per_s": n_edges / e_seconds,
        f"{prefix}reupsert_vertices_per_s": n_vertices / rv_seconds,
        f"{prefix}reupsert_edges_per_s": n_edges / re_seconds,
        f"{prefix}file_mb": size_mb,
    }


def timeline_run(elements: int, batch: int, queries: int) -> dict[str, float]:
    """p50/p99 of one 1,000-touchpoint customer's timeline in a store of ``elements``."""
    with tempfile.TemporaryDirectory() as folder, EmbeddedStore(Path(folder) / "g.db") as store:
        half = elements // 2
        for label, records in vertex_batches(half, batch):
            store.upsert_vertices(label, records)
        for label, records in edge_batches(half, batch):
            store.upsert_edges(label, records)
        store.upsert_vertices("Customer", [("cust:heavy", {})])
        heavy = [
            (f"tp:H{i:05d}", {"event_type": EVENT_TYPES[i % 5], "ts": T0 + timedelta(hours=i)})
            for i in range(1000)
        ]
        store.upsert_vertices("Touchpoint", heavy)
        store.upsert_edges("PERFORMED", [("cust:heavy", tp, {}) for tp, _ in heavy])
        total = store.count() + store.count_edges()
        latencies = []
        for _ in range(queries):
            started = time.perf_counter()
            timeline = store.timeline("cust:heavy")
            latencies.append((time.perf_counter() - started) * 1000)
            assert len(timeline) == 1000
        latencies.sort()
        return {
            "store_elements": total,
            "timeline_p50_ms": latencies[len(latencies) // 2],
            "timeline_p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        }


def main() -> None:
    """Run the benchmark and print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--elements", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeline-elements", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--paths", default="records,tables", help="comma-separated: records, tables, or both"
    )
    args = parser.parse_args()
    paths = args.paths.split(",")
    runs = [
        {
            key: value
            for tables in (False, True)
            if ("tables" if tables else "records") in paths
            for key, value in bulk_run(args.elements, args.batch, tables).items()
        }
        for _ in range(args.runs)
    ]
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "elements": args.elements,
        "batch": args.batch,
        "runs": args.runs,
    }
    for key in runs[0]:
        result[key] = round(statistics.median(run[key] for run in runs), 1)
    if args.timeline_elements:
        result.update(timeline_run(args.timeline_elements, args.batch, args.queries))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
