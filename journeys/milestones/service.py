"""``MilestoneService``: what the CLI and the HTTP API ask of milestones, in one place.

Built once by the composition root from a catalog, a store, the lake and the
identity merge map; every method is one question or one command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, Field

from graph import GraphStore, UnknownCustomer
from ingest.lake import Lake
from journeys.customer360 import canonical_customer_id
from journeys.milestones._graph import reached_edges, write_milestones
from journeys.milestones.backfill import (
    BackfillSummary,
    DryRunQuery,
    DryRunResult,
    DryRunRunner,
    MilestoneBackfill,
)
from journeys.milestones.catalog import MilestoneCatalog
from journeys.milestones.definitions import MilestoneDefinition
from journeys.milestones.incremental import FollowCursor, MilestoneFollower
from journeys.milestones.reaches import reaches_relation

MergeMapSource = Callable[[], Mapping[str, str]]
"""Gives the identity merge map as it is now (loser -> survivor)."""


class MilestoneSummary(BaseModel):
    """A definition with how many customers reached its current version."""

    name: str
    version: int
    description: str
    definition: dict[str, Any]
    reached: int = Field(description="customers who reached this version")
    first_reached_at: datetime | None = None
    last_reached_at: datetime | None = None


class CustomerMilestone(BaseModel):
    """A milestone one customer reached, as the graph holds it."""

    milestone: str
    version: int
    description: str
    reached_at: datetime
    evidence: list[str] = Field(description="event ids of the touchpoints, in time order")


class AddedDefinition(BaseModel):
    """A definition stored by ``add``."""

    milestone: str
    version: int
    path: str
    changed: bool = Field(description="false when the same definition was there already")


class MilestoneService:
    """Definitions, reaches, dry runs, backfills and the follower over one deployment."""

    def __init__(
        self,
        catalog: MilestoneCatalog,
        store: GraphStore,
        lake: Lake,
        merge_map: MergeMapSource,
        state_dir: Path,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.lake = lake
        self.merge_map = merge_map
        self.state_dir = state_dir

    def summaries(self, names: Iterable[str] | None = None) -> list[MilestoneSummary]:
        """The definitions (all, or the named ones) with their reach counts."""
        definitions = self.catalog.select(names)
        counts = self._reach_counts()
        summaries = []
        for definition in definitions:
            reached, first, last = counts.get(
                (definition.name, definition.version), (0, None, None)
            )
            summaries.append(
                MilestoneSummary(
                    name=definition.name,
                    version=definition.version,
                    description=definition.description,
                    definition=definition.document(),
                    reached=reached,
                    first_reached_at=first,
                    last_reached_at=last,
                )
            )
        return summaries

    def summary(self, name: str) -> MilestoneSummary:
        """One definition with its reach counts (``UnknownMilestone`` when unknown)."""
        return self.summaries([name])[0]

    def _reach_counts(self) -> dict[tuple[str, int], tuple[int, datetime | None, datetime | None]]:
        connection = duckdb.connect()
        try:
            relation = reaches_relation(connection, self.lake.root, self.merge_map())
            if relation is None:
                return {}
            rows = relation.aggregate(
                "milestone, version, count(*), min(reached_at), max(reached_at)"
            ).fetchall()
        finally:
            connection.close()
        return {(row[0], int(row[1])): (int(row[2]), row[3], row[4]) for row in rows}

    def customer_milestones(self, customer: str) -> list[CustomerMilestone]:
        """The milestones a customer reached, earliest first."""
        vertex_id = canonical_customer_id(customer)
        if self.store.get_vertex(vertex_id) is None:
            raise UnknownCustomer(f"customer {customer!r} is not in the graph")
        descriptions = {d.name: d.description for d in self.catalog.definitions()}
        edges = sorted(
            reached_edges(self.store, vertex_id).values(),
            key=lambda edge: (edge.reached_at, edge.milestone),
        )
        return [
            CustomerMilestone(
                milestone=edge.milestone,
                version=edge.version,
                description=descriptions.get(edge.milestone, ""),
                reached_at=edge.reached_at,
                evidence=list(edge.evidence),
            )
            for edge in edges
        ]

    def dry_run(self, query: DryRunQuery) -> DryRunResult:
        """Who would reach a definition; writes nothing."""
        return DryRunRunner(self.lake, self.catalog, self.merge_map).run(query)

    def backfill(
        self,
        names: Iterable[str] | None = None,
        progress: Callable[[MilestoneDefinition], None] | None = None,
    ) -> BackfillSummary:
        """Evaluate definitions (all, or the named ones) over the lake and store the reaches."""
        definitions = self.catalog.select(names)
        return MilestoneBackfill(self.lake, self.store).run(definitions, self.merge_map(), progress)

    def add(self, definition: MilestoneDefinition) -> AddedDefinition:
        """Store a definition in the catalog's folder and as a Milestone vertex."""
        path, changed = self.catalog.add(definition)
        write_milestones(self.store, [definition])
        return AddedDefinition(
            milestone=definition.name,
            version=definition.version,
            path=str(path),
            changed=changed,
        )

    def follower(self, batch_size: int = 20_000) -> MilestoneFollower:
        """A follower of the change feed for every definition, with its saved cursor."""
        return MilestoneFollower(
            self.store,
            self.lake.root,
            self.catalog.definitions(),
            FollowCursor(self.state_dir / "follow-cursor.json"),
            batch_size,
        )
