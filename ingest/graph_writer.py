"""Writes resolved touchpoints into a ``GraphStore`` as the data model says.

For each touchpoint: its Customer, Identifier, Touchpoint, Offer, Cell and Device
vertices; PERFORMED, HAS_IDENTIFIER (with provenance and first/last seen), ABOUT,
AT_CELL and USES edges; and the customer's NEXT chain, kept correct when events
arrive out of order by re-linking the customer's whole timeline.

Every write is an idempotent upsert, so a batch interrupted half-way is completed
by writing it again; nothing is ever duplicated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from graph import EdgeLabel, GraphStore, VertexLabel
from graph.model import (
    PropertyValue,
    cell_id,
    device_id,
    identifier_id,
    offer_id,
)
from ingest.identifiers import IdentifierError, normalise_identifier
from ingest.touchpoint import Touchpoint

Props = dict[str, PropertyValue | None]


@dataclass(frozen=True)
class ResolvedTouchpoint:
    """A touchpoint and the customer it was resolved to, with how it was resolved."""

    customer: str
    touchpoint: Touchpoint
    method: str = "det"
    rule: str = "shared_identifier"
    score: float = 1.0


@dataclass
class WriteSummary:
    """What one ``GraphWriter.write`` call did."""

    touchpoints: int = 0
    customers: int = 0
    identifiers: int = 0
    next_edges: int = 0
    identifier_problems: list[str] = field(default_factory=list)

    def add(self, other: WriteSummary) -> None:
        """Accumulate another summary into this one."""
        self.touchpoints += other.touchpoints
        self.customers += other.customers
        self.identifiers += other.identifiers
        self.next_edges += other.next_edges
        self.identifier_problems += other.identifier_problems


@dataclass
class _Batch:
    customers: dict[str, Props] = field(default_factory=dict)
    identifiers: dict[str, Props] = field(default_factory=dict)
    touchpoints: dict[str, Props] = field(default_factory=dict)
    offers: dict[str, Props] = field(default_factory=dict)
    cells: dict[str, Props] = field(default_factory=dict)
    devices: dict[str, Props] = field(default_factory=dict)
    performed: dict[tuple[str, str], Props] = field(default_factory=dict)
    has_identifier: dict[tuple[str, str], Props] = field(default_factory=dict)
    about: dict[tuple[str, str], Props] = field(default_factory=dict)
    at_cell: dict[tuple[str, str], Props] = field(default_factory=dict)
    uses: dict[tuple[str, str], Props] = field(default_factory=dict)


def touchpoint_properties(touchpoint: Touchpoint) -> Props:
    """The Touchpoint vertex properties: the core fields plus the flat attributes."""
    props: Props = {
        "event_type": touchpoint.event_type,
        "channel": touchpoint.channel.value,
        "ts": touchpoint.ts,
        "source": touchpoint.source,
    }
    props.update(touchpoint.attributes)
    return props


class GraphWriter:
    """Upserts resolved touchpoints into a store; one ``write`` call per batch."""

    def __init__(self, store: GraphStore, region: str = "GB") -> None:
        self.store = store
        self.region = region

    def write(self, resolved: Iterable[ResolvedTouchpoint]) -> WriteSummary:
        """Write one batch of resolved touchpoints and relink the NEXT chains it touches."""
        items = list(resolved)
        summary = WriteSummary()
        if not items:
            return summary
        batch = _Batch()
        for item in items:
            self._collect(item, batch, summary)
        existing = [v.id for v in self.store.get_vertices(list(batch.customers))]
        # Read before writing: the NEXT chain of an existing customer links exactly their
        # timeline as it was, so relinking needs one timeline read and no edge reads.
        before = {
            customer: {
                v.id: _as_datetime(v.properties["ts"]) for v in self.store.timeline(customer)
            }
            for customer in existing
        }
        self._upsert(batch)
        summary.touchpoints = len(batch.touchpoints)
        summary.customers = len(batch.customers)
        summary.identifiers = len(batch.identifiers)
        summary.next_edges = self._relink(items, before)
        return summary

    def _collect(self, item: ResolvedTouchpoint, batch: _Batch, summary: WriteSummary) -> None:
        tp = item.touchpoint
        customer = item.customer
        person = {k: v for k, v in tp.person.model_dump().items() if v}
        batch.customers.setdefault(customer, {}).update(person)
        batch.touchpoints[tp.vertex_id] = touchpoint_properties(tp)
        batch.performed[(customer, tp.vertex_id)] = {}
        for kind, raw in tp.identifiers.items():
            try:
                value = normalise_identifier(kind, raw, self.region)
            except IdentifierError as error:
                summary.identifier_problems.append(f"{tp.event_id}: {error}")
                continue
            ident = identifier_id(kind, value)
            batch.identifiers[ident] = {"kind": kind, "value": value}
            link = batch.has_identifier.get((customer, ident))
            if link is None:
                batch.has_identifier[(customer, ident)] = {
                    "method": item.method,
                    "rule": item.rule,
                    "score": item.score,
                    "first_seen": tp.ts,
                    "last_seen": tp.ts,
                }
            else:
                link["first_seen"] = min(_as_datetime(link["first_seen"]), tp.ts)
                link["last_seen"] = max(_as_datetime(link["last_seen"]), tp.ts)
            if kind == "imei":
                batch.devices[device_id(value)] = {"imei": value}
                batch.uses[(customer, device_id(value))] = {}
        offer = tp.attributes.get("offer_id")
        if offer is not None:
            batch.offers.setdefault(offer_id(str(offer)), {"offer_id": str(offer)})
            batch.about[(tp.vertex_id, offer_id(str(offer)))] = {}
        cell = tp.attributes.get("cell_id")
        if cell is not None:
            batch.cells.setdefault(cell_id(str(cell)), {"cell_id": str(cell)})
            batch.at_cell[(tp.vertex_id, cell_id(str(cell)))] = {}

    def _upsert(self, batch: _Batch) -> None:
        self._merge_seen(batch.has_identifier)
        store = self.store
        store.upsert_vertices(VertexLabel.CUSTOMER, batch.customers.items())
        store.upsert_vertices(VertexLabel.TOUCHPOINT, batch.touchpoints.items())
        for label, vertices in (
            (VertexLabel.IDENTIFIER, batch.identifiers),
            (VertexLabel.OFFER, batch.offers),
            (VertexLabel.CELL, batch.cells),
            (VertexLabel.DEVICE, batch.devices),
        ):
            store.upsert_vertices(label, vertices.items())
        for edge_label, edges in (
            (EdgeLabel.PERFORMED, batch.performed),
            (EdgeLabel.HAS_IDENTIFIER, batch.has_identifier),
            (EdgeLabel.ABOUT, batch.about),
            (EdgeLabel.AT_CELL, batch.at_cell),
            (EdgeLabel.USES, batch.uses),
        ):
            store.upsert_edges(edge_label, [(s, t, p) for (s, t), p in edges.items()])

    def _merge_seen(self, links: dict[tuple[str, str], Props]) -> None:
        """Widen first/last seen with what the store already knows of each link."""
        by_customer: dict[str, list[str]] = defaultdict(list)
        for customer, ident in links:
            by_customer[customer].append(ident)
        for customer, idents in by_customer.items():
            known = {
                n.vertex.id: n.edge.properties
                for n in self.store.neighbours(customer, "out", [EdgeLabel.HAS_IDENTIFIER])
            }
            for ident in idents:
                old = known.get(ident)
                if old is None:
                    continue
                link = links[(customer, ident)]
                for key, pick in (("first_seen", min), ("last_seen", max)):
                    if isinstance(old.get(key), datetime):
                        link[key] = pick(_as_datetime(old[key]), _as_datetime(link[key]))
                for key in ("method", "rule", "score"):
                    # The first link's provenance stays; later sightings only widen the window.
                    if key in old:
                        link[key] = old[key]

    def _relink(
        self, items: Sequence[ResolvedTouchpoint], before: dict[str, dict[str, datetime]]
    ) -> int:
        """Relink the NEXT chain of every customer in the batch; returns edges written."""
        fresh_by_customer: dict[str, dict[str, datetime]] = defaultdict(dict)
        for item in items:
            fresh_by_customer[item.customer][item.touchpoint.vertex_id] = item.touchpoint.ts
        wanted: list[tuple[str, str, Props]] = []
        stale: list[tuple[str, str]] = []
        for customer, fresh in fresh_by_customer.items():
            old_times = before.get(customer, {})
            old_pairs = set(_consecutive(old_times))
            new_pairs = _consecutive({**old_times, **fresh})
            wanted += [
                (source, target, {"dt_seconds": seconds})
                for (source, target), seconds in new_pairs.items()
                if (source, target) not in old_pairs
            ]
            stale += [pair for pair in old_pairs if pair not in new_pairs]
        if stale:
            self.store.delete_edges(EdgeLabel.NEXT, stale)
        self.store.upsert_edges(EdgeLabel.NEXT, wanted)
        return len(wanted)


def _consecutive(times: dict[str, datetime]) -> dict[tuple[str, str], float]:
    """NEXT pairs of a timeline in (ts, id) order, with the seconds between them."""
    ordered = sorted((ts, vertex_id) for vertex_id, ts in times.items())
    return {
        (earlier[1], later[1]): (later[0] - earlier[0]).total_seconds()
        for earlier, later in zip(ordered, ordered[1:], strict=False)
    }


def _as_datetime(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value
