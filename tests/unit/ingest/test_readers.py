"""Readers: files, records and lines become the frame Touchpoint and the normaliser would make."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.model import derived_event_id
from ingest._columns import float_json, iso_text
from ingest._frame_builder import derived_event_ids, iso_dates
from ingest._identifier_columns import (
    FAST_PATHS,
    msisdn_fast_path,
    normalise_identifier_column,
)
from ingest.frame import FRAME_SCHEMA, attributes_of, frame_from_touchpoints
from ingest.identifiers import IdentifierError, normalise_identifier
from ingest.mapping import SourceMapping, load_mapping, mapping_from_dict
from ingest.quarantine import QuarantineWriter, read_quarantine
from ingest.readers import frame_from_lines, frame_from_records, read_file
from ingest.touchpoint import Channel, PersonFields, Touchpoint

CANONICAL = load_mapping("canonical")


def _visits_mapping(pattern: str = "visits.*", **overrides: Any) -> SourceMapping:
    file: dict[str, Any] = {
        "pattern": pattern,
        "record_id": "visit_id",
        "timestamp": "at",
        "event_type": {"column": "kind", "values": {"Purchase": "device_purchase"}},
        "channel": {"column": "where", "values": {"shop": "retail", "online": "web"}},
        "identifiers": {"msisdn": "phone", "email": "mail", "account": "acct", "imei": "imei"},
        "person": {"first_name": "first", "dob": "born"},
        "dob_format": "%d/%m/%Y",
        "attributes": {"amount": "amount", "items": "items", "paid": "paid", "shop_id": "shop"},
        "column_types": {"amount": "float", "items": "int", "paid": "bool"},
    }
    file.update(overrides)
    return mapping_from_dict({"source": "retail", "files": [file]})


VISITS: list[dict[str, Any]] = [
    {
        "visit_id": "V1", "at": "2024-05-01T10:00:00Z", "kind": "Purchase", "where": "shop",
        "phone": "07700 900123", "mail": "Ann.Lee@Example.COM", "acct": "acc123",
        "imei": "49-015420-323751-8", "first": "Ann", "born": "03/04/1980",
        "amount": 999.0, "items": 2, "paid": True, "shop": "S1",
    },
    {
        "visit_id": "V2", "at": "2024-05-01T12:30:00+01:00", "kind": "enquiry",
        "where": "online", "phone": "+44 7700 900124", "mail": None, "acct": None,
        "imei": None, "first": None, "born": None, "amount": 12.5, "items": None,
        "paid": False, "shop": "S2",
    },
    {
        "visit_id": "V3", "at": "2024-05-02T09:15:30.250Z", "kind": "sim_swap", "where": "shop",
        "phone": "447700900125", "mail": "bob@example.org", "acct": "ACC9", "imei": None,
        "first": "Bob", "born": "31/12/1999", "amount": None, "items": 0, "paid": None,
        "shop": "S1",
    },
]  # fmt: skip


def _expected_visits() -> list[dict[str, Any]]:
    """What Touchpoint and the normaliser make of VISITS (dob written ISO)."""
    touchpoints = []
    for visit in VISITS:
        attributes = {
            key: visit[column]
            for key, column in (("amount", "amount"), ("items", "items"), ("paid", "paid"),
                                ("shop_id", "shop"))
            if visit[column] is not None
        }  # fmt: skip
        born = visit["born"]
        touchpoints.append(
            Touchpoint(
                event_id=derived_event_id("retail", visit["visit_id"]),
                source="retail",
                event_type=str({"Purchase": "device_purchase"}.get(visit["kind"], visit["kind"])),
                channel=Channel({"shop": "retail", "online": "web"}[visit["where"]]),
                ts=datetime.fromisoformat(visit["at"]),
                identifiers={
                    kind: visit[column]
                    for kind, column in (
                        ("msisdn", "phone"),
                        ("email", "mail"),
                        ("account", "acct"),
                        ("imei", "imei"),
                    )
                    if visit[column]
                },  # fmt: skip
                person=PersonFields(
                    first_name=visit["first"],
                    dob=None if born is None else f"{born[6:]}-{born[3:5]}-{born[:2]}",
                ),
                attributes=attributes,
            )
        )
    return _comparable(frame_from_touchpoints(touchpoints, "visits", first_row=1))


def _comparable(frame: pa.Table) -> list[dict[str, Any]]:
    rows = frame.drop_columns(["attributes", "origin"]).to_pylist()
    for row, attributes in zip(rows, attributes_of(frame), strict=True):
        row["attributes"] = attributes
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join("" if row[c] is None else json.dumps(row[c]) if isinstance(
            row[c], str) else str(row[c]).lower() if isinstance(row[c], bool) else str(row[c])
            for c in columns))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def _read_all(path: Path, mapping: SourceMapping, **options: Any) -> tuple[pa.Table, list[Any]]:
    batches = list(read_file(path, mapping, **options))
    frames = [batch.frame for batch in batches]
    quarantined = [row for batch in batches for row in batch.quarantined]
    return (pa.concat_tables(frames) if frames else FRAME_SCHEMA.empty_table()), quarantined


def test_csv_rows_become_normalised_touchpoints(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    _write_csv(path, VISITS)
    frame, quarantined = _read_all(path, _visits_mapping())
    assert quarantined == []
    assert frame.schema == FRAME_SCHEMA
    assert _comparable(frame) == _expected_visits()
    assert frame.column("origin").to_pylist() == [str(path)] * 3


def test_json_lines_become_the_same_touchpoints(tmp_path: Path) -> None:
    path = tmp_path / "visits.jsonl"
    path.write_text("".join(json.dumps(visit) + "\n" for visit in VISITS))
    frame, quarantined = _read_all(path, _visits_mapping(), origin="shop/visits.jsonl")
    assert quarantined == []
    assert _comparable(frame) == _expected_visits()
    assert set(frame.column("origin").to_pylist()) == {"shop/visits.jsonl"}


def test_parquet_rows_with_native_types_become_the_same_touchpoints(tmp_path: Path) -> None:
    path = tmp_path / "visits.parquet"
    table = pa.Table.from_pylist(VISITS)
    moments = [datetime.fromisoformat(visit["at"]) for visit in VISITS]
    stamps = pa.array(moments, pa.timestamp("us", tz="UTC"))
    table = table.set_column(table.schema.get_field_index("at"), "at", stamps)
    table = table.set_column(
        table.schema.get_field_index("shop"), "shop", table.column("shop").dictionary_encode()
    )
    pq.write_table(table, path)
    native = _visits_mapping(timestamp={"column": "at", "format": "native"})
    frame, quarantined = _read_all(path, native)
    assert quarantined == []
    assert _comparable(frame) == _expected_visits()


def test_naive_parquet_timestamps_are_placed_in_the_mapping_timezone(tmp_path: Path) -> None:
    path = tmp_path / "visits.parquet"
    pq.write_table(
        pa.table({"visit_id": [7], "at": pa.array([datetime(2024, 7, 1, 12)], pa.timestamp("s")),
                  "kind": ["x"], "where": ["shop"]}),
        path,
    )  # fmt: skip
    london = _visits_mapping(
        timestamp={"column": "at", "format": "native", "timezone": "Europe/London"},
        identifiers={}, person={}, attributes={}, column_types={},
    )  # fmt: skip
    frame, _ = _read_all(path, london)
    assert frame.column("ts").to_pylist() == [datetime(2024, 7, 1, 11, tzinfo=UTC)]
    assert frame.column("event_id").to_pylist() == ["retail-7"]


@pytest.mark.parametrize(
    ("timestamp", "written", "expected"),
    [
        ({"column": "at", "format": "epoch_s"}, "1714557600", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ({"column": "at", "format": "epoch_ms"}, "1714557600123",
         datetime(2024, 5, 1, 10, 0, 0, 123_000, tzinfo=UTC)),
        ({"column": "at", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/London"},
         "01/05/2024 11:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ({"column": "at", "format": "%Y%m%d%H%M%S%z"}, "20240501120000+0200",
         datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ({"column": "at", "timezone": "America/New_York"}, "2024-05-01T06:00:00",
         datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_timestamp_formats(
    tmp_path: Path, timestamp: dict[str, Any], written: str, expected: datetime
) -> None:
    path = tmp_path / "visits.csv"
    path.write_text(f"visit_id,at,kind,where\nV1,{written},x,shop\n")
    mapping = _visits_mapping(
        timestamp=timestamp, identifiers={}, person={}, attributes={}, column_types={}
    )
    frame, quarantined = _read_all(path, mapping)
    assert quarantined == []
    assert frame.column("ts").to_pylist() == [expected]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_chunks_and_a_resumed_read_cover_the_file_once(tmp_path: Path, suffix: str) -> None:
    rows = [
        {"visit_id": f"V{number}", "at": f"2024-05-01T10:{number % 60:02d}:00Z",
         "kind": "enquiry", "where": "shop"}
        for number in range(53)
    ]  # fmt: skip
    path = tmp_path / f"visits.{suffix}"
    if suffix == "csv":
        _write_csv(path, rows)
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=10)
    mapping = _visits_mapping(identifiers={}, person={}, attributes={}, column_types={})
    whole, _ = _read_all(path, mapping)
    batches = list(read_file(path, mapping, chunk_rows=7))
    assert all(batch.rows_read <= 7 for batch in batches)
    assert pa.concat_tables(batch.frame for batch in batches).equals(whole)
    assert whole.column("origin_row").to_pylist() == list(range(1, 54))
    resumed, _ = _read_all(path, mapping, chunk_rows=7, start_row=sum(
        batch.rows_read for batch in batches[:3]))  # fmt: skip
    assert resumed.equals(whole.slice(21))
    assert _read_all(path, mapping, start_row=53)[0].num_rows == 0


def test_blank_lines_are_skipped_but_keep_their_numbers(tmp_path: Path) -> None:
    good = '{"visit_id":"V%d","at":"2024-05-01T10:00:00Z","kind":"x","where":"shop"}'
    path = tmp_path / "visits.jsonl"
    path.write_text("\n".join(["", good % 1, "   ", good % 2, "\r", "", good % 3]) + "\n\n")
    mapping = _visits_mapping(identifiers={}, person={}, attributes={}, column_types={})
    frame, quarantined = _read_all(path, mapping)
    assert quarantined == []
    assert frame.column("origin_row").to_pylist() == [2, 4, 7]
    resumed, _ = _read_all(path, mapping, start_row=1)
    assert resumed.column("origin_row").to_pylist() == [4, 7]


def test_a_missing_column_is_a_mapping_error(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_text("visit_id,at,kind\nV1,2024-05-01T10:00:00Z,x\n")
    with pytest.raises(Exception, match="no column 'where'"):
        _read_all(path, _visits_mapping(identifiers={}, person={}, attributes={}))


def test_identifiers_that_cannot_be_normalised_keep_their_touchpoint(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_text(
        "visit_id,at,kind,where,phone,born\n"
        "V1,2024-05-01T10:00:00Z,x,shop,077009001234,30/02/1980\n"
    )
    frame, quarantined = _read_all(
        path, _visits_mapping(identifiers={"msisdn": "phone"}, attributes={}, column_types={},
                              person={"dob": "born"})
    )  # fmt: skip
    assert quarantined == []
    assert frame.column("msisdn").to_pylist() == [None]
    assert attributes_of(frame) == [{"invalid_msisdn": "077009001234", "invalid_dob": "30/02/1980"}]
    expected = frame_from_touchpoints(
        [Touchpoint(event_id="retail-V1", source="retail", event_type="x", channel=Channel.RETAIL,
                    ts=datetime(2024, 5, 1, 10, tzinfo=UTC),
                    identifiers={"msisdn": "077009001234"})], "x")  # fmt: skip
    assert attributes_of(expected) == [{"invalid_msisdn": "077009001234"}]


# -- canonical records and lines -----------------------------------------------------


def test_canonical_records_derive_event_ids_and_open_their_objects() -> None:
    records: list[Any] = [
        {"event_id": "e1", "source": "crm", "event_type": "registered", "channel": "crm",
         "ts": "2024-05-01T10:00:00Z", "identifiers": {"msisdn": "07700 900123"},
         "person": {"first_name": " Ann ", "dob": "1980-04-03"},
         "attributes": {"offer_id": "O1", "amount": 1.0, "csat": 4, "ok": True, "gone": None}},
        {"source_record_id": "R 9", "source": "care", "event_type": "call", "channel": "ivr",
         "ts": "2024-05-01T10:00:00+01:00"},
        "not an object",
    ]  # fmt: skip
    batch = frame_from_records(records, CANONICAL, origin="push")
    assert batch.frame.column("event_id").to_pylist() == ["e1", derived_event_id("care", "R 9")]
    assert batch.frame.column("msisdn").to_pylist() == ["+447700900123", None]
    assert batch.frame.column("first_name").to_pylist() == ["Ann", None]
    assert attributes_of(batch.frame)[0] == {"offer_id": "O1", "amount": 1.0, "csat": 4, "ok": True}
    assert orjson.loads(batch.frame.column("attributes")[0].as_py())["amount"] == 1.0
    assert [(row.row, row.reasons) for row in batch.quarantined] == [
        (3, ["expected a JSON object, got text"])
    ]


def test_canonical_records_outside_the_shape_are_refused_with_every_reason() -> None:
    record = {"event_id": "e1", "source": "crm", "event_type": "x", "channel": "crm",
              "ts": "2024-05-01T10:00:00Z", "phone": "1", "identifiers": {"phone": "1"},
              "person": {"age": 4}, "attributes": {"Bad": 1, "list": [1]}}  # fmt: skip
    [row] = frame_from_records([record], CANONICAL, origin="push").quarantined
    assert row.raw == record
    assert len(row.reasons) == 5
    assert any("unknown field 'phone'" in reason for reason in row.reasons)
    assert any("unknown key 'phone'" in reason for reason in row.reasons)


def test_an_empty_record_id_is_missing_and_a_padded_one_is_hashed_as_written() -> None:
    common = {"source": "crm", "event_type": "x", "channel": "crm", "ts": "2024-05-01T10:00:00Z"}
    batch = frame_from_records(
        [{**common, "source_record_id": ""}, {**common, "source_record_id": " R1 "}],
        CANONICAL,
        origin="push",
    )
    assert [row.reasons for row in batch.quarantined] == [
        ["event_id: missing (no value in column 'event_id' or 'source_record_id')"]
    ]
    assert batch.frame.column("event_id").to_pylist() == [derived_event_id("crm", " R1 ")]


def test_lines_are_quarantined_one_by_one() -> None:
    good = b'{"event_id":"e%d","source":"crm","event_type":"x","channel":"crm","ts":"2024-05-01T10:00:00Z"}'  # noqa: E501
    lines = [good % 1, b"{not json", b"", good % 2 + b"\r\n", b"\xff\xfe"]
    batch = frame_from_lines(lines, CANONICAL, origin="stream", first_row=41)
    assert batch.frame.column("event_id").to_pylist() == ["e1", "e2"]
    assert batch.frame.column("origin_row").to_pylist() == [41, 44]
    assert [row.row for row in batch.quarantined] == [42, 45]
    assert batch.quarantined[1].raw == "\\xff\\xfe"


_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " _-", min_size=1, max_size=12)
_ISO = st.builds(
    lambda year, zone: f"{year:04d}-05-01T10:00:00{zone}",
    st.sampled_from([2024] * 8 + [1800, 2999]),
    st.sampled_from(["Z", "+01:00", "-05:30", ".250Z"] * 2 + [""]),
)
_IDENTIFIER_VALUES = [
    "07700 900123",
    "+447700900124",
    "Ann@Example.com",
    "acc-1",
    "49-015420-323751-8",
] * 3 + ["not a phone", "bad token!", "x" * 300]
_RECORDS = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["crm", "care"] * 4 + ["Care", "9x"]),
        "event_type": st.sampled_from(["call", "bill_issued"] * 4 + ["Bill"]),
        "channel": st.sampled_from(["crm", "ivr", "web"] * 3 + ["tv"]),
        "ts": _ISO,
        "identifiers": st.dictionaries(
            st.sampled_from(["msisdn", "email", "account", "cookie", "imei"] * 4 + ["phone"]),
            st.sampled_from(_IDENTIFIER_VALUES),
            max_size=3,
        ),
        "person": st.fixed_dictionaries({}, optional={
            "first_name": _TEXT.filter(str.strip), "postcode": _TEXT.filter(str.strip),
            "dob": st.sampled_from(["1980-04-03", "1999-12-31"])}),
        "attributes": st.dictionaries(
            st.sampled_from(["offer_id", "amount", "csat", "ok"] * 3 + ["Bad"]),
            st.one_of(st.integers(-5, 5), st.floats(-1e6, 1e6), st.booleans(), _TEXT),
            max_size=3,
        ),
        "ids": st.sampled_from(["event_id", "record_id", "both"] * 3 + ["neither"]),
        "event_id": st.sampled_from(["e1", " e2 ", "e1"] * 3 + ["e\x013"]),
        "source_record_id": _TEXT,
    },
).map(
    lambda record: {
        key: value
        for key, value in record.items()
        if key != "ids"
        and (key != "event_id" or record["ids"] in ("event_id", "both"))
        and (key != "source_record_id" or record["ids"] in ("record_id", "both"))
    }
)  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_RECORDS, min_size=1, max_size=6))
def test_canonical_records_follow_touchpoint_rules(records: list[dict[str, Any]]) -> None:
    batch = frame_from_records(records, CANONICAL, origin="push")
    accepted = {
        row: index for index, row in enumerate(batch.frame.column("origin_row").to_pylist())
    }
    rejected = {row.row for row in batch.quarantined}
    for number, record in enumerate(records, start=1):
        touchpoint = Touchpoint.from_row(record)
        assert (number in accepted) == isinstance(touchpoint, Touchpoint), (record, touchpoint)
        assert (number in rejected) != (number in accepted)
        if isinstance(touchpoint, Touchpoint):
            got = _comparable(batch.frame.slice(accepted[number], 1))[0]
            want = _comparable(frame_from_touchpoints([touchpoint], "push", first_row=number))[0]
            assert got == want


# -- the column fast paths equal the Python rules ------------------------------------

_MSISDN_LIKE = st.one_of(
    st.builds(
        lambda head, body, gaps: head + "".join(d + (" " if i in gaps else "")
                                               for i, d in enumerate(body)),
        st.sampled_from(["0", "+44", "+44 ", "44", "0044", "+", "", "07", "+447", "4407"]),
        st.text(alphabet="0123456789", min_size=7, max_size=12),
        st.sets(st.integers(0, 11), max_size=2),
    ),
    st.text(alphabet="0123456789 +-()7", max_size=16),
    st.text(max_size=16),
)  # fmt: skip


def _by_python(kind: str, value: str) -> str | None:
    try:
        return normalise_identifier(kind, value)
    except IdentifierError:
        return None


@settings(max_examples=150, deadline=None)
@given(st.lists(_MSISDN_LIKE, min_size=1, max_size=20))
def test_the_msisdn_fast_path_equals_normalise_identifier(values: list[str]) -> None:
    fast = msisdn_fast_path(pa.array(values, pa.string())).to_pylist()
    for value, found in zip(values, fast, strict=True):
        if found is not None:
            assert found == normalise_identifier("msisdn", value)


@pytest.mark.parametrize(
    "spelling", ["07700 900123", "+44 7700 900123", "447700900123", "+447700900123", "07700900123"]
)
def test_the_common_msisdn_spellings_take_the_fast_path(spelling: str) -> None:
    assert msisdn_fast_path(pa.array([spelling])).to_pylist() == ["+447700900123"]


_IDENTIFIER_LIKE = {
    "msisdn": _MSISDN_LIKE,
    "imei": st.one_of(
        st.text(alphabet="0123456789", min_size=14, max_size=16),
        st.text(alphabet="0123456789 ./-\t", min_size=14, max_size=20),
        st.sampled_from(["49-015420-323751-8", "49 015420 323751 8", "490154203237518"]),
    ),
    "email": st.one_of(
        st.builds(
            lambda user, host, tld: f"{user}@{host}.{tld}",
            st.text(alphabet=string.ascii_letters + "._+'-", min_size=1, max_size=8),
            st.text(alphabet=string.ascii_letters + string.digits + ".-", min_size=1, max_size=8),
            st.sampled_from(["com", "CO.UK", "org", ""]),
        ),
        st.text(alphabet=string.ascii_letters + "@. _-+\u00e9\u0130", max_size=20),
    ),
    "account": st.text(alphabet=string.ascii_letters + string.digits + "._:- ", max_size=14),
    "cookie": st.text(max_size=14),
    "national_id_hash": st.text(alphabet=string.hexdigits + " ", max_size=14),
}


@pytest.mark.parametrize("kind", sorted(FAST_PATHS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_identifier_columns_equal_normalise_identifier(kind: str, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.one_of(st.none(), _IDENTIFIER_LIKE[kind]), max_size=12))
    normalised, failures = normalise_identifier_column(kind, pa.array(values, pa.string()))
    for row, (value, found) in enumerate(zip(values, normalised.to_pylist(), strict=True)):
        if value is None:
            assert found is None and row not in failures
            continue
        expected = _by_python(kind, value)
        assert found == expected, (kind, value)
        assert (row in failures) == (expected is None)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(alphabet=string.ascii_letters + string.digits + "_.-~ \u00e9", max_size=70),
                min_size=1, max_size=10),
       st.sampled_from(["crm", "care_2", "Care", "a-b"]))  # fmt: skip
def test_derived_event_ids_equal_derived_event_id(records: list[str], source: str) -> None:
    ids = derived_event_ids(source, pa.array(records, pa.string())).to_pylist()
    assert ids == [derived_event_id(source, record) for record in records]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.dates().map(lambda day: day.strftime("%d/%m/%Y")),
                          st.text(alphabet="0123456789/", max_size=10)), max_size=10))  # fmt: skip
def test_dates_of_birth_equal_strptime(values: list[str]) -> None:
    found = iso_dates(pa.array(values, pa.string()), "%d/%m/%Y").to_pylist()
    for value, date in zip(values, found, strict=True):
        try:
            expected: str | None = datetime.strptime(value, "%d/%m/%Y").date().isoformat()
        except ValueError:
            expected = None
        assert date == expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=10))
def test_float_attributes_read_back_as_the_same_floats(values: list[float]) -> None:
    written = [str(text) for text in float_json(pa.array(values, pa.float64())).to_pylist()]
    for value, text in zip(values, written, strict=True):
        back = json.loads(text)
        assert isinstance(back, float) and back == value


@settings(max_examples=50, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 1, 1),
                             timezones=st.just(UTC)), max_size=8))  # fmt: skip
def test_iso_text_writes_timestamps_as_the_generator_does(moments: list[datetime]) -> None:
    stamps = pa.array(moments, pa.timestamp("ms", tz="UTC"))
    texts = [str(text) for text in iso_text(stamps).to_pylist()]
    for moment, text in zip(moments, texts, strict=True):
        assert datetime.fromisoformat(text) == moment.replace(
            microsecond=moment.microsecond // 1000 * 1000
        )
        assert text.endswith("Z") and ("." in text) == bool(moment.microsecond // 1000)


# -- the quarantine file -------------------------------------------------------------


def test_quarantine_rows_round_trip_and_a_torn_last_line_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "q" / "care.jsonl"
    batch = frame_from_lines([b"{", b'"text"', b"[\xff]"], CANONICAL, origin="stream")
    with QuarantineWriter(path) as writer:
        assert writer.write(batch.quarantined) == 3
        writer.flush()
    with QuarantineWriter(path) as writer:
        writer.write(frame_from_records([{"a": "\ud800"}], CANONICAL, origin="push").quarantined)
    rows = read_quarantine(path)
    assert [row.row for row in rows] == [1, 2, 3, 1]
    assert rows[:3] == batch.quarantined
    assert rows[3].raw == {"a": "\ud800"}
    with path.open("ab") as stream:
        stream.write(b'{"source": "canonical", "fi')
    assert len(read_quarantine(path)) == 4
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"source", "file", "row", "raw", "reasons"}
