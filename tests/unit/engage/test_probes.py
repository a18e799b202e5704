"""Probe readers: canonical JSON lines, CSV and Parquet files, the generator's cell KPIs,
and a reason in the quarantine for every kind of bad row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.model import METRICS, PROBE_SCHEMA
from engage.probes import (
    CANONICAL,
    CELL_KPIS,
    PROBE_SOURCE,
    ProbeBatch,
    ProbeMapping,
    known_cells_from_file,
    known_cells_from_store,
    probe_mapping_for,
    probes_from_lines,
    probes_from_records,
    read_probe_file,
    read_probe_lines,
)
from graph.embedded import EmbeddedStore
from graph.errors import InvalidInput
from graph.model import derived_event_id
from ingest.quarantine import QuarantineWriter, read_quarantine

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def event(**change: Any) -> dict[str, Any]:
    """A good canonical probe event, with some fields changed (``None`` removes one)."""
    record: dict[str, Any] = {
        "event_id": "p-1",
        "subscriber": "+447700900123",
        "cell_id": "234-10-1-1",
        "ts": "2024-05-01T10:00:00Z",
        "weight": 4,
        "call_drop_rate": 0.25,
        "call_quality_impairment": 0.1,
        "low_bitrate_share": None,
        "video_stalling_share": 0.0,
    }
    record.update(change)
    return {key: value for key, value in record.items() if value is not ...}


def lines_of(*records: Any) -> list[bytes]:
    return [orjson.dumps(record) for record in records]


def read(lines: list[bytes], **options: Any) -> ProbeBatch:
    return probes_from_lines(lines, clock=clock, **options)


def reasons_of(batch: ProbeBatch) -> dict[int, list[str]]:
    return {row.row: list(row.reasons) for row in batch.quarantined}


def test_a_good_event_becomes_a_probe_row() -> None:
    batch = read(lines_of(event()))
    assert batch.quarantined == []
    assert batch.table.schema == PROBE_SCHEMA
    assert batch.table.to_pylist() == [
        {
            "event_id": "p-1",
            "subscriber": "+447700900123",
            "cell_id": "234-10-1-1",
            "ts": datetime(2024, 5, 1, 10, tzinfo=UTC),
            "weight": 4.0,
            "call_drop_rate": 0.25,
            "call_quality_impairment": 0.1,
            "low_bitrate_share": None,
            "video_stalling_share": 0.0,
        }
    ]
    assert batch.rows_read == 1


@pytest.mark.parametrize(
    "spelling", ["+447700900123", "07700 900123", "447700900123", "+44 7700 900123"]
)
def test_subscribers_are_stored_in_e164(spelling: str) -> None:
    batch = read(lines_of(event(subscriber=spelling)))
    assert batch.table.column("subscriber").to_pylist() == ["+447700900123"]


def test_absent_metrics_were_not_measured_and_an_absent_weight_is_refused() -> None:
    batch = read(lines_of(event(call_drop_rate=..., video_stalling_share=...)))
    assert batch.table.column("call_drop_rate").to_pylist() == [None]
    no_weight = read(lines_of(event(weight=...)))
    assert reasons_of(no_weight) == {1: ["weight: missing (no value in column 'weight')"]}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event_id": ...}, "event_id: missing (no value in column 'event_id')"),
        ({"event_id": "x" * 600}, "event_id (column 'event_id'): longer than 509 characters"),
        ({"subscriber": ...}, "subscriber: missing (no value in column 'subscriber')"),
        ({"subscriber": "   "}, "subscriber: missing (no value in column 'subscriber')"),
        ({"subscriber": "12"}, "subscriber (column 'subscriber'): msisdn '12' has an impossible"),
        ({"subscriber": "call me"}, "subscriber (column 'subscriber'): msisdn 'call me' is not a"),
        ({"cell_id": ...}, "cell_id: missing (no value in column 'cell_id')"),
        ({"ts": ...}, "ts: missing (no value in column 'ts')"),
        ({"ts": "yesterday"}, "ts (column 'ts'): 'yesterday' is not an ISO-8601 timestamp"),
        ({"ts": "2024-05-01T10:00:00"}, "ts (column 'ts'): has no timezone"),
        ({"ts": "2024-06-09T10:00:00Z"}, "ts (column 'ts'): impossible timestamp 2024-06-09"),
        ({"ts": "1980-01-01T00:00:00Z"}, "ts (column 'ts'): impossible timestamp 1980-01-01"),
        ({"ts": 1714557600000}, "ts (column 'ts'): '1714557600000' is not an ISO-8601"),
        ({"weight": -2}, "weight (column 'weight'): -2.0 is negative"),
        ({"weight": 5e6}, "weight (column 'weight'): 5000000.0 is above the largest weight"),
        ({"weight": "lots"}, "weight (column 'weight'): 'lots' is not a number"),
        ({"call_drop_rate": 1.5}, "call_drop_rate (column 'call_drop_rate'): 1.5 is outside"),
        ({"low_bitrate_share": -0.2}, "low_bitrate_share (column 'low_bitrate_share'): -0.2 is"),
        ({"video_stalling_share": "high"}, "video_stalling_share (column 'video_stalling_share'): "
                                           "'high' is not a number"),
        ({"call_quality_impairment": True}, "call_quality_impairment: expected a number, got a"),
        ({"call_quality_impairment": [0.1]}, "call_quality_impairment: expected a number, got an"),
    ],
)  # fmt: skip
def test_a_bad_field_quarantines_its_row_with_a_reason(change: dict[str, Any], reason: str) -> None:
    good = event(event_id="p-0")
    batch = read(lines_of(good, event(**change), good | {"event_id": "p-2"}))
    assert batch.table.column("event_id").to_pylist() == ["p-0", "p-2"]
    (row,) = batch.quarantined
    assert row.source == PROBE_SOURCE
    assert row.origin == "stream"
    assert row.row == 2
    assert len(row.reasons) == 1
    assert row.reasons[0].startswith(reason)
    assert isinstance(row.raw, str)
    assert orjson.loads(row.raw) == orjson.loads(orjson.dumps(event(**change)))


def test_unknown_cells_are_quarantined_when_the_known_ones_are_given() -> None:
    lines = lines_of(event(), event(event_id="p-2", cell_id="234-10-9-9"))
    assert read(lines).quarantined == []
    batch = read(lines, known_cells={"234-10-1-1"})
    assert reasons_of(batch) == {2: ["cell_id (column 'cell_id'): unknown cell '234-10-9-9'"]}
    assert batch.table.num_rows == 1


def test_every_reason_of_a_row_is_kept() -> None:
    batch = read(lines_of(event(subscriber="12", weight=-1, call_drop_rate=2)))
    (reasons,) = reasons_of(batch).values()
    assert [reason.split(" ")[0] for reason in reasons] == [
        "subscriber",
        "weight",
        "call_drop_rate",
    ]


def test_unreadable_lines_are_quarantined_and_blank_lines_skipped() -> None:
    lines = [
        orjson.dumps(event()),
        b"",
        b"{not json",
        b"   ",
        b"[1, 2]",
        b'{"event_id": "\xff"}',
        orjson.dumps(event(event_id="p-7")),
    ]
    batch = read(lines)
    assert batch.table.column("event_id").to_pylist() == ["p-1", "p-7"]
    reasons = reasons_of(batch)
    assert sorted(reasons) == [3, 5, 6]
    assert reasons[3][0].startswith("row is not valid JSON")
    assert reasons[5] == ["expected a JSON object, got an array"]
    assert reasons[6] == ["row is not valid UTF-8 (byte 0xff at position 15)"]
    assert batch.rows_read == 5


def test_one_bad_line_in_a_large_block_leaves_the_others_on_the_fast_path() -> None:
    lines = lines_of(*(event(event_id=f"p-{i}") for i in range(1_000)))
    lines[500] = b"{broken"
    batch = read(lines)
    assert batch.table.num_rows == 999
    assert list(reasons_of(batch)) == [501]


def test_numbers_as_text_and_ids_as_numbers_are_read() -> None:
    batch = read(lines_of(event(event_id=17, weight="3", call_drop_rate="0.5")))
    assert batch.quarantined == []
    row = batch.table.to_pylist()[0]
    assert (row["event_id"], row["weight"], row["call_drop_rate"]) == ("17", 3.0, 0.5)


def test_records_are_read_as_decoded_json() -> None:
    batch = probes_from_records([event(), "text", event(event_id="p-3", weight=-1)], clock=clock)
    assert batch.table.column("event_id").to_pylist() == ["p-1"]
    assert reasons_of(batch) == {
        2: ["expected a JSON object, got text"],
        3: ["weight (column 'weight'): -1.0 is negative"],
    }
    assert batch.quarantined[0].origin == "push"


def test_a_stream_is_read_in_batches_numbered_on() -> None:
    lines = lines_of(*(event(event_id=f"p-{i}") for i in range(5)))
    lines[3] = b"oops"
    batches = list(read_probe_lines(iter(lines), batch_size=2, clock=clock))
    assert [batch.rows_read for batch in batches] == [2, 2, 1]
    assert [row.row for batch in batches for row in batch.quarantined] == [4]
    assert batches[1].quarantined[0].origin == "stdin"
    with pytest.raises(InvalidInput):
        list(read_probe_lines(lines, batch_size=0))


def test_quarantined_rows_go_to_the_quarantine_file(tmp_path: Path) -> None:
    batch = read([b"[]", orjson.dumps(event(weight=-1))])
    with QuarantineWriter(tmp_path / "q.jsonl") as writer:
        writer.write(batch.quarantined)
    assert [row.row for row in read_quarantine(tmp_path / "q.jsonl")] == [1, 2]


# -- files ---------------------------------------------------------------------------


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_jsonl_file_is_read_in_chunks_and_resumed(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "probes.jsonl", lines_of(*(event(event_id=f"p-{i}") for i in range(7)))
    )
    batches = list(read_probe_file(path, chunk_rows=3, clock=clock))
    assert [batch.rows_read for batch in batches] == [3, 3, 1]
    resumed = list(read_probe_file(path, chunk_rows=3, start_row=4, clock=clock))
    assert [id_ for b in resumed for id_ in b.table.column("event_id").to_pylist()] == [
        "p-4",
        "p-5",
        "p-6",
    ]


def test_a_csv_file_is_read_as_text_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "probes.csv"
    path.write_text(
        "event_id,subscriber,cell_id,ts,weight,call_drop_rate,extra\n"
        "p-1,07700 900123,c1,2024-05-01T10:00:00Z,3,0.2,x\n"
        "\n"
        'p-2,"+447700900124",c1,2024-05-01T10:00:00Z,2,,y\n'
        "p-3,07700 900125,c1,2024-05-01T10:00:00Z,2\n"
        "p-4,07700 900126,c1,2024-05-01T10:00:00Z,two,0.1,z\n",
        encoding="utf-8",
    )
    (batch,) = read_probe_file(path, clock=clock)
    assert batch.table.column("event_id").to_pylist() == ["p-1", "p-2"]
    assert batch.table.column("call_drop_rate").to_pylist() == [0.2, None]
    assert batch.table.column("video_stalling_share").to_pylist() == [None, None]
    assert reasons_of(batch) == {
        4: ["row has 5 fields, the header has 7"],
        5: ["weight (column 'weight'): 'two' is not a number"],
    }


def test_a_file_without_a_required_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "probes.csv"
    path.write_text("event_id,subscriber,ts\np,07700 900123,2024-05-01T10:00:00Z\n")
    with pytest.raises(InvalidInput, match="no column 'cell_id', 'weight'"):
        list(read_probe_file(path))
    with pytest.raises(InvalidInput, match="unknown probe file type"):
        list(read_probe_file(tmp_path / "probes.txt"))
    with pytest.raises(InvalidInput, match="cannot read"):
        list(read_probe_file(tmp_path / "absent.jsonl"))


def cell_kpis(path: Path) -> Path:
    """A small file shaped like the generator's ``network/cell_kpis.parquet``."""
    start = datetime(2024, 1, 9, tzinfo=UTC)
    table = pa.table(
        {
            "kpi_id": ["KPI000001", "KPI000002", "KPI000003", "KPI000004"],
            "period_start": pa.array([start, start, start + timedelta(days=30), start],
                                     pa.timestamp("ms", tz="UTC")),
            "period_end": pa.array([start + timedelta(days=30)] * 4, pa.timestamp("ms", tz="UTC")),
            "imsi": ["234100000000001"] * 4,
            "msisdn": ["447700900001", "447700900002", "447700900001", "447"],
            "imei": ["352990000000071"] * 4,
            "cell_id": ["234-10-1-1", "234-10-1-2", "234-10-1-1", "234-10-1-1"],
            "calls": pa.array([40, 0, 12, 3], pa.int64()),
            "data_mb": [1.0, 2.0, 3.0, 4.0],
            "call_drop_rate": [0.01, 0.5, 0.2, 0.1],
            "call_quality_impairment": [0.02, 0.4, 0.1, 0.1],
            "low_bitrate_share": [0.05, 0.1, 0.2, 0.1],
            "video_stalling_share": [0.03, 0.2, 0.3, 0.1],
        }
    )  # fmt: skip
    pq.write_table(table, path)
    return path


def test_the_generators_cell_kpis_are_read_with_their_mapping(tmp_path: Path) -> None:
    path = cell_kpis(tmp_path / "cell_kpis.parquet")
    assert probe_mapping_for(path) is CELL_KPIS
    (batch,) = read_probe_file(path, origin="network/cell_kpis.parquet", clock=clock)
    rows = batch.table.to_pylist()
    assert [row["event_id"] for row in rows] == [
        derived_event_id("network", kpi) for kpi in ("KPI000001", "KPI000002", "KPI000003")
    ]
    assert [row["subscriber"] for row in rows] == ["+447700900001", "+447700900002"] * 1 + [
        "+447700900001"
    ]
    assert [row["weight"] for row in rows] == [40.0, 1.0, 12.0]
    # No calls: nothing could drop, but the data sessions measured the data metrics.
    assert rows[1]["call_drop_rate"] is None and rows[1]["call_quality_impairment"] is None
    assert rows[1]["low_bitrate_share"] == 0.1 and rows[1]["video_stalling_share"] == 0.2
    (row,) = batch.quarantined
    assert (row.row, row.origin) == (4, "network/cell_kpis.parquet")
    assert row.reasons == [
        "subscriber (column 'msisdn'): msisdn '447' has an impossible length for its country"
    ]
    assert isinstance(row.raw, dict) and row.raw["kpi_id"] == "KPI000004"


def test_a_parquet_file_is_read_in_chunks_and_resumed(tmp_path: Path) -> None:
    path = cell_kpis(tmp_path / "cell_kpis.parquet")
    assert [b.rows_read for b in read_probe_file(path, chunk_rows=3, clock=clock)] == [3, 1]
    resumed = list(read_probe_file(path, chunk_rows=3, start_row=2, clock=clock))
    assert [b.rows_read for b in resumed] == [1, 1]
    assert resumed[0].table.column("event_id").to_pylist() == ["network-KPI000003"]
    assert resumed[1].quarantined[0].row == 4


def test_known_cells_come_from_a_file_or_the_graph(tmp_path: Path) -> None:
    truth = tmp_path / "cells.parquet"
    pq.write_table(pa.table({"cell_id": ["a", "b", "a", None]}), truth)
    assert sorted(map(str, known_cells_from_file(truth).to_pylist())) == ["a", "b"]
    with pytest.raises(InvalidInput, match="cannot read cell ids"):
        known_cells_from_file(truth, column="cell")
    with EmbeddedStore(tmp_path / "graph.db") as store:
        store.upsert_vertices("Cell", [("cell:a", {"town": "Leeds"}), ("cell:c", {})])
        assert sorted(map(str, known_cells_from_store(store).to_pylist())) == ["a", "c"]


def test_a_mapping_may_leave_out_the_weight_and_metrics() -> None:
    mapping = ProbeMapping(name="drops", weight=None, metrics={"call_drop_rate": "drop"})
    batch = read(lines_of(event(drop=0.3)), mapping=mapping)
    row = batch.table.to_pylist()[0]
    assert (row["weight"], row["call_drop_rate"], row["call_quality_impairment"]) == (
        1.0,
        0.3,
        None,
    )
    with pytest.raises(ValueError, match="unknown metric"):
        ProbeMapping(name="bad", metrics={"drops": "drop"})


# -- fast path against row by row ----------------------------------------------------

VALUES = st.one_of(
    st.none(),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, -0.1, 7, "0.3", "x", True, [1]]),
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record = event(event_id=f"p-{draw(st.integers(0, 99))}")
    for field in ("weight", *METRICS):
        if draw(st.booleans()):
            record[field] = draw(VALUES)
    if draw(st.integers(0, 5)) == 0:
        record["subscriber"] = draw(st.sampled_from(["12", "07700 900999", None, 7]))
    if draw(st.integers(0, 5)) == 0:
        record["ts"] = draw(
            st.sampled_from(["2024-05-01", "soon", None, "2024-05-01T10:00:00+02:00"])
        )
    return record


@settings(max_examples=150, deadline=None)
@given(st.lists(records(), min_size=1, max_size=30))
def test_the_fast_path_and_the_row_by_row_path_agree(given_records: list[dict[str, Any]]) -> None:
    lines = lines_of(*given_records)
    fast = read(lines)
    slow = read([*lines, b"{broken"])  # a block Arrow cannot parse goes row by row
    assert slow.table.equals(fast.table)
    assert slow.quarantined[:-1] == fast.quarantined
    assert fast.rows_read == len(lines)
    accepted = fast.table.to_pylist()
    for row in accepted:
        assert 0 <= row["weight"] and row["subscriber"].startswith("+44")
        assert all(row[metric] is None or 0 <= row[metric] <= 1 for metric in METRICS)
    assert all(row.reasons for row in fast.quarantined)


def test_the_canonical_mapping_is_the_default() -> None:
    assert probe_mapping_for("probes.jsonl") is CANONICAL
