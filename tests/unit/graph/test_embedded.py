"""What only the embedded store promises: one file, crash safety, readers beside a writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from graph import ChangeKind, EmbeddedStore, GraphUnavailable, InvalidInput, UnknownVertex


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
