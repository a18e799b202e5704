"""GremlinStore benchmark: bulk upserts of vertices and edges against a real Gremlin server.

    JOURNEYGRAPH_GREMLIN_URL=ws://127.0.0.1:8182/gremlin \\
        .venv/bin/python -m bench.bench_gremlin [--vertices 20000] [--edges 60000] \\
        [--batch 200] [--per-call 1000] [--runs 3] [--dialect janusgraph]

Without a server URL (``--url`` or ``JOURNEYGRAPH_GREMLIN_URL``) it prints why it
skipped and exits 0. Each run empties the graph (``drop_all``), upserts the vertices
(5% Customer, 1% Cell, the rest Touchpoint with four properties) and then the edges
(PERFORMED, NEXT, AT_CELL, ABOUT, cut at ``--edges``) through the public API,
``--per-call`` records an ``upsert_*`` call sent in requests of ``--batch``; then
upserts the same vertices again, which must report them all unchanged. Results are
the median rate of the runs, printed as JSON. The graph is emptied at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from graph.gremlin import GremlinStore
from graph.store import EdgeRecord, GraphStore, VertexRecord

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVENT_TYPES = ("app_login", "bill_issued", "care_call", "data_session", "offer_viewed")


def world(vertices: int, edges: int) -> tuple[list[tuple[str, VertexRecord]], list[Any]]:
    """``(label, record)`` vertices and ``(label, record)`` edges of a small telco world."""
    customers = max(1, vertices // 20)
    cells = max(1, vertices // 100)
    offers = 1
    touchpoints = vertices - customers - cells - offers
    nodes: list[tuple[str, VertexRecord]] = [
        ("Customer", (f"cust:C{i:07d}", {"segment": "consumer", "tenure_months": i % 120}))
        for i in range(customers)
    ]
    nodes += [("Cell", (f"cell:X{i:05d}", {"region": f"r{i % 7}"})) for i in range(cells)]
    nodes.append(("Offer", ("offer:O1", {"name": "bundle"})))
    nodes += [
        (
            "Touchpoint",
            (
                f"tp:E{i:08d}",
                {
                    "event_type": EVENT_TYPES[i % 5],
                    "channel": "app",
                    "ts": T0 + timedelta(seconds=i),
                    "source": "bench",
                },
            ),
        )
        for i in range(touchpoints)
    ]
    # Touchpoint i belongs to customer i % customers, so customer c's timeline is
    # c, c + customers, c + 2 * customers, ...
    links: list[tuple[str, EdgeRecord]] = [
        ("PERFORMED", (f"cust:C{i % customers:07d}", f"tp:E{i:08d}", {}))
        for i in range(touchpoints)
    ]
    links += [
        ("NEXT", (f"tp:E{i - customers:08d}", f"tp:E{i:08d}", {"dt_seconds": customers}))
        for i in range(customers, touchpoints)
    ]
    links += [
        ("AT_CELL", (f"tp:E{i:08d}", f"cell:X{i % cells:05d}", {})) for i in range(touchpoints)
    ]
    links += [("ABOUT", (f"tp:E{i:08d}", "offer:O1", {})) for i in range(touchpoints)]
    return nodes, links[:edges]


def calls(records: list[tuple[str, Any]], per_call: int) -> Iterator[tuple[str, list[Any]]]:
    """Runs of one label, ``per_call`` records at most: the arguments of each upsert call."""
    start = 0
    while start < len(records):
        label = records[start][0]
        end = start
        while end < len(records) and end - start < per_call and records[end][0] == label:
            end += 1
        yield label, [record for _, record in records[start:end]]
        start = end


def timed_upserts(
    store: GraphStore, records: list[tuple[str, Any]], per_call: int, edges: bool
) -> tuple[float, dict[str, int]]:
    """Seconds taken and the summed counts of upserting ``records``."""
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    started = time.perf_counter()
    for label, batch in calls(records, per_call):
        result = store.upsert_edges(label, batch) if edges else store.upsert_vertices(label, batch)
        totals["created"] += result.created
        totals["updated"] += result.updated
        totals["unchanged"] += result.unchanged
    return time.perf_counter() - started, totals


def run_once(store: GremlinStore, args: argparse.Namespace) -> dict[str, float]:
    """One run on an emptied graph: rates of vertex, edge and unchanged re-upserts."""
    nodes, links = world(args.vertices, args.edges)
    store.drop_all()
    vertex_s, vertex_counts = timed_upserts(store, nodes, args.per_call, edges=False)
    edge_s, edge_counts = timed_upserts(store, links, args.per_call, edges=True)
    again_s, again_counts = timed_upserts(store, nodes, args.per_call, edges=False)
    if vertex_counts["created"] != len(nodes) or edge_counts["created"] != len(links):
        raise SystemExit(f"wrong counts: vertices {vertex_counts}, edges {edge_counts}")
    if again_counts["unchanged"] != len(nodes):
        raise SystemExit(f"a re-upsert changed something: {again_counts}")
    if store.count() != len(nodes) or store.count_edges() != len(links):
        raise SystemExit("the server holds a different number of elements than were written")
    return {
        "vertices_per_s": len(nodes) / vertex_s,
        "edges_per_s": len(links) / edge_s,
        "unchanged_vertices_per_s": len(nodes) / again_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark ``--runs`` times and print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=os.environ.get("JOURNEYGRAPH_GREMLIN_URL"))
    parser.add_argument(
        "--dialect", default=os.environ.get("JOURNEYGRAPH_GREMLIN_DIALECT", "janusgraph")
    )
    parser.add_argument("--vertices", type=int, default=20_000)
    parser.add_argument("--edges", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=200, help="elements a request")
    parser.add_argument("--per-call", type=int, default=1000, help="records an upsert call")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.url:
        print(
            "bench_gremlin skipped: no Gremlin server (pass --url or set "
            "JOURNEYGRAPH_GREMLIN_URL; docs/gremlin.md says how to start one)"
        )
        return 0
    with GremlinStore(args.url, dialect=args.dialect, batch_size=args.batch) as store:
        runs = [run_once(store, args) for _ in range(args.runs)]
        store.drop_all()
    report = {
        "url": args.url,
        "dialect": args.dialect,
        "vertices": args.vertices,
        "edges": args.edges,
        "batch": args.batch,
        "per_call": args.per_call,
        "runs": args.runs,
        "python": platform.python_version(),
        **{key: round(statistics.median(run[key] for run in runs)) for key in runs[0]},
        "each_run": [{key: round(value) for key, value in run.items()} for run in runs],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
