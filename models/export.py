"""``to_hetero_data``: the journey graph as of a cutoff, as a PyG ``HeteroData``.

Node types and their features (every feature is computed from touchpoints *before*
the cutoff, so nothing after it leaks in):

* ``customer``: counts of each event type (all history, last 30 and 90 days), tenure,
  days idle, age, bills, bill shocks, roaming, CSAT, the network quality the customer
  felt, offers accepted per category, and whether they had already left;
* ``cell``: the quality its subscribers measured in the last 90 days, subscribers,
  complaint tickets;
* ``device``: how many customers use it;
* ``offer``: margin, monthly margin, term, kind and category from the catalogue (the
  features let a model score an offer added after training).

Edge types (each with its reverse, ``rev_<name>``): ``customer -at-> cell`` (a
touchpoint on that cell), ``customer -uses-> device`` (an IMEI seen before the
cutoff), ``customer -household-> customer`` (a shared account or email, or the same
address; groups larger than ``HOUSEHOLD_MAX`` are hubs, not households),
``customer -accepted-> offer`` and ``customer -viewed-> offer``.

Labels come from the window ``[cutoff, cutoff + horizon)``: ``churn`` (a port-out or
cancellation), ``fraud`` (a confirmed fraud), ``csat`` (mean survey score, where there
is one) and ``nbo`` (which offers each customer accepted). Only customers still
active at the cutoff (``data['customer'].active``) are labelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch_geometric.data import HeteroData

from graph.errors import InvalidInput
from graph.store import GraphStore
from models._tables import DEVICE_KIND, HOUSEHOLD_KINDS, GraphTables

DAY: Final = 86_400
CHURN_EVENTS: Final = ("port_out", "cancellation")
ACCEPTED_EVENTS: Final = ("offer_accepted",)
VIEWED_EVENTS: Final = ("offer_viewed",)
FRAUD_OUTCOME: Final = "fraud_confirmed"
NETWORK_METRICS: Final = (
    "call_drop_rate",
    "call_quality_impairment",
    "low_bitrate_share",
    "video_stalling_share",
)
OFFER_KINDS: Final = ("retention", "upsell", "cross_sell", "unknown")
HOUSEHOLD_MAX: Final = 6
DEFAULT_HORIZON: Final = timedelta(days=60)

EdgeType = tuple[str, str, str]
EDGE_TYPES: Final[tuple[EdgeType, ...]] = (
    ("customer", "at", "cell"),
    ("customer", "uses", "device"),
    ("customer", "household", "customer"),
    ("customer", "accepted", "offer"),
    ("customer", "viewed", "offer"),
)


@dataclass(frozen=True)
class FeatureSchema:
    """Names of the features of each node type, fixed by the first (training) snapshot.

    Later snapshots (hold-out, scoring, a request-time neighbourhood) are built with the
    trained model's schema, so their columns line up whatever the data holds.
    """

    customer: tuple[str, ...]
    cell: tuple[str, ...]
    offer: tuple[str, ...]
    categories: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str]]:
        """A JSON-ready form (the registry saves it with each model)."""
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, raw: dict[str, list[str]]) -> FeatureSchema:
        """The inverse of ``to_dict``."""
        return cls(**{name: tuple(raw[name]) for name in cls.__dataclass_fields__})


@dataclass
class Snapshot:
    """A ``HeteroData`` as of ``cutoff`` and what is needed to read results off it."""

    data: HeteroData
    cutoff: datetime
    horizon: timedelta
    schema: FeatureSchema
    customer_ids: NDArray[np.object_]
    offer_ids: NDArray[np.object_]
    customer_features: pd.DataFrame = field(repr=False)
    """Unscaled customer features (what the LightGBM baseline reads), in node order."""

    @property
    def offer_margin(self) -> NDArray[np.float64]:
        """Margin (GBP over the offer's term) of each offer, in node order."""
        margin: NDArray[np.float64] = self.data["offer"].margin.numpy()
        return margin

    def customer_index(self, customer_ids: list[str]) -> NDArray[np.int64]:
        """Node positions of customers (-1 for those not in the snapshot)."""
        return pd.Index(self.customer_ids).get_indexer(pd.Index(customer_ids)).astype(np.int64)


def to_hetero_data(
    store: GraphStore, cutoff: datetime, horizon: timedelta = DEFAULT_HORIZON
) -> HeteroData:
    """The graph as of ``cutoff`` with labels from ``[cutoff, cutoff + horizon)``."""
    return build_snapshot(GraphTables.from_store(store), cutoff, horizon).data


def build_snapshot(
    tables: GraphTables,
    cutoff: datetime,
    horizon: timedelta = DEFAULT_HORIZON,
    schema: FeatureSchema | None = None,
    *,
    require_labels: bool = True,
) -> Snapshot:
    """Cut a snapshot out of ``tables``; ``schema`` aligns it with a trained model.

    ``require_labels=False`` is for scoring, where the window after the cutoff has not
    happened yet (and the cutoff may lie after the last touchpoint: scoring "now").
    """
    if cutoff.tzinfo is None:
        raise InvalidInput("cutoff must be a timezone-aware datetime")
    if horizon <= timedelta(0):
        raise InvalidInput(f"horizon must be positive, got {horizon}")
    first, last = tables.span()
    at = int(cutoff.timestamp())
    if at <= first or (require_labels and at > last + DAY):
        raise InvalidInput(
            f"cutoff {cutoff.isoformat()} is outside the data, which spans "
            f"{_iso(first)} to {_iso(last)}"
        )
    end = at + int(horizon.total_seconds())
    if require_labels and end > last + DAY:
        raise InvalidInput(
            f"the label window {cutoff.isoformat()} + {horizon.days} days ends after the "
            f"last touchpoint ({_iso(last)}): move the cutoff back or shorten the horizon"
        )
    return _SnapshotBuilder(tables, at, end, schema).build(cutoff, horizon)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class _SnapshotBuilder:
    """Builds one snapshot; each method adds one part of the ``HeteroData``."""

    def __init__(self, tables: GraphTables, at: int, end: int, schema: FeatureSchema | None):
        self.tables = tables
        self.at = at
        self.end = end
        before = tables.ts < at
        self.before = before
        self.window = (tables.ts >= at) & (tables.ts < end)
        present = np.zeros(tables.customers, bool)
        present[tables.customer[before]] = True
        self.nodes = np.flatnonzero(present)
        self.node_of = np.full(tables.customers, -1, np.int64)
        self.node_of[self.nodes] = np.arange(len(self.nodes))
        self.size = len(self.nodes)
        # Customers who first appear after the cutoff are not nodes: their labels are unused.
        self.window &= self.node_of[tables.customer] >= 0
        self.event = tables.text["event_type"]
        self.schema_in = schema
        self.offers = self._offer_table()

    # -- the parts ----------------------------------------------------------------------

    def build(self, cutoff: datetime, horizon: timedelta) -> Snapshot:
        data = HeteroData()
        features = self._customer_features()
        cells, cell_features, at_cell = self._cells()
        devices, uses = self._devices()
        categories = (
            self.schema_in.categories
            if self.schema_in
            else tuple(self.offers["category"].cat.categories)
        )
        offer_features = self._offer_features(categories)
        schema = self.schema_in or FeatureSchema(
            customer=tuple(features.columns),
            cell=tuple(cell_features.columns),
            offer=tuple(offer_features.columns),
            categories=categories,
        )
        features = features.reindex(columns=list(schema.customer), fill_value=0.0)
        cell_features = cell_features.reindex(columns=list(schema.cell), fill_value=0.0)
        offer_features = offer_features.reindex(columns=list(schema.offer), fill_value=0.0)
        data["customer"].x = _tensor(features.to_numpy())
        data["customer"].active = torch.from_numpy(~self._had(self._codes(CHURN_EVENTS)))
        data["cell"].x = _tensor(cell_features.to_numpy())
        data["device"].x = _tensor(self._device_features(devices, uses))
        data["offer"].x = _tensor(offer_features.to_numpy())
        data["offer"].margin = torch.from_numpy(self.offers["margin_gbp"].to_numpy(np.float64))
        data["offer"].launched = torch.from_numpy(self.offers["launched"].to_numpy(bool))
        edges = {
            ("customer", "at", "cell"): at_cell,
            ("customer", "uses", "device"): uses,
            ("customer", "household", "customer"): self._households(),
            ("customer", "accepted", "offer"): self._offer_edges(ACCEPTED_EVENTS, accepted=True),
            ("customer", "viewed", "offer"): self._offer_edges(VIEWED_EVENTS, accepted=False),
        }
        for (source, name, target), pairs in edges.items():
            data[source, name, target].edge_index = torch.from_numpy(pairs)
            if source != target:
                data[target, f"rev_{name}", source].edge_index = torch.from_numpy(
                    pairs[::-1].copy()
                )
        self._labels(data)
        return Snapshot(
            data=data,
            cutoff=cutoff,
            horizon=horizon,
            schema=schema,
            customer_ids=self.tables.customer_ids[self.nodes],
            offer_ids=self.offers.index.to_numpy(dtype=object),
            customer_features=features.set_axis(
                pd.Index(self.tables.customer_ids[self.nodes], name="customer_id")
            ),
        )

    def _customer_features(self) -> pd.DataFrame:
        t, at = self.tables, self.at
        columns: dict[str, NDArray[np.float64]] = {}
        # Event types seen before the cutoff, sorted: later data adds no column, moves none.
        seen = np.unique(self.event.codes[self.before & (self.event.codes >= 0)])
        types = sorted((str(self.event.values[code]), int(code)) for code in seen)
        for label, since in (
            ("events", None),
            ("recent90", at - 90 * DAY),
            ("recent30", at - 30 * DAY),
        ):
            mask = self.before if since is None else self.before & (t.ts >= since)
            counts = self._count_by(mask, self.event.codes, len(self.event.values))
            for name, code in types:
                columns[f"{label}:{name}"] = np.log1p(counts[:, code])
        first = self._reduce(self.before, t.ts.astype(np.float64), np.minimum, np.inf)
        last = self._reduce(self.before, t.ts.astype(np.float64), np.maximum, -np.inf)
        columns["tenure_days"] = np.log1p((at - first) / DAY)
        columns["idle_days"] = np.log1p((at - last) / DAY)
        birth = t.birth_year[self.nodes]
        year = datetime.fromtimestamp(at, UTC).year
        columns["age"] = np.where(np.isnan(birth), 0.0, year - birth)
        columns["age_missing"] = np.isnan(birth).astype(np.float64)
        recent = self.before & (t.ts >= at - 90 * DAY)
        bills = recent & self._is(("bill_issued",))
        columns["bill_mean_90d"] = self._mean(bills, t.numeric["amount"])
        columns["roaming_90d"] = np.log1p(self._sum(bills, t.numeric["roaming_amount"]))
        shocks = self.before & self._is(("bill_shock",))
        columns["shock_ratio_max"] = np.nan_to_num(
            self._reduce(shocks, t.numeric["ratio"], np.fmax, np.nan), nan=0.0
        )
        surveys = self.before & self._is(("csat_response",))
        csat = self._mean(surveys, t.numeric["csat"], missing=np.nan)
        columns["csat_mean"] = np.nan_to_num(csat, nan=0.0)
        columns["csat_missing"] = np.isnan(csat).astype(np.float64)
        columns["csat_low"] = np.log1p(self._sum(surveys & (t.numeric["csat"] <= 2), None))
        kpis = recent & self._is(("network_kpi",))
        for metric in NETWORK_METRICS:
            columns[f"felt_{metric}"] = self._mean(kpis, t.numeric[metric])
        columns["cells_90d"] = np.log1p(self._distinct(kpis, t.text["cell_id"].codes))
        accepted = self._accepted_mask() & self.before
        category = self._offer_category_codes()
        categories = self.offers["category"].cat.categories
        counts = self._count_by(accepted & (category >= 0), category, len(categories))
        for code, name in enumerate(categories):
            columns[f"accepted:{name}"] = np.log1p(counts[:, code])
        columns["churned"] = self._had(self._codes(CHURN_EVENTS)).astype(np.float64)
        return pd.DataFrame(columns)

    def _cells(self) -> tuple[NDArray[np.object_], pd.DataFrame, NDArray[np.int64]]:
        t = self.tables
        cell = t.text["cell_id"]
        on_cell = self.before & (cell.codes >= 0)
        codes, inverse = np.unique(cell.codes[on_cell], return_inverse=True)
        pairs = np.unique(np.stack([self.node_of[t.customer[on_cell]], inverse]), axis=1).astype(
            np.int64
        )
        kpis = (self._is(("network_kpi",)) & on_cell & (t.ts >= self.at - 90 * DAY))[on_cell]
        columns: dict[str, NDArray[np.float64]] = {}
        for metric in NETWORK_METRICS:
            values = t.numeric[metric][on_cell]
            use = kpis & ~np.isnan(values)
            total = np.bincount(inverse[use], values[use], len(codes))
            seen = np.bincount(inverse[use], minlength=len(codes))
            columns[metric] = np.divide(total, seen, out=np.zeros(len(codes)), where=seen > 0)
        columns["subscribers"] = np.log1p(np.bincount(pairs[1], minlength=len(codes)))
        tickets = self._is(("ticket_opened",))[on_cell]
        columns["tickets"] = np.log1p(np.bincount(inverse[tickets], minlength=len(codes)))
        return cell.values[codes], pd.DataFrame(columns), pairs

    def _devices(self) -> tuple[NDArray[np.object_], NDArray[np.int64]]:
        links = self.tables.links
        devices = links[(links["kind"] == DEVICE_KIND) & (links["first_seen"] < self.at)]
        node = self.node_of[devices["customer"].to_numpy()]
        devices = devices[node >= 0]
        codes, names = pd.factorize(devices["identifier"])
        pairs = np.stack([node[node >= 0], codes]).astype(np.int64)
        return np.asarray(names, dtype=object), pairs

    def _device_features(
        self, devices: NDArray[np.object_], uses: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        users = np.bincount(uses[1], minlength=len(devices)).astype(np.float64)
        return np.stack([np.ones(len(devices)), np.log1p(users)], axis=1)

    def _households(self) -> NDArray[np.int64]:
        """Customer pairs sharing a household key: an account, an email or an address."""
        t, links = self.tables, self.tables.links
        shared = links[links["kind"].isin(HOUSEHOLD_KINDS) & (links["first_seen"] < self.at)]
        keys = [
            pd.DataFrame({"key": shared["identifier"], "customer": shared["customer"]}),
            pd.DataFrame({"key": t.address_key, "customer": np.arange(t.customers)}).dropna(),
        ]
        members = pd.concat(keys, ignore_index=True)
        members["node"] = self.node_of[members["customer"].to_numpy()]
        members = members[members["node"] >= 0].drop_duplicates(["key", "node"])
        size = members.groupby("key")["node"].transform("size")
        members = members[(size >= 2) & (size <= HOUSEHOLD_MAX)]
        pairs = members.merge(members, on="key")
        pairs = pairs[pairs["node_x"] != pairs["node_y"]].drop_duplicates(["node_x", "node_y"])
        return np.stack([pairs["node_x"].to_numpy(), pairs["node_y"].to_numpy()]).astype(np.int64)

    def _offer_edges(self, events: tuple[str, ...], *, accepted: bool) -> NDArray[np.int64]:
        mask = self.before & (self._accepted_mask() if accepted else self._is(events))
        offer = self._offer_positions()
        mask &= offer >= 0
        pairs = np.stack([self.node_of[self.tables.customer[mask]], offer[mask]])
        return np.unique(pairs, axis=1).astype(np.int64)

    def _offer_features(self, categories: tuple[str, ...]) -> pd.DataFrame:
        offers = self.offers
        columns: dict[str, NDArray[Any]] = {
            "margin": np.log1p(offers["margin_gbp"].to_numpy(np.float64)),
            "monthly_margin": np.log1p(offers["monthly_margin_gbp"].to_numpy(np.float64)),
            "term": offers["term_months"].to_numpy(np.float64) / 24.0,
        }
        for kind in OFFER_KINDS:
            columns[f"kind:{kind}"] = (offers["kind"] == kind).to_numpy(np.float64)
        for category in categories:
            columns[f"category:{category}"] = (offers["category"] == category).to_numpy(np.float64)
        return pd.DataFrame(columns)

    def _labels(self, data: HeteroData) -> None:
        window = self.window
        customer = data["customer"]
        customer.y_churn = torch.from_numpy(self._had(self._codes(CHURN_EVENTS), window))
        outcome = self.tables.text["outcome"]
        customer.y_fraud = torch.from_numpy(
            self._had(outcome.codes_of((FRAUD_OUTCOME,)), window, outcome.codes)
        )
        surveys = window & self._is(("csat_response",))
        csat = self._mean(surveys, self.tables.numeric["csat"], missing=np.nan)
        customer.csat_mask = torch.from_numpy(~np.isnan(csat))
        customer.y_csat = _tensor(np.nan_to_num(csat, nan=0.0))
        accepted = window & self._accepted_mask()
        offer = self._offer_positions()
        accepted &= offer >= 0
        nbo = np.zeros((self.size, len(self.offers)), bool)
        nbo[self.node_of[self.tables.customer[accepted]], offer[accepted]] = True
        customer.y_nbo = torch.from_numpy(nbo)

    # -- offers -------------------------------------------------------------------------

    def _offer_table(self) -> pd.DataFrame:
        # Offer vertices with catalogue properties; a vertex that only an ABOUT edge made
        # (an offer no catalogue lists) counts only if a touchpoint named it before the cutoff.
        catalogue = self.tables.offers[self.tables.offers["margin_gbp"].notna()]
        # The catalogue, and offers touchpoints named before the cutoff (none from later).
        offer = self.tables.text["offer_id"]
        named = np.unique(offer.codes[self.before & (offer.codes >= 0)])
        seen = {str(offer.values[code]) for code in named}
        offers = catalogue.reindex(sorted(set(catalogue.index) | seen))
        offers["margin_gbp"] = offers["margin_gbp"].fillna(0.0)
        offers["monthly_margin_gbp"] = offers["monthly_margin_gbp"].fillna(0.0)
        offers["term_months"] = offers["term_months"].fillna(0.0)
        offers["kind"] = offers["kind"].fillna("unknown")
        offers["category"] = pd.Categorical(offers["category"].fillna("unknown"))
        launched = pd.to_datetime(offers["launched_at"], utc=True)
        offers["launched"] = launched.isna() | (launched < pd.Timestamp(self.at, unit="s", tz=UTC))
        return offers

    def _offer_positions(self) -> NDArray[np.int64]:
        """Each touchpoint's offer as a position in ``self.offers`` (-1 for none)."""
        offer = self.tables.text["offer_id"]
        known = self.offers.index.get_indexer(pd.Index(offer.values))
        lookup = np.append(known, -1).astype(np.int64)
        return lookup[offer.codes]  # code -1 (no offer) reads the appended -1

    def _offer_category_codes(self) -> NDArray[np.int64]:
        position = self._offer_positions()
        categories = np.append(self.offers["category"].cat.codes.to_numpy(np.int64), -1)
        return categories[position]  # position -1 (no offer) reads the appended -1

    def _accepted_mask(self) -> NDArray[np.bool_]:
        outcome = self.tables.text["outcome"]
        accepted_outcome = np.isin(outcome.codes, outcome.codes_of(("offer_accepted",)))
        return (self._is(ACCEPTED_EVENTS) | accepted_outcome) & (
            self.tables.text["offer_id"].codes >= 0
        )

    # -- reductions per customer node ---------------------------------------------------

    def _codes(self, events: tuple[str, ...]) -> NDArray[np.int64]:
        return self.event.codes_of(events)

    def _is(self, events: tuple[str, ...]) -> NDArray[np.bool_]:
        return np.isin(self.event.codes, self._codes(events))

    def _had(
        self,
        codes: NDArray[np.int64],
        mask: NDArray[np.bool_] | None = None,
        column: NDArray[np.int64] | None = None,
    ) -> NDArray[np.bool_]:
        """Whether each customer node has a touchpoint whose code is in ``codes``."""
        hits = np.isin(self.event.codes if column is None else column, codes)
        hits &= self.before if mask is None else mask
        return self._sum(hits, None) > 0

    def _count_by(
        self, mask: NDArray[np.bool_], codes: NDArray[np.int64], width: int
    ) -> NDArray[np.float64]:
        mask = mask & (codes >= 0)
        flat = self.node_of[self.tables.customer[mask]] * width + codes[mask]
        counts = np.bincount(flat, minlength=self.size * width).astype(np.float64)
        return counts.reshape(self.size, width)

    def _sum(
        self, mask: NDArray[np.bool_], values: NDArray[np.float64] | None
    ) -> NDArray[np.float64]:
        if values is not None:
            mask = mask & ~np.isnan(values)
        nodes = self.node_of[self.tables.customer[mask]]
        weights = None if values is None else values[mask]
        return np.bincount(nodes, weights, self.size).astype(np.float64)

    def _mean(
        self, mask: NDArray[np.bool_], values: NDArray[np.float64], missing: float = 0.0
    ) -> NDArray[np.float64]:
        total = self._sum(mask, values)
        seen = self._sum(mask & ~np.isnan(values), None)
        mean: NDArray[np.float64] = np.divide(
            total, seen, out=np.full(self.size, missing), where=seen > 0
        )
        return mean

    def _reduce(
        self, mask: NDArray[np.bool_], values: NDArray[np.float64], ufunc: Any, empty: float
    ) -> NDArray[np.float64]:
        result = np.full(self.size, empty)
        ufunc.at(result, self.node_of[self.tables.customer[mask]], values[mask])
        return result

    def _distinct(self, mask: NDArray[np.bool_], codes: NDArray[np.int64]) -> NDArray[np.float64]:
        mask = mask & (codes >= 0)
        pairs = np.unique(np.stack([self.node_of[self.tables.customer[mask]], codes[mask]]), axis=1)
        return np.bincount(pairs[0], minlength=self.size).astype(np.float64)


def _tensor(values: NDArray[Any]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
