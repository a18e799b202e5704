"""The timeline index: built from the lake, and kept up to date as the lake grows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from graph.errors import InvalidInput
from ingest.frame import FRAME_SCHEMA
from ingest.lake import Lake
from journeys.timelines import TimelineIndex, Timelines

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def frame(rows: list[tuple[str, str, str, int]]) -> tuple[pa.Table, pa.Array[Any]]:
    """(customer, event id, event type, minute) rows as a lake frame and its customers."""
    size = len(rows)
    columns: dict[str, Any] = {name: pa.nulls(size, pa.string()) for name in FRAME_SCHEMA.names}
    columns |= {
        "event_id": [r[1] for r in rows],
        "source": ["care" if r[2].startswith("call") else "app" for r in rows],
        "event_type": [r[2] for r in rows],
        "channel": ["app"] * size,
        "ts": pa.array([T0.timestamp() * 1000 + 60_000 * r[3] for r in rows]).cast(pa.int64()),
        "attributes": ["{}"] * size,
        "origin": ["test"] * size,
        "origin_row": list(range(size)),
    }
    columns["ts"] = columns["ts"].cast(pa.timestamp("ms", "UTC"))
    return pa.table(columns).cast(FRAME_SCHEMA), pa.array([r[0] for r in rows], pa.string())


def contents(timelines: Timelines) -> dict[str, list[tuple[str, str, str, int]]]:
    """Each customer's timeline as names, independent of codes and customer order."""
    result = {}
    for i, customer in enumerate(timelines.customers.to_pylist()):
        start, end = int(timelines.offsets[i]), int(timelines.offsets[i + 1])
        result[customer] = [
            (
                timelines.event_types[timelines.event[k]],
                timelines.channels[timelines.channel[k]],
                timelines.sources[timelines.source[k]],
                int(timelines.ts[k]),
            )
            for k in range(start, end)
        ]
    return result


def test_a_lake_that_grows_is_spliced_and_equals_a_rebuild(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    merges: dict[str, str] = {}
    index = TimelineIndex(lake, lambda: dict(merges))  # a new mapping each time
    lake.append(*frame([("cust:a", "e1", "login", 0), ("cust:b", "e2", "login", 1)]), "p1", 1)
    first = index.load()
    assert contents(first) == {
        "cust:a": [("login", "app", "app", int(T0.timestamp() * 1000))],
        "cust:b": [("login", "app", "app", int(T0.timestamp() * 1000) + 60_000)],
    }
    rebuilt_instead: list[int] = []
    build = index.build
    index.build = lambda merges: rebuilt_instead.append(1) or build(merges)  # type: ignore[method-assign]
    # New touchpoints for a, a new customer c, a new event type, and a tie in time.
    lake.append(
        *frame(
            [("cust:a", "e0", "call", 0), ("cust:c", "e3", "bill", 5), ("cust:a", "e4", "pay", 9)]
        ),
        "p2",
        2,
    )
    spliced = index.load()
    assert index.folder.exists()
    rebuilt = TimelineIndex(lake, lambda: merges).build(merges)
    assert contents(spliced) == contents(rebuilt)
    assert [e for e, *_ in contents(spliced)["cust:a"]] == ["call", "login", "pay"]
    assert spliced.event_types == ("bill", "call", "login", "pay")

    merges["cust:b"] = "cust:a"  # b merged into a: b's touchpoints move to a
    merged = index.load()
    assert contents(merged) == contents(TimelineIndex(lake, lambda: merges).build(merges))
    assert "cust:b" not in contents(merged)
    assert len(contents(merged)["cust:a"]) == 4
    assert rebuilt_instead == []  # both changes were spliced in, not rebuilt


def test_a_fresh_process_reuses_the_saved_copy_and_sees_changes(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.append(*frame([("cust:a", "e1", "login", 0)]), "p1", 1)
    TimelineIndex(lake, dict).load()
    saved = (lake.root / "timelines" / "meta.json").stat().st_mtime_ns
    again = TimelineIndex(lake, dict)
    assert contents(again.load())["cust:a"][0][0] == "login"
    assert (lake.root / "timelines" / "meta.json").stat().st_mtime_ns == saved
    lake.remove_part("p1")
    lake.append(*frame([("cust:z", "e9", "bill", 0)]), "p3", 3)
    assert list(contents(again.load())) == ["cust:z"]  # a file vanished: rebuilt


def test_an_empty_lake_has_no_timelines(tmp_path: Path) -> None:
    timelines = TimelineIndex(Lake(tmp_path / "lake"), dict).load()
    assert len(timelines) == 0 and timelines.customer_count == 0


def test_rows_need_every_column_and_no_nulls() -> None:
    with pytest.raises(InvalidInput, match="lack columns"):
        Timelines.from_table(pa.table({"customer": ["a"]}))
    rows = pa.table(
        {
            "customer": ["a"],
            "event_id": ["1"],
            "event_type": [None],
            "channel": ["app"],
            "source": ["s"],
            "ts": pa.array([0], pa.int64()),
        }
    )
    with pytest.raises(InvalidInput, match="nulls"):
        Timelines.from_table(rows)


def test_current_answers_without_waiting_and_only_while_fresh(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    index = TimelineIndex(lake, dict)
    assert index.current() is None, "nothing loaded yet"
    lake.append(*frame([("cust:a", "e1", "login", 0)]), "p1", 1)
    loaded = index.load()
    assert index.current() is loaded
    lake.append(*frame([("cust:b", "e2", "bill", 1)]), "p2", 2)
    assert index.current() is None, "the lake grew: stale until the next load"
    assert index.current() is None
    reloaded = index.load()
    assert "cust:b" in contents(reloaded)
    assert index.current() is reloaded
    with index._lock:  # another thread is loading: no waiting for it
        assert index.current() is None


def test_every_change_to_the_lake_replaces_its_change_marker(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    seen: set[bytes] = set()

    def marker() -> bytes:
        return lake.change_marker.read_bytes()  # a fresh random token each change

    lake.append(*frame([("cust:a", "e1", "login", 0)]), "p1", 1)
    seen.add(marker())
    lake.append(*frame([("cust:a", "e2", "login", 0)]), "p2", 2)
    assert marker() not in seen
    seen.add(marker())
    lake.remove_part("p2")
    assert marker() not in seen
    seen.add(marker())
    lake.remove_part("p9")  # nothing there: nothing changed
    assert marker() in seen
    lake.clear()
    assert marker() not in seen


def test_a_lake_without_a_marker_is_judged_by_its_folders(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.append(*frame([("cust:a", "e1", "login", 0)]), "p1", 1)
    lake.change_marker.unlink()  # as a lake written before there was one
    index = TimelineIndex(lake, dict)
    assert list(contents(index.load())) == ["cust:a"]
    lake.append(*frame([("cust:b", "e2", "login", 0)]), "p2", 2)
    lake.change_marker.unlink()
    assert list(contents(index.load())) == ["cust:a", "cust:b"]
