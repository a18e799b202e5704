"""What only the embedded store promises: one file, crash safety, readers beside a writer,
and what its storage layout must keep true (integer keys, edges stored both ways)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph import (
    ChangeKind,
    EdgeLabel,
    EmbeddedStore,
    GraphError,
    GraphStore,
    GraphUnavailable,
    InvalidInput,
    UnknownVertex,
    UnsupportedProperty,
    UpsertResult,
    _embedded_write,
    embedded,
)


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with EmbeddedStore(path) as store:
        store.upsert_vertices("Customer", [("cust:a", {"name": "A"})])
    with EmbeddedStore(path) as store:
        vertex = store.get_vertex("cust:a")
        assert vertex is not None and vertex.properties == {"name": "A"}


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "g.db")
    store.close()
    with pytest.raises(GraphUnavailable):
        store.upsert_vertices("Customer", [("cust:a", {})])
    with pytest.raises(GraphUnavailable):
        store.get_vertex("cust:a")


def test_bad_durability_setting(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        EmbeddedStore(tmp_path / "g.db", durability="sometimes")  # type: ignore[arg-type]


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(GraphUnavailable, match="cannot"):
        EmbeddedStore(blocker / "sub" / "g.db")


def test_mixed_property_types_export_as_text(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Offer", [("offer:a", {"code": 12}), ("offer:b", {"code": "X1"})])
        table = store.export_vertices("Offer")
        assert table.column("code").to_pylist() == ["12", "X1"]


def test_edge_error_names_the_first_missing_endpoint(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [("cust:a", {})])
        store.upsert_vertices("Touchpoint", [("tp:1", {})])
        with pytest.raises(UnknownVertex) as caught:
            store.upsert_edges("PERFORMED", [("cust:a", "tp:1", {}), ("cust:a", "tp:2", {})])
        assert caught.value.details == {"index": 1, "id": "tp:2"}
        assert store.count_edges() == 0


_WRITER = textwrap.dedent(
    """
    import sys
    from graph import EmbeddedStore
    store = EmbeddedStore(sys.argv[1])
    batch = 0
    while True:
        rows = [(f"cust:{batch}-{i}", {"batch": batch, "pad": "x" * 200}) for i in range(2000)]
        store.upsert_vertices("Customer", rows)
        print(batch, flush=True)
        batch += 1
    """
)


def test_a_killed_writer_leaves_every_committed_batch_whole(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert writer.stdout is not None
    committed = -1
    deadline = time.monotonic() + 60
    while committed < 5 and time.monotonic() < deadline:
        committed = int(writer.stdout.readline())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert committed >= 5, "the writer did not commit five batches in time"
    with EmbeddedStore(path) as store:
        total = store.count("Customer")
        # Every batch it reported is there, and no batch is there in part.
        assert total >= (committed + 1) * 2000
        assert total % 2000 == 0
        frame = store.export_frame("Customer")
        assert set(frame.groupby("batch").size()) == {2000}


def test_readers_read_while_a_writer_writes(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [("cust:seed", {})])
        stop = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                while not stop.is_set():
                    seen.append(store.count("Customer"))
            except BaseException as error:  # surfaced in the assertion below
                errors.append(error)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for reader in readers:
            reader.start()
        for batch in range(20):
            store.upsert_vertices("Customer", [(f"cust:{batch}-{i}", {}) for i in range(500)])
        stop.set()
        for reader in readers:
            reader.join()
        assert not errors
        # Readers only ever see whole batches: 1 seed vertex plus a multiple of 500.
        assert seen and all((count - 1) % 500 == 0 for count in seen)
        assert max(seen) <= 1 + 20 * 500


def test_change_feed_compaction_drops_what_every_consumer_has_read(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [(f"cust:{i}", {}) for i in range(10)])
        store.delete_vertices(["cust:0", "cust:1"])
        cursor = store.changes().cursor
        store.upsert_vertices("Customer", [("cust:new", {})])
        assert store.compact_changes(cursor) >= 1
        assert [(c.kind, c.id) for c in store.changes(cursor).changes] == [
            (ChangeKind.CREATED, "cust:new")
        ]
        assert [c.id for c in store.changes().changes] == ["cust:new"]


def test_change_feed_pages_through_one_large_batch(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [(f"cust:{i:04d}", {}) for i in range(1200)])
        cursor, seen = 0, []
        while batch := store.changes(cursor, limit=250).changes:
            seen += [c.id for c in batch]
            cursor = store.changes(cursor, limit=250).cursor
        assert seen == [f"cust:{i:04d}" for i in range(1200)]


def test_change_feed_keeps_each_elements_latest_change(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [("cust:a", {"v": 1})])
        store.upsert_vertices("Customer", [("cust:a", {"v": 2})])
        assert [(c.kind, c.id) for c in store.changes().changes] == [(ChangeKind.CREATED, "cust:a")]


def test_a_filtered_feed_reports_deletions_and_updates_only_when_asked(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [("cust:a", {})])
        store.upsert_vertices("Touchpoint", [(f"tp:{i}", {"v": 1}) for i in range(3)])
        store.upsert_edges("PERFORMED", [("cust:a", f"tp:{i}", {}) for i in range(3)])
        cursor = store.changes(0, limit=100).cursor
        store.upsert_vertices("Touchpoint", [("tp:0", {"v": 2}), ("tp:9", {"v": 1})])
        store.delete_vertices(["tp:1"])
        wanted = {"Touchpoint": ["updated", "deleted"], "PERFORMED": ["deleted"]}
        found = store.changes(cursor, labels=wanted)
        assert [(c.kind, c.id) for c in found.changes] == [
            (ChangeKind.UPDATED, "tp:0"),
            (ChangeKind.DELETED, "PERFORMED:cust:a>tp:1"),
            (ChangeKind.DELETED, "tp:1"),
        ]
        assert found.cursor == store.changes(cursor).cursor
        nothing = store.changes(cursor, labels={"Customer": ["deleted"]})
        assert nothing.changes == [] and nothing.cursor == found.cursor


_FEED_LABELS = ("Customer", "Touchpoint", "PERFORMED")
_KINDS = st.sets(st.sampled_from(list(ChangeKind)), min_size=1)


@settings(max_examples=40, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from(["upsert", "delete"]), st.sets(st.integers(0, 7), min_size=1)),
        min_size=1,
        max_size=8,
    ),
    start=st.integers(0, 8),
    wanted=st.dictionaries(st.sampled_from(_FEED_LABELS), _KINDS, min_size=1),
    limit=st.integers(1, 5),
)
def test_a_filtered_feed_is_the_whole_feed_filtered(
    writes: list[tuple[str, set[int]]],
    start: int,
    wanted: dict[str, set[ChangeKind]],
    limit: int,
) -> None:
    with tempfile.TemporaryDirectory() as folder, EmbeddedStore(Path(folder) / "g.db") as store:
        cursors = [0]
        for step, (action, numbers) in enumerate(writes):
            if action == "delete":
                store.delete_vertices([f"tp:{n}" for n in numbers])
            else:
                store.upsert_vertices("Customer", [("cust:a", {"step": step})])
                store.upsert_vertices("Touchpoint", [(f"tp:{n}", {"v": step}) for n in numbers])
                store.upsert_edges("PERFORMED", [("cust:a", f"tp:{n}", {}) for n in numbers])
            cursors.append(store.changes(cursors[-1], limit=1000).cursor)
        since = cursors[min(start, len(cursors) - 1)]

        def keep(change: object) -> bool:
            return change.kind in wanted.get(change.label, ())  # type: ignore[attr-defined]

        whole = store.changes(since, limit=1000)
        filtered = store.changes(since, limit=1000, labels=wanted)
        assert filtered.changes == [c for c in whole.changes if keep(c)]
        assert filtered.cursor == whole.cursor
        # Paged, kinds are relative to each page's cursor; the elements are the same.
        labels = list(wanted)
        paged, cursor = [], since
        while (batch := store.changes(cursor, limit, labels=labels)).changes:
            assert len(batch.changes) <= limit
            paged += [c.id for c in batch.changes]
            cursor = batch.cursor
        assert sorted(paged) == sorted(c.id for c in whole.changes if c.label in labels)


def test_pandas_timestamps_and_str_enums_are_stored(tmp_path: Path) -> None:
    import pandas as pd

    from graph import VertexLabel

    with EmbeddedStore(tmp_path / "g.db") as store:
        ts = pd.Timestamp("2024-01-01T10:00:00", tz="UTC")
        store.upsert_vertices("Touchpoint", [("tp:1", {"ts": ts, "kind": VertexLabel.CELL})])
        vertex = store.get_vertex("tp:1")
        assert vertex is not None
        assert vertex.properties == {"ts": ts.to_pydatetime(), "kind": "Cell"}


# --- bulk writes -------------------------------------------------------------------------


def test_counts_and_feed_are_exact_across_statement_chunks(tmp_path: Path) -> None:
    # 1,500 rows span several multi-row statements, some chunks all new, some mixed.
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [(f"cust:{i:04d}", {"v": 1}) for i in range(0, 1500, 2)])
        cursor = store.changes(0, limit=100_000).cursor
        rows = [(f"cust:{i:04d}", {"v": 2 if i % 4 == 0 else 1}) for i in range(1500)]
        assert store.upsert_vertices("Customer", rows) == UpsertResult(
            created=750, updated=375, unchanged=375
        )
        changes = store.changes(cursor, limit=100_000).changes
        assert sorted((c.kind, c.id) for c in changes) == sorted(
            [(ChangeKind.CREATED, f"cust:{i:04d}") for i in range(1, 1500, 2)]
            + [(ChangeKind.UPDATED, f"cust:{i:04d}") for i in range(0, 1500, 4)]
        )
        assert store.upsert_vertices("Customer", rows) == UpsertResult(unchanged=1500)
        assert store.changes(store.changes(cursor, limit=100_000).cursor).changes == []


def test_edges_removing_a_property_go_with_the_rest_of_their_batch(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Touchpoint", [(f"tp:{i}", {}) for i in range(4)])
        store.upsert_edges("NEXT", [("tp:0", "tp:1", {"a": 1, "b": 2})])
        batch = [("tp:0", "tp:1", {"b": None}), ("tp:1", "tp:2", {"a": 1}), ("tp:2", "tp:3", {})]
        assert store.upsert_edges("NEXT", batch) == UpsertResult(created=2, updated=1)
        edge = store.get_edge("NEXT", "tp:0", "tp:1")
        assert edge is not None and edge.properties == {"a": 1}
        assert store.upsert_edges("NEXT", batch) == UpsertResult(unchanged=3)


def test_edge_table_error_names_the_first_missing_endpoint(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [("cust:a", {})])
        store.upsert_vertices("Touchpoint", [("tp:1", {})])
        table = pa.table({"source": ["cust:a", "cust:a"], "target": ["tp:1", "tp:2"]})
        with pytest.raises(UnknownVertex) as caught:
            store.upsert_edge_table("PERFORMED", table)
        assert caught.value.details == {"index": 1, "id": "tp:2"}
        assert store.count_edges() == 0


class _RecordsOnly(EmbeddedStore):
    """The embedded store taking tables the default way, as records."""

    _upsert_vertex_table = GraphStore._upsert_vertex_table
    _upsert_edge_table = GraphStore._upsert_edge_table


_COLUMN_VALUES = {
    "text": (
        pa.string(),
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
    ),
    "count": (pa.int64(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "small": (pa.int8(), st.integers(min_value=-128, max_value=127)),
    "score": (pa.float64(), st.floats(allow_nan=False, allow_infinity=False)),
    "ratio": (pa.float32(), st.floats(width=32, allow_nan=False, allow_infinity=False)),
    "flag": (pa.bool_(), st.booleans()),
    "ts": (
        pa.timestamp("us", tz="UTC"),
        st.datetimes(
            min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
        ),
    ),
    "seen": (
        pa.timestamp("ns", tz="Europe/London"),
        st.integers(min_value=-(2**62), max_value=2**62),
    ),
}


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_table_fast_path_stores_what_the_records_path_stores(data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from(sorted(_COLUMN_VALUES)), unique=True, max_size=4))
    size = data.draw(st.integers(min_value=1, max_value=5))
    columns = {"id": pa.array([f"tp:{i}" for i in range(size)])}
    for name in names:
        kind, values = _COLUMN_VALUES[name]
        column = data.draw(st.lists(st.none() | values, min_size=size, max_size=size))
        columns[name] = pa.array(column, kind)
    table = pa.table(columns)
    with tempfile.TemporaryDirectory() as folder:
        with (
            EmbeddedStore(Path(folder) / "a.db") as fast,
            _RecordsOnly(Path(folder) / "b.db") as slow,
        ):
            assert fast.upsert_vertex_table("Touchpoint", table) == UpsertResult(created=size)
            assert slow.upsert_vertex_table("Touchpoint", table) == UpsertResult(created=size)
            sql = "SELECT id, props, ts FROM vertices ORDER BY id"
            assert fast._reader().execute(sql).fetchall() == slow._reader().execute(sql).fetchall()


def test_timeline_puts_touchpoints_without_ts_first_with_or_without_a_limit(
    tmp_path: Path,
) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [("cust:a", {})])
        touchpoints = [
            ("tp:b", {"ts": datetime(2024, 1, 1, tzinfo=UTC)}),
            ("tp:c", {}),
            ("tp:a", {"ts": datetime(2024, 1, 1, tzinfo=UTC)}),
            ("tp:d", {"ts": datetime(2023, 1, 1, tzinfo=UTC)}),
        ]
        store.upsert_vertices("Touchpoint", touchpoints)
        store.upsert_edges("PERFORMED", [("cust:a", tp, {}) for tp, _ in touchpoints])
        expected = ["tp:c", "tp:d", "tp:a", "tp:b"]
        assert [v.id for v in store.timeline("cust:a")] == expected
        assert [v.id for v in store.timeline("cust:a", limit=4)] == expected


# --- schema version 2: integer keys, edges both ways, batch endpoint checks ---------------


def _raw(store: EmbeddedStore, sql: str) -> list[tuple[object, ...]]:
    return store._reader().execute(sql).fetchall()


def _assert_reverse_keys_match(store: EmbeddedStore) -> None:
    forward = _raw(store, "SELECT src, label, dst FROM edges ORDER BY 1, 2, 3")
    backward = _raw(store, "SELECT src, label, dst FROM edges_in ORDER BY 1, 2, 3")
    assert forward == backward


def test_a_file_of_another_schema_version_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('seq', '3'), ('schema_version', '1');"
            "CREATE TABLE vertices (id TEXT PRIMARY KEY, label TEXT NOT NULL,"
            " props TEXT NOT NULL, ts INTEGER, seq INTEGER NOT NULL, cseq INTEGER NOT NULL)"
            " WITHOUT ROWID;"
        )
    old.close()
    with pytest.raises(GraphError, match="schema version 1.*reads version 2") as caught:
        EmbeddedStore(path)
    assert caught.value.details == {"schema_version": "1", "expected": "2"}
    with sqlite3.connect(path) as old:
        tables = {row[0] for row in old.execute("SELECT name FROM sqlite_master")}
        version = old.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    old.close()
    assert "edges_in" not in tables and version == ("1",)


def test_the_cache_size_must_be_a_positive_number_of_megabytes(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cache_mb"):
        EmbeddedStore(tmp_path / "g.db", cache_mb=0)
    with EmbeddedStore(tmp_path / "g.db", cache_mb=8) as store:
        assert _raw(store, "PRAGMA cache_size") == [(-64 * 1024,)]  # readers keep 64 MB
        assert store._writer.execute("PRAGMA cache_size").fetchone() == (-8 * 1024,)


def test_every_edge_label_has_its_own_stored_code() -> None:
    codes = embedded._EDGE_LABEL_CODES
    assert set(codes) == set(EdgeLabel)
    assert len(set(codes.values())) == len(codes)


_TOUCHPOINTS = [f"tp:{i:02d}" for i in range(12)]


@pytest.mark.parametrize("as_table", [False, True])
@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        # Targets in increasing order (looked up as they are), the missing one a target.
        ([("tp:00", "tp:01"), ("tp:00", "tp:03"), ("tp:01", "tp:99")], (2, "tp:99")),
        # Sources in increasing order, the missing one a source.
        ([("tp:00", "tp:05"), ("tp:98", "tp:04"), ("tp:99", "tp:03")], (1, "tp:98")),
        # Neither in order (looked up together, sorted): the source is named first.
        (
            [("tp:05", "tp:01"), ("tp:02", "tp:09"), ("tp:97", "tp:96"), ("tp:95", "tp:00")],
            (2, "tp:97"),
        ),
        # Neither in order, the missing one a target.
        ([("tp:05", "tp:01"), ("tp:02", "tp:09"), ("tp:04", "tp:96")], (2, "tp:96")),
    ],
)
def test_an_edge_batch_names_its_first_missing_endpoint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    as_table: bool,
    edges: list[tuple[str, str]],
    expected: tuple[int, str],
) -> None:
    monkeypatch.setattr(_embedded_write, "LOOKUP_CHUNK", 2)  # several lookups a batch
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Touchpoint", [(tp, {}) for tp in _TOUCHPOINTS])
        with pytest.raises(UnknownVertex) as caught:
            if as_table:
                sources, targets = zip(*edges, strict=True)
                store.upsert_edge_table("NEXT", pa.table({"source": sources, "target": targets}))
            else:
                store.upsert_edges("NEXT", [(s, t, {"n": 1}) for s, t in edges])
        assert caught.value.details == {"index": expected[0], "id": expected[1]}
        assert store.count_edges() == 0 and _raw(store, "SELECT * FROM edges_in") == []
        assert [c for c in store.changes().changes if c.element == "edge"] == []


def test_endpoints_are_found_through_any_number_of_lookups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_embedded_write, "LOOKUP_CHUNK", 3)
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Touchpoint", [(tp, {}) for tp in _TOUCHPOINTS])
        shuffled = _TOUCHPOINTS[5:] + _TOUCHPOINTS[:5]
        chain = list(zip(shuffled, shuffled[1:], strict=False))
        assert store.upsert_edges("NEXT", [(s, t, {}) for s, t in chain]) == UpsertResult(
            created=len(chain)
        )
        assert {(n.edge.source, n.edge.target) for n in store.neighbours("tp:00", "both")} == {
            pair for pair in chain if "tp:00" in pair
        }


def test_ids_with_quotes_backslashes_and_accents_are_endpoints_like_any_other(
    tmp_path: Path,
) -> None:
    odd = ['tp:say "hi"', "tp:back\\slash", "tp:café", "tp:plain"]
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Touchpoint", [(tp, {}) for tp in odd])
        table = pa.table({"source": odd[:3], "target": odd[1:]})
        assert store.upsert_edge_table("NEXT", table) == UpsertResult(created=3)
        assert store.upsert_edges("NEXT", [(odd[3], odd[0], {})]) == UpsertResult(created=1)
        assert [n.vertex.id for n in store.neighbours('tp:say "hi"', "in")] == ["tp:plain"]
        assert store.get_edge("NEXT", "tp:back\\slash", "tp:café") is not None


def test_repeated_edges_in_a_table_merge_in_order(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Touchpoint", [("tp:a", {}), ("tp:b", {}), ("tp:c", {})])
        table = pa.table(
            {
                "source": ["tp:a", "tp:b", "tp:a"],
                "target": ["tp:b", "tp:c", "tp:b"],
                "n": [1, 2, 3],
                "m": pa.array([1, None, None], pa.int64()),
            }
        )
        assert store.upsert_edge_table("NEXT", table) == UpsertResult(created=2)
        edge = store.get_edge("NEXT", "tp:a", "tp:b")
        assert edge is not None and edge.properties == {"n": 3, "m": 1}
        _assert_reverse_keys_match(store)


def test_edge_counts_feed_and_reverse_keys_are_exact_across_statement_chunks(
    tmp_path: Path,
) -> None:
    # 1,500 edges span several multi-row statements, some chunks all new, some mixed.
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [("cust:a", {})])
        store.upsert_vertices("Touchpoint", [(f"tp:{i:04d}", {}) for i in range(1500)])
        store.upsert_edges("PERFORMED", [("cust:a", f"tp:{i:04d}", {}) for i in range(0, 1500, 2)])
        cursor = store.changes(0, limit=100_000).cursor
        table = pa.table(
            {
                "source": ["cust:a"] * 1500,
                "target": [f"tp:{i:04d}" for i in range(1500)],
                "w": [2 if i % 4 == 0 else None for i in range(1500)],
            }
        )
        assert store.upsert_edge_table("PERFORMED", table) == UpsertResult(
            created=750, updated=375, unchanged=375
        )
        _assert_reverse_keys_match(store)
        changes = store.changes(cursor, limit=100_000).changes
        expected = [(ChangeKind.CREATED, i) for i in range(1, 1500, 2)]
        expected += [(ChangeKind.UPDATED, i) for i in range(0, 1500, 4)]
        assert sorted((c.kind, c.id) for c in changes) == sorted(
            (kind, f"PERFORMED:cust:a>tp:{i:04d}") for kind, i in expected
        )
        assert store.upsert_edge_table("PERFORMED", table) == UpsertResult(unchanged=1500)
        assert len(store.timeline("cust:a")) == 1500


def test_deleting_vertices_deletes_their_edges_both_ways_and_logs_them(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Customer", [("cust:a", {})])
        store.upsert_vertices("Touchpoint", [(f"tp:{i}", {}) for i in range(4)])
        store.upsert_edges("PERFORMED", [("cust:a", f"tp:{i}", {}) for i in range(4)])
        store.upsert_edges(
            "NEXT", [("tp:0", "tp:1", {}), ("tp:1", "tp:2", {}), ("tp:2", "tp:3", {})]
        )
        cursor = store.changes(0, limit=100).cursor
        assert store.delete_vertices(["tp:1", "tp:2"]) == 2
        assert store.count_edges() == 2  # PERFORMED to tp:0 and tp:3
        assert store.neighbours("tp:0", "both", ["NEXT"]) == []
        assert store.neighbours("tp:3", "both", ["NEXT"]) == []
        _assert_reverse_keys_match(store)
        deleted = {(c.element, c.id) for c in store.changes(cursor).changes}
        assert deleted == {
            ("vertex", "tp:1"),
            ("vertex", "tp:2"),
            ("edge", "PERFORMED:cust:a>tp:1"),
            ("edge", "PERFORMED:cust:a>tp:2"),
            ("edge", "NEXT:tp:0>tp:1"),
            ("edge", "NEXT:tp:1>tp:2"),
            ("edge", "NEXT:tp:2>tp:3"),
        }
        # A vertex made again under an old id starts with no edges.
        store.upsert_vertices("Touchpoint", [("tp:1", {})])
        assert store.neighbours("tp:1") == []
        assert store.delete_edges("PERFORMED", [("cust:a", "tp:0"), ("cust:a", "tp:9")]) == 1
        _assert_reverse_keys_match(store)


_BULK = embedded._BULK_ROWS


def test_bulk_batches_are_checkpointed_on_a_thread_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with EmbeddedStore(path) as store:
        store.upsert_vertices("Customer", [("cust:small", {})])
        assert store._checkpointer is None  # small batches checkpoint as SQLite does
        ids = [f"cust:{i:06d}" for i in range(_BULK)]
        store.upsert_vertex_table("Customer", pa.table({"id": ids, "pad": ["x" * 100] * _BULK}))
        assert store._checkpointer is not None
        # The batch reaches the database file without the writer or a close doing it.
        deadline = time.monotonic() + 30
        while path.stat().st_size < 100 * _BULK and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= 100 * _BULK
    assert not any(t.name.startswith("checkpoint of") for t in threading.enumerate())
    with EmbeddedStore(path) as store:
        assert store.count("Customer") == _BULK + 1


_BULK_WRITER = textwrap.dedent(
    f"""
    import sys
    import pyarrow as pa
    from graph import EmbeddedStore
    store = EmbeddedStore(sys.argv[1])
    batch = 0
    while True:
        ids = [f"cust:{{batch}}-{{i}}" for i in range({_BULK})]
        table = pa.table({{"id": ids, "batch": [batch] * {_BULK}}})
        store.upsert_vertex_table("Customer", table)
        print(batch, flush=True)
        batch += 1
    """
)


def test_a_killed_bulk_writer_leaves_every_committed_batch_whole(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    writer = subprocess.Popen(
        [sys.executable, "-c", _BULK_WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert writer.stdout is not None
    committed = -1
    deadline = time.monotonic() + 120
    while committed < 3 and time.monotonic() < deadline:
        committed = int(writer.stdout.readline())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert committed >= 3, "the writer did not commit four batches in time"
    with EmbeddedStore(path) as store:
        total = store.count("Customer")
        assert total >= (committed + 1) * _BULK
        assert total % _BULK == 0
        assert set(store.export_frame("Customer").groupby("batch").size()) == {_BULK}


def test_existing_vertices_reads_only_the_id_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_embedded_write, "LOOKUP_CHUNK", 2)
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Touchpoint", [('tp:"q"', {}), ("tp:b", {}), ("tp:c", {})])
        wanted = ["tp:c", "tp:x", 'tp:"q"', "tp:c", "cust:b"]
        assert store.existing_vertices(wanted) == {"tp:c", 'tp:"q"'}
        assert store.existing_vertices([]) == set()


# --- large batches in parts, the next prepared while one is written -----------------------


@pytest.fixture
def parts_of_three(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of more than three rows go in parts of three, overlapped."""
    monkeypatch.setattr(_embedded_write, "PART_ROWS", 3)


@pytest.mark.usefixtures("parts_of_three")
@pytest.mark.parametrize(
    "ids",
    [[f"tp:{i:02d}" for i in range(10)], [f"tp:{i:02d}" for i in (7, 3, 9, 0, 1, 8, 2, 6, 5, 4)]],
)
def test_a_vertex_table_in_parts_stores_what_the_records_path_stores(
    tmp_path: Path, ids: list[str]
) -> None:
    table = pa.table(
        {
            "id": ids,
            "n": pa.array([i if i % 3 else None for i in range(10)], pa.int64()),
            "ts": pa.array([datetime(2024, 1, 1 + i, tzinfo=UTC) for i in range(10)]),
        }
    )
    with EmbeddedStore(tmp_path / "a.db") as fast, _RecordsOnly(tmp_path / "b.db") as slow:
        assert fast.upsert_vertex_table("Touchpoint", table) == UpsertResult(created=10)
        assert slow.upsert_vertex_table("Touchpoint", table) == UpsertResult(created=10)
        sql = "SELECT id, props, ts FROM vertices ORDER BY id"
        assert _raw(fast, sql) == _raw(slow, sql)
        assert sorted(c.id for c in fast.changes().changes) == sorted(ids)
        assert fast._preparer is not None
        assert fast.upsert_vertex_table("Touchpoint", table) == UpsertResult(unchanged=10)
    assert not any(t.name.startswith("journeygraph-prepare") for t in threading.enumerate())


@pytest.mark.usefixtures("parts_of_three")
def test_a_bad_value_in_a_later_part_refuses_the_whole_table(tmp_path: Path) -> None:
    values = [1.0] * 9 + [float("nan")]
    with EmbeddedStore(tmp_path / "g.db") as store:
        vertices = pa.table({"id": [f"tp:{i}" for i in range(10)], "x": values})
        with pytest.raises(UnsupportedProperty):
            store.upsert_vertex_table("Touchpoint", vertices)
        assert store.count() == 0
        store.upsert_vertex_table("Touchpoint", vertices.drop_columns(["x"]))
        edges = pa.table(
            {
                "source": [f"tp:{i}" for i in range(10)],
                "target": ["tp:missing"] + [f"tp:{(i + 1) % 10}" for i in range(1, 10)],
                "x": values,
            }
        )
        # The bad value is reported before the missing endpoint, as the records path does.
        with pytest.raises(UnsupportedProperty):
            store.upsert_edge_table("NEXT", edges)
        with pytest.raises(UnknownVertex) as caught:
            store.upsert_edge_table("NEXT", edges.drop_columns(["x"]))
        assert caught.value.details == {"index": 0, "id": "tp:missing"}
        late = edges.drop_columns(["x"]).slice(1).append_column("n", pa.array(range(9)))
        late = pa.concat_tables(
            [late, pa.table({"source": ["tp:0"], "target": ["tp:nowhere"], "n": [9]})]
        )
        with pytest.raises(UnknownVertex) as caught:
            store.upsert_edge_table("NEXT", late)
        assert caught.value.details == {"index": 9, "id": "tp:nowhere"}
        assert store.count_edges() == 0 and _raw(store, "SELECT * FROM edges_in") == []


@pytest.mark.usefixtures("parts_of_three")
def test_an_edge_table_in_parts_writes_and_merges_like_one_batch(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "g.db") as store:
        store.upsert_vertices("Touchpoint", [(f"tp:{i}", {}) for i in range(10)])
        pairs = [(f"tp:{i}", f"tp:{(i * 7) % 10}") for i in range(10)]
        pairs.append(pairs[1])  # the same edge in another part
        table = pa.table(
            {
                "source": [s for s, _ in pairs],
                "target": [t for _, t in pairs],
                "n": list(range(len(pairs))),
            }
        )
        assert store.upsert_edge_table("NEXT", table) == UpsertResult(created=10)
        edge = store.get_edge("NEXT", *pairs[1])
        assert edge is not None and edge.properties == {"n": 10}
        _assert_reverse_keys_match(store)
        plain = table.slice(0, 10).drop_columns(["n"])
        assert store.upsert_edge_table("NEXT", plain) == UpsertResult(unchanged=10)
        assert store.upsert_edges("NEXT", [(s, t, {"n": 10}) for s, t in pairs[:10]]) == (
            UpsertResult(updated=9, unchanged=1)
        )
