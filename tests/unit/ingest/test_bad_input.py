"""Bad input: a bad row is quarantined with its position, raw form and reasons; the rest go on."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingest.readers
from ingest.frame import FRAME_SCHEMA, QuarantinedRow
from ingest.mapping import SourceMapping, load_mapping, mapping_from_dict
from ingest.readers import read_file

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ingest"
SHOP = load_mapping(FIXTURES / "shop.yaml")
HEADER = (
    "visit_id,visited_at,visit_type,msisdn,email,imei,first_name,date_of_birth,amount_gbp,shop_id"
)
BIG = 50 * 1024 * 1024


def _read(
    path: Path, mapping: SourceMapping = SHOP, **options: Any
) -> tuple[pa.Table, list[QuarantinedRow]]:  # noqa: E501
    batches = list(read_file(path, mapping, **options))
    frames = [batch.frame for batch in batches]
    frame = pa.concat_tables(frames) if frames else FRAME_SCHEMA.empty_table()
    return frame, [row for batch in batches for row in batch.quarantined]


def _reasons(quarantined: list[QuarantinedRow]) -> dict[int, str]:
    return {row.row: " | ".join(row.reasons) for row in quarantined}


def _visit(number: int, **fields: str) -> dict[str, str]:
    row = {
        "visit_id": f"V{number}", "visited_at": f"2024-05-01T10:{number % 60:02d}:00Z",
        "visit_type": "enquiry", "msisdn": "07700 900123", "email": "", "imei": "",
        "first_name": "Ann", "date_of_birth": "03/04/1980", "amount_gbp": "1.5", "shop_id": "S1",
    }  # fmt: skip
    row.update(fields)
    return row


def _csv_line(row: dict[str, str]) -> str:
    return ",".join(row.values())


# -- hand-made files -----------------------------------------------------------------


def test_hand_made_csv_rows_are_quarantined_with_their_reasons() -> None:
    frame, quarantined = _read(FIXTURES / "bad_visits.csv")
    assert frame.column("origin_row").to_pylist() == [1, 14, 15]
    reasons = _reasons(quarantined)
    expected = {
        2: "attributes.amount (column 'amount_gbp'): 'twelve' is not a number",
        3: "impossible timestamp 1800-01-01T00:00:00+00:00",
        4: "impossible timestamp 2999-01-01T00:00:00+00:00",
        5: "ts (column 'visited_at'): has no timezone",
        6: "event_id: missing (no value in column 'visit_id')",
        7: "ts (column 'visited_at'): missing",
        8: "row has 11 fields, the header has 10",
        9: "row has 3 fields, the header has 10",
        10: "ts (column 'visited_at'): 'Smith' is not an ISO-8601 timestamp",
        12: "row is not valid UTF-8 (byte 0xf6",
        13: "event_type (column 'visit_type'): 'Shop Visit' must be 1-64 lower-case",
    }
    assert set(reasons) == set(expected)
    for row, reason in expected.items():
        assert reason in reasons[row]
    assert "event_type (column 'visit_type'): '2024-05-01T10:00:00Z'" in reasons[10]
    by_row = {row.row: row for row in quarantined}
    assert by_row[12].raw == "V11,2024-05-01T10:00:00Z,enquiry,07700 900132,,,J\\xf6rg,,,S1"
    assert by_row[9].raw == "V09,2024-05-01T10:00:00Z,enquiry"
    assert {row.source for row in quarantined} == {"shop"}
    assert {row.origin for row in quarantined} == {str(FIXTURES / "bad_visits.csv")}


def test_hand_made_json_lines_are_quarantined_with_their_reasons() -> None:
    frame, quarantined = _read(FIXTURES / "bad_visits.jsonl")
    assert frame.column("origin_row").to_pylist() == [1, 13]
    assert frame.column("msisdn").to_pylist() == ["+447700900123", "+447700900135"]
    reasons = _reasons(quarantined)
    expected = {
        2: "column 'msisdn': expected text, got an array",
        3: "column 'amount_gbp': 'lots' is not a number",
        4: "column 'visited_at': expected a timestamp as text, got a number",
        5: "ts (column 'visited_at'): missing",
        6: "row is not valid JSON",
        9: "row is not valid UTF-8 (byte 0xf6",
        10: "expected a JSON object, got an array",
        11: "impossible timestamp 1800-01-01T00:00:00+00:00",
        12: "column 'email': expected text, got an object",
    }
    assert set(reasons) == set(expected)
    for row, reason in expected.items():
        assert reason in reasons[row]
        assert "missing" not in reasons[row] or row == 5


def test_an_identifier_of_ten_thousand_characters(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    rows = [_visit(1), _visit(2, email="a" * 10_000), _visit(3)]
    path.write_text("\n".join([HEADER, *map(_csv_line, rows)]) + "\n")
    frame, quarantined = _read(path)
    assert frame.column("origin_row").to_pylist() == [1, 3]
    [row] = quarantined
    assert row.row == 2
    assert row.reasons == [
        "identifiers.email (column 'email'): must be 1-256 characters, got 10000"
    ]
    assert isinstance(row.raw, str) and len(row.raw) > 10_000


def test_a_block_arrow_cannot_parse_loses_only_its_bad_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "visits.csv"
    rows = [_csv_line(_visit(number)) for number in range(1, 3001)]
    rows[1499] += ",surplus"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    row_by_row: list[int] = []
    per_row = ingest.readers._Csv.per_row

    def counted(self: Any, lines: Any) -> Any:
        row_by_row.append(len(lines))
        return per_row(self, lines)

    monkeypatch.setattr(ingest.readers._Csv, "per_row", counted)
    frame, quarantined = _read(path)
    assert frame.num_rows == 2999
    assert [(row.row, row.reasons) for row in quarantined] == [
        (1500, ["row has 11 fields, the header has 10"])
    ]
    assert sum(row_by_row) <= 3000 // 16 + 1


def test_wrong_parquet_column_types_quarantine_each_row(tmp_path: Path) -> None:
    path = tmp_path / "visits.parquet"
    pq.write_table(
        pa.table({
            "visit_id": [1, 2, 3],
            "visited_at": ["2024-05-01T10:00:00Z", "Smith", None],
            "visit_type": ["enquiry"] * 3,
            "msisdn": [447700900123, None, None],
            "amount_gbp": ["1.5", "n/a", None],
            "shop_id": pa.array([["S1"], None, ["S3"]], pa.list_(pa.string())),
        }),
        path,
    )  # fmt: skip
    mapping = mapping_from_dict({"source": "shop", "files": [{
        "pattern": "*.parquet", "record_id": "visit_id", "timestamp": "visited_at",
        "event_type": {"column": "visit_type"}, "channel": "retail",
        "identifiers": {"msisdn": "msisdn"},
        "attributes": {"amount": "amount_gbp", "shop_id": "shop_id"},
        "column_types": {"amount_gbp": "float"},
    }]})  # fmt: skip
    frame, quarantined = _read(path, mapping)
    assert frame.num_rows == 0
    reasons = _reasons(quarantined)
    assert (
        "shop_id (column 'shop_id'): expected text, a number or a boolean, got an array"
        in (reasons[1])
    )
    assert "'Smith' is not an ISO-8601 timestamp" in reasons[2]
    assert "'n/a' is not a number" in reasons[2]
    assert "ts (column 'visited_at'): missing" in reasons[3]
    assert quarantined[0].raw == {
        "visit_id": 1, "visited_at": "2024-05-01T10:00:00Z", "visit_type": "enquiry",
        "msisdn": 447700900123, "amount_gbp": "1.5", "shop_id": ["S1"],
    }  # fmt: skip


# -- huge lines ----------------------------------------------------------------------


def test_a_50_mb_json_line_is_quarantined_whole(tmp_path: Path) -> None:
    path = tmp_path / "visits.jsonl"
    huge = json.dumps({**_visit(2), "shop_id": "x" * BIG})
    with path.open("w") as stream:
        stream.write(json.dumps(_visit(1)) + "\n" + huge + "\n" + json.dumps(_visit(3)) + "\n")
        stream.write(huge[:-1] + "\n")  # the same line, cut short: invalid JSON
    frame, quarantined = _read(path)
    assert frame.column("origin_row").to_pylist() == [1, 3]
    assert [row.row for row in quarantined] == [2, 4]
    assert quarantined[0].reasons == [
        "attributes.shop_id (column 'shop_id'): longer than 4096 characters"
    ]
    assert quarantined[0].raw == huge
    assert "row is not valid JSON" in quarantined[1].reasons[0]
    assert len(quarantined[1].raw) == len(huge) - 1


def test_a_50_mb_csv_field_is_quarantined_whole(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    huge = _csv_line(_visit(2, first_name="y" * BIG))
    with path.open("w") as stream:
        stream.write("\n".join([HEADER, _csv_line(_visit(1)), huge, _csv_line(_visit(3))]) + "\n")
    frame, quarantined = _read(path)
    assert frame.column("origin_row").to_pylist() == [1, 3]
    [row] = quarantined
    assert row.reasons == ["person.first_name (column 'first_name'): longer than 200 characters"]
    assert row.raw == huge


_MEMORY_PROBE = """
import resource, sys
from ingest.mapping import load_mapping
from ingest.readers import read_file
mapping = load_mapping(sys.argv[1])
for path in sys.argv[2:]:
    for batch in read_file(path, mapping):
        pass
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


@pytest.mark.slow
def test_a_50_mb_line_costs_a_few_times_its_size_in_memory(tmp_path: Path) -> None:
    small_csv, small_json = tmp_path / "small.csv", tmp_path / "small.jsonl"
    small_csv.write_text(HEADER + "\n" + _csv_line(_visit(1)) + "\n")
    small_json.write_text(json.dumps(_visit(1)) + "\n")
    large_json, large_csv = tmp_path / "large.jsonl", tmp_path / "large.csv"
    large_json.write_text(json.dumps({**_visit(1), "shop_id": "x" * BIG}) + "\n")
    large_csv.write_text(HEADER + "\n" + _csv_line(_visit(1, shop_id="x" * BIG)) + "\n")
    files = [small_csv, small_json, large_json, large_csv]
    command = [sys.executable, "-c", _MEMORY_PROBE, str(FIXTURES / "shop.yaml"), *map(str, files)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    peaks = [int(line) for line in output.split()]
    assert peaks[-1] - peaks[1] < 6 * BIG


# -- generated bad rows --------------------------------------------------------------

_CSV_DEFECTS = {
    "extra field": lambda row: _csv_line(row) + ",surplus",
    "missing fields": lambda row: ",".join(list(row.values())[:4]),
    "shifted": lambda row: _csv_line({"visit_id": row["visit_id"], "x": "Smith", **{
        key: value for key, value in row.items() if key not in ("visit_id", "shop_id")}}),
    "year 1800": lambda row: _csv_line({**row, "visited_at": "1800-05-01T10:00:00Z"}),
    "far future": lambda row: _csv_line({**row, "visited_at": "2999-05-01T10:00:00Z"}),
    "no zone": lambda row: _csv_line({**row, "visited_at": "2024-05-01T10:00:00"}),
    "text for a number": lambda row: _csv_line({**row, "amount_gbp": "12,50".replace(",", ".x")}),
    "no record id": lambda row: _csv_line({**row, "visit_id": ""}),
    "no timestamp": lambda row: _csv_line({**row, "visited_at": "  "}),
    "long identifier": lambda row: _csv_line({**row, "msisdn": "7" * 300}),
    "bad event type": lambda row: _csv_line({**row, "visit_type": "Walk In"}),
}  # fmt: skip
_JSON_DEFECTS = {
    "array for text": lambda row: json.dumps({**row, "msisdn": [row["msisdn"]]}),
    "object for text": lambda row: json.dumps({**row, "visit_type": {"a": 1}}),
    "number for a timestamp": lambda row: json.dumps({**row, "visited_at": 1714557600}),
    "boolean for a number": lambda row: json.dumps({**row, "amount_gbp": True}),
    "invalid JSON": lambda row: json.dumps(row)[:-2],
    "not an object": lambda row: json.dumps(list(row.values())),
    "year 1800": lambda row: json.dumps({**row, "visited_at": "1800-05-01T10:00:00Z"}),
    "no timestamp": lambda row: json.dumps({k: v for k, v in row.items() if k != "visited_at"}),
    "long identifier": lambda row: json.dumps({**row, "email": "e" * 10_000}),
}  # fmt: skip
_NOT_UTF8 = "not UTF-8"


def _file_rows(defects: list[str]) -> st.SearchStrategy[list[str | None]]:
    """Per line: ``None`` for a good row, ``""`` for a blank line, or a defect's name."""
    return st.lists(
        st.one_of(st.none(), st.just(""), st.sampled_from([*defects, _NOT_UTF8])),
        min_size=1, max_size=40,
    )  # fmt: skip


def _bad_bytes(line: str) -> bytes:
    return line.replace("Ann", "J\udcf6rg").encode("utf-8", "surrogateescape")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=_file_rows(list(_CSV_DEFECTS)), chunk_rows=st.integers(1, 12))
def test_generated_bad_csv_rows(tmp_path: Path, plan: list[str | None], chunk_rows: int) -> None:
    lines: list[bytes] = []
    for number, defect in enumerate(plan, start=1):
        row = _visit(number)
        if defect == "":
            lines.append(b"   " if number % 2 else b"")
        elif defect == _NOT_UTF8:
            lines.append(_bad_bytes(_csv_line(row)))
        else:
            lines.append((_CSV_DEFECTS[defect](row) if defect else _csv_line(row)).encode())
    path = tmp_path / "generated.csv"
    path.write_bytes(HEADER.encode() + b"\n" + b"\n".join(lines) + b"\n")
    _check_outcome(*_read(path, chunk_rows=chunk_rows), plan)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=_file_rows(list(_JSON_DEFECTS)), chunk_rows=st.integers(1, 12))
def test_generated_bad_json_lines(tmp_path: Path, plan: list[str | None], chunk_rows: int) -> None:
    lines: list[bytes] = []
    for number, defect in enumerate(plan, start=1):
        row = _visit(number)
        if defect == "":
            lines.append(b"\t" if number % 2 else b"")
        elif defect == _NOT_UTF8:
            lines.append(_bad_bytes(json.dumps(row, ensure_ascii=False)))
        else:
            lines.append((_JSON_DEFECTS[defect](row) if defect else json.dumps(row)).encode())
    path = tmp_path / "generated.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _check_outcome(*_read(path, chunk_rows=chunk_rows), plan)


def _check_outcome(
    frame: pa.Table, quarantined: list[QuarantinedRow], plan: list[str | None]
) -> None:  # noqa: E501
    good = [number for number, defect in enumerate(plan, start=1) if defect is None]
    bad = [number for number, defect in enumerate(plan, start=1) if defect]
    assert frame.column("origin_row").to_pylist() == good
    assert frame.column("event_id").to_pylist() == [f"shop-V{number}" for number in good]
    assert [row.row for row in quarantined] == bad
    for row in quarantined:
        assert row.reasons, row
        if plan[row.row - 1] == _NOT_UTF8:
            assert row.reasons[0].startswith("row is not valid UTF-8")
            assert "J\\xf6rg" in str(row.raw)
    moments = cast(list[datetime], frame.column("ts").to_pylist())
    assert all(moment > datetime(2000, 1, 1).astimezone() for moment in moments)
