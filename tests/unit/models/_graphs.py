"""Small telco graphs for the model tests, shaped like the graph ``ingest`` writes.

``TelcoGraph`` collects named customers, their touchpoints (attributes such as
``offer_id``, ``cell_id``, ``amount`` or ``csat`` as top-level Touchpoint properties,
the way ``ingest.frame_writer`` flattens them), shared identifiers with their
``first_seen``, devices, cells and a catalogue of offers, then writes it all through
the store's public upserts: Customer, Touchpoint, Identifier, Offer, Cell and Device
vertices; PERFORMED, NEXT, HAS_IDENTIFIER, ABOUT, AT_CELL and USES edges.

``planted_churn_graph`` builds households whose churn is relational: a customer
churns in the window exactly when another member of their household left shortly
before the cutoff, and nothing else about the customer tells them apart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from graph import GraphStore
from graph.model import (
    cell_id,
    customer_id,
    device_id,
    identifier_id,
    offer_id,
    touchpoint_id,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class TelcoGraph:
    """A hand-made journey graph, written to a store in one go by ``write``."""

    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    touchpoints: dict[str, list[tuple[str, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    links: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    """(customer name, identifier kind, value, first seen)."""
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def customer(self, name: str, **person: Any) -> str:
        """Add a customer (person fields: ``dob``, ``postcode``, ``address``, ...)."""
        self.customers.setdefault(name, {"first_name": name.title()}).update(person)
        return customer_id(name)

    def event(self, name: str, event_type: str, ts: datetime, **attributes: Any) -> str:
        """Add a touchpoint of customer ``name``; returns its vertex id."""
        self.customer(name)
        serial = len(self.touchpoints[name])
        tp = touchpoint_id(f"{name}-{serial:04d}")
        properties = {
            "event_type": event_type,
            "channel": "app",
            "ts": ts,
            "source": "test",
            **attributes,
        }
        self.touchpoints[name].append((tp, properties))
        return tp

    def identifier(self, name: str, kind: str, value: str, first_seen: datetime) -> str:
        """Link customer ``name`` to an identifier, first seen at ``first_seen``."""
        self.customer(name)
        self.links.append((name, kind, value, first_seen))
        return identifier_id(kind, value)

    def offer(
        self,
        key: str,
        margin_gbp: float,
        kind: str,
        category: str,
        launched_at: datetime | None = None,
        term_months: int = 12,
    ) -> str:
        """Add an offer to the catalogue (as ``ingest.catalogue`` loads it)."""
        properties: dict[str, Any] = {
            "offer_id": key,
            "margin_gbp": margin_gbp,
            "monthly_margin_gbp": margin_gbp / term_months,
            "term_months": term_months,
            "kind": kind,
            "category": category,
        }
        if launched_at is not None:
            properties["launched_at"] = launched_at
        self.offers[key] = properties
        return offer_id(key)

    def write(self, store: GraphStore) -> None:
        """Upsert everything collected so far (idempotent: write again after adding)."""
        store.upsert_vertices(
            "Customer", [(customer_id(name), dict(p)) for name, p in self.customers.items()]
        )
        vertices: list[tuple[str, dict[str, Any]]] = []
        performed: list[tuple[str, str, dict[str, Any]]] = []
        chain: list[tuple[str, str, dict[str, Any]]] = []
        about: list[tuple[str, str, dict[str, Any]]] = []
        at_cell: list[tuple[str, str, dict[str, Any]]] = []
        offers = {key: {"offer_id": key} for key in self.offers}
        cells: dict[str, dict[str, Any]] = {}
        for name, events in self.touchpoints.items():
            ordered = sorted(events, key=lambda event: (event[1]["ts"], event[0]))
            for position, (tp, properties) in enumerate(ordered):
                vertices.append((tp, properties))
                performed.append((customer_id(name), tp, {}))
                if position:
                    previous, before = ordered[position - 1]
                    gap = (properties["ts"] - before["ts"]).total_seconds()
                    chain.append((previous, tp, {"dt_seconds": gap}))
                if "offer_id" in properties:
                    offers.setdefault(properties["offer_id"], {"offer_id": properties["offer_id"]})
                    about.append((tp, offer_id(properties["offer_id"]), {}))
                if "cell_id" in properties:
                    cells[properties["cell_id"]] = {"cell_id": properties["cell_id"]}
                    at_cell.append((tp, cell_id(properties["cell_id"]), {}))
        for key, properties in self.offers.items():
            offers[key] = properties
        store.upsert_vertices("Touchpoint", vertices)
        store.upsert_vertices("Offer", [(offer_id(k), p) for k, p in offers.items()])
        store.upsert_vertices("Cell", [(cell_id(k), p) for k, p in cells.items()])
        store.upsert_edges("PERFORMED", performed)
        store.upsert_edges("NEXT", chain)
        store.upsert_edges("ABOUT", about)
        store.upsert_edges("AT_CELL", at_cell)
        self._write_links(store)

    def _write_links(self, store: GraphStore) -> None:
        identifiers: dict[str, dict[str, Any]] = {}
        devices: dict[str, dict[str, Any]] = {}
        has_identifier: list[tuple[str, str, dict[str, Any]]] = []
        uses: list[tuple[str, str, dict[str, Any]]] = []
        for name, kind, value, first_seen in self.links:
            key = identifier_id(kind, value)
            identifiers[key] = {"kind": kind, "value": value}
            has_identifier.append(
                (
                    customer_id(name),
                    key,
                    {
                        "method": "det",
                        "rule": kind,
                        "score": 1.0,
                        "first_seen": first_seen,
                        "last_seen": first_seen,
                    },
                )
            )
            if kind == "imei":
                devices[device_id(value)] = {"imei": value}
                uses.append((customer_id(name), device_id(value), {}))
        store.upsert_vertices("Identifier", list(identifiers.items()))
        store.upsert_edges("HAS_IDENTIFIER", has_identifier)
        store.upsert_vertices("Device", list(devices.items()))
        store.upsert_edges("USES", uses)


def routine(graph: TelcoGraph, name: str, start: datetime, end: datetime, rng: Any) -> None:
    """Ordinary life from ``start`` until before ``end``, the same for everyone.

    Each month a bill, an app login, an offer seen (now and then accepted) and a
    network KPI on one of four cells, on random days.
    """
    month = start
    while month < end:
        day = [month + int(rng.integers(1, 29)) * DAY for _ in range(4)]
        events: list[tuple[str, datetime, dict[str, Any]]] = [
            ("bill_issued", day[0], {"amount": float(rng.integers(20, 60))}),
            ("app_login", day[1], {}),
            ("offer_viewed", day[2], {"offer_id": f"O{int(rng.integers(0, 3))}"}),
            (
                "network_kpi",
                day[3],
                {"cell_id": f"C{int(rng.integers(0, 4))}", "call_drop_rate": rng.random() / 10},
            ),
        ]
        if rng.random() < 0.15:
            offer = f"O{int(rng.integers(0, 3))}"
            events.append(("offer_accepted", day[2] + DAY, {"offer_id": offer}))
        for event_type, ts, attributes in events:
            if ts < end:
                graph.event(name, event_type, ts, **attributes)
        month += timedelta(days=30)


@dataclass(frozen=True)
class PlantedChurn:
    """The data window of ``planted_churn_graph`` and who churns when."""

    end: datetime
    horizon_days: int
    train_cutoff: datetime
    holdout_cutoff: datetime
    households: int


def planted_churn_graph(
    households: int = 80, members: int = 3, horizon_days: int = 30, seed: int = 11
) -> tuple[TelcoGraph, PlantedChurn]:
    """Households (a shared account) where churn spreads from a member who left.

    ``training.holdout_cutoffs`` puts the training cutoff two horizons and the
    hold-out cutoff one horizon before the end of the data. A third of the households
    lose a first member a few days before the training cutoff and the rest of them in
    the training window; another third the same around the hold-out cutoff; the last
    third never churn. Everyone has the same routine otherwise, so a customer's own
    features say nothing about their label; only the household edge does.
    """
    rng = np.random.default_rng(seed)
    horizon = timedelta(days=horizon_days)
    end = datetime(2024, 7, 1, tzinfo=UTC)
    train_cutoff, holdout_cutoff = end - 2 * horizon, end - horizon
    graph = TelcoGraph()
    for key, category in enumerate(("data", "roaming", "home")):
        graph.offer(f"O{key}", 30.0 * (key + 1), "upsell", category, T0)
    for house in range(households):
        fate = house % 3
        cutoff = train_cutoff if fate == 0 else holdout_cutoff
        for member in range(members):
            name = f"h{house:03d}m{member}"
            graph.customer(name, dob=f"{1950 + int(rng.integers(0, 50))}-06-01")
            graph.identifier(name, "account", f"ACC{house:04d}", T0 + DAY)
            graph.identifier(name, "msisdn", f"+4477009{house:03d}{member:02d}", T0 + DAY)
            if fate == 2:
                leaves = None
            elif member == 0:
                leaves = cutoff - int(rng.integers(3, 10)) * DAY
            else:
                leaves = cutoff + int(rng.integers(2, horizon_days - 2)) * DAY
            stop = end - DAY if leaves is None else leaves
            routine(graph, name, T0 + int(rng.integers(0, 5)) * DAY, stop, rng)
            if leaves is not None:
                graph.event(name, "port_out", leaves)
    # The last touchpoint fixes where the data ends (``holdout_cutoffs`` reads it).
    graph.event("h002m0", "app_login", end - timedelta(hours=1))
    return graph, PlantedChurn(end, horizon_days, train_cutoff, holdout_cutoff, households)
