"""Backfill: every definition evaluated over the whole lake, vectorised, then written.

One DuckDB scan of the lake (customers mapped through the identity merge map) keeps
only touchpoints matching some step of some definition, with one flag column per
step, sorted by (customer, ts, event_id); ``_vectorised.first_reaches`` then finds
every customer's first completion of each definition in NumPy.

The result is compared with the reaches already stored, so a re-run writes nothing:
new and changed reaches are appended to the reach files, reaches that no longer hold
(after a customer was split, say) are dropped by rewriting the files, and the graph
gets the same reaches as idempotent upserts, its stale REACHED and EVIDENCED_BY
edges deleted. A dry run is the same evaluation without any write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from graph import EdgeLabel, GraphStore
from graph.model import milestone_id
from ingest.lake import Lake
from journeys.milestones._graph import (
    ReachedEdge,
    retract_reaches,
    write_milestones,
    write_reaches,
)
from journeys.milestones._matching import CompiledDefinition, step_sql
from journeys.milestones._vectorised import first_reaches
from journeys.milestones.catalog import MilestoneCatalog
from journeys.milestones.definitions import MilestoneDefinition, parse_definition
from journeys.milestones.reaches import (
    REACH_SCHEMA,
    Reach,
    ReachStore,
    reach_table,
    reaches_of,
    read_reaches,
)

MergeMap = Mapping[str, str]
_TS: Final = pa.timestamp("ms", tz="UTC")


@dataclass(frozen=True)
class LakeEvaluation:
    """Reaches found in the lake, per definition key (``name@version``)."""

    customers: int
    touchpoints: int
    reaches: dict[str, pa.Table]


def evaluate_lake(
    lake: Lake, definitions: Sequence[MilestoneDefinition], merge_map: MergeMap | None = None
) -> LakeEvaluation:
    """Every customer's first reach of each definition, from the lake; writes nothing."""
    connection = duckdb.connect()
    try:
        relation = lake.relation(connection, merge_map)
        empty = {d.key: REACH_SCHEMA.empty_table() for d in definitions}
        if relation is None or not definitions:
            return LakeEvaluation(0, 0, empty)
        connection.register("_milestone_lake", relation)
        counted = connection.sql(
            "SELECT count(*), count(DISTINCT customer) FROM _milestone_lake"
        ).fetchone()
        touchpoints, customers = (int(counted[0]), int(counted[1])) if counted else (0, 0)
        params: list[Any] = []
        flags = [
            f"{step_sql(step, params)} AS f{d}_{s}"
            for d, definition in enumerate(definitions)
            for s, step in enumerate(definition.condition.steps)
        ]
        names = [
            f"f{d}_{s}"
            for d, definition in enumerate(definitions)
            for s in range(len(definition.condition.steps))
        ]
        rows = connection.execute(
            f"SELECT * FROM (SELECT customer, epoch_ms(ts) AS ts, event_id, {', '.join(flags)} "
            f"FROM _milestone_lake) WHERE {' OR '.join(names)} ORDER BY customer, ts, event_id",
            params,
        ).to_arrow_table()
    finally:
        connection.close()
    reaches = {
        definition.key: _definition_reaches(rows, definition, d)
        for d, definition in enumerate(definitions)
    }
    return LakeEvaluation(customers, touchpoints, reaches)


def _definition_reaches(rows: pa.Table, definition: MilestoneDefinition, index: int) -> pa.Table:
    steps = len(definition.condition.steps)
    masks = [
        rows.column(f"f{index}_{s}").to_numpy(zero_copy_only=False).astype(bool)
        for s in range(steps)
    ]
    relevant = np.flatnonzero(np.logical_or.reduce(masks)) if masks else np.empty(0, np.int64)
    if len(relevant) == 0:
        return REACH_SCHEMA.empty_table()
    customer_column = rows.column("customer").take(relevant)
    encoded: Any = pc.dictionary_encode(customer_column).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ts = rows.column("ts").to_numpy()[relevant].astype(np.int64)
    found = first_reaches(
        codes,
        ts,
        [mask[relevant] for mask in masks],
        CompiledDefinition.of(definition).steps,
    )
    count = len(found.completion)
    events = rows.column("event_id").take(relevant[found.evidence.ravel()])
    width = found.evidence.shape[1]
    return pa.table(
        {
            "customer": customer_column.take(found.completion).combine_chunks(),
            "milestone": pa.array([definition.name] * count, pa.string()),
            "version": pa.array(np.full(count, definition.version, np.int64)),
            "reached_at": pa.array(ts[found.completion], pa.int64()).cast(_TS),
            "evidence": pa.ListArray.from_arrays(
                pa.array(np.arange(count + 1, dtype=np.int32) * width), events.combine_chunks()
            ),
        },
        schema=REACH_SCHEMA,
    )


class BackfillSummary(BaseModel):
    """What a backfill found and wrote."""

    milestones: list[str] = Field(description="definition keys, name@version")
    customers_evaluated: int
    touchpoints: int
    reaches: int = Field(description="customers reaching, over all milestones")
    new: int
    updated: int = Field(description="reaches that moved earlier or changed evidence")
    unchanged: int
    retracted: int = Field(description="stored reaches that no longer hold")
    per_milestone: dict[str, dict[str, int]]
    seconds: float


class MilestoneBackfill:
    """Evaluates definitions over the lake and stores the reaches (files and graph)."""

    def __init__(self, lake: Lake, store: GraphStore | None = None) -> None:
        self.lake = lake
        self.store = store
        self.reaches = ReachStore(lake.root)

    def run(
        self,
        definitions: Sequence[MilestoneDefinition],
        merge_map: MergeMap | None = None,
        progress: Callable[[MilestoneDefinition], None] | None = None,
    ) -> BackfillSummary:
        """Evaluate and store; ``progress`` is called as each definition is done."""
        started = time.perf_counter()
        evaluation = evaluate_lake(self.lake, definitions, merge_map)
        stored = read_reaches(self.lake.root, merge_map)
        changes = _Changes()
        for definition in definitions:
            changes.compare(definition, evaluation.reaches[definition.key], stored)
            if progress is not None:
                progress(definition)
        if changes.retracted:
            self.reaches.replace(changes.rebuilt(stored))
        else:
            self.reaches.append(reach_table(changes.written))
        if self.store is not None:
            _write_graph(self.store, definitions, evaluation)
        per_milestone = changes.per_milestone
        return BackfillSummary(
            milestones=[definition.key for definition in definitions],
            customers_evaluated=evaluation.customers,
            touchpoints=evaluation.touchpoints,
            reaches=sum(counts["reaches"] for counts in per_milestone.values()),
            new=sum(counts["new"] for counts in per_milestone.values()),
            updated=sum(counts["updated"] for counts in per_milestone.values()),
            unchanged=sum(counts["unchanged"] for counts in per_milestone.values()),
            retracted=len(changes.retracted),
            per_milestone=per_milestone,
            seconds=round(time.perf_counter() - started, 3),
        )


class _Changes:
    """Reaches found compared with the stored ones, definition by definition."""

    def __init__(self) -> None:
        self.written: list[Reach] = []
        self.retracted: set[tuple[str, str, int]] = set()
        self.per_milestone: dict[str, dict[str, int]] = {}

    def compare(self, definition: MilestoneDefinition, found: pa.Table, stored: pa.Table) -> None:
        mine = pc.and_(
            pc.equal(stored.column("milestone"), pa.scalar(definition.name)),
            pc.equal(stored.column("version"), pa.scalar(definition.version)),
        )
        before = {reach.customer: reach for reach in reaches_of(stored.filter(mine))}
        counts = {"reaches": found.num_rows, "new": 0, "updated": 0, "unchanged": 0}
        seen = set()
        for reach in reaches_of(found):
            seen.add(reach.customer)
            old = before.get(reach.customer)
            if old == reach:
                counts["unchanged"] += 1
                continue
            counts["new" if old is None else "updated"] += 1
            self.written.append(reach)
        gone = [customer for customer in before if customer not in seen]
        counts["retracted"] = len(gone)
        self.retracted.update((customer, definition.name, definition.version) for customer in gone)
        self.per_milestone[definition.key] = counts

    def rebuilt(self, stored: pa.Table) -> pa.Table:
        """All stored reaches with the changes applied and the retracted ones left out."""
        current = {reach.key: reach for reach in reaches_of(stored)}
        for key in self.retracted:
            current.pop(key, None)
        current.update({reach.key: reach for reach in self.written})
        return reach_table(sorted(current.values(), key=lambda reach: reach.key))


def _write_graph(
    store: GraphStore,
    definitions: Sequence[MilestoneDefinition],
    evaluation: LakeEvaluation,
) -> None:
    """Make the graph hold exactly the reaches found, for these definitions."""
    write_milestones(store, definitions)
    wanted = {milestone_id(d.name): d for d in definitions}
    found = [
        reach
        for definition in definitions
        for reach in reaches_of(evaluation.reaches[definition.key])
    ]
    keep = _in_graph(store, found)
    reached = store.export_edges(EdgeLabel.REACHED)
    evidenced = store.export_edges(EdgeLabel.EVIDENCED_BY)
    reaching = {(reach.customer, milestone_id(reach.milestone)) for reach in keep}
    stale = [
        edge
        for row in reached.to_pylist()
        if row["target"] in wanted and (row["source"], row["target"]) not in reaching
        if (edge := ReachedEdge.parse(row["source"], row["target"][3:], row)) is not None
    ]
    if stale:
        retract_reaches(store, stale)
    evidence = {
        (milestone_id(reach.milestone), "tp:" + event) for reach in keep for event in reach.evidence
    }
    unsupported = sorted(
        (row["source"], row["target"])
        for row in evidenced.select(["source", "target"]).to_pylist()
        if row["source"] in wanted and (row["source"], row["target"]) not in evidence
    )
    if unsupported:
        store.delete_edges(EdgeLabel.EVIDENCED_BY, unsupported)
    write_reaches(store, keep)


def _in_graph(store: GraphStore, reaches: list[Reach]) -> list[Reach]:
    """The reaches whose customer and evidence touchpoints are all in the graph."""
    customers = store.existing_vertices(sorted({reach.customer for reach in reaches}))
    touchpoints = store.existing_vertices(
        sorted({"tp:" + event for reach in reaches for event in reach.evidence})
    )
    return [
        reach
        for reach in reaches
        if reach.customer in customers
        and all("tp:" + event in touchpoints for event in reach.evidence)
    ]


class DryRunQuery(BaseModel):
    """Who would reach a milestone: a stored definition by name, or one given inline."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="a definition in the catalog")
    definition: dict[str, Any] | None = Field(
        default=None,
        description="a definition given inline (name, version, description, condition)",
    )
    sample: int = Field(default=10, ge=0, le=1000, description="how many reaches to show")

    @model_validator(mode="after")
    def _one_definition(self) -> DryRunQuery:
        if (self.name is None) == (self.definition is None):
            raise ValueError("give either name or definition")
        return self


class ReachOut(BaseModel):
    """One reach as shown by a dry run or a customer's milestones."""

    customer: str
    milestone: str
    version: int
    reached_at: datetime
    evidence: list[str]


class DryRunResult(BaseModel):
    """Who would reach a definition if it were backfilled now."""

    milestone: str
    version: int
    definition: dict[str, Any]
    customers_evaluated: int
    touchpoints: int
    reached: int
    sample: list[ReachOut] = Field(description="the earliest reaches, by reached_at then customer")
    seconds: float


class DryRunRunner:
    """Evaluates one definition over the lake and returns who would reach it."""

    def __init__(
        self,
        lake: Lake,
        catalog: MilestoneCatalog,
        merge_map: Callable[[], MergeMap] | None = None,
    ) -> None:
        self.lake = lake
        self.catalog = catalog
        self.merge_map = merge_map

    def run(self, query: DryRunQuery) -> DryRunResult:
        """Evaluate without writing anything."""
        started = time.perf_counter()
        if query.definition is not None:
            definition = parse_definition(query.definition, origin="dry run")
        else:
            assert query.name is not None
            definition = self.catalog.get(query.name)
        merge_map = self.merge_map() if self.merge_map is not None else None
        evaluation = evaluate_lake(self.lake, [definition], merge_map)
        found = evaluation.reaches[definition.key]
        earliest = found.sort_by([("reached_at", "ascending"), ("customer", "ascending")])
        return DryRunResult(
            milestone=definition.name,
            version=definition.version,
            definition=definition.document(),
            customers_evaluated=evaluation.customers,
            touchpoints=evaluation.touchpoints,
            reached=found.num_rows,
            sample=[
                ReachOut(
                    customer=reach.customer,
                    milestone=reach.milestone,
                    version=reach.version,
                    reached_at=reach.reached_at,
                    evidence=list(reach.evidence),
                )
                for reach in reaches_of(earliest.slice(0, query.sample))
            ],
            seconds=round(time.perf_counter() - started, 3),
        )
