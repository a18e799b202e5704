"""The graph read once, as columns: what every snapshot of the model data is cut from.

``GraphTables.from_store`` exports the vertices and edges the models use through the
store's bulk export (``GraphStore.export_vertices`` / ``export_edges``), joins each
touchpoint to the customer who performed it, and keeps plain numpy columns: integer
customer codes, epoch seconds, categorical codes. Snapshots at different cutoffs
(training, hold-out, scoring) are then cheap masks over the same arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from graph.errors import InvalidInput
from graph.store import GraphStore
from ingest.lake import Lake

NUMERIC_ATTRIBUTES: Final = (
    "amount",
    "csat",
    "ratio",
    "roaming_amount",
    "call_drop_rate",
    "call_quality_impairment",
    "low_bitrate_share",
    "video_stalling_share",
)
"""Touchpoint attributes the features read (absent ones are NaN)."""
TEXT_ATTRIBUTES: Final = ("event_type", "outcome", "offer_id", "cell_id")
OFFER_PROPERTIES: Final = ("margin_gbp", "monthly_margin_gbp", "term_months")
HOUSEHOLD_KINDS: Final = ("account", "email")
"""Identifier kinds that members of one household share (family plans)."""
DEVICE_KIND: Final = "imei"


@dataclass
class Codes:
    """A categorical column: integer codes into ``values`` (-1 for missing)."""

    codes: NDArray[np.int64]
    values: NDArray[np.object_]

    @classmethod
    def of(cls, column: pa.ChunkedArray[Any] | pa.Array[Any] | None, size: int) -> Codes:
        """Dictionary-encode an Arrow string column (or an all-missing one)."""
        if column is None:
            return cls(np.full(size, -1, np.int64), np.array([], dtype=object))
        chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
        encoded: Any = pc.dictionary_encode(chunked).combine_chunks()
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        codes = np.where(pd.isna(indices), -1, indices).astype(np.int64)
        values: NDArray[np.object_] = np.asarray(encoded.dictionary.to_pylist(), dtype=np.object_)
        return cls(codes, values)

    def code_of(self, value: str) -> int:
        """The code of one value, or -1 when the column never holds it."""
        hits = np.flatnonzero(self.values == value)
        return int(hits[0]) if len(hits) else -1

    def codes_of(self, values: tuple[str, ...]) -> NDArray[np.int64]:
        """Codes of several values (those absent are left out)."""
        return np.array([c for c in (self.code_of(v) for v in values) if c >= 0], np.int64)


@dataclass
class GraphTables:
    """Customers, their touchpoints, identifiers and the offer catalogue, as arrays.

    Touchpoints are sorted by ``(customer, ts)``; ``customer`` holds codes into
    ``customer_ids``.
    """

    customer_ids: NDArray[np.object_]
    birth_year: NDArray[np.float64]
    address_key: NDArray[np.object_]
    """``postcode|address`` of customers a source gave an address for, else None."""
    customer: NDArray[np.int64]
    ts: NDArray[np.int64]
    text: dict[str, Codes]
    numeric: dict[str, NDArray[np.float64]]
    links: pd.DataFrame
    """Customer code, identifier id, kind and first_seen (epoch s) of each HAS_IDENTIFIER."""
    offers: pd.DataFrame
    """The Offer vertices: ``offer_id`` index, margin, kind and category columns."""

    @classmethod
    def from_store(
        cls,
        store: GraphStore,
        lake: Lake | None = None,
        merge_map: Mapping[str, str] | None = None,
    ) -> GraphTables:
        """Read what the models need from ``store`` (one bulk export per label).

        With ``lake`` (and the identity ``merge_map``), touchpoints come from the Parquet
        lake, the same resolved touchpoints in columns, which is an order of magnitude
        faster than exporting them from the graph; customers, identifiers and offers
        still come from the graph.
        """
        customers = store.export_vertices("Customer")
        if lake is not None and lake.files():
            touchpoints = _lake_touchpoints(lake, merge_map)
        else:
            touchpoints = _graph_touchpoints(store)
        return cls.from_arrow(
            customers=customers,
            touchpoints=touchpoints,
            links=store.export_edges("HAS_IDENTIFIER"),
            offers=store.export_vertices("Offer"),
        )

    @classmethod
    def from_arrow(
        cls,
        customers: pa.Table,
        touchpoints: pa.Table,
        links: pa.Table,
        offers: pa.Table,
    ) -> GraphTables:
        """Build from exported tables; ``touchpoints`` has a ``customer`` id column."""
        if customers.num_rows == 0:
            raise InvalidInput("the graph holds no customers: ingest touchpoints before training")
        if touchpoints.num_rows == 0:
            raise InvalidInput("the graph holds no touchpoints: ingest touchpoints before training")
        customer_ids = np.asarray(customers["id"].to_pylist(), dtype=object)
        position = pd.Index(customer_ids)
        owner = (
            pc.index_in(touchpoints["customer"], value_set=customers["id"].combine_chunks())
            .fill_null(-1)
            .to_numpy()
        )
        known = owner >= 0
        table = touchpoints.filter(pa.array(known))
        ts = pc.cast(table["ts"], pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
        customer = owner[known].astype(np.int64)
        ts = ts // 1_000_000
        order = np.lexsort((ts, customer))
        size = len(order)
        text = {name: Codes.of(_column(table, name, order), size) for name in TEXT_ATTRIBUTES}
        numeric = {name: _float_column(table, name, order) for name in NUMERIC_ATTRIBUTES}
        return cls(
            customer_ids=customer_ids,
            birth_year=_birth_years(customers),
            address_key=_address_keys(customers),
            customer=customer[order],
            ts=ts[order],
            text=text,
            numeric=numeric,
            links=_identifier_links(links, position),
            offers=_offers(offers.to_pandas()),
        )

    @property
    def customers(self) -> int:
        """Number of customers."""
        return len(self.customer_ids)

    def span(self) -> tuple[int, int]:
        """First and last touchpoint time (epoch seconds)."""
        return int(self.ts.min()), int(self.ts.max())


def _graph_touchpoints(store: GraphStore) -> pa.Table:
    """Touchpoint vertices with the customer who performed each (PERFORMED edges)."""
    table = store.export_vertices("Touchpoint")
    performed = store.export_edges("PERFORMED")
    if table.num_rows == 0 or performed.num_rows == 0:
        return pa.table({"customer": pa.array([], pa.string()), "ts": pa.array([], pa.int64())})
    owner = pd.Series(
        performed["source"].to_pylist(), index=pd.Index(performed["target"].to_pylist())
    )
    owner = owner[~owner.index.duplicated()]
    customers = owner.reindex(pd.Index(table["id"].to_pylist()))
    return table.append_column("customer", pa.array(customers.to_numpy(), pa.string()))


def _lake_touchpoints(lake: Lake, merge_map: Mapping[str, str] | None) -> pa.Table:
    """The lake's touchpoints with the attributes the features read, parsed by DuckDB."""
    text = [
        f"json_extract_string(attributes, '$.{name}') AS {name}"
        for name in TEXT_ATTRIBUTES
        if name != "event_type"
    ]
    numbers = [
        f"TRY_CAST(json_extract_string(attributes, '$.{name}') AS DOUBLE) AS {name}"
        for name in NUMERIC_ATTRIBUTES
    ]
    connection = duckdb.connect()
    try:
        relation = lake.relation(connection, merge_map)
        if relation is None:
            return pa.table({"customer": pa.array([], pa.string()), "ts": pa.array([], pa.int64())})
        connection.register("_touchpoints", relation)
        columns = ", ".join(["customer", "event_id AS id", "event_type", "ts", *text, *numbers])
        return connection.sql(f"SELECT {columns} FROM _touchpoints").to_arrow_table()
    finally:
        connection.close()


def _column(table: pa.Table, name: str, order: NDArray[np.int64]) -> pa.ChunkedArray[Any] | None:
    if name not in table.column_names:
        return None
    return table[name].cast(pa.string()).take(order)


def _float_column(table: pa.Table, name: str, order: NDArray[np.int64]) -> NDArray[np.float64]:
    if name not in table.column_names:
        return np.full(len(order), np.nan)
    column = pc.cast(table[name], pa.float64(), safe=False)
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    return values[order]


def _birth_years(customers: pa.Table) -> NDArray[np.float64]:
    if "dob" not in customers.column_names:
        return np.full(customers.num_rows, np.nan)
    dob = pd.to_datetime(customers["dob"].to_pandas(), errors="coerce", utc=True)
    years: Any = dob.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(years, dtype=np.float64)


def _address_keys(customers: pa.Table) -> NDArray[np.object_]:
    if not {"postcode", "address"} <= set(customers.column_names):
        return np.full(customers.num_rows, None, dtype=object)
    postcode = customers["postcode"].to_pandas().str.replace(" ", "").str.upper()
    address = customers["address"].to_pandas().str.lower()
    key = (postcode + "|" + address).to_numpy(dtype=object)
    key[(postcode.isna() | address.isna()).to_numpy()] = None
    return key


def _identifier_links(edges: pa.Table, position: pd.Index) -> pd.DataFrame:
    if edges.num_rows == 0:
        return pd.DataFrame(
            {
                "customer": np.array([], np.int64),
                "identifier": np.array([], object),
                "kind": np.array([], object),
                "first_seen": np.array([], np.float64),
            }
        )
    target = pd.Series(edges["target"].to_numpy(zero_copy_only=False))
    first_seen = (
        pc.cast(edges["first_seen"], pa.timestamp("us", tz="UTC"))
        .cast(pa.int64())
        .to_numpy(zero_copy_only=False)
        if "first_seen" in edges.column_names
        else np.zeros(edges.num_rows)
    )
    frame = pd.DataFrame(
        {
            "customer": position.get_indexer(pd.Index(edges["source"].to_pylist())),
            "identifier": target,
            "kind": target.str.split(":", n=2).str[1],
            "first_seen": np.nan_to_num(first_seen.astype(np.float64), nan=0.0) // 1_000_000,
        }
    )
    return frame[frame["customer"] >= 0].reset_index(drop=True)


def _offers(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(
            columns=[*OFFER_PROPERTIES, "kind", "category", "launched_at"],
            index=pd.Index([], name="offer_id", dtype=object),
        )
    frame["offer_id"] = frame["id"].str.removeprefix("offer:")
    for name in OFFER_PROPERTIES:
        values = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        frame[name] = pd.to_numeric(values, errors="coerce")
    for name in ("kind", "category"):
        frame[name] = frame[name] if name in frame else None
        frame[name] = frame[name].fillna("unknown")
    launched = frame["launched_at"] if "launched_at" in frame else pd.Series(pd.NaT, frame.index)
    frame["launched_at"] = pd.to_datetime(launched, utc=True, errors="coerce")
    return frame.set_index("offer_id")[
        [*OFFER_PROPERTIES, "kind", "category", "launched_at"]
    ].sort_index()
