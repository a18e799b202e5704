"""One customer's view: profile, ordered journey and identifiers with provenance."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from graph import EdgeLabel, GraphStore, InvalidInput, UnknownCustomer, Vertex
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
    counts = store.degree(vertex.id, "out", [EdgeLabel.HAS_IDENTIFIER, EdgeLabel.PERFORMED])
    return CustomerProfile(
        vertex.id,
        vertex.properties,
        counts.get(EdgeLabel.HAS_IDENTIFIER.value, 0),
        counts.get(EdgeLabel.PERFORMED.value, 0),
    )


def customer_journey(
    store: GraphStore,
    customer: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[Vertex]:
    """The customer's touchpoints ordered by (ts, event id)."""
    return store.timeline(canonical_customer_id(customer), start, end, limit)


@dataclass(frozen=True)
class JourneyPage:
    """A page of a customer's touchpoints, and the cursor of the next page (None: last)."""

    touchpoints: list[Vertex]
    next_cursor: str | None


def journey_page(
    store: GraphStore,
    customer: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None = None,
) -> JourneyPage:
    """Up to ``limit`` touchpoints in (ts, id) order, after ``cursor`` if one is given.

    The cursor names the last touchpoint of the page before, so pages neither repeat
    nor skip touchpoints that share a timestamp, and touchpoints ingested meanwhile
    earlier in time do not shift later pages.
    """
    canonical = canonical_customer_id(customer)
    after = _read_cursor(cursor) if cursor is not None else None
    begin = start
    if after is not None:
        at = datetime.fromtimestamp(after[0] / 1_000_000, UTC)
        begin = at if start is None or at > start else start
    fetch = limit + 1 + (16 if after is not None else 0)
    while True:
        found = store.timeline(canonical, begin, end, fetch)
        page = [v for v in found if after is None or _position(v) > after]
        if len(page) > limit or len(found) < fetch:
            break
        fetch *= 4  # many touchpoints share the cursor's timestamp: look further
    more = len(page) > limit
    page = page[:limit]
    return JourneyPage(page, _write_cursor(_position(page[-1])) if more else None)


def _position(touchpoint: Vertex) -> tuple[int, str]:
    ts = touchpoint.properties.get("ts")
    micros = round(ts.timestamp() * 1_000_000) if isinstance(ts, datetime) else -(2**62)
    return micros, touchpoint.id


def _write_cursor(position: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[int, str]:
    try:
        micros, vertex = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(micros, int) or not isinstance(vertex, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput(
            "cursor is not one this API gave out (use next_cursor of the page before)"
        ) from None
    return micros, vertex


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
