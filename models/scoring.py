"""Using a trained model: batch scores written back to the graph, and request-time prediction.

* ``score_customers`` scores every active customer as of a cutoff (default: the end of
  the data) and writes ``<task>_score``, ``<task>_model_version`` and
  ``<task>_scored_at`` onto the Customer vertices (next-best-offer also writes
  ``nbo_offers``, the top offers best first).
* ``Predictor.predict(customer_id)`` reads one customer's neighbourhood from the store
  at request time (the customer, household members sharing an account or email,
  their timelines and identifiers), builds the same features the model was trained
  on, and samples the neighbourhood with a fixed seed, so a customer who joined after
  training is scored, and the same request gives the same answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from graph.errors import InvalidInput, UnknownCustomer
from graph.store import GraphStore, Vertex
from models._tables import HOUSEHOLD_KINDS, GraphTables
from models.export import HOUSEHOLD_MAX, Snapshot, build_snapshot
from models.registry import LoadedModel, ModelRegistry
from models.tasks import TASKS
from models.training import predict

WRITE_BATCH = 20_000
Progress = Callable[[int, int], None]
"""``progress(done, total)`` while scores are written."""


@dataclass(frozen=True)
class ScoreSummary:
    """What a batch scoring run did."""

    task: str
    model_version: str
    cutoff: datetime
    customers: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the CLI."""
        return {
            "task": self.task,
            "model_version": self.model_version,
            "cutoff": self.cutoff.isoformat(),
            "customers": self.customers,
            "seconds": round(self.seconds, 3),
            "customers_per_second": round(self.customers / max(self.seconds, 1e-9)),
        }


@dataclass(frozen=True)
class OfferScore:
    """One offer for one customer: P(accept), margin and expected revenue."""

    offer_id: str
    probability: float
    margin_gbp: float

    @property
    def expected_revenue(self) -> float:
        """P(accept) x margin."""
        return self.probability * self.margin_gbp


@dataclass(frozen=True)
class Prediction:
    """A request-time prediction for one customer."""

    customer_id: str
    task: str
    model_version: str
    score: float
    offers: list[OfferScore] = field(default_factory=list)


def end_of_data(tables: GraphTables) -> datetime:
    """Midnight after the last touchpoint: the default scoring cutoff."""
    _, last = tables.span()
    return datetime.fromtimestamp((last // 86_400 + 1) * 86_400, UTC)


def score_customers(
    store: GraphStore,
    loaded: LoadedModel,
    cutoff: datetime | None = None,
    progress: Progress | None = None,
    tables: GraphTables | None = None,
) -> ScoreSummary:
    """Score every active customer as of ``cutoff`` and write the scores to the graph."""
    started = time.perf_counter()
    tables = tables or GraphTables.from_store(store)
    at = cutoff or end_of_data(tables)
    snapshot = _scoring_snapshot(loaded, tables, at)
    customers = np.flatnonzero(snapshot.data["customer"].active.numpy())
    scores = predict(loaded.model, snapshot, customers, loaded.task, loaded.config)
    table = _score_table(loaded, snapshot, customers, scores, at)
    total = table.num_rows
    for offset in range(0, total, WRITE_BATCH):
        store.upsert_vertex_table("Customer", table.slice(offset, WRITE_BATCH))
        if progress is not None:
            progress(min(offset + WRITE_BATCH, total), total)
    return ScoreSummary(
        loaded.task.name, loaded.card.version, at, total, time.perf_counter() - started
    )


def _scoring_snapshot(loaded: LoadedModel, tables: GraphTables, at: datetime) -> Snapshot:
    """The graph as of ``at`` in the model's feature schema (no labels: the future)."""
    horizon = timedelta(days=loaded.config.horizon_days)
    return build_snapshot(tables, at, horizon, loaded.card.schema, require_labels=False)


def _score_table(
    loaded: LoadedModel,
    snapshot: Snapshot,
    customers: NDArray[np.int64],
    scores: NDArray[np.float64],
    at: datetime,
) -> pa.Table:
    name = loaded.task.name
    columns: dict[str, Any] = {"id": pa.array(snapshot.customer_ids[customers], pa.string())}
    if loaded.task.kind == "ranking":
        ranking, _ = _offer_ranking(loaded, snapshot, scores)
        top = np.argsort(-ranking, axis=1, kind="stable")[:, : loaded.config.k]
        offer_ids = snapshot.offer_ids
        columns[f"{name}_score"] = pa.array(np.take_along_axis(ranking, top[:, :1], 1)[:, 0])
        columns[f"{name}_offers"] = pa.array([",".join(offer_ids[row]) for row in top])
    else:
        columns[f"{name}_score"] = pa.array(scores)
    columns[f"{name}_model_version"] = pa.array([loaded.card.version] * len(customers))
    columns[f"{name}_scored_at"] = pa.array([at] * len(customers), pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def _offer_ranking(
    loaded: LoadedModel, snapshot: Snapshot, scores: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """What offers are ranked by (P x margin, or P), with unlaunched offers last."""
    launched = snapshot.data["offer"].launched.numpy()
    margin = snapshot.offer_margin
    value = scores * margin if loaded.config.ranking == "revenue" else scores.copy()
    value[:, ~launched] = -np.inf
    return value, launched


class Predictor:
    """Request-time, inductive prediction for one customer at a time."""

    def __init__(self, store: GraphStore, registry: ModelRegistry) -> None:
        self.store = store
        self.registry = registry
        self._loaded: dict[str, LoadedModel] = {}

    def model(self, task: str) -> LoadedModel:
        """The promoted model of ``task`` (cached until ``reload``)."""
        current = self.registry.current_version(task)
        cached = self._loaded.get(task)
        if cached is None or cached.card.version != current:
            cached = self.registry.load(task)
            self._loaded[task] = cached
        return cached

    def predict(self, task: str, customer_id: str) -> Prediction:
        """Score ``customer_id`` for ``task`` from their neighbourhood as it is now."""
        loaded = self.model(task)
        tables = neighbourhood_tables(self.store, customer_id)
        _, last = tables.span()
        at = max(loaded.card.data_cutoff, datetime.fromtimestamp(last + 1, UTC))
        snapshot = _scoring_snapshot(loaded, tables, at)
        node = int(snapshot.customer_index([customer_id])[0])
        if node < 0:
            raise InvalidInput(f"customer {customer_id!r} has no touchpoints to predict from")
        # ``predict`` samples with the model's fixed seed: the same request, the same answer.
        scores = predict(loaded.model, snapshot, np.array([node]), loaded.task, loaded.config)
        if loaded.task.kind != "ranking":
            return Prediction(customer_id, task, loaded.card.version, float(scores[0]))
        ranking, launched = _offer_ranking(loaded, snapshot, scores)
        order = [i for i in np.argsort(-ranking[0], kind="stable") if launched[i]]
        offers = [
            OfferScore(
                str(snapshot.offer_ids[i]), float(scores[0, i]), float(snapshot.offer_margin[i])
            )
            for i in order[: loaded.config.k]
        ]
        return Prediction(
            customer_id, task, loaded.card.version, float(ranking[0, order[0]]), offers
        )


def neighbourhood_tables(store: GraphStore, customer_id: str) -> GraphTables:
    """One customer and their household, read from the store, as ``GraphTables``."""
    customer = store.get_vertex(customer_id)
    if customer is None or customer.label != "Customer":
        raise UnknownCustomer(f"customer {customer_id!r} is not in the graph")
    members: dict[str, Vertex] = {customer.id: customer}
    links: list[dict[str, Any]] = []
    for link in store.neighbours(customer.id, "out", ["HAS_IDENTIFIER"]):
        kind = link.vertex.id.split(":", 2)[1]
        if kind not in HOUSEHOLD_KINDS:
            continue
        sharing = store.neighbours(link.vertex.id, "in", ["HAS_IDENTIFIER"], HOUSEHOLD_MAX + 1)
        if len(sharing) <= HOUSEHOLD_MAX:
            members.update((other.vertex.id, other.vertex) for other in sharing)
    touchpoints: list[dict[str, Any]] = []
    for member in members.values():
        for link in store.neighbours(member.id, "out", ["HAS_IDENTIFIER"]):
            links.append({"source": member.id, "target": link.vertex.id, **link.edge.properties})
        for touchpoint in store.timeline(member.id):
            touchpoints.append(
                {"id": touchpoint.id, "customer": member.id, **touchpoint.properties}
            )
    return GraphTables.from_arrow(
        customers=pa.Table.from_pylist([{"id": v.id, **v.properties} for v in members.values()]),
        touchpoints=pa.Table.from_pylist(touchpoints),
        links=pa.Table.from_pylist(links),
        offers=store.export_vertices("Offer"),
    )


def customer_scores(store: GraphStore, customer_id: str) -> dict[str, dict[str, Any]]:
    """The batch scores on a Customer vertex, by task (``{}`` before any scoring)."""
    customer = store.get_vertex(customer_id)
    if customer is None or customer.label != "Customer":
        raise UnknownCustomer(f"customer {customer_id!r} is not in the graph")
    scores: dict[str, dict[str, Any]] = {}
    for task in TASKS:
        prefix = f"{task}_"
        found = {
            key.removeprefix(prefix): value
            for key, value in customer.properties.items()
            if key.startswith(prefix)
        }
        if "score" in found:
            scores[task] = found
    return scores
