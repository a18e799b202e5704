"""EmbeddedStore bulk load of the 100,000-customer world the ingest pipeline writes.

    .venv/bin/python -m bench.bench_embedded_bulk [--customers 100000] [--batch 250000]
        [--runs 1] [--seed 7] [--keep PATH]

The world has the shape the generator's files give at 100k customers (docs/generator.md):
about 54 touchpoints a customer, 5.4M Touchpoint vertices with ids made by
``derived_event_id(source, record_id)`` from the generator's record ids
(``<PREFIX><chunk:4><row:7>``), and about 0.6M others (customers ``cust:`` + 16 hex
characters, identifiers, devices, cells, offers). Edges: PERFORMED (5.4M), NEXT (5.3M,
each customer's touchpoints in time order), AT_CELL (network rows), ABOUT (offer
events), HAS_IDENTIFIER and USES.

Everything goes in as Arrow tables through ``upsert_vertex_table`` /
``upsert_edge_table`` in batches of ``--batch`` rows, in the order the pipeline makes
them: touchpoints, PERFORMED, AT_CELL and ABOUT file by file as the rows were read;
NEXT customer by customer. Tables are built outside the timing, one batch at a time;
the rates are elements over the seconds spent inside the upsert calls. Each run
loads a fresh file; with ``--runs`` > 1 the medians are printed. Peak RSS is the
process's ``ru_maxrss`` (the world's arrays included; ``rss_before_load_mb`` says how
much of it they are). After the load, ``timeline()`` of random customers is timed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph import EmbeddedStore
from graph.model import derived_event_id

T0_MS = 1_672_531_200_000  # 2023-01-01T00:00:00Z
WINDOW_MS = 2 * 365 * 86_400_000
CHUNK_CUSTOMERS = 10_000
"""The generator writes customers 10,000 at a time; record ids carry the chunk number."""
CELLS = 3_000
OFFERS = 40


@dataclass(frozen=True)
class SourceFile:
    """One generator file: its source, record-id prefix, rows per customer and content."""

    source: str
    prefix: str
    per_customer: float
    channel: str
    event_types: tuple[str, ...]
    cell_share: float = 0.0
    offer_share: float = 0.0


FILES = (
    SourceFile("crm", "CRM", 1.02, "crm", ("customer_registered",)),
    SourceFile("billing", "BIL", 9.0, "billing", ("bill_issued",)),
    SourceFile("billing", "PAY", 8.9, "billing", ("payment",)),
    SourceFile("billing", "SHK", 0.23, "billing", ("bill_shock",)),
    SourceFile("billing", "TRM", 0.09, "billing", ("port_out", "cancellation")),
    SourceFile("care", "CALL", 1.09, "care", ("bill_dispute", "network_complaint")),
    SourceFile("care", "TKT", 0.11, "care", ("ticket_opened",), cell_share=0.3),
    SourceFile("care", "CSAT", 0.31, "sms", ("csat_response",)),
    SourceFile("retail", "VST", 0.41, "retail", ("device_purchase", "offer_accepted"), 0, 0.2),
    SourceFile(
        "clickstream", "HIT", 13.1, "app", ("app_open", "page_view", "offer_viewed"), 0, 0.03
    ),
    SourceFile("network", "KPI", 19.5, "network", ("network_kpi",), cell_share=1.0),
)


@dataclass
class World:
    """The synthetic world as columns; touchpoints in file order (the order read)."""

    customers: pa.Array[Any]
    identifiers: pa.Array[Any]
    identifier_owner: np.ndarray[Any, Any]
    devices: pa.Array[Any]
    tp_ids: pa.Array[Any]
    tp_file: np.ndarray[Any, Any]
    tp_customer: np.ndarray[Any, Any]
    tp_ts: np.ndarray[Any, Any]
    tp_cell: np.ndarray[Any, Any]
    tp_offer: np.ndarray[Any, Any]


def _strings(values: list[str]) -> pa.Array[Any]:
    return pa.array(values, pa.string())


def make_world(customers: int, seed: int) -> World:
    """Customers, identifiers, devices and touchpoints of a world of ``customers``."""
    rng = np.random.default_rng(seed)
    customer_ids = _strings(
        [
            "cust:" + hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).hexdigest()
            for i in range(customers)
        ]
    )
    # Four identifiers a customer: msisdn, email, account, cookie.
    owners = np.repeat(np.arange(customers), 4)
    identifiers = []
    for i in range(customers):
        identifiers += [
            f"id:msisdn:+447700{i:07d}",
            f"id:email:person{i}@example.com",
            f"id:account:ACC{i:09d}",
            f"id:cookie:{hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest()}",
        ]
    devices = _strings([f"dev:35{i:013d}" for i in range(customers)])
    ids, files, people, stamps, cells, offers = [], [], [], [], [], []
    for file_index, file in enumerate(FILES):
        for chunk_start in range(0, customers, CHUNK_CUSTOMERS):
            chunk_size = min(CHUNK_CUSTOMERS, customers - chunk_start)
            rows = round(chunk_size * file.per_customer)
            chunk = chunk_start // CHUNK_CUSTOMERS
            ids.append(
                _strings(
                    [
                        "tp:" + derived_event_id(file.source, f"{file.prefix}{chunk:04d}{row:07d}")
                        for row in range(rows)
                    ]
                )
            )
            files.append(np.full(rows, file_index, np.int8))
            people.append(rng.integers(chunk_start, chunk_start + chunk_size, rows, np.int32))
            stamps.append(np.sort(rng.integers(T0_MS, T0_MS + WINDOW_MS, rows, np.int64)))
            has_cell = rng.random(rows) < file.cell_share
            cells.append(np.where(has_cell, rng.integers(0, CELLS, rows), -1).astype(np.int16))
            has_offer = rng.random(rows) < file.offer_share
            offers.append(np.where(has_offer, rng.integers(0, OFFERS, rows), -1).astype(np.int8))
    return World(
        customers=customer_ids,
        identifiers=_strings(identifiers),
        identifier_owner=owners,
        devices=devices,
        tp_ids=pa.concat_arrays(ids),
        tp_file=np.concatenate(files),
        tp_customer=np.concatenate(people),
        tp_ts=np.concatenate(stamps),
        tp_cell=np.concatenate(cells),
        tp_offer=np.concatenate(offers),
    )


def _take(column: pa.Array[Any], indices: np.ndarray[Any, Any]) -> pa.Array[Any]:
    return column.take(pa.array(indices))


def _timestamps(millis: np.ndarray[Any, Any]) -> pa.Array[Any]:
    return pa.array(millis, pa.timestamp("ms", tz="UTC"))


def _slices(total: int, batch: int) -> Iterator[slice]:
    for start in range(0, total, batch):
        yield slice(start, min(start + batch, total))


Batch = tuple[str, str, pa.Table]
"""``("vertex" | "edge", label, table)``."""


def vertex_batches(world: World, batch: int) -> Iterator[Batch]:
    """Customers, identifiers, devices, cells, offers, then touchpoints in file order."""
    customers = len(world.customers)
    for part in _slices(customers, batch):
        index = np.arange(part.start, part.stop)
        yield (
            "vertex",
            "Customer",
            pa.table(
                {
                    "id": world.customers[part],
                    "first_name": _strings([f"Name{i % 997}" for i in index]),
                    "last_name": _strings([f"Surname{i % 4999}" for i in index]),
                    "dob": _strings([f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}" for i in index]),
                    "postcode": _strings([f"AB{i % 99} {i % 9}CD" for i in index]),
                }
            ),
        )
    kinds = np.array(["msisdn", "email", "account", "cookie"])
    for part in _slices(len(world.identifiers), batch):
        ids = world.identifiers[part]
        yield (
            "vertex",
            "Identifier",
            pa.table(
                {
                    "id": ids,
                    "kind": pa.array(kinds[np.arange(part.start, part.stop) % 4]),
                    "value": pc.replace_substring_regex(ids, r"^id:[a-z]+:", ""),
                }
            ),
        )
    for part in _slices(len(world.devices), batch):
        ids = world.devices[part]
        yield "vertex", "Device", pa.table({"id": ids, "imei": pc.utf8_slice_codeunits(ids, 4)})
    cells = [_cell(i) for i in range(CELLS)]
    yield "vertex", "Cell", pa.table({"id": [f"cell:{c}" for c in cells], "cell_id": cells})
    offers = [_offer(i) for i in range(OFFERS)]
    yield "vertex", "Offer", pa.table({"id": [f"offer:{o}" for o in offers], "offer_id": offers})
    for part in _slices(len(world.tp_ids), batch):
        yield "vertex", "Touchpoint", touchpoint_table(world, part)


def touchpoint_table(world: World, part: slice) -> pa.Table:
    """Touchpoints ``part``: event_type, channel, source, ts and the file's attributes."""
    files = world.tp_file[part]
    index = np.arange(part.start, part.stop)
    event_types = np.array([file.event_types[0] for file in FILES])[files]
    second_type = np.array([file.event_types[-1] for file in FILES])[files]
    event_types = np.where(index % 3 == 0, second_type, event_types)
    cell = world.tp_cell[part]
    offer = world.tp_offer[part]
    billing = np.isin(files, [1, 2, 3])
    clicks = files == 9
    network = files == 10
    cell_ids = pa.array([_cell(c) if c >= 0 else None for c in cell], pa.string())
    return pa.table(
        {
            "id": world.tp_ids[part],
            "event_type": pa.array(event_types),
            "channel": pa.array(np.array([file.channel for file in FILES])[files]),
            "source": pa.array(np.array([file.source for file in FILES])[files]),
            "ts": _timestamps(world.tp_ts[part]),
            "cell_id": cell_ids,
            "offer_id": pa.array([_offer(o) if o >= 0 else None for o in offer], pa.string()),
            "amount": pa.array(np.round(index % 9000 / 100, 2), mask=~billing),
            "session_id": pa.array(
                [f"s{i // 7:09d}" if c else None for i, c in zip(index, clicks, strict=True)]
            ),
            "data_mb": pa.array((index % 5000).astype(np.int64), mask=~network),
            "call_drop_rate": pa.array(index % 1000 / 1000, mask=~network),
        }
    )


def edge_batches(world: World, batch: int) -> Iterator[Batch]:
    """HAS_IDENTIFIER, USES, PERFORMED, NEXT, AT_CELL and ABOUT, in pipeline order."""
    first_seen = _timestamps(np.full(batch, T0_MS))
    for part in _slices(len(world.identifiers), batch):
        size = part.stop - part.start
        yield (
            "edge",
            "HAS_IDENTIFIER",
            pa.table(
                {
                    "source": _take(world.customers, world.identifier_owner[part]),
                    "target": world.identifiers[part],
                    "method": pa.array(["det"] * size),
                    "rule": pa.array(["shared_identifier"] * size),
                    "score": pa.array(np.ones(size)),
                    "first_seen": first_seen[:size],
                    "last_seen": first_seen[:size],
                }
            ),
        )
    for part in _slices(len(world.devices), batch):
        yield (
            "edge",
            "USES",
            pa.table({"source": world.customers[part], "target": world.devices[part]}),
        )
    for part in _slices(len(world.tp_ids), batch):
        yield (
            "edge",
            "PERFORMED",
            pa.table(
                {
                    "source": _take(world.customers, world.tp_customer[part]),
                    "target": world.tp_ids[part],
                }
            ),
        )
    order = np.lexsort((world.tp_ts, world.tp_customer))
    linked = world.tp_customer[order[1:]] == world.tp_customer[order[:-1]]
    sources, targets = order[:-1][linked], order[1:][linked]
    for part in _slices(len(sources), batch):
        seconds = (world.tp_ts[targets[part]] - world.tp_ts[sources[part]]) / 1000
        yield (
            "edge",
            "NEXT",
            pa.table(
                {
                    "source": _take(world.tp_ids, sources[part]),
                    "target": _take(world.tp_ids, targets[part]),
                    "dt_seconds": pa.array(seconds),
                }
            ),
        )
    for label, column, prefix in (
        ("AT_CELL", world.tp_cell, "cell:"),
        ("ABOUT", world.tp_offer, "offer:"),
    ):
        rows = np.flatnonzero(column >= 0)
        for part in _slices(len(rows), batch):
            chosen = rows[part]
            names = [
                _cell(value) if label == "AT_CELL" else _offer(value) for value in column[chosen]
            ]
            yield (
                "edge",
                label,
                pa.table(
                    {
                        "source": _take(world.tp_ids, chosen),
                        "target": _strings([prefix + name for name in names]),
                    }
                ),
            )


def _cell(number: int) -> str:
    return f"234-10-{number // 3:05d}-{number % 3}"


def _offer(number: int) -> str:
    return f"OFF{number:03d}"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(world: World, path: Path, batch: int) -> dict[str, Any]:
    """Load the world into a fresh store at ``path``; per-label seconds and counts."""
    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}
    kinds: dict[str, str] = {}
    cpu_started = time.process_time()
    wall_started = time.perf_counter()
    with EmbeddedStore(path) as store:
        batches: list[Callable[[], Iterator[Batch]]] = [
            lambda: vertex_batches(world, batch),
            lambda: edge_batches(world, batch),
        ]
        for make in batches:
            for kind, label, table in make():
                upsert = store.upsert_vertex_table if kind == "vertex" else store.upsert_edge_table
                started = time.perf_counter()
                written = upsert(label, table)
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - started
                assert written.created == table.num_rows, (label, written)
                rows[label] = rows.get(label, 0) + table.num_rows
                kinds[label] = kind
        timeline_ms = _timelines(store, world)
        closing = time.perf_counter()
    close_seconds = time.perf_counter() - closing
    size_mb = (
        sum(
            (path.parent / (path.name + suffix)).stat().st_size
            for suffix in ("", "-wal")
            if (path.parent / (path.name + suffix)).exists()
        )
        / 1e6
    )
    result: dict[str, Any] = {}
    for wanted in ("vertex", "edge"):
        labels = [label for label in rows if kinds[label] == wanted]
        total = sum(rows[label] for label in labels)
        spent = sum(seconds[label] for label in labels)
        result[f"{wanted}_rows"] = total
        result[f"{wanted}_seconds"] = spent
        result[f"{'vertices' if wanted == 'vertex' else 'edges'}_per_s"] = total / spent
    for label in rows:
        result[f"{label}_per_s"] = rows[label] / seconds[label]
    result |= {
        "upsert_seconds": sum(seconds.values()),
        "wall_seconds": time.perf_counter() - wall_started,
        "cpu_seconds": time.process_time() - cpu_started,
        "close_seconds": close_seconds,
        "db_mb": size_mb,
        "timeline_p50_ms": timeline_ms,
    }
    return result


def _timelines(store: EmbeddedStore, world: World, queries: int = 200) -> float:
    """Median milliseconds of ``timeline()`` for random customers (about 54 touchpoints)."""
    rng = np.random.default_rng(1)
    latencies = []
    for index in rng.integers(0, len(world.customers), queries):
        customer = world.customers[int(index)].as_py()
        started = time.perf_counter()
        store.timeline(customer)
        latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies)


def main() -> None:
    """Build the world, load it ``--runs`` times, print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=250_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="load into this file and keep it (one run)")
    args = parser.parse_args()
    prepared = time.perf_counter()
    world = make_world(args.customers, args.seed)
    prepare_seconds = time.perf_counter() - prepared
    rss_before = _rss_mb()
    runs = []
    for _ in range(args.runs):
        if args.keep:
            runs.append(load(world, args.keep, args.batch))
            break
        with tempfile.TemporaryDirectory() as folder:
            runs.append(load(world, Path(folder) / "g.db", args.batch))
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "customers": args.customers,
        "batch": args.batch,
        "runs": len(runs),
        "prepare_seconds": round(prepare_seconds, 1),
        "rss_before_load_mb": round(rss_before),
        "peak_rss_mb": round(_rss_mb()),
    }
    for key, value in runs[0].items():
        median = statistics.median(run[key] for run in runs)
        result[key] = round(median, 2) if isinstance(value, float) else median
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
