"""``GraphStore``: the one interface every graph backend implements.

Public methods validate their input against the data model (``graph.model``) and
translate backend failures into the error tree (``graph.errors``); backends only
implement the ``_hooks``. Analyzers, resolvers and trainers take a store, never a
URL, so the embedded default and a Gremlin server are a switch in settings.

Semantics every backend keeps (the contract tests in ``tests/contract`` check them):

* ``upsert_*`` are idempotent and merge properties: a re-upsert overwrites the
  keys it names, keeps the others, and a ``None`` value removes a key. Re-upserting
  identical data reports every element as unchanged and writes nothing.
* One call is one batch: if any element of it is invalid or the backend fails,
  the store is left as it was before the call.
* Edges are identified by ``(label, source, target)``: there is at most one edge
  of a label between two vertices, with id ``edge_id(label, source, target)``.
* Datetimes come back timezone-aware in UTC.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd  # only for annotations: Arrow imports it when a frame is made

from graph.errors import InvalidInput, UnknownCustomer
from graph.model import (
    EDGE_TYPES,
    EdgeLabel,
    PropertyValue,
    VertexLabel,
    check_properties,
    check_vertex_id,
    edge_id,
    edge_label,
    plain_properties,
    vertex_ids_valid,
    vertex_label,
)

Properties = Mapping[str, PropertyValue | None]
VertexRecord = tuple[str, Properties]
"""``(vertex id, properties)`` as given to ``upsert_vertices``."""
EdgeRecord = tuple[str, str, Properties]
"""``(source id, target id, properties)`` as given to ``upsert_edges``."""
Direction = Literal["out", "in", "both"]


@dataclass(frozen=True)
class Vertex:
    """A vertex as read back from a store."""

    id: str
    label: str
    properties: dict[str, PropertyValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    """An edge as read back from a store."""

    label: str
    source: str
    target: str
    properties: dict[str, PropertyValue] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The deterministic edge id, ``LABEL:source>target``."""
        return edge_id(self.label, self.source, self.target)


@dataclass(frozen=True)
class Neighbour:
    """One step from a vertex: the edge taken and the vertex at its other end."""

    edge: Edge
    vertex: Vertex


@dataclass(frozen=True)
class UpsertResult:
    """What one upsert batch did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        """Elements created or updated."""
        return self.created + self.updated


class ChangeKind(StrEnum):
    """What happened to an element in the change feed."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed."""

    cursor: int
    kind: ChangeKind
    element: Literal["vertex", "edge"]
    label: str
    id: str
    target: Vertex | None = None
    """An edge's target vertex as it is now, when the feed was asked for targets."""


@dataclass(frozen=True)
class ChangeBatch:
    """Changes after a cursor, and the cursor to pass next time."""

    changes: list[Change]
    cursor: int


WantedChanges = Mapping[str, frozenset[ChangeKind]]
"""The change kinds a feed reader wants, by vertex or edge label."""
ALL_CHANGE_KINDS: Final = frozenset(ChangeKind)
"""Every kind of change: what a label named without kinds gets."""
_LABELS: Final = frozenset(VertexLabel) | frozenset(EdgeLabel)


def _wanted_changes(
    labels: Collection[str] | Mapping[str, Collection[str]] | None,
) -> WantedChanges | None:
    """``changes``' label filter checked, as kinds by label (None: everything)."""
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)):
        raise InvalidInput("labels must be a collection of labels, not a single string")
    wanted: dict[str, frozenset[ChangeKind]] = {}
    for label in labels:
        if not isinstance(label, str) or label not in _LABELS:
            raise InvalidInput(
                f"labels: {label!r} is not a vertex or edge label",
                details={"labels": sorted(_LABELS)},
            )
        kinds = labels[label] if isinstance(labels, Mapping) else ALL_CHANGE_KINDS
        if isinstance(kinds, (str, bytes)) or not kinds:
            raise InvalidInput(f"labels: the kinds of {label!r} must be a non-empty collection")
        unknown = [
            kind for kind in kinds if not isinstance(kind, str) or kind not in ALL_CHANGE_KINDS
        ]
        if unknown:
            raise InvalidInput(
                f"labels: {unknown[0]!r} (for {label!r}) is not a change kind",
                details={"kinds": [kind.value for kind in ChangeKind]},
            )
        wanted[str(label)] = frozenset(ChangeKind(kind) for kind in kinds)
    if not wanted:
        raise InvalidInput("labels must name at least one label (None for all of them)")
    return wanted


def _records(records: Iterable[Any]) -> list[Any]:
    if isinstance(records, (str, bytes, Mapping)):
        raise InvalidInput("records must be a sequence of tuples, not a single string or mapping")
    return list(records)


VERTEX_TABLE_KEYS: Final = ("id",)
"""The key column of a vertex table; every other column is a property."""
EDGE_TABLE_KEYS: Final = ("source", "target")
"""The key columns of an edge table; every other column is a property."""


def _check_table(table: object, key_columns: tuple[str, ...]) -> None:
    if not isinstance(table, pa.Table):
        raise InvalidInput(f"expected a pyarrow.Table, got {type(table).__name__}")
    names = table.column_names
    missing = [name for name in key_columns if name not in names]
    if missing:
        raise InvalidInput(
            f"the table has no {', '.join(map(repr, missing))} column",
            details={"columns": names},
        )
    if len(set(names)) < len(names):
        raise InvalidInput("the table has repeated column names", details={"columns": names})


def _table_records(table: pa.Table, key_columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Rows of a table as ``(*keys, properties)`` records, nulls left out."""
    records = []
    for row in table.to_pylist():
        keys = [row.pop(name) for name in key_columns]
        records.append((*keys, {key: value for key, value in row.items() if value is not None}))
    return records


_TUPLES: Final = frozenset({tuple})


def _columns(rows: list[Any], width: int) -> tuple[tuple[Any, ...], ...] | None:
    """``rows`` as ``width`` columns when every row is a tuple of that width."""
    if not _TUPLES.issuperset(map(type, rows)):
        return None
    try:
        columns = tuple(zip(*rows, strict=True))
    except ValueError:
        return None
    return columns if len(columns) == width else None


# Bulk batches are checked in two steps: the batch checks of ``graph.model`` say in a
# few passes whether everything is plain (nearly always), and only when they say no
# is the batch checked record by record to report the first bad one with its index.
# A plain batch goes to the backend as the caller's tuples: building new ones costs
# time, and more in garbage collection when the caller holds many objects.


def _plain_vertex_batch(
    label: VertexLabel, rows: list[Any]
) -> list[tuple[str, dict[str, PropertyValue | None]]] | None:
    columns = _columns(rows, 2)
    if columns is None:
        return None
    ids, properties = columns
    if vertex_ids_valid(label, ids) and plain_properties(properties):
        return rows
    return None


def _checked_vertex_batch(
    label: VertexLabel, rows: list[Any]
) -> list[tuple[str, dict[str, PropertyValue | None]]]:
    batch: list[tuple[str, dict[str, PropertyValue | None]]] = []
    for index, record in enumerate(rows):
        try:
            vertex_id, properties = record
        except (TypeError, ValueError):
            raise InvalidInput(
                f"vertex record {index} must be an (id, properties) pair",
                details={"index": index},
            ) from None
        try:
            check_vertex_id(label, vertex_id)
            checked = check_properties(f"{label} {vertex_id!r}", properties)
        except InvalidInput as error:
            error.details.setdefault("index", index)
            raise
        batch.append((vertex_id, checked))
    return batch


def _plain_edge_batch(
    label: EdgeLabel, rows: list[Any]
) -> list[tuple[str, str, dict[str, PropertyValue | None]]] | None:
    columns = _columns(rows, 3)
    if columns is None:
        return None
    sources, targets, properties = columns
    edge_type = EDGE_TYPES[label]
    if (
        vertex_ids_valid(edge_type.source, sources)
        and vertex_ids_valid(edge_type.target, targets)
        and plain_properties(properties)
    ):
        return rows
    return None


def _checked_edge_batch(
    label: EdgeLabel, rows: list[Any]
) -> list[tuple[str, str, dict[str, PropertyValue | None]]]:
    edge_type = EDGE_TYPES[label]
    batch: list[tuple[str, str, dict[str, PropertyValue | None]]] = []
    for index, record in enumerate(rows):
        try:
            source, target, properties = record
        except (TypeError, ValueError):
            raise InvalidInput(
                f"edge record {index} must be a (source, target, properties) triple",
                details={"index": index},
            ) from None
        try:
            check_vertex_id(edge_type.source, source)
            check_vertex_id(edge_type.target, target)
            checked = check_properties(f"{label} {source!r}>{target!r}", properties)
        except InvalidInput as error:
            error.details.setdefault("index", index)
            raise
        batch.append((source, target, checked))
    return batch


class GraphStore(abc.ABC):
    """A property-graph store holding the journeygraph data model.

    Use it as a context manager, or call ``close()``.
    """

    # --- writes ---------------------------------------------------------------

    def upsert_vertices(self, label: str, records: Iterable[VertexRecord]) -> UpsertResult:
        """Create or merge vertices of one label in one atomic batch."""
        parsed_label = vertex_label(label)
        rows = _records(records)
        if not rows:
            return UpsertResult()
        batch = _plain_vertex_batch(parsed_label, rows)
        if batch is None:
            batch = _checked_vertex_batch(parsed_label, rows)
        return self._upsert_vertices(parsed_label, batch)

    def upsert_edges(self, label: str, records: Iterable[EdgeRecord]) -> UpsertResult:
        """Create or merge edges of one label in one atomic batch.

        Both endpoints must exist already (``UnknownVertex`` otherwise) and have the
        labels the data model allows for this edge label.
        """
        parsed_label = edge_label(label)
        rows = _records(records)
        if not rows:
            return UpsertResult()
        batch = _plain_edge_batch(parsed_label, rows)
        if batch is None:
            batch = _checked_edge_batch(parsed_label, rows)
        return self._upsert_edges(parsed_label, batch)

    def upsert_vertex_table(self, label: str, table: pa.Table) -> UpsertResult:
        """Create or merge vertices of one label from an Arrow table in one atomic batch.

        The table has an ``id`` column and one column a property, as ``export_vertices``
        returns. It is checked and merged like ``upsert_vertices`` with one difference:
        a null is no value, so the vertex keeps what it had for that property (remove
        properties with ``upsert_vertices`` and ``None``). Backends may take a faster
        columnar path than the records.
        """
        parsed_label = vertex_label(label)
        _check_table(table, VERTEX_TABLE_KEYS)
        if table.num_rows == 0:
            return UpsertResult()
        return self._upsert_vertex_table(parsed_label, table)

    def upsert_edge_table(self, label: str, table: pa.Table) -> UpsertResult:
        """Create or merge edges of one label from an Arrow table in one atomic batch.

        The table has ``source`` and ``target`` columns and one column a property, as
        ``export_edges`` returns; otherwise as ``upsert_vertex_table`` and
        ``upsert_edges`` (nulls are no value, endpoints must exist).
        """
        parsed_label = edge_label(label)
        _check_table(table, EDGE_TABLE_KEYS)
        if table.num_rows == 0:
            return UpsertResult()
        return self._upsert_edge_table(parsed_label, table)

    def delete_vertices(self, ids: Iterable[str]) -> int:
        """Delete vertices and every edge touching them; returns vertices deleted."""
        wanted = [i for i in _records(ids) if isinstance(i, str)]
        return self._delete_vertices(wanted) if wanted else 0

    def delete_edges(self, label: str, pairs: Iterable[tuple[str, str]]) -> int:
        """Delete edges of one label given as ``(source, target)`` pairs."""
        parsed_label = edge_label(label)
        wanted = [(str(s), str(t)) for s, t in _records(pairs)]
        return self._delete_edges(parsed_label, wanted) if wanted else 0

    # --- reads ----------------------------------------------------------------

    def get_vertex(self, vertex_id: str) -> Vertex | None:
        """The vertex with this id, or ``None``."""
        found = self._get_vertices([vertex_id])
        return found[0] if found else None

    def get_vertices(self, ids: Sequence[str]) -> list[Vertex]:
        """The vertices with these ids that exist, in the order asked for."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        by_id = {v.id: v for v in self._get_vertices(wanted)}
        return [by_id[i] for i in wanted if i in by_id]

    def existing_vertices(self, ids: Sequence[str]) -> set[str]:
        """Which of these vertex ids exist (a cheaper question than their properties)."""
        wanted = list(dict.fromkeys(ids))
        return self._existing_vertices(wanted) if wanted else set()

    def _existing_vertices(self, ids: list[str]) -> set[str]:
        """Backends answer without decoding properties where they can."""
        return {vertex.id for vertex in self._get_vertices(ids)}

    def get_edge(self, label: str, source: str, target: str) -> Edge | None:
        """The ``label`` edge from ``source`` to ``target``, or ``None``."""
        return self._get_edge(edge_label(label), source, target)

    def find_vertices(
        self, label: str, where: Properties | None = None, limit: int = 1000
    ) -> list[Vertex]:
        """Vertices of one label whose properties equal every ``where`` item.

        Meant for lookups by a handful of properties; scans without an index on
        large labels, so prefer ``get_vertices`` with a deterministic id.
        """
        parsed_label = vertex_label(label)
        conditions = check_properties(f"{label} filter", dict(where or {}))
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return self._find_vertices(parsed_label, conditions, limit)

    def neighbours(
        self,
        vertex_id: str,
        direction: Direction = "both",
        edge_labels: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Neighbour]:
        """Edges touching a vertex and the vertices at their other ends."""
        if direction not in ("out", "in", "both"):
            raise InvalidInput(f"direction must be 'out', 'in' or 'both', got {direction!r}")
        labels = [edge_label(label) for label in edge_labels] if edge_labels else None
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return self._neighbours(vertex_id, direction, labels, limit)

    def degree(
        self,
        vertex_id: str,
        direction: Direction = "both",
        edge_labels: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """How many edges of each label touch a vertex (labels with none are left out).

        Counts without reading the edges or the vertices at their ends, so a customer
        360 can say "1,240 touchpoints" as cheaply as "3".
        """
        if direction not in ("out", "in", "both"):
            raise InvalidInput(f"direction must be 'out', 'in' or 'both', got {direction!r}")
        labels = [edge_label(label) for label in edge_labels] if edge_labels else None
        return self._degree(vertex_id, direction, labels)

    def timeline(
        self,
        customer: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Vertex]:
        """One customer's touchpoints ordered by ``(ts, event id)``, ``start <= ts < end``.

        Raises ``UnknownCustomer`` when the customer is not in the graph.
        """
        check_vertex_id(VertexLabel.CUSTOMER, customer)
        for name, bound in (("start", start), ("end", end)):
            if bound is not None and bound.tzinfo is None:
                raise InvalidInput(f"{name} must be a timezone-aware datetime")
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        if not self._get_vertices([customer]):
            raise UnknownCustomer(f"customer {customer!r} is not in the graph")
        return self._timeline(customer, start, end, limit)

    def touchpoint_times(self, customers: Sequence[str]) -> pa.Table:
        """Every touchpoint of these customers: ``customer``, ``id`` and ``ts`` (a UTC
        timestamp in microseconds), in no particular order. Unknown customers have none.

        What relinking a few customers' NEXT chains reads; a backend answers it in
        bulk where it can (by default, one ``timeline`` each).
        """
        for customer in customers:
            check_vertex_id(VertexLabel.CUSTOMER, customer)
        return self._touchpoint_times(list(dict.fromkeys(customers)))

    def _touchpoint_times(self, customers: list[str]) -> pa.Table:
        owners: list[str] = []
        ids: list[str] = []
        times: list[datetime | None] = []
        for customer in customers:
            try:
                found = self.timeline(customer)
            except UnknownCustomer:
                continue
            for vertex in found:
                owners.append(customer)
                ids.append(vertex.id)
                times.append(vertex.properties.get("ts"))  # type: ignore[arg-type]
        return pa.table(
            {
                "customer": pa.array(owners, pa.string()),
                "id": pa.array(ids, pa.string()),
                "ts": pa.array(times, pa.timestamp("us", "UTC")),
            }
        )

    def count(self, label: str | None = None) -> int:
        """Number of vertices (of one label, or all) in the store."""
        return self._count_vertices(vertex_label(label) if label else None)

    def count_edges(self, label: str | None = None) -> int:
        """Number of edges (of one label, or all) in the store."""
        return self._count_edges(edge_label(label) if label else None)

    def changes(
        self,
        since: int = 0,
        limit: int = 10_000,
        labels: Collection[str] | Mapping[str, Collection[str]] | None = None,
        targets: bool = False,
    ) -> ChangeBatch:
        """Elements created, updated or deleted after cursor ``since``, oldest first.

        ``labels`` keeps the changes of these vertex and edge labels only, or, as a
        mapping, of these labels and for each only these kinds (``ChangeKind`` values).
        The others are skipped by the backend, not counted in ``limit``, and the cursor
        returned is past them. With ``targets`` each edge change carries its target
        vertex as it is now (``Change.target``; None for a deleted edge), read in the
        same pass as the change.
        """
        if since < 0 or limit < 1:
            raise InvalidInput("since must be >= 0 and limit >= 1")
        return self._changes(since, limit, _wanted_changes(labels), targets)

    def export_vertices(self, label: str) -> pa.Table:
        """All vertices of one label as an Arrow table: ``id`` plus one column a property."""
        return self._export_vertices(vertex_label(label))

    def export_edges(self, label: str) -> pa.Table:
        """All edges of one label as an Arrow table: ``source``, ``target``, then properties."""
        return self._export_edges(edge_label(label))

    def export_frame(self, label: str) -> pd.DataFrame:
        """Vertices or edges of one label as a pandas frame (for analytics and training)."""
        if label in EdgeLabel.__members__.values():
            return self.export_edges(label).to_pandas()
        return self.export_vertices(label).to_pandas()

    # --- lifecycle ------------------------------------------------------------

    def ping(self) -> None:
        """Raise ``GraphUnavailable`` unless the store answers a trivial query."""
        self._ping()

    def warm(self) -> None:
        """Ask the backend to bring its data into memory ahead of requests, in the
        background (a service does this at start-up). Nothing by default: a remote
        server keeps its own caches."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files; the store is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- hooks for backends -----------------------------------------------------

    @abc.abstractmethod
    def _upsert_vertices(
        self, label: VertexLabel, batch: list[tuple[str, dict[str, PropertyValue | None]]]
    ) -> UpsertResult: ...

    @abc.abstractmethod
    def _upsert_edges(
        self, label: EdgeLabel, batch: list[tuple[str, str, dict[str, PropertyValue | None]]]
    ) -> UpsertResult: ...

    def _upsert_vertex_table(self, label: VertexLabel, table: pa.Table) -> UpsertResult:
        """The table as records through ``upsert_vertices``; backends may do better."""
        return self.upsert_vertices(label, _table_records(table, VERTEX_TABLE_KEYS))

    def _upsert_edge_table(self, label: EdgeLabel, table: pa.Table) -> UpsertResult:
        """The table as records through ``upsert_edges``; backends may do better."""
        return self.upsert_edges(label, _table_records(table, EDGE_TABLE_KEYS))

    @abc.abstractmethod
    def _delete_vertices(self, ids: list[str]) -> int: ...

    @abc.abstractmethod
    def _delete_edges(self, label: EdgeLabel, pairs: list[tuple[str, str]]) -> int: ...

    @abc.abstractmethod
    def _get_vertices(self, ids: list[str]) -> list[Vertex]: ...

    @abc.abstractmethod
    def _get_edge(self, label: EdgeLabel, source: str, target: str) -> Edge | None: ...

    @abc.abstractmethod
    def _find_vertices(
        self, label: VertexLabel, where: dict[str, PropertyValue | None], limit: int
    ) -> list[Vertex]: ...

    @abc.abstractmethod
    def _neighbours(
        self,
        vertex_id: str,
        direction: Direction,
        labels: list[EdgeLabel] | None,
        limit: int | None,
    ) -> list[Neighbour]: ...

    @abc.abstractmethod
    def _degree(
        self, vertex_id: str, direction: Direction, labels: list[EdgeLabel] | None
    ) -> dict[str, int]: ...

    @abc.abstractmethod
    def _timeline(
        self,
        customer: str,
        start: datetime | None,
        end: datetime | None,
        limit: int | None,
    ) -> list[Vertex]: ...

    @abc.abstractmethod
    def _count_vertices(self, label: VertexLabel | None) -> int: ...

    @abc.abstractmethod
    def _count_edges(self, label: EdgeLabel | None) -> int: ...

    @abc.abstractmethod
    def _changes(
        self, since: int, limit: int, wanted: WantedChanges | None, targets: bool
    ) -> ChangeBatch: ...

    @abc.abstractmethod
    def _export_vertices(self, label: VertexLabel) -> pa.Table: ...

    @abc.abstractmethod
    def _export_edges(self, label: EdgeLabel) -> pa.Table: ...

    @abc.abstractmethod
    def _ping(self) -> None: ...
