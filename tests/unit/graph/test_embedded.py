"""What only the embedded store promises: one file, crash safety, readers beside a writer."""

from __future__ import annotations

import os
import signal
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
    EmbeddedStore,
    GraphStore,
    GraphUnavailable,
    InvalidInput,
    UnknownVertex,
    UpsertResult,
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
