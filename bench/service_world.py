"""A served world of 1M customers for the HTTP benchmarks, bulk-loaded in minutes.

Ingesting a million customers through the pipeline takes hours on the development
machine, so this writes what the pipeline would have left in a data folder straight
through the store's and the lake's bulk paths:

* the embedded store (``journeygraph.db``): a Customer per subscriber (``cust:`` and
  16 hex digits, the resolver's hash of the founding identifier) with person fields;
  2-3 Identifier vertices each (MSISDN, email, an account for 60%) with their
  HAS_IDENTIFIER edges; 5-8 Touchpoints each over two years (a Markov chain over the
  generator's event mix, ``bench.synthetic_lake``) with PERFORMED and NEXT edges, and
  ABOUT (offers) and AT_CELL (network complaints) edges to Offer and Cell vertices;
* the lake (``ingest/lake``): the same touchpoints in ``Lake``'s layout;
* the identity index (``ingest/identity.sqlite``) holding every identifier, so pushed
  events that name a known MSISDN resolve to its customer, and the ingest state with
  the NEXT chains marked as linked up to the last lake batch;
* the timelines copy the journey analyzers read (built once, as a first query would).

    .venv/bin/python -m bench.service_world [--customers 1000000] [--out /tmp/jg-bench-1m]

A folder already built with the same parameters is reused as it is.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from api.bootstrap import open_timelines
from api.settings import Settings
from bench.synthetic_lake import DAY_MS, START_MS, VOCABULARY, transition_matrix
from graph import EdgeLabel, EmbeddedStore, GraphStore, VertexLabel
from ingest.frame import FRAME_SCHEMA, IDENTIFIER_COLUMNS, PERSON_COLUMNS, TS_TYPE
from ingest.lake import Lake
from ingest.pipeline import IngestState
from ingest.resolution.deterministic import METHOD, RULE_SHARED, IdentityIndex, new_customer_id

DEFAULT_FOLDER: Final = Path("/tmp/jg-bench-1m")
FORMAT: Final = 1
"""Bumped when the world's content changes, so an older folder is rebuilt."""
CHUNK: Final = 50_000
ACCOUNT_SHARE: Final = 0.6
OFFERS: Final = tuple(f"OFF{number:03d}" for number in range(1, 21))
CELLS: Final = tuple(f"C{number:05d}" for number in range(1, 2001))
FIRST_NAMES: Final = (
    "Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Ivy", "Leo",
    "Freya", "Oscar", "Lily", "Harry", "Sophia", "Jack", "Grace", "Charlie", "Evie", "Jacob",
)  # fmt: skip
LAST_NAMES: Final = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Khan", "Lewis", "Clarke", "Jackson", "Wood", "Harris", "Edwards", "Turner", "Martin",
)  # fmt: skip
_OFFER_EVENTS: Final = frozenset({"offer_viewed", "offer_accepted"})
_CELL_EVENTS: Final = frozenset({"network_complaint"})
_AMOUNT_EVENTS: Final = frozenset(
    {"bill_issued", "payment", "bill_shock", "device_purchase", "accessory_purchase"}
)


@dataclass(frozen=True)
class WorldSpec:
    """What a world is built from; a folder with the same spec is reused."""

    customers: int
    seed: int = 7
    min_touchpoints: int = 5
    max_touchpoints: int = 8
    format: int = FORMAT


@dataclass
class WorldSummary:
    """What was built (or found) and how long each part took."""

    folder: str
    spec: dict[str, int]
    reused: bool
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    disk_mb: dict[str, float] = field(default_factory=dict)


def _permuted(index: npt.NDArray[np.int64], salt: int) -> npt.NDArray[np.int64]:
    """A bijection of 0..10^9-1 (the multiplier is coprime with 10^9): distinct, scattered."""
    return (index * 387_420_489 + salt * 7_919 + 12_345) % 1_000_000_000


def msisdns(indices: npt.NDArray[np.int64], seed: int = 7) -> list[str]:
    """Normalised (E.164) MSISDNs of the customers numbered ``indices``."""
    return [f"+447{value:09d}" for value in _permuted(indices, seed).tolist()]


def _emails(indices: npt.NDArray[np.int64]) -> list[str]:
    return [
        f"{FIRST_NAMES[i % 20].lower()}.{LAST_NAMES[i // 20 % 27].lower()}{i}@example.com"
        for i in indices.tolist()
    ]


def _accounts(indices: npt.NDArray[np.int64], seed: int) -> list[str | None]:
    has_account = _permuted(indices, seed + 1) % 100 < ACCOUNT_SHARE * 100
    numbers = _permuted(indices, seed + 2).tolist()
    return [
        f"ACC{number:09d}" if held else None
        for number, held in zip(numbers, has_account.tolist(), strict=True)
    ]


def customer_ids(indices: npt.NDArray[np.int64], seed: int = 7) -> list[str]:
    """Customer ids of the customers numbered ``indices``, as the resolver names them.

    A new customer is named after the smallest identifier id of its component: the
    account where there is one, else the email.
    """
    return [
        new_customer_id(f"id:account:{account}" if account else f"id:email:{email}")
        for account, email in zip(_accounts(indices, seed), _emails(indices), strict=True)
    ]


def _chains(
    lengths: npt.NDArray[np.int64], matrix: npt.NDArray[np.float64], rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Event codes of timelines of ``lengths``, each a Markov chain over ``VOCABULARY``."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    positions = np.arange(total) - np.repeat(starts, lengths)
    weights = np.array([weight for *_, weight in VOCABULARY])
    draws = rng.random(total)
    event = np.empty(total, np.int64)
    event[starts] = np.searchsorted(np.cumsum(weights / weights.sum()), draws[starts])
    cumulative = np.cumsum(matrix, axis=1)
    for step in range(1, int(lengths.max())):
        at = np.flatnonzero(positions == step)
        rows = cumulative[event[at - 1]]
        event[at] = np.minimum((rows < draws[at, None]).sum(axis=1), len(VOCABULARY) - 1)
    return event


@dataclass
class _Chunk:
    """One slice of customers, as the tables the store, the lake and the index take."""

    customers: pa.Table
    identifiers: pa.Table
    has_identifier: pa.Table
    touchpoints: pa.Table
    performed: pa.Table
    next_edges: pa.Table
    about: pa.Table
    at_cell: pa.Table
    lake_frame: pa.Table
    lake_customers: pa.Array[Any]
    index_keys: list[tuple[Any, ...]]
    index_customers: list[tuple[Any, ...]]
    index_links: list[tuple[Any, ...]]


def _chunk(
    spec: WorldSpec, first: int, count: int, first_touchpoint: int, matrix: npt.NDArray[np.float64]
) -> _Chunk:
    rng = np.random.default_rng([spec.seed, first])
    index = np.arange(first, first + count, dtype=np.int64)
    ids = customer_ids(index, spec.seed)
    phones, emails, accounts = (
        msisdns(index, spec.seed),
        _emails(index),
        _accounts(index, spec.seed),
    )
    lengths = rng.integers(spec.min_touchpoints, spec.max_touchpoints + 1, count)
    owner = np.repeat(np.arange(count), lengths)
    total = len(owner)
    event = _chains(lengths, matrix, rng)
    starts = np.cumsum(lengths) - lengths
    gaps = rng.exponential(3 * DAY_MS, total).astype(np.int64)
    gaps[starts] = 0
    ts = np.cumsum(gaps)
    ts += np.repeat(START_MS + rng.integers(0, 700 * DAY_MS, count) - ts[starts], lengths)
    names = [name for name, *_ in VOCABULARY]
    event_types = [names[code] for code in event.tolist()]
    sources = [VOCABULARY[code][1] for code in event.tolist()]
    channels = [VOCABULARY[code][2] for code in event.tolist()]
    numbers = range(first_touchpoint, first_touchpoint + total)
    event_ids = [
        f"{source}-W{number:011d}" for source, number in zip(sources, numbers, strict=True)
    ]
    tp_ids = pa.array([f"tp:{event_id}" for event_id in event_ids], pa.string())
    ts_array = pa.array(ts, pa.int64()).cast(TS_TYPE)
    owners = pa.array(ids, pa.string()).take(pa.array(owner))

    offer = [
        OFFERS[code % len(OFFERS)] if name in _OFFER_EVENTS else None
        for name, code in zip(event_types, rng.integers(0, 1 << 30, total).tolist(), strict=True)
    ]
    cell = [
        CELLS[code % len(CELLS)] if name in _CELL_EVENTS else None
        for name, code in zip(event_types, rng.integers(0, 1 << 30, total).tolist(), strict=True)
    ]
    amount = [
        round(value, 2) if name in _AMOUNT_EVENTS else None
        for name, value in zip(event_types, rng.gamma(2.0, 20.0, total).tolist(), strict=True)
    ]
    attributes = [
        json.dumps({k: v for k, v in (("offer_id", o), ("cell_id", c), ("amount", a)) if v})
        for o, c, a in zip(offer, cell, amount, strict=True)
    ]
    offers, cells = pa.array(offer, pa.string()), pa.array(cell, pa.string())
    touchpoints = pa.table(
        {
            "id": tp_ids,
            "event_type": event_types,
            "channel": channels,
            "ts": ts_array,
            "source": sources,
            "offer_id": offers,
            "cell_id": cells,
            "amount": pa.array(amount, pa.float64()),
        }
    )
    first_seen = pa.array(ts[starts], pa.int64()).cast(TS_TYPE)
    last_seen = pa.array(ts[starts + lengths - 1], pa.int64()).cast(TS_TYPE)

    identifier_rows: list[tuple[str, str, str, str]] = []  # (customer, id, kind, value)
    for customer, phone, email, account in zip(ids, phones, emails, accounts, strict=True):
        identifier_rows.append((customer, f"id:msisdn:{phone}", "msisdn", phone))
        identifier_rows.append((customer, f"id:email:{email}", "email", email))
        if account is not None:
            identifier_rows.append((customer, f"id:account:{account}", "account", account))
    owners_of, identifier_ids, kinds, values = (
        list(column) for column in zip(*identifier_rows, strict=True)
    )
    position = {customer: number for number, customer in enumerate(ids)}
    of_row = pa.array([position[customer] for customer in owners_of])
    has_identifier = pa.table(
        {
            "source": owners_of,
            "target": identifier_ids,
            "method": [METHOD] * len(owners_of),
            "rule": [RULE_SHARED] * len(owners_of),
            "score": pa.array([1.0] * len(owners_of), pa.float64()),
            "first_seen": first_seen.take(of_row),
            "last_seen": last_seen.take(of_row),
        }
    )
    first_ms, last_ms = ts[starts].tolist(), ts[starts + lengths - 1].tolist()
    anchor = {customer: f"id:msisdn:{phone}" for customer, phone in zip(ids, phones, strict=True)}
    index_keys = [
        (
            key,
            customer,
            "" if kind == "msisdn" else anchor[customer],
            0,
            customer if kind == "account" else None,
            first_ms[position[customer]] if kind == "account" else None,
        )
        for customer, key, kind, _ in identifier_rows
    ]
    index_links = [
        (customer, key, RULE_SHARED, METHOD, 1.0, first_ms[n], last_ms[n])
        for customer, key, *_ in identifier_rows
        for n in (position[customer],)
    ]

    within = np.ones(total, bool)
    within[starts + lengths - 1] = False  # a timeline's last touchpoint has no NEXT
    following = np.flatnonzero(within)
    next_edges = pa.table(
        {
            "source": tp_ids.take(pa.array(following)),
            "target": tp_ids.take(pa.array(following + 1)),
            "dt_seconds": pa.array((ts[following + 1] - ts[following]) / 1000.0, pa.float64()),
        }
    )
    has_offer, has_cell = offers.is_valid(), cells.is_valid()
    nulls = pa.nulls(total, pa.string())
    lake_columns: dict[str, Any] = {
        "event_id": event_ids,
        "source": sources,
        "event_type": event_types,
        "channel": channels,
        "ts": ts_array,
        **{name: nulls for name in IDENTIFIER_COLUMNS},
        **{name: nulls for name in PERSON_COLUMNS},
        "attributes": attributes,
        "origin": pa.array(["bench-world"] * total, pa.string()),
        "origin_row": pa.array(numbers, pa.int64()),
    }
    lake_columns["msisdn"] = pa.array(phones, pa.string()).take(pa.array(owner))
    return _Chunk(
        customers=pa.table(
            {
                "id": ids,
                "first_name": [FIRST_NAMES[i % 20] for i in index.tolist()],
                "last_name": [LAST_NAMES[i // 20 % 27] for i in index.tolist()],
                "dob": [
                    f"19{50 + i % 50:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in index.tolist()
                ],
                "postcode": [f"LS{1 + i % 28} {i % 10}AB" for i in index.tolist()],
            }
        ),
        identifiers=pa.table({"id": identifier_ids, "kind": kinds, "value": values}),
        has_identifier=has_identifier,
        touchpoints=touchpoints,
        performed=pa.table({"source": owners, "target": tp_ids}),
        next_edges=next_edges,
        about=pa.table(
            {
                "source": tp_ids.filter(has_offer),
                "target": pc.binary_join_element_wise("offer:", offers.filter(has_offer), ""),
            }
        ),
        at_cell=pa.table(
            {
                "source": tp_ids.filter(has_cell),
                "target": pc.binary_join_element_wise("cell:", cells.filter(has_cell), ""),
            }
        ),
        lake_frame=pa.table(lake_columns).cast(FRAME_SCHEMA),
        lake_customers=owners,
        index_keys=index_keys,
        index_customers=[(c, first + n, None, None) for n, c in enumerate(ids)],
        index_links=index_links,
    )


def _sorted(table: pa.Table, key: str) -> pa.Table:
    """Rows in id order: the store's B-trees take sorted keys several times faster."""
    return table.take(pc.sort_indices(table, [(key, "ascending")]))


def _write_graph(store: GraphStore, chunk: _Chunk) -> None:
    store.upsert_vertex_table(VertexLabel.CUSTOMER, _sorted(chunk.customers, "id"))
    store.upsert_vertex_table(VertexLabel.IDENTIFIER, _sorted(chunk.identifiers, "id"))
    store.upsert_vertex_table(VertexLabel.TOUCHPOINT, _sorted(chunk.touchpoints, "id"))
    for label, edges in (
        (EdgeLabel.HAS_IDENTIFIER, chunk.has_identifier),
        (EdgeLabel.PERFORMED, chunk.performed),
        (EdgeLabel.NEXT, chunk.next_edges),
        (EdgeLabel.ABOUT, chunk.about),
        (EdgeLabel.AT_CELL, chunk.at_cell),
    ):
        store.upsert_edge_table(label, _sorted(edges, "source"))


def _write_index(connection: sqlite3.Connection, chunk: _Chunk) -> None:
    with connection:
        connection.executemany("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?)", chunk.index_keys)
        connection.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", chunk.index_customers)
        connection.executemany("INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, ?)", chunk.index_links)


def _ranges(customers: int) -> Iterator[tuple[int, int]]:
    for first in range(0, customers, CHUNK):
        yield first, min(CHUNK, customers - first)


def _disk_mb(path: Path) -> float:
    done = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return round(int(done.stdout.split()[0]) / 1024, 1)


def settings_for(folder: Path) -> Settings:
    """Settings of a service over the world in ``folder`` (its data folder)."""
    return Settings(data_dir=folder, retrain_schedule="")


def build_world(folder: Path, spec: WorldSpec, console: Console | None = None) -> WorldSummary:
    """Build the world in ``folder``, or reuse it if it was built with the same ``spec``."""
    console = console or Console(stderr=True)
    marker = folder / "WORLD.json"
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded.get("spec") == asdict(spec):
            return WorldSummary(**{**recorded, "reused": True})
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    settings = settings_for(folder)
    summary = WorldSummary(str(folder), asdict(spec), reused=False)
    seconds = dict.fromkeys(("prepare", "graph", "lake", "identity", "timelines"), 0.0)
    matrix = transition_matrix(np.random.default_rng(spec.seed))
    lake = Lake(settings.ingest_path / "lake")
    IdentityIndex(settings.ingest_path / "identity.sqlite").close()  # creates its schema
    index = sqlite3.connect(settings.ingest_path / "identity.sqlite")
    started = time.perf_counter()
    counts = {"customers": 0, "identifiers": 0, "touchpoints": 0, "next": 0}
    with (
        EmbeddedStore(settings.embedded_path, durability=settings.durability) as store,
        Progress(
            *Progress.get_default_columns()[:-1],
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("customers", total=spec.customers)
        store.upsert_vertex_table(
            VertexLabel.OFFER, pa.table({"id": [f"offer:{o}" for o in OFFERS], "offer_id": OFFERS})
        )
        store.upsert_vertex_table(
            VertexLabel.CELL, pa.table({"id": [f"cell:{c}" for c in CELLS], "cell_id": CELLS})
        )
        batch = 0
        for batch, (first, count) in enumerate(_ranges(spec.customers), start=1):
            began = time.perf_counter()
            chunk = _chunk(spec, first, count, counts["touchpoints"], matrix)
            wrote_graph = time.perf_counter()
            _write_graph(store, chunk)
            wrote_lake = time.perf_counter()
            lake.append(chunk.lake_frame, chunk.lake_customers, f"world-{batch:04d}", batch)
            wrote_index = time.perf_counter()
            _write_index(index, chunk)
            done = time.perf_counter()
            for part, (start, stop) in {
                "prepare": (began, wrote_graph),
                "graph": (wrote_graph, wrote_lake),
                "lake": (wrote_lake, wrote_index),
                "identity": (wrote_index, done),
            }.items():
                seconds[part] += stop - start
            counts["customers"] += count
            counts["identifiers"] += chunk.identifiers.num_rows
            counts["touchpoints"] += chunk.touchpoints.num_rows
            counts["next"] += chunk.next_edges.num_rows
            progress.advance(task, count)
    index.close()
    state = IngestState(settings.ingest_path / "ingest.sqlite")
    for key in ("batch", "chain_batch"):  # every lake batch's NEXT chains are in the graph
        state.put(key, str(batch))
    state.put("chain_map", "{}")
    state.close()
    began = time.perf_counter()
    open_timelines(settings).load()
    seconds["timelines"] = time.perf_counter() - began
    seconds["total"] = time.perf_counter() - started
    summary.counts = counts
    summary.seconds = {name: round(value, 1) for name, value in seconds.items()}
    summary.disk_mb = {
        "store": _disk_mb(settings.embedded_path.parent / settings.embedded_path.name),
        "lake": _disk_mb(lake.touchpoint_root),
        "timelines": _disk_mb(lake.root / "timelines"),
        "identity": _disk_mb(settings.ingest_path / "identity.sqlite"),
        "total": _disk_mb(folder),
    }
    marker.write_text(json.dumps({k: v for k, v in asdict(summary).items() if k != "reused"}))
    return summary


def check_world(folder: Path, spec: WorldSpec) -> dict[str, Any]:
    """Serve the world in-process and ask it for one customer and one frequency query."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.bootstrap import open_key_store

    settings = settings_for(folder)
    with open_key_store(settings) as keys:
        _, key = keys.create("bench-world-check", ["read"])
    customer = customer_ids(np.array([spec.customers // 2], np.int64), spec.seed)[0]
    headers = {"X-API-Key": key}
    with TestClient(create_app(settings)) as client:
        profile = client.get(f"/api/v1/customers/{customer}", headers=headers)
        profile.raise_for_status()
        journeys = client.post(
            "/api/v1/journeys/frequency", json={"anchor": "login"}, headers=headers
        )
        journeys.raise_for_status()
    found = profile.json()
    return {
        "customer": customer,
        "identifiers": found["identifiers"],
        "touchpoints": found["touchpoints"],
        "login_journeys": journeys.json()["total_journeys"],
    }


def print_summary(summary: WorldSummary, console: Console) -> None:
    """A table of what was built, how long it took and its size on disk."""
    table = Table(title=f"world at {summary.folder} ({'reused' if summary.reused else 'built'})")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, count in summary.counts.items():
        table.add_row(name, f"{count:,}")
    for name, value in summary.seconds.items():
        table.add_row(f"{name} seconds", f"{value:,.1f}")
    for name, value in summary.disk_mb.items():
        table.add_row(f"{name} MB", f"{value:,.1f}")
    console.print(table)


def main() -> None:
    """Build (or reuse) a world, check it serves, print a summary and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_FOLDER)
    args = parser.parse_args()
    console = Console(stderr=True)
    spec = WorldSpec(args.customers, args.seed)
    summary = build_world(args.out, spec, console)
    print_summary(summary, console)
    print(json.dumps({**asdict(summary), "check": check_world(args.out, spec)}, indent=2))


if __name__ == "__main__":
    main()
