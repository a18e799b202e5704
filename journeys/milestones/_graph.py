"""Reaches in the graph: Milestone vertices, REACHED and EVIDENCED_BY edges.

* ``Milestone`` ``ms:<name>``: name, version, description and the definition as JSON
  (the definitions as vertices, so a graph reader sees what a milestone means).
* ``REACHED`` Customer -> Milestone: reached_at, version, evidence_count, evidence
  (the event ids as a JSON list) and ``evaluated_for``, the customer the reach was
  evaluated for. A merge moves a loser's REACHED edges to the survivor with their
  properties (``ingest.frame_writer``); ``evaluated_for`` tells such a moved edge,
  which must be evaluated again on the merged timeline, from a current one.
* ``EVIDENCED_BY`` Milestone -> Touchpoint: customer, reached_at, version.

Every write is a bulk, idempotent upsert, so writing the same reaches again writes
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pyarrow as pa

from graph import EdgeLabel, GraphStore, VertexLabel
from graph.model import PropertyValue, milestone_id, touchpoint_id
from journeys.milestones.definitions import MilestoneDefinition
from journeys.milestones.reaches import Reach

_TS: Final = pa.timestamp("ms", tz="UTC")


@dataclass(frozen=True)
class ReachedEdge:
    """A REACHED edge as read back: what the graph says a customer reached, and when."""

    customer: str
    milestone: str
    version: int
    reached_at: datetime
    evidence: tuple[str, ...]
    evaluated_for: str

    @classmethod
    def parse(
        cls, customer: str, milestone: str, properties: Mapping[str, PropertyValue]
    ) -> ReachedEdge | None:
        """From an edge's properties; None when they are not a reach this package wrote."""
        reached_at = properties.get("reached_at")
        version = properties.get("version")
        evidence = properties.get("evidence")
        if not isinstance(reached_at, datetime) or not isinstance(version, int):
            return None
        try:
            ids = tuple(str(event) for event in json.loads(str(evidence)))
        except (TypeError, ValueError):
            ids = ()
        return cls(
            customer,
            milestone,
            version,
            reached_at,
            ids,
            str(properties.get("evaluated_for", customer)),
        )

    def same_as(self, reach: Reach) -> bool:
        """Whether the edge holds exactly this reach, evaluated for its own customer."""
        return (
            self.evaluated_for == reach.customer
            and self.version == reach.version
            and self.reached_at == reach.reached_at
            and self.evidence == reach.evidence
        )


def write_milestones(store: GraphStore, definitions: Iterable[MilestoneDefinition]) -> None:
    """Upsert one Milestone vertex per definition, holding the definition."""
    store.upsert_vertices(
        VertexLabel.MILESTONE,
        [
            (
                milestone_id(definition.name),
                {
                    "name": definition.name,
                    "version": definition.version,
                    "description": definition.description,
                    "definition": definition.to_json(),
                },
            )
            for definition in definitions
        ],
    )


def reached_edges(store: GraphStore, customer: str) -> dict[str, ReachedEdge]:
    """A customer's REACHED edges by milestone name."""
    found = {}
    for neighbour in store.neighbours(customer, "out", [EdgeLabel.REACHED]):
        milestone = neighbour.edge.target.removeprefix("ms:")
        edge = ReachedEdge.parse(customer, milestone, neighbour.edge.properties)
        if edge is not None:
            found[milestone] = edge
    return found


def write_reaches(
    store: GraphStore,
    reaches: Sequence[Reach],
    replaced: Mapping[tuple[str, str], Iterable[str]] | None = None,
) -> None:
    """Upsert REACHED and EVIDENCED_BY edges of reaches.

    ``replaced`` gives, per ``(customer, milestone)``, event ids that were evidence
    before; their EVIDENCED_BY edges go unless they are evidence still.
    """
    if reaches:
        store.upsert_edge_table(EdgeLabel.REACHED, _reached_table(reaches))
        store.upsert_edge_table(EdgeLabel.EVIDENCED_BY, _evidence_table(reaches))
    if replaced:
        current = {(r.customer, r.milestone): set(r.evidence) for r in reaches}
        stale = [
            (milestone_id(milestone), touchpoint_id(event))
            for (customer, milestone), events in replaced.items()
            for event in events
            if event not in current.get((customer, milestone), set())
        ]
        if stale:
            store.delete_edges(EdgeLabel.EVIDENCED_BY, sorted(set(stale)))


def retract_reaches(store: GraphStore, reached: Sequence[ReachedEdge]) -> None:
    """Delete REACHED edges and their EVIDENCED_BY edges (a reach that no longer holds)."""
    store.delete_edges(
        EdgeLabel.REACHED, [(edge.customer, milestone_id(edge.milestone)) for edge in reached]
    )
    evidence = {
        (milestone_id(edge.milestone), touchpoint_id(event))
        for edge in reached
        for event in edge.evidence
    }
    if evidence:
        store.delete_edges(EdgeLabel.EVIDENCED_BY, sorted(evidence))


def _reached_table(reaches: Sequence[Reach]) -> pa.Table:
    return pa.table(
        {
            "source": pa.array([reach.customer for reach in reaches], pa.string()),
            "target": pa.array([milestone_id(reach.milestone) for reach in reaches], pa.string()),
            "reached_at": pa.array([reach.reached_at for reach in reaches], _TS),
            "version": pa.array([reach.version for reach in reaches], pa.int64()),
            "evidence_count": pa.array([len(reach.evidence) for reach in reaches], pa.int64()),
            "evidence": pa.array(
                [json.dumps(list(reach.evidence)) for reach in reaches], pa.string()
            ),
            "evaluated_for": pa.array([reach.customer for reach in reaches], pa.string()),
        }
    )


def _evidence_table(reaches: Sequence[Reach]) -> pa.Table:
    # One edge per (milestone, touchpoint): a touchpoint belongs to one customer.
    rows = {
        (milestone_id(reach.milestone), touchpoint_id(event)): reach
        for reach in reaches
        for event in reach.evidence
    }
    return pa.table(
        {
            "source": pa.array([source for source, _ in rows], pa.string()),
            "target": pa.array([target for _, target in rows], pa.string()),
            "customer": pa.array([reach.customer for reach in rows.values()], pa.string()),
            "reached_at": pa.array([reach.reached_at for reach in rows.values()], _TS),
            "version": pa.array([reach.version for reach in rows.values()], pa.int64()),
        }
    )
