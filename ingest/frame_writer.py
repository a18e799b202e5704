"""Writes resolved touchpoint frames into a ``GraphStore``, a column at a time.

``FrameWriter.write`` upserts one frame's Customer, Identifier, Touchpoint, Offer,
Cell and Device vertices and its PERFORMED, HAS_IDENTIFIER, ABOUT, AT_CELL and USES
edges through the stores' Arrow-table path. ``merge`` moves a merged customer's
edges to the survivor. NEXT chains are not written here: ``relink_chains`` computes
them from the lake for every customer a run touched, so they are right whatever the
order events arrived in, and writes only the difference.

Every write is an idempotent upsert, so a chunk interrupted half-way is completed
by writing it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from graph import EdgeLabel, GraphStore, VertexLabel
from graph.model import ID_PREFIX
from ingest.frame import IDENTIFIER_COLUMNS, PERSON_COLUMNS, TS_TYPE
from ingest.lake import Lake
from ingest.resolution.deterministic import Link

_TP: Final = ID_PREFIX[VertexLabel.TOUCHPOINT]
_OFFER: Final = ID_PREFIX[VertexLabel.OFFER]
_CELL: Final = ID_PREFIX[VertexLabel.CELL]
_DEVICE: Final = ID_PREFIX[VertexLabel.DEVICE]
_IDENT: Final = ID_PREFIX[VertexLabel.IDENTIFIER]
# Customer edges a merge moves to the survivor (Customer is only ever a source).
_CUSTOMER_EDGES: Final = (
    EdgeLabel.PERFORMED,
    EdgeLabel.HAS_IDENTIFIER,
    EdgeLabel.USES,
    EdgeLabel.REACHED,
)


def _prefixed(prefix: str, values: pa.Array[Any] | pa.ChunkedArray[Any]) -> pa.Array[Any]:
    joined: pa.Array[Any] = pc.binary_join_element_wise(  # type: ignore[call-overload]
        pa.scalar(prefix), values, ""
    )
    return joined


class FrameWriter:
    """Upserts resolved frames into a store (everything but the NEXT chains)."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store

    def write(
        self,
        frame: pa.Table,
        customers: pa.Array[Any],
        links: Mapping[tuple[str, str], Link],
    ) -> None:
        """Write one frame whose row ``i`` was resolved to ``customers[i]``."""
        if frame.num_rows == 0:
            return
        store = self.store
        touchpoints = _prefixed(_TP, frame.column("event_id"))
        attributes = _attribute_table(frame)
        store.upsert_vertex_table(VertexLabel.CUSTOMER, _customer_table(frame, customers))
        store.upsert_vertex_table(
            VertexLabel.TOUCHPOINT, _touchpoint_table(frame, touchpoints, attributes)
        )
        store.upsert_vertex_table(VertexLabel.IDENTIFIER, _identifier_table(frame))
        for name, prefix, label, edge in (
            ("offer_id", _OFFER, VertexLabel.OFFER, EdgeLabel.ABOUT),
            ("cell_id", _CELL, VertexLabel.CELL, EdgeLabel.AT_CELL),
        ):
            if name not in attributes.column_names:
                continue
            values = pc.cast(attributes.column(name), pa.string())
            present = values.is_valid()
            keys = values.filter(present)
            if len(keys) == 0:
                continue
            ids = _prefixed(prefix, keys)
            vertices = pa.Table.from_arrays([ids, keys], names=["id", name])
            vertices = vertices.group_by(["id", name]).aggregate([])
            store.upsert_vertex_table(label, vertices)
            store.upsert_edge_table(
                edge, pa.table({"source": touchpoints.filter(present), "target": ids})
            )
        store.upsert_edge_table(
            EdgeLabel.PERFORMED, pa.table({"source": customers, "target": touchpoints})
        )
        self._write_devices(frame, customers)
        self.write_links(links)

    def write_links(self, links: Mapping[tuple[str, str], Link]) -> None:
        """Upsert HAS_IDENTIFIER edges with their provenance and first/last seen."""
        if links:
            self.store.upsert_edge_table(EdgeLabel.HAS_IDENTIFIER, _link_table(links))

    def _write_devices(self, frame: pa.Table, customers: pa.Array[Any]) -> None:
        imei = frame.column("imei")
        present = imei.is_valid()
        if imei.null_count == len(imei):
            return
        values = imei.filter(present)
        devices = _prefixed(_DEVICE, values)
        self.store.upsert_vertex_table(
            VertexLabel.DEVICE,
            pa.Table.from_arrays([devices, values], names=["id", "imei"])
            .group_by(["id", "imei"])
            .aggregate([]),
        )
        uses = pa.table({"source": customers.filter(present), "target": devices})
        self.store.upsert_edge_table(
            EdgeLabel.USES, uses.group_by(["source", "target"]).aggregate([])
        )

    def merge(self, merges: Mapping[str, str]) -> None:
        """Move each merged customer's edges and details to its survivor, then drop it.

        One read of the losers that exist (those founded in the same batch have no
        vertex yet), one upsert per edge label and one delete for all of them.
        """
        store = self.store
        losing = store.get_vertices(list(merges))
        if not losing:
            return
        details: dict[str, dict[str, Any]] = {}
        moved: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for vertex in losing:
            survivor = merges[vertex.id]
            person = {k: v for k, v in vertex.properties.items() if k in PERSON_COLUMNS}
            details.setdefault(survivor, {}).update(person)
            for neighbour in store.neighbours(vertex.id, "out", list(_CUSTOMER_EDGES)):
                edge = neighbour.edge
                # Two losers may share a neighbour (a hub identifier): one edge remains.
                moved.setdefault(edge.label, {}).setdefault((survivor, edge.target), {}).update(
                    edge.properties
                )
        store.upsert_vertices(VertexLabel.CUSTOMER, list(details.items()))
        for label, edges in moved.items():
            store.upsert_edges(label, [(s, t, props) for (s, t), props in edges.items()])
        store.delete_vertices([vertex.id for vertex in losing])


def _customer_table(frame: pa.Table, customers: pa.Array[Any]) -> pa.Table:
    """One row per customer: the last non-null value of each person field."""
    table = frame.select(list(PERSON_COLUMNS)).append_column("id", customers)
    people = table.group_by("id", use_threads=False).aggregate(
        [(name, "last", pc.ScalarAggregateOptions(skip_nulls=True)) for name in PERSON_COLUMNS]
    )
    return people.rename_columns(["id", *PERSON_COLUMNS]) if people.num_columns else people


def _touchpoint_table(frame: pa.Table, ids: pa.Array[Any], attributes: pa.Table) -> pa.Table:
    core = frame.select(["event_type", "channel", "ts", "source"]).add_column(0, "id", ids)
    for name in attributes.column_names:
        if name not in core.column_names:
            core = core.append_column(name, attributes.column(name))
    return core


def _attribute_table(frame: pa.Table) -> pa.Table:
    """The ``attributes`` JSON objects as columns (Arrow's JSON reader, not a loop)."""
    text = frame.column("attributes")
    if frame.num_rows == 0:
        return pa.table({})
    payload = "\n".join(str(value) for value in text.to_pylist()).encode()
    try:
        table = pa_json.read_json(
            pa.BufferReader(payload),  # type: ignore[arg-type]
            read_options=pa_json.ReadOptions(block_size=max(len(payload) + 1, 1 << 20)),
        )
    except pa.ArrowInvalid:
        # Mixed value types under one key: decode row by row and keep each as text.
        rows = [orjson.loads(value or "{}") for value in text.to_pylist()]
        names = sorted({key for row in rows for key in row})
        table = pa.table(
            {
                name: pa.array(
                    [None if (v := row.get(name)) is None else str(v) for row in rows],
                    pa.string(),
                )
                for name in names
            }
        )
    keep = []
    for index, (name, column) in enumerate(zip(table.column_names, table.columns, strict=True)):
        if pa.types.is_nested(column.type) or pa.types.is_null(column.type):
            continue
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            # Arrow's reader turns ISO strings into zone-less timestamps of UTC (the
            # frame's attributes are UTC ISO text); the graph keeps them as UTC datetimes.
            table = table.set_column(index, name, pc.cast(column, pa.timestamp("ms", "UTC")))
        keep.append(name)
    return table.select(keep)


def _identifier_table(frame: pa.Table) -> pa.Table:
    parts = []
    for kind in IDENTIFIER_COLUMNS:
        values = pc.drop_null(frame.column(kind))
        if len(values) == 0:
            continue
        parts.append(
            pa.Table.from_arrays(
                [
                    _prefixed(f"{_IDENT}{kind}:", values),
                    pa.array([kind] * len(values), pa.string()),
                    values,
                ],
                names=["id", "kind", "value"],
            )
        )
    if not parts:
        return pa.table({"id": pa.array([], pa.string())})
    return pa.concat_tables(parts).group_by(["id", "kind", "value"]).aggregate([])


def _link_table(links: Mapping[tuple[str, str], Link]) -> pa.Table:
    pairs = list(links.items())
    return pa.table(
        {
            "source": [customer for (customer, _), _ in pairs],
            "target": [key for (_, key), _ in pairs],
            "method": [link.method for _, link in pairs],
            "rule": [link.rule for _, link in pairs],
            "score": pa.array([link.score for _, link in pairs], pa.float64()),
            "first_seen": pa.array([link.first_seen for _, link in pairs], TS_TYPE),
            "last_seen": pa.array([link.last_seen for _, link in pairs], TS_TYPE),
        }
    )


_CHAIN_SQL: Final = """
WITH rows AS (
    SELECT customer, 'tp:' || event_id AS tp, epoch_ms(ts) AS ms, event_id
    FROM {source}
    WHERE customer IN (SELECT customer FROM _affected)
)
SELECT tp AS source,
       lead(tp) OVER w AS target,
       (lead(ms) OVER w - ms) / 1000.0 AS dt_seconds
FROM rows
WINDOW w AS (PARTITION BY customer ORDER BY ms, event_id)
QUALIFY target IS NOT NULL
"""


def relink_chains(
    store: GraphStore,
    lake: Lake,
    affected: Iterable[str],
    before: tuple[int, Mapping[str, str]],
    after: Mapping[str, str],
) -> tuple[int, int]:
    """Make the NEXT chains of ``affected`` customers match the lake; returns (added, removed).

    ``before`` is ``(last batch already linked, merge map then)``: the chain the graph
    holds is the chain of those lake rows under that map, so the difference to the
    chain of every row under the current map (``after``) is all there is to write.
    """
    watermark, before_map = before
    wanted = sorted(set(affected))
    if not wanted:
        return 0, 0
    connection = duckdb.connect()
    try:
        connection.register("_affected", pa.table({"customer": wanted}))
        new_rel = lake.relation(connection, after)
        if new_rel is None:
            return 0, 0
        connection.register("_now", new_rel)
        new_pairs = connection.sql(_CHAIN_SQL.format(source="_now")).to_arrow_table()
        old_rel = lake.relation(connection, before_map, max_batch=watermark)
        if old_rel is None:
            raise RuntimeError("the lake emptied while relinking")
        connection.register("_then_all", old_rel)
        survivors = pa.table(
            {"loser": list(after), "survivor": [after[k] for k in after]}
            if after
            else {"loser": pa.array([], pa.string()), "survivor": pa.array([], pa.string())}
        )
        connection.register("_after_map", survivors)
        # Old chains of every customer that now maps into an affected one.
        connection.execute(
            "CREATE TEMP TABLE _then AS SELECT t.* FROM _then_all t "
            "LEFT JOIN _after_map m ON t.customer = m.loser "
            "WHERE coalesce(m.survivor, t.customer) IN (SELECT customer FROM _affected)"
        )
        old_customers = connection.sql("SELECT DISTINCT customer FROM _then").to_arrow_table()
        connection.register("_affected", old_customers)
        old_pairs = connection.sql(_CHAIN_SQL.format(source="_then")).to_arrow_table()
        connection.register("_new_pairs", new_pairs)
        connection.register("_old_pairs", old_pairs)
        fresh = connection.sql(
            "SELECT * FROM _new_pairs n ANTI JOIN _old_pairs o "
            "ON n.source = o.source AND n.target = o.target AND n.dt_seconds = o.dt_seconds"
        ).to_arrow_table()
        stale = connection.sql(
            "SELECT source, target FROM _old_pairs o ANTI JOIN _new_pairs n "
            "ON n.source = o.source AND n.target = o.target"
        ).to_arrow_table()
    finally:
        connection.close()
    removed = 0
    if stale.num_rows:
        pairs = zip(
            stale.column("source").to_pylist(), stale.column("target").to_pylist(), strict=True
        )
        removed = store.delete_edges(EdgeLabel.NEXT, [(str(s), str(t)) for s, t in pairs])
    if fresh.num_rows:
        store.upsert_edge_table(EdgeLabel.NEXT, fresh)
    return fresh.num_rows, removed


def link_appended(
    store: GraphStore, customers: Iterable[str], appended: set[str]
) -> tuple[int, int]:
    """Relink the NEXT chains of ``customers`` after touchpoints ``appended`` (ids) were
    added to them and nothing else changed; returns (added, removed).

    The chain the graph holds is that of each customer's touchpoints without the
    appended ones, so the difference is read from the graph alone: a push of 1,000
    events reads its 800-odd customers' touchpoints, where ``relink_chains`` scans the
    whole lake (seconds at a million customers). The same chains as ``relink_chains``
    under the same conditions.
    """
    wanted = sorted(set(customers))
    if not wanted:
        return 0, 0
    found = store.touchpoint_times(wanted).sort_by(
        [("customer", "ascending"), ("ts", "ascending"), ("id", "ascending")]
    )
    now = _chain(found)
    gone = pa.array(sorted(appended), pa.string())
    earlier = found.filter(pc.invert(pc.is_in(found.column("id"), gone)))
    then = _chain(earlier)
    fresh = sorted(now - then)
    linked_now = {(source, target) for source, target, _ in now}
    stale = sorted({(source, target) for source, target, _ in then} - linked_now)
    removed = store.delete_edges(EdgeLabel.NEXT, stale) if stale else 0
    if fresh:
        sources, targets, gaps = zip(*fresh, strict=True)
        store.upsert_edge_table(
            EdgeLabel.NEXT,
            pa.table(
                {
                    "source": pa.array(sources, pa.string()),
                    "target": pa.array(targets, pa.string()),
                    "dt_seconds": pa.array(gaps, pa.float64()),
                }
            ),
        )
    return len(fresh), removed


def _chain(touchpoints: pa.Table) -> set[tuple[str, str, float]]:
    """(touchpoint, next touchpoint, seconds between) of touchpoints sorted by customer
    and time: what ``_CHAIN_SQL`` computes from the lake."""
    if touchpoints.num_rows < 2:
        return set()
    owners = touchpoints.column("customer")
    same = pc.equal(owners.slice(1), owners.slice(0, len(owners) - 1)).to_numpy(
        zero_copy_only=False
    )
    ids = np.asarray(touchpoints.column("id").to_pylist(), dtype=object)
    micros = pc.cast(touchpoints.column("ts"), pa.int64()).to_numpy(zero_copy_only=False)
    gaps = (micros[1:] - micros[:-1]) / 1_000_000
    return set(
        zip(ids[:-1][same].tolist(), ids[1:][same].tolist(), gaps[same].tolist(), strict=True)
    )
