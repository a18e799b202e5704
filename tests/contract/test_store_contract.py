"""The GraphStore contract: every backend must pass every test here unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from graph import (
    ChangeKind,
    GraphStore,
    InvalidInput,
    MalformedId,
    UnknownCustomer,
    UnknownLabel,
    UnknownVertex,
    UnsupportedProperty,
    UpsertResult,
)
from graph.model import edge_id
from tests.builders import T0, Journey, add_journeys, alice_and_bob

# --- vertices -------------------------------------------------------------------------


def test_upsert_creates_then_reports_unchanged(store: GraphStore) -> None:
    rows = [("cust:a", {"name": "A", "tier": 1}), ("cust:b", {"name": "B"})]
    assert store.upsert_vertices("Customer", rows) == UpsertResult(created=2)
    assert store.upsert_vertices("Customer", rows) == UpsertResult(unchanged=2)
    assert store.count("Customer") == 2
    assert store.count() == 2


def test_reupsert_merges_properties_and_none_removes(store: GraphStore) -> None:
    store.upsert_vertices("Customer", [("cust:a", {"name": "A", "tier": 1, "segment": "gold"})])
    result = store.upsert_vertices("Customer", [("cust:a", {"tier": 2, "segment": None})])
    assert result == UpsertResult(updated=1)
    vertex = store.get_vertex("cust:a")
    assert vertex is not None
    assert vertex.label == "Customer"
    assert vertex.properties == {"name": "A", "tier": 2}


def test_property_types_round_trip(store: GraphStore) -> None:
    ts = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=timezone(timedelta(hours=2)))
    props = {"s": "héllo ✓", "i": -(2**40), "f": 0.25, "b": True, "f0": False, "ts": ts}
    store.upsert_vertices("Touchpoint", [("tp:1", props)])
    vertex = store.get_vertex("tp:1")
    assert vertex is not None
    got = vertex.properties
    assert got["s"] == "héllo ✓" and got["i"] == -(2**40) and got["f"] == 0.25
    assert got["b"] is True and got["f0"] is False
    assert got["ts"] == ts
    assert got["ts"].utcoffset() == timedelta(0)


def test_get_vertices_keeps_order_and_skips_missing(store: GraphStore) -> None:
    store.upsert_vertices("Customer", [("cust:a", {}), ("cust:b", {})])
    assert [v.id for v in store.get_vertices(["cust:b", "cust:x", "cust:a"])] == [
        "cust:b",
        "cust:a",
    ]
    assert store.get_vertex("cust:missing") is None


def test_find_vertices_by_property(store: GraphStore) -> None:
    store.upsert_vertices(
        "Identifier",
        [
            ("id:msisdn:+1", {"kind": "msisdn", "value": "+1"}),
            ("id:email:a@x", {"kind": "email", "value": "a@x"}),
        ],
    )
    found = store.find_vertices("Identifier", {"kind": "email"})
    assert [v.id for v in found] == ["id:email:a@x"]
    assert store.find_vertices("Identifier", {"kind": "imei"}) == []


# --- validation: bad input leaves the store as it was ----------------------------------


@pytest.mark.parametrize(
    ("label", "records", "error"),
    [
        ("Subscriber", [("cust:a", {})], UnknownLabel),
        ("Customer", [("tp:a", {})], MalformedId),
        ("Customer", [("cust:", {})], MalformedId),
        ("Customer", [("cust:a\nb", {})], MalformedId),
        ("Customer", [("cust:" + "x" * 600, {})], MalformedId),
        ("Customer", [(42, {})], MalformedId),
        ("Customer", [("cust:a", {"tags": ["a", "b"]})], UnsupportedProperty),
        ("Customer", [("cust:a", {"when": datetime(2024, 1, 1)})], UnsupportedProperty),
        ("Customer", [("cust:a", {"bad key": 1})], UnsupportedProperty),
        ("Customer", [("cust:a", {"uid": "x"})], UnsupportedProperty),
        ("Customer", [("cust:a", {"x": float("nan")})], UnsupportedProperty),
        ("Customer", [("cust:a",)], InvalidInput),
    ],
)
def test_invalid_vertices_are_refused_whole(
    store: GraphStore, label: str, records: list[object], error: type[Exception]
) -> None:
    good = ("cust:good", {"name": "kept out"})
    with pytest.raises(error):
        store.upsert_vertices(label, [good, *records])  # type: ignore[list-item]
    assert store.count() == 0


def test_edge_to_missing_vertex_fails_and_writes_nothing(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    edges_before = store.count_edges()
    with pytest.raises(UnknownVertex) as caught:
        store.upsert_edges(
            "PERFORMED",
            [(alice.customer, "tp:new-but-fine", {}), (alice.customer, "tp:missing", {})],
        )
    assert "tp:missing" in str(caught.value) or "tp:new-but-fine" in str(caught.value)
    assert store.count_edges() == edges_before


def test_edge_endpoints_must_match_the_edge_type(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    with pytest.raises(MalformedId):
        store.upsert_edges("PERFORMED", [(alice.touchpoint_ids[0], alice.customer, {})])
    with pytest.raises(UnknownLabel):
        store.upsert_edges("LIKES", [(alice.customer, alice.touchpoint_ids[0], {})])


def test_timeline_argument_errors(store: GraphStore) -> None:
    alice_and_bob(store)
    with pytest.raises(UnknownCustomer):
        store.timeline("cust:nobody")
    with pytest.raises(InvalidInput):
        store.timeline("cust:alice", start=datetime(2024, 1, 1))
    with pytest.raises(MalformedId):
        store.timeline("tp:alice-000")


# --- edges, neighbours, timelines -----------------------------------------------------


def test_edges_upsert_idempotently_and_merge(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    first, second = alice.touchpoint_ids[:2]
    assert store.upsert_edges("NEXT", [(first, second, {"dt_seconds": 3600})]) == UpsertResult(
        unchanged=1
    )
    assert store.upsert_edges("NEXT", [(first, second, {"dt_seconds": 60})]) == UpsertResult(
        updated=1
    )
    edge = store.get_edge("NEXT", first, second)
    assert edge is not None
    assert edge.properties == {"dt_seconds": 60}
    assert edge.id == edge_id("NEXT", first, second)
    assert store.get_edge("NEXT", second, first) is None


def test_neighbours_by_direction_and_label(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    out = store.neighbours(alice.customer, "out", ["PERFORMED"])
    assert sorted(n.vertex.id for n in out) == sorted(alice.touchpoint_ids)
    identifiers = store.neighbours(alice.customer, "out", ["HAS_IDENTIFIER"])
    assert [n.vertex.id for n in identifiers] == ["id:msisdn:+447700900001"]
    assert identifiers[0].edge.properties["method"] == "det"
    incoming = store.neighbours(alice.touchpoint_ids[1], "in")
    assert sorted((n.edge.label, n.vertex.id) for n in incoming) == [
        ("NEXT", alice.touchpoint_ids[0]),
        ("PERFORMED", alice.customer),
    ]
    both = store.neighbours(alice.touchpoint_ids[1], "both")
    assert len(both) == 3
    assert len(store.neighbours(alice.customer, "both", limit=2)) == 2


def test_degree_counts_edges_by_label_without_reading_them(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    assert store.degree(alice.customer, "out") == {"PERFORMED": 4, "HAS_IDENTIFIER": 1}
    assert store.degree(alice.customer, "out", ["HAS_IDENTIFIER"]) == {"HAS_IDENTIFIER": 1}
    assert store.degree(alice.touchpoint_ids[1], "both") == {"NEXT": 2, "PERFORMED": 1}
    assert store.degree(alice.touchpoint_ids[0], "in", ["NEXT"]) == {}
    assert store.degree("cust:nobody") == {}
    with pytest.raises(InvalidInput):
        store.degree(alice.customer, "sideways")  # type: ignore[arg-type]


def test_timeline_is_ordered_by_time_then_id(store: GraphStore) -> None:
    carol = Journey("carol", [], start=T0)
    add_journeys(store, carol)
    same_time = T0 + timedelta(days=1)
    touchpoints = [
        ("tp:c-late", {"event_type": "late", "ts": T0 + timedelta(days=2)}),
        ("tp:c-tie-b", {"event_type": "tie_b", "ts": same_time}),
        ("tp:c-early", {"event_type": "early", "ts": T0}),
        ("tp:c-tie-a", {"event_type": "tie_a", "ts": same_time}),
    ]
    store.upsert_vertices("Touchpoint", touchpoints)
    store.upsert_edges("PERFORMED", [(carol.customer, tp, {}) for tp, _ in touchpoints])
    timeline = store.timeline(carol.customer)
    assert [v.properties["event_type"] for v in timeline] == ["early", "tie_a", "tie_b", "late"]
    window = store.timeline(carol.customer, start=same_time, end=T0 + timedelta(days=2))
    assert [v.id for v in window] == ["tp:c-tie-a", "tp:c-tie-b"]
    assert [v.id for v in store.timeline(carol.customer, limit=1)] == ["tp:c-early"]


def test_timeline_of_customer_without_touchpoints_is_empty(store: GraphStore) -> None:
    store.upsert_vertices("Customer", [("cust:quiet", {})])
    assert store.timeline("cust:quiet") == []


def test_touchpoint_times_of_several_customers_match_their_timelines(
    store: GraphStore,
) -> None:
    alice, bob = alice_and_bob(store)
    store.upsert_vertices("Customer", [("cust:quiet", {})])
    found = store.touchpoint_times([bob.customer, alice.customer, "cust:quiet", "cust:nobody"])
    assert found.schema.field("ts").type == pa.timestamp("us", "UTC")
    got = sorted(
        zip(
            found.column("customer").to_pylist(),
            found.column("id").to_pylist(),
            found.column("ts").to_pylist(),
            strict=True,
        )
    )
    expected = sorted(
        (customer, vertex.id, vertex.properties["ts"])
        for customer in (alice.customer, bob.customer)
        for vertex in store.timeline(customer)
    )
    assert got == expected and len(got) == 6
    # The default (one timeline a customer) agrees with a backend's bulk answer.
    default = GraphStore._touchpoint_times(store, [alice.customer, bob.customer, "cust:nobody"])
    columns = [default.column(name).to_pylist() for name in found.column_names]
    assert sorted(zip(*columns, strict=True)) == got
    assert store.touchpoint_times([]).num_rows == 0
    with pytest.raises(InvalidInput):
        store.touchpoint_times(["tp:not-a-customer"])


# --- deletes --------------------------------------------------------------------------


def test_delete_vertex_cascades_its_edges(store: GraphStore) -> None:
    alice, bob = alice_and_bob(store)
    edges_before = store.count_edges()
    assert store.delete_vertices([alice.touchpoint_ids[1], "tp:not-there"]) == 1
    # PERFORMED from alice, NEXT in and NEXT out all went with the touchpoint.
    assert store.count_edges() == edges_before - 3
    assert store.get_vertex(alice.touchpoint_ids[1]) is None
    assert len(store.timeline(alice.customer)) == len(alice.events) - 1
    assert len(store.timeline(bob.customer)) == len(bob.events)


def test_delete_edges(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    first, second = alice.touchpoint_ids[:2]
    assert store.delete_edges("NEXT", [(first, second), (second, first)]) == 1
    assert store.get_edge("NEXT", first, second) is None
    assert store.get_vertex(first) is not None


# --- change feed ----------------------------------------------------------------------


def test_change_feed_reports_creates_and_updates_after_a_cursor(store: GraphStore) -> None:
    start = store.changes().cursor
    store.upsert_vertices("Customer", [("cust:a", {"v": 1}), ("cust:b", {"v": 1})])
    batch = store.changes(start)
    assert {(c.kind, c.id) for c in batch.changes} == {
        (ChangeKind.CREATED, "cust:a"),
        (ChangeKind.CREATED, "cust:b"),
    }
    assert all(c.element == "vertex" and c.label == "Customer" for c in batch.changes)
    cursor = batch.cursor
    store.upsert_vertices("Customer", [("cust:a", {"v": 1}), ("cust:b", {"v": 2})])
    later = store.changes(cursor)
    assert [(c.kind, c.id) for c in later.changes] == [(ChangeKind.UPDATED, "cust:b")]
    assert store.changes(later.cursor).changes == []


def test_change_feed_pages_with_limit(store: GraphStore) -> None:
    store.upsert_vertices("Customer", [(f"cust:{i}", {}) for i in range(5)])
    first = store.changes(0, limit=2)
    assert len(first.changes) == 2
    rest = store.changes(first.cursor, limit=100)
    assert len(rest.changes) == 3
    assert {c.id for c in first.changes} | {c.id for c in rest.changes} == {
        f"cust:{i}" for i in range(5)
    }


def test_change_feed_includes_edges(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    cursor = store.changes(0, limit=100_000).cursor
    store.upsert_edges("NEXT", [(alice.touchpoint_ids[0], alice.touchpoint_ids[2], {})])
    changes = store.changes(cursor).changes
    assert [(c.element, c.label, c.kind) for c in changes] == [("edge", "NEXT", ChangeKind.CREATED)]


def _whole_feed(store: GraphStore, since: int = 0, labels: Any = None) -> list[tuple[str, str]]:
    """``(kind, id)`` of every change after ``since``, paged one change at a time."""
    seen, cursor = [], since
    while (batch := store.changes(cursor, 1, labels=labels)).changes:
        seen += [(c.kind.value, c.id) for c in batch.changes]
        cursor = batch.cursor
    return seen


@pytest.mark.parametrize("labels", [["PERFORMED"], ["Customer", "NEXT"], ["Touchpoint"]])
def test_change_feed_keeps_the_labels_asked_for(store: GraphStore, labels: list[str]) -> None:
    alice_and_bob(store)
    everything = store.changes(0, 100_000).changes
    expected = [(c.kind.value, c.id) for c in everything if c.label in labels]
    assert expected  # the graph has changes of every label tested
    kept = store.changes(0, 100_000, labels=labels).changes
    assert sorted((c.kind.value, c.id) for c in kept) == sorted(expected)
    assert {c.label for c in kept} == set(labels)
    assert sorted(_whole_feed(store, labels=labels)) == sorted(expected)


def test_a_filtered_feed_moves_past_other_labels(store: GraphStore) -> None:
    store.upsert_vertices("Customer", [("cust:a", {})])
    quiet = store.changes(0, labels=["Touchpoint"])
    assert quiet.changes == []
    add_journeys(store, Journey("carol", ["app_login"]))
    later = store.changes(quiet.cursor, labels=["Touchpoint"])
    assert [c.id for c in later.changes] == ["tp:carol-000"]
    assert store.changes(later.cursor, labels=["Touchpoint"]).changes == []


def test_change_feed_keeps_the_kinds_asked_for_by_label(store: GraphStore) -> None:
    store.upsert_vertices("Customer", [("cust:a", {"v": 1}), ("cust:b", {"v": 1})])
    cursor = store.changes(0, 100).cursor
    store.upsert_vertices("Customer", [("cust:b", {"v": 2}), ("cust:c", {"v": 1})])
    store.upsert_vertices("Touchpoint", [("tp:x", {"event_type": "app_login"})])
    updated = store.changes(cursor, labels={"Customer": ["updated"]}).changes
    assert [(c.kind, c.id) for c in updated] == [(ChangeKind.UPDATED, "cust:b")]
    created = store.changes(cursor, labels={"Customer": [ChangeKind.CREATED]}).changes
    assert [(c.kind, c.id) for c in created] == [(ChangeKind.CREATED, "cust:c")]
    mixed = store.changes(cursor, labels={"Customer": ["updated"], "Touchpoint": ["created"]})
    assert sorted(c.id for c in mixed.changes) == ["cust:b", "tp:x"]
    assert _whole_feed(store, cursor, labels={"Customer": ["updated"]}) == [("updated", "cust:b")]


def test_change_feed_brings_edge_targets_when_asked(store: GraphStore) -> None:
    alice, bob = alice_and_bob(store)
    plain = store.changes(0, 100_000, labels=["PERFORMED", "Customer"]).changes
    assert all(c.target is None for c in plain)
    with_targets = store.changes(0, 100_000, labels=["PERFORMED", "Customer"], targets=True)
    performed = [c for c in with_targets.changes if c.label == "PERFORMED"]
    assert len(performed) == len(alice.touchpoint_ids) + len(bob.touchpoint_ids)
    for change in performed:
        assert change.target is not None
        assert change.id.endswith(">" + change.target.id)
        assert change.target == store.get_vertex(change.target.id)
    assert all(c.target is None for c in with_targets.changes if c.element == "vertex")


@pytest.mark.parametrize(
    "labels",
    ["Customer", ["Nope"], [], {"Customer": []}, {"Customer": ["gone"]}, {"Customer": "created"}],
)
def test_change_feed_refuses_bad_label_filters(store: GraphStore, labels: object) -> None:
    with pytest.raises(InvalidInput):
        store.changes(0, labels=labels)  # type: ignore[arg-type]


# --- exports --------------------------------------------------------------------------


def test_export_vertices_as_arrow(store: GraphStore) -> None:
    alice, bob = alice_and_bob(store)
    table = store.export_vertices("Touchpoint")
    assert isinstance(table, pa.Table)
    assert table.num_rows == len(alice.events) + len(bob.events)
    assert {"id", "event_type", "channel", "ts"} <= set(table.column_names)
    frame = table.to_pandas().set_index("id")
    assert frame.loc[alice.touchpoint_ids[0], "event_type"] == "bill_shock"
    assert frame.loc[alice.touchpoint_ids[0], "ts"] == T0


def test_export_edges_as_frame(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    frame = store.export_frame("NEXT")
    assert list(frame.columns[:2]) == ["source", "target"]
    assert len(frame) == len(alice.events) - 1 + 1  # alice's chain plus bob's one link
    assert set(frame["dt_seconds"]) == {3600}


def test_export_of_edges_without_properties(store: GraphStore) -> None:
    alice, bob = alice_and_bob(store)
    table = store.export_edges("PERFORMED")
    assert table.num_rows == len(alice.events) + len(bob.events)
    assert table.column_names[:2] == ["source", "target"]
    assert set(table["target"].to_pylist()) == {*alice.touchpoint_ids, *bob.touchpoint_ids}
    vertices = store.export_vertices("Customer")
    assert vertices.num_rows == 2


def test_export_of_empty_label(store: GraphStore) -> None:
    assert store.export_vertices("Cell").num_rows == 0
    assert store.export_edges("AT_CELL").num_rows == 0


def test_ping(store: GraphStore) -> None:
    store.ping()


def test_naive_utc_bounds_are_refused_but_aware_work(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    later = store.timeline(alice.customer, start=(T0 + timedelta(hours=2)).astimezone(UTC))
    assert len(later) == 2


# --- Arrow tables ------------------------------------------------------------------------


def _touchpoint_table(ids: list[str], **columns: object) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.string()), **columns})  # type: ignore[arg-type]


def test_vertex_table_upserts_like_records(store: GraphStore) -> None:
    # Milliseconds: the precision every backend keeps (Gremlin servers store no more).
    ts = [T0, T0 + timedelta(minutes=1, milliseconds=7)]
    table = _touchpoint_table(
        ["tp:t1", "tp:t2"],
        event_type=pa.array(["care_call", 'quote " and \\ and\nnewline ✓']),
        count=pa.array([1, -(2**40)], pa.int64()),
        score=pa.array([0.25, 1e16]),
        paid=pa.array([True, False]),
        ts=pa.array(ts, pa.timestamp("us", tz="UTC")),
    )
    assert store.upsert_vertex_table("Touchpoint", table) == UpsertResult(created=2)
    assert store.upsert_vertex_table("Touchpoint", table) == UpsertResult(unchanged=2)
    second = store.get_vertex("tp:t2")
    assert second is not None
    assert second.properties == {
        "event_type": 'quote " and \\ and\nnewline ✓',
        "count": -(2**40),
        "score": 1e16,
        "paid": False,
        "ts": ts[1],
    }
    # The same data as records changes nothing: both paths store the same documents.
    records = [(row.pop("id"), row) for row in table.to_pylist()]
    assert store.upsert_vertices("Touchpoint", records) == UpsertResult(unchanged=2)
    assert store.upsert_vertex_table("Touchpoint", store.export_vertices("Touchpoint")) == (
        UpsertResult(unchanged=2)
    )


def test_vertex_table_nulls_keep_what_the_vertex_had(store: GraphStore) -> None:
    store.upsert_vertices("Customer", [("cust:a", {"name": "A", "tier": 1})])
    table = pa.table(
        {
            "id": ["cust:a", "cust:b"],
            "name": pa.array([None, "B"], pa.string()),
            "tier": pa.array([2, None], pa.int64()),
            "unused": pa.array([None, None]),
        }
    )
    assert store.upsert_vertex_table("Customer", table) == UpsertResult(created=1, updated=1)
    assert [v.properties for v in store.get_vertices(["cust:a", "cust:b"])] == [
        {"name": "A", "tier": 2},
        {"name": "B"},
    ]


def test_vertex_table_with_repeated_ids_merges_in_order(store: GraphStore) -> None:
    table = pa.table({"id": ["cust:a", "cust:a"], "tier": [1, 2], "name": ["A", None]})
    assert store.upsert_vertex_table("Customer", table) == UpsertResult(created=1)
    vertex = store.get_vertex("cust:a")
    assert vertex is not None and vertex.properties == {"tier": 2, "name": "A"}


def test_edge_table_upserts_and_needs_its_endpoints(store: GraphStore) -> None:
    alice, _ = alice_and_bob(store)
    first, second, third = alice.touchpoint_ids[:3]
    table = pa.table(
        {"source": [first, first], "target": [second, third], "dt_seconds": [60, 7200]}
    )
    assert store.upsert_edge_table("NEXT", table) == UpsertResult(created=1, updated=1)
    assert store.upsert_edge_table("NEXT", table) == UpsertResult(unchanged=2)
    edge = store.get_edge("NEXT", first, third)
    assert edge is not None and edge.properties == {"dt_seconds": 7200}
    edges_before = store.count_edges()
    with pytest.raises(UnknownVertex):
        store.upsert_edge_table(
            "NEXT", pa.table({"source": [first, first], "target": [third, "tp:missing"]})
        )
    assert store.count_edges() == edges_before


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (pa.table({"key": ["cust:a"]}), InvalidInput),
        ([("cust:a", {})], InvalidInput),
        (pa.table({"id": ["cust:good", "tp:a"]}), MalformedId),
        (
            pa.table({"id": ["cust:good", None]}, schema=pa.schema([("id", pa.string())])),
            MalformedId,
        ),
        (pa.table({"id": pa.array([1, 2])}), MalformedId),
        (pa.table({"id": ["cust:good", "cust:a\nb"]}), MalformedId),
        (pa.table({"id": ["cust:good", "cust:a"], "x": [1.0, float("nan")]}), UnsupportedProperty),
        (
            pa.table(
                {
                    "id": ["cust:good", "cust:a"],
                    "when": pa.array([datetime(2024, 1, 1)] * 2, pa.timestamp("us")),
                }
            ),
            UnsupportedProperty,
        ),
        (pa.table({"id": ["cust:good", "cust:a"], "uid": ["x", "y"]}), UnsupportedProperty),
        (pa.table({"id": ["cust:good", "cust:a"], "tags": [["a"], ["b"]]}), UnsupportedProperty),
        (
            pa.table({"id": ["cust:good", "cust:a"], "n": pa.array([1, 2**63], pa.uint64())}),
            UnsupportedProperty,
        ),
    ],
)
def test_invalid_tables_are_refused_whole(
    store: GraphStore, table: pa.Table, error: type[Exception]
) -> None:
    with pytest.raises(error):
        store.upsert_vertex_table("Customer", table)
    assert store.count() == 0


def test_empty_table_writes_nothing(store: GraphStore) -> None:
    empty = pa.table({"id": pa.array([], pa.string())})
    assert store.upsert_vertex_table("Customer", empty) == UpsertResult()
    assert store.changes().changes == []
