"""One customer's view: profile, ordered journey and identifiers with provenance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from graph import EdgeLabel, GraphStore, UnknownCustomer, Vertex
from graph.model import PropertyValue, VertexLabel, check_vertex_id, customer_id


@dataclass(frozen=True)
class CustomerProfile:
    """A customer vertex with counts of what hangs off it."""

    id: str
    properties: dict[str, PropertyValue]
    identifiers: int
    touchpoints: int


@dataclass(frozen=True)
class IdentifierLink:
    """An identifier of a customer and how it was linked (method, rule, score, seen)."""

    id: str
    kind: str
    value: str
    link: dict[str, PropertyValue]


def canonical_customer_id(raw: str) -> str:
    """Accept ``cust:<key>`` or a bare ``<key>``; validate and return ``cust:<key>``."""
    candidate = raw if raw.startswith("cust:") else customer_id(raw)
    return check_vertex_id(VertexLabel.CUSTOMER, candidate)


def customer_profile(store: GraphStore, customer: str) -> CustomerProfile:
    """The customer's properties and how many identifiers and touchpoints they have."""
    vertex = store.get_vertex(canonical_customer_id(customer))
    if vertex is None:
        raise UnknownCustomer(f"customer {customer!r} is not in the graph")
    links = store.neighbours(vertex.id, "out", [EdgeLabel.HAS_IDENTIFIER, EdgeLabel.PERFORMED])
    identifiers = sum(1 for n in links if n.edge.label == EdgeLabel.HAS_IDENTIFIER)
    return CustomerProfile(vertex.id, vertex.properties, identifiers, len(links) - identifiers)


def customer_journey(
    store: GraphStore,
    customer: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[Vertex]:
    """The customer's touchpoints ordered by (ts, event id)."""
    return store.timeline(canonical_customer_id(customer), start, end, limit)


def customer_identifiers(store: GraphStore, customer: str) -> list[IdentifierLink]:
    """The customer's identifiers, each with the provenance of its link."""
    cid = canonical_customer_id(customer)
    if store.get_vertex(cid) is None:
        raise UnknownCustomer(f"customer {customer!r} is not in the graph")
    return [
        IdentifierLink(
            id=n.vertex.id,
            kind=str(n.vertex.properties.get("kind", "")),
            value=str(n.vertex.properties.get("value", "")),
            link=n.edge.properties,
        )
        for n in store.neighbours(cid, "out", [EdgeLabel.HAS_IDENTIFIER])
    ]
