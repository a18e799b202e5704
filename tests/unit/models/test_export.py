"""``to_hetero_data`` / ``build_snapshot`` on a small hand-made telco graph.

The shop world (``shop_world``) has named customers whose every feature, edge and
label is known by hand, around one cutoff (1 April 2024) and a 30-day horizon.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from graph import EmbeddedStore
from graph.errors import InvalidInput
from models._tables import GraphTables
from models.export import HOUSEHOLD_MAX, Snapshot, build_snapshot, to_hetero_data
from tests.unit.models._graphs import DAY, T0, TelcoGraph

CUTOFF = datetime(2024, 4, 1, tzinfo=T0.tzinfo)
HORIZON = timedelta(days=30)
FAMILY_IMEI = "490154203237518"
HUB = [f"hub{n}" for n in range(HOUSEHOLD_MAX + 1)]
SIX = [f"six{n}" for n in range(HOUSEHOLD_MAX)]


def at(month: int, day: int, hour: int = 12) -> datetime:
    """A moment in 2024 (UTC)."""
    return datetime(2024, month, day, hour, tzinfo=T0.tzinfo)


def shop_world(*, surveys: bool = True, home_offer: bool = True) -> TelcoGraph:
    """The named customers of these tests (see the comment on each)."""
    graph = TelcoGraph()
    graph.offer("O1", 120.0, "retention", "data", launched_at=T0)
    graph.offer("O2", 60.0, "upsell", "roaming")
    if home_offer:
        # Launched after the cutoff: a node, but not ``launched`` in this snapshot.
        graph.offer("O3", 240.0, "cross_sell", "home", launched_at=at(5, 1))
    # Alice: a full history, then a survey and a port-out in the window.
    graph.customer("alice", dob="1980-05-01", postcode="AB1 2CD", address="1 High Street")
    graph.identifier("alice", "account", "ACC1", at(1, 2))
    graph.identifier("alice", "msisdn", "+447700900001", at(1, 2))
    graph.identifier("alice", "imei", "356938035643809", at(1, 2))
    for month, amount in ((1, 30.0), (2, 40.0), (3, 50.0)):
        graph.event("alice", "bill_issued", at(month, 5), amount=amount)
    graph.event("alice", "network_kpi", at(2, 10), cell_id="C1", call_drop_rate=0.2)
    graph.event("alice", "offer_viewed", at(2, 12), offer_id="O1")
    graph.event("alice", "offer_accepted", at(3, 1), offer_id="O1")
    if surveys:
        graph.event("alice", "csat_response", at(3, 20), csat=2.0)
        graph.event("alice", "csat_response", at(4, 5), csat=4.0)
    graph.event("alice", "port_out", at(4, 10))
    # Bob shares Alice's account (a household) and accepts O2 in the window.
    graph.identifier("bob", "account", "ACC1", at(1, 3))
    graph.event("bob", "app_login", at(1, 10))
    graph.event("bob", "bill_issued", at(2, 5), amount=25.0)
    graph.event("bob", "offer_accepted", at(4, 15), offer_id="O2")
    graph.event("bob", "app_login", at(6, 30))  # the last touchpoint of the data
    # Carol left before the cutoff; Dave first appears after it.
    graph.event("carol", "app_login", at(1, 20))
    graph.event("carol", "port_out", at(3, 1))
    graph.event("dave", "app_login", at(5, 2))
    # Fraud: Erin's is in the window, Frank's before it, Gina's after it.
    graph.event("erin", "app_login", at(2, 1))
    graph.event("erin", "fraud_case", at(4, 20), outcome="fraud_confirmed")
    graph.event("frank", "app_login", at(1, 6))
    graph.event("frank", "fraud_case", at(3, 1), outcome="fraud_confirmed")
    graph.event("gina", "app_login", at(1, 7))
    graph.event("gina", "fraud_case", at(5, 10), outcome="fraud_confirmed")
    # Frank and Gina share a phone (a device), which is no household.
    graph.identifier("frank", "imei", FAMILY_IMEI, at(1, 5))
    graph.identifier("gina", "imei", FAMILY_IMEI, at(1, 5))
    # The window's edges: Ivy cancels at the cutoff, Henry ports out as it closes,
    # Jack a second before it opens.
    for name in ("henry", "ivy", "jack"):
        graph.event(name, "app_login", at(1, 5))
    graph.event("henry", "port_out", CUTOFF + HORIZON)
    graph.event("ivy", "cancellation", CUTOFF)
    graph.event("jack", "port_out", CUTOFF - timedelta(seconds=1))
    # Kim and Leo live at the same address (spelt differently): a household.
    graph.customer("kim", postcode="zz9 9zz", address="7 Low Road")
    graph.customer("leo", postcode="ZZ99ZZ", address="7 LOW ROAD")
    graph.event("kim", "app_login", at(2, 2))
    graph.event("leo", "app_login", at(2, 3))
    # One more than a household: a shop's shared email is a hub, not a family.
    for name in HUB:
        graph.identifier(name, "email", "help@shop.example", at(1, 2))
        graph.event(name, "app_login", at(1, 15))
    # The largest household there may be: six on one family account.
    for name in SIX:
        graph.identifier(name, "account", "FAMILY6", at(1, 2))
        graph.event(name, "app_login", at(1, 16))
    return graph


def snapshot_of(graph: TelcoGraph, store: EmbeddedStore) -> Snapshot:
    """Write ``graph`` to ``store`` and cut the snapshot at ``CUTOFF``."""
    graph.write(store)
    return build_snapshot(GraphTables.from_store(store), CUTOFF, HORIZON)


@pytest.fixture
def shop(store: EmbeddedStore) -> Snapshot:
    return snapshot_of(shop_world(), store)


def names(snapshot: Snapshot, mask: torch.Tensor) -> set[str]:
    """Customer names (``cust:`` dropped) of the nodes where ``mask`` holds."""
    return {str(c).removeprefix("cust:") for c in snapshot.customer_ids[mask.numpy()]}


def node_name(snapshot: Snapshot, kind: str, index: int) -> str | int:
    """A customer's name, an offer's id, or the node index of other types."""
    if kind == "customer":
        return str(snapshot.customer_ids[index]).removeprefix("cust:")
    if kind == "offer":
        return str(snapshot.offer_ids[index])
    return index


def pairs(snapshot: Snapshot, edge_type: tuple[str, str, str]) -> set[tuple[str | int, ...]]:
    """An edge type's edges as (source, target) pairs of ``node_name``."""
    source, _, target = edge_type
    return {
        (node_name(snapshot, source, s), node_name(snapshot, target, t))
        for s, t in snapshot.data[edge_type].edge_index.t().tolist()
    }


def feature(snapshot: Snapshot, name: str, column: str) -> float:
    return float(snapshot.customer_features[column].to_dict()[f"cust:{name}"])


# -- nodes ------------------------------------------------------------------------------


def test_node_counts_per_type(shop: Snapshot) -> None:
    data = shop.data
    everyone = {
        "alice", "bob", "carol", "erin", "frank", "gina", "henry", "ivy", "jack", "kim", "leo",
        *HUB, *SIX,
    }  # fmt: skip
    assert names(shop, torch.ones(data["customer"].num_nodes, dtype=torch.bool)) == everyone
    assert data["customer"].num_nodes == len(everyone)
    assert data["cell"].num_nodes == 1  # C1; no cell is seen only after the cutoff
    assert data["device"].num_nodes == 2  # Alice's phone and the one Frank and Gina share
    assert list(shop.offer_ids) == ["O1", "O2", "O3"]
    assert data["customer"].x.shape == (len(everyone), len(shop.schema.customer))
    assert data["offer"].x.shape == (3, len(shop.schema.offer))
    assert data["cell"].x.shape == (1, len(shop.schema.cell))


def test_customers_first_seen_after_the_cutoff_are_not_nodes(shop: Snapshot) -> None:
    assert "cust:dave" not in set(shop.customer_ids)
    assert shop.customer_index(["cust:dave", "cust:alice"])[0] == -1


def test_who_churned_before_the_cutoff_is_a_node_but_not_active(shop: Snapshot) -> None:
    active = shop.data["customer"].active
    assert names(shop, ~active) == {"carol", "jack"}
    assert feature(shop, "carol", "churned") == 1.0
    assert feature(shop, "alice", "churned") == 0.0  # she leaves after the cutoff


def test_offers_launched_after_the_cutoff_are_not_launched(shop: Snapshot) -> None:
    launched = dict(zip(shop.offer_ids, shop.data["offer"].launched.tolist(), strict=True))
    assert launched == {"O1": True, "O2": True, "O3": False}
    assert shop.offer_margin.tolist() == [120.0, 60.0, 240.0]


def test_features_read_only_the_past(shop: Snapshot) -> None:
    assert feature(shop, "alice", "csat_mean") == 2.0  # the April survey is a label
    assert feature(shop, "alice", "csat_missing") == 0.0
    assert feature(shop, "bob", "csat_missing") == 1.0
    assert feature(shop, "alice", "bill_mean_90d") == pytest.approx(40.0)
    assert feature(shop, "alice", "events:port_out") == 0.0
    assert feature(shop, "jack", "events:port_out") == pytest.approx(np.log1p(1))
    assert feature(shop, "alice", "accepted:data") == pytest.approx(np.log1p(1))
    assert feature(shop, "bob", "accepted:roaming") == 0.0  # accepted in the window
    assert feature(shop, "alice", "felt_call_drop_rate") == pytest.approx(0.2)
    assert feature(shop, "alice", "age") == 2024 - 1980


# -- edges ------------------------------------------------------------------------------


def test_households_come_from_shared_accounts_and_addresses_not_hubs(shop: Snapshot) -> None:
    household = pairs(shop, ("customer", "household", "customer"))
    family = {(a, b) for a in SIX for b in SIX if a != b}
    assert household == {
        ("alice", "bob"),
        ("bob", "alice"),
        ("kim", "leo"),
        ("leo", "kim"),
        *family,
    }
    assert not {name for pair in household for name in pair} & set(HUB)
    assert not {("frank", "gina"), ("gina", "frank")} & household  # a shared phone


def test_device_cell_and_offer_edges(shop: Snapshot) -> None:
    uses = shop.data["customer", "uses", "device"].edge_index
    users = names(shop, torch.isin(torch.arange(shop.data["customer"].num_nodes), uses[0]))
    assert users == {"alice", "frank", "gina"}
    assert torch.bincount(uses[1]).sort().values.tolist() == [1, 2]
    assert pairs(shop, ("customer", "at", "cell")) == {("alice", 0)}
    assert pairs(shop, ("customer", "accepted", "offer")) == {("alice", "O1")}
    assert pairs(shop, ("customer", "viewed", "offer")) == {("alice", "O1")}


def test_every_edge_has_its_reverse(shop: Snapshot) -> None:
    data = shop.data
    for source, name, target in data.edge_types:
        if name.startswith("rev_") or source == target:
            continue
        forward = data[source, name, target].edge_index
        backward = data[target, f"rev_{name}", source].edge_index
        assert torch.equal(forward.flip(0), backward)


# -- labels -----------------------------------------------------------------------------


def test_churn_labels_come_from_the_window_only(shop: Snapshot) -> None:
    # Ivy cancels at the cutoff (in), Henry ports out at cutoff + horizon (out),
    # Jack a second before the cutoff (a feature, not a label).
    assert names(shop, shop.data["customer"].y_churn) == {"alice", "ivy"}


def test_fraud_labels_come_from_the_window_only(shop: Snapshot) -> None:
    assert names(shop, shop.data["customer"].y_fraud) == {"erin"}


def test_csat_label_is_the_mean_survey_in_the_window(shop: Snapshot) -> None:
    customer = shop.data["customer"]
    assert names(shop, customer.csat_mask) == {"alice"}
    (alice,) = shop.customer_index(["cust:alice"])
    assert float(customer.y_csat[alice]) == 4.0


def test_nbo_labels_are_offers_accepted_in_the_window(shop: Snapshot) -> None:
    y_nbo = shop.data["customer"].y_nbo
    assert y_nbo.shape == (shop.data["customer"].num_nodes, 3)
    accepted = {
        (str(shop.customer_ids[c]).removeprefix("cust:"), str(shop.offer_ids[o]))
        for c, o in y_nbo.nonzero().tolist()
    }
    assert accepted == {("bob", "O2")}  # Alice's O1 was accepted before the cutoff


# -- leakage ----------------------------------------------------------------------------


def tensors(data: HeteroData) -> dict[str, torch.Tensor]:
    """Every feature matrix and edge index of a snapshot, by a readable key."""
    found = {f"{kind}.x": data[kind].x for kind in data.node_types}
    found |= {"/".join(kind): data[kind].edge_index for kind in data.edge_types}
    found["offer.launched"] = data["offer"].launched
    found["offer.margin"] = data["offer"].margin
    return found


def assert_same_graph(before: Snapshot, after: Snapshot) -> None:
    assert list(before.customer_ids) == list(after.customer_ids)
    assert list(before.offer_ids) == list(after.offer_ids)
    assert before.schema == after.schema
    old, new = tensors(before.data), tensors(after.data)
    assert old.keys() == new.keys()
    changed = [key for key in old if not torch.equal(old[key], new[key])]
    assert not changed, f"changed by data after the cutoff: {changed}"


def test_data_after_the_cutoff_changes_no_feature_and_no_edge(store: EmbeddedStore) -> None:
    world = shop_world()
    before = snapshot_of(world, store)
    # Everything below happens at or after the cutoff.
    world.event("alice", "bill_issued", at(4, 5), amount=999.0)
    world.event("alice", "network_kpi", at(4, 6), cell_id="C1", call_drop_rate=0.9)
    world.event("alice", "network_kpi", at(4, 7), cell_id="C9", call_drop_rate=0.9)
    world.event("kim", "offer_accepted", at(4, 8), offer_id="O1")
    world.event("kim", "offer_viewed", at(4, 8), offer_id="O2")
    world.event("kim", "csat_response", at(4, 9), csat=1.0)
    world.event("leo", "port_out", CUTOFF)
    world.event("frank", "network_kpi", at(4, 9), cell_id="C1", call_drop_rate=0.5)
    world.identifier("frank", "account", "ACC1", at(4, 2))  # would join Alice's household
    world.identifier("erin", "imei", "352099001761481", at(4, 3))  # a phone bought later
    world.identifier("erin", "email", "help@shop.example", at(4, 3))
    world.identifier("zoe", "account", "ACC1", at(5, 1))
    world.event("zoe", "app_login", at(5, 1))
    after = snapshot_of(world, store)
    assert after.data["customer"].y_churn.sum() == before.data["customer"].y_churn.sum() + 1
    assert_same_graph(before, after)


def test_new_kinds_of_things_after_the_cutoff_add_no_column(store: EmbeddedStore) -> None:
    world = shop_world()
    before = snapshot_of(world, store)
    world.event("frank", "ticket_opened", at(4, 9), cell_id="C1")  # a type never seen before
    world.event("kim", "offer_accepted", at(4, 8), offer_id="O9")  # not in the catalogue
    after = snapshot_of(world, store)
    assert_same_graph(before, after)


def test_known_events_after_the_cutoff_keep_the_column_order(store: EmbeddedStore) -> None:
    world = shop_world()
    before = snapshot_of(world, store)
    # Alice (the first customer) never logged in before; Bob did.
    world.event("alice", "app_login", at(4, 2))
    after = snapshot_of(world, store)
    assert_same_graph(before, after)


# -- schemas ----------------------------------------------------------------------------


def test_a_trained_schema_aligns_another_snapshot(tmp_path: Path, store: EmbeddedStore) -> None:
    trained = snapshot_of(shop_world(), store)
    with EmbeddedStore(tmp_path / "other.db") as other:
        sparse = shop_world(surveys=False, home_offer=False)
        own = snapshot_of(sparse, other)
        aligned = build_snapshot(GraphTables.from_store(other), CUTOFF, HORIZON, trained.schema)
    # Without the schema the columns differ (no surveys, no "home" offers) ...
    assert "events:csat_response" not in own.schema.customer
    assert own.schema != trained.schema
    # ... with it they line up, the missing ones zero.
    assert aligned.schema == trained.schema
    assert list(aligned.customer_features.columns) == list(trained.schema.customer)
    for kind in ("customer", "cell", "offer"):
        assert aligned.data[kind].x.shape[1] == trained.data[kind].x.shape[1]
    column = trained.schema.customer.index("events:csat_response")
    assert not aligned.data["customer"].x[:, column].any()
    home = trained.schema.offer.index("category:home")
    assert not aligned.data["offer"].x[:, home].any()
    shared = [c for c in own.schema.customer if c in trained.schema.customer]
    assert np.array_equal(
        own.customer_features[shared].to_numpy(), aligned.customer_features[shared].to_numpy()
    )


def test_schema_round_trips_through_a_dict(shop: Snapshot) -> None:
    assert type(shop.schema).from_dict(shop.schema.to_dict()) == shop.schema


def test_to_hetero_data_is_build_snapshot_from_the_store(store: EmbeddedStore) -> None:
    shop_world().write(store)
    data = to_hetero_data(store, CUTOFF, HORIZON)
    snapshot = build_snapshot(GraphTables.from_store(store), CUTOFF, HORIZON)
    assert tensors(data).keys() == tensors(snapshot.data).keys()
    assert all(torch.equal(a, tensors(snapshot.data)[k]) for k, a in tensors(data).items())


# -- bad input --------------------------------------------------------------------------


def test_an_empty_graph_is_refused(store: EmbeddedStore) -> None:
    with pytest.raises(InvalidInput, match="no customers"):
        to_hetero_data(store, CUTOFF, HORIZON)


def test_customers_without_touchpoints_are_refused(store: EmbeddedStore) -> None:
    store.upsert_vertices("Customer", [("cust:alice", {"first_name": "Alice"})])
    with pytest.raises(InvalidInput, match="no touchpoints"):
        to_hetero_data(store, CUTOFF, HORIZON)


@pytest.mark.parametrize(
    ("cutoff", "horizon", "message"),
    [
        (datetime(2024, 4, 1), HORIZON, "timezone-aware"),
        (T0, HORIZON, "outside the data"),
        (at(1, 2), HORIZON, "outside the data"),  # before the first touchpoint (5 January)
        (at(8, 1), HORIZON, "outside the data"),
        (CUTOFF, timedelta(days=200), "label window"),
        (at(6, 20), HORIZON, "label window"),
        (CUTOFF, timedelta(0), "horizon must be positive"),
        (CUTOFF, -DAY, "horizon must be positive"),
    ],
)
def test_bad_cutoffs_and_horizons_are_refused(
    store: EmbeddedStore, cutoff: datetime, horizon: timedelta, message: str
) -> None:
    shop_world().write(store)
    with pytest.raises(InvalidInput, match=message):
        to_hetero_data(store, cutoff, horizon)


def test_the_error_names_the_data_span(store: EmbeddedStore) -> None:
    shop_world().write(store)
    with pytest.raises(InvalidInput) as caught:
        to_hetero_data(store, at(8, 1), HORIZON)
    assert "2024-01-05" in str(caught.value) and "2024-06-30" in str(caught.value)


def test_scoring_needs_no_label_window(store: EmbeddedStore) -> None:
    shop_world().write(store)
    tables = GraphTables.from_store(store)
    snapshot = build_snapshot(tables, at(6, 30, 23), HORIZON, require_labels=False)
    assert "cust:dave" in set(snapshot.customer_ids)


def test_a_graph_without_offers_exports(store: EmbeddedStore) -> None:
    world = TelcoGraph()
    world.event("alice", "app_login", at(1, 5))
    world.event("alice", "port_out", at(4, 5))
    world.event("bob", "app_login", at(6, 30))
    world.write(store)
    data = to_hetero_data(store, CUTOFF, HORIZON)
    assert data["offer"].num_nodes == 0
    assert data["customer"].num_nodes == 1  # bob's first touchpoint is after the cutoff
    assert data["customer"].y_nbo.shape == (1, 0)
