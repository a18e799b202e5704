"""EmbeddedStore benchmark: bulk upserts at 1M elements, re-upserts, and timelines at 10M.

    .venv/bin/python -m bench.bench_store [--elements 1000000] [--runs 3] [--timeline-elements 10000000]

Vertices are a telco mix (10% Customer, 10% Identifier, 80% Touchpoint with four
properties); edges are PERFORMED and HAS_IDENTIFIER between them. Each run writes
into a fresh file in batches of ``--batch`` through the public API (validation
included). The timeline part builds one store of ``--timeline-elements`` elements in
which one customer has 1,000 touchpoints and times ``timeline()`` on it. Results
are printed as JSON and recorded by hand in docs/benchmarks.md.
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


def _timed_upserts(store: EmbeddedStore, batches: list[tuple[str, list[Any]]], edges: bool) -> float:
    started = time.perf_counter()
    for label, records in batches:
        if edges:
            store.upsert_edges(label, records)
        else:
            store.upsert_vertices(label, records)
    return time.perf_counter() - started


def bulk_run(elements: int, batch: int) -> dict[str, float]:
    """One run: vertices, then edges, then the same again (re-upsert)."""
    vertices = list(vertex_batches(elements, batch))
    edge_list = list(edge_batches(elements, batch))
    n_vertices = sum(len(r) for _, r in vertices)
    n_edges = sum(len(r) for _, r in edge_list)
    with tempfile.TemporaryDirectory() as folder, EmbeddedStore(Path(folder) / "g.db") as store:
        v_seconds = _timed_upserts(store, vertices, edges=False)
        e_seconds = _timed_upserts(store, edge_list, edges=True)
        rv_seconds = _timed_upserts(store, vertices, edges=False)
        re_seconds = _timed_upserts(store, edge_list, edges=True)
        size_mb = (Path(folder) / "g.db").stat().st_size / 1e6
    return {
        "vertices_per_s": n_vertices / v_seconds,
        "edges_per_s": n_edges / e_seconds,
        "reupsert_vertices_per_s": n_vertices / rv_seconds,
        "reupsert_edges_per_s": n_edges / re_seconds,
        "file_mb": size_mb,
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
    args = parser.parse_args()
    runs = [bulk_run(args.elements, args.batch) for _ in range(args.runs)]
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
