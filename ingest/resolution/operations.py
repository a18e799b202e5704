"""Manual corrections: merge customers, detach an identifier, work the review queue.

A data steward's decisions go through the same books as the resolver's: the
identity index records the merge or split (so ids handed out before still resolve),
the graph moves edges, the lake gets a correction part, and the NEXT chains of both
customers are relinked.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from graph import EdgeLabel, VertexLabel
from graph.errors import InvalidInput, UnknownCustomer
from ingest.frame import IDENTIFIER_COLUMNS
from ingest.pipeline import Ingestor
from ingest.resolution.deterministic import IdentityIndex, new_customer_id

MANUAL = "manual"


def merge_customers(ingestor: Ingestor, customers: Sequence[str]) -> str:
    """Merge customers into the oldest of them; returns the survivor."""
    index = ingestor.index
    live = list(dict.fromkeys(index.survivor(c) for c in customers))
    unknown = [c for c in live if c not in index.created]
    if unknown:
        raise UnknownCustomer(f"unknown customer(s): {', '.join(unknown)}")
    if len(live) < 2:
        raise InvalidInput("merging needs at least two different customers")
    survivor = min(live, key=lambda c: index.created[c])
    merges = {loser: survivor for loser in live if loser != survivor}
    for loser in merges:
        index.merge(loser, survivor, MANUAL)
    ingestor.writer.merge(merges)
    ingestor.writer.write_links(
        {(survivor, key): link for key, link in index.links_of(survivor).items()}
    )
    index.commit()
    ingestor.mark_affected([survivor])
    ingestor.link_chains()
    return survivor


@dataclass(frozen=True)
class Detached:
    """What ``detach_identifier`` did."""

    customer: str
    new_customer: str
    touchpoints_moved: int


def detach_identifier(ingestor: Ingestor, customer: str, identifier: str) -> Detached:
    """Give ``identifier`` and the touchpoints that carry it to a new customer (a split).

    ``identifier`` is an identifier vertex id (``id:email:ann@example.com``).
    """
    index = ingestor.index
    owner = index.survivor(customer)
    if owner not in index.created:
        raise UnknownCustomer(f"unknown customer {customer}")
    if identifier not in index.links_of(owner):
        raise InvalidInput(f"{owner} has no identifier {identifier}")
    kind, _, value = identifier.removeprefix("id:").partition(":")
    new = _unused_customer_id(index, f"detached:{owner}:{identifier}")
    moved = _touchpoints_with(ingestor, owner, kind, value)
    link = index.links_of(owner)[identifier]
    index.detach(owner, identifier, new)
    batch = ingestor.state.next_batch()
    ingestor.lake.correct(moved, new, f"detach-{time.time_ns()}", batch)
    store = ingestor.store
    store.upsert_vertices(VertexLabel.CUSTOMER, [(new, {})])
    touchpoints = [f"tp:{event}" for event in moved.column("event_id").to_pylist()]
    store.delete_edges(EdgeLabel.PERFORMED, [(owner, tp) for tp in touchpoints])
    store.upsert_edges(EdgeLabel.PERFORMED, [(new, tp, {}) for tp in touchpoints])
    store.delete_edges(EdgeLabel.HAS_IDENTIFIER, [(owner, identifier)])
    ingestor.writer.write_links({(new, identifier): link})
    index.commit()
    ingestor.mark_affected([owner, new])
    ingestor.link_chains()
    return Detached(owner, new, len(touchpoints))


def _unused_customer_id(index: IdentityIndex, seed: str) -> str:
    """A customer id derived from ``seed`` that the index has never handed out.

    The first detach of an identifier gets the same id on every replay; detaching it
    again after a merge back must not revive the merged-away customer, which the
    index still sends to the survivor.
    """
    candidate, attempt = new_customer_id(seed), 0
    while candidate in index.created:
        attempt += 1
        candidate = new_customer_id(f"{seed}:{attempt}")
    return candidate


def _touchpoints_with(ingestor: Ingestor, customer: str, kind: str, value: str) -> pa.Table:
    if kind not in IDENTIFIER_COLUMNS:
        raise InvalidInput(f"unknown identifier kind {kind!r} (known: {list(IDENTIFIER_COLUMNS)})")
    connection = duckdb.connect()
    try:
        relation = ingestor.lake.relation(connection, ingestor.index.merge_map())
        if relation is None:
            return pa.table({"event_id": pa.array([], pa.string())})
        connection.register("_lake_now", relation)
        return connection.execute(
            f"SELECT * FROM _lake_now WHERE customer = ? AND {kind} = ?", [customer, value]
        ).to_arrow_table()
    finally:
        connection.close()


def review_queue(ingestor: Ingestor, limit: int = 50) -> list[dict[str, Any]]:
    """Open review pairs, most probable first (empty before the first ``resolve``)."""
    path = ingestor.workdir / "review.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(str(path))
    try:
        rows = db.execute(
            "SELECT record_l, record_r, customer_l, customer_r, probability FROM review "
            "WHERE status = 'open' ORDER BY probability DESC LIMIT ?",
            (limit,),
        ).fetchall()
    finally:
        db.close()
    names = ("record_l", "record_r", "customer_l", "customer_r", "probability")
    return [dict(zip(names, row, strict=True)) for row in rows]
