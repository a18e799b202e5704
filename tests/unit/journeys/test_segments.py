"""Segments on the hand-made lake, and against a plain-Python reference on random ones."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.errors import InvalidInput
from ingest.lake import Lake
from journeys._lake_views import open_session
from journeys.segments import (
    SegmentCache,
    segment_customers,
    segment_definitions,
    segment_lookup,
    segment_names,
    segment_table,
)
from tests.unit.journeys.test_kpis_lake import (
    LAKE_COLUMNS,
    MERGE_MAP,
    build_lake,
    day,
    frame,
    tp,
)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return build_lake(tmp_path_factory.mktemp("segment-lake"))


@pytest.fixture
def session(lake: Lake) -> Iterator[tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation]]:
    connection = open_session()
    relation = lake.relation(connection, MERGE_MAP)
    assert relation is not None
    yield connection, relation
    connection.close()


def assigned(session: tuple[Any, Any], name: str) -> dict[str, str]:
    connection, relation = session
    return dict(segment_table(connection, relation, name).fetchall())


def test_the_shipped_segments() -> None:
    assert segment_names() == ["care_intensity", "primary_channel", "tenure_band", "value_band"]
    for definition in segment_definitions().values():
        assert definition.description and definition.values


def test_primary_channel(session: tuple[Any, Any]) -> None:
    # ann: app 3, care 2, ivr 1, web 1; bob: care 4 (with the ticket); cat: app, care
    # and web once each, so the first name wins; dan: network, billing and crm only.
    assert assigned(session, "primary_channel") == {
        "cust:ann": "app",
        "cust:bob": "care",
        "cust:cat": "app",
        "cust:dan": "none",
        "cust:eve": "ivr",
    }


def test_tenure_band_as_of_the_latest_touchpoint(session: tuple[Any, Any]) -> None:
    # As of 2024-07-19 12:00 (cat's cancellation): ann since 2021-06 (3.1 years), bob
    # since 2018 (6.5), dan since 2023-01 (1.5), cat and eve since 2024.
    assert assigned(session, "tenure_band") == {
        "cust:ann": "3_to_5y",
        "cust:bob": "5y_plus",
        "cust:cat": "under_1y",
        "cust:dan": "1_to_3y",
        "cust:eve": "under_1y",
    }


def test_value_band_by_mean_bill(session: tuple[Any, Any]) -> None:
    assert assigned(session, "value_band") == {
        "cust:ann": "20_to_35",  # 30
        "cust:bob": "50_plus",  # 60
        "cust:cat": "no_bills",
        "cust:dan": "under_20",  # (10 + 20) / 2
        "cust:eve": "no_bills",
    }


def test_care_intensity_counts_contacts_of_the_last_year(session: tuple[Any, Any]) -> None:
    assert assigned(session, "care_intensity") == {
        "cust:ann": "medium",  # A1, A2, A3
        "cust:bob": "medium",  # B1, B2, B3 (the ticket is not a contact)
        "cust:cat": "low",
        "cust:dan": "none",
        "cust:eve": "high",  # E1..E4, two of them written as eve2
    }


def test_segment_customers(session: tuple[Any, Any]) -> None:
    connection, relation = session
    chosen = segment_customers(connection, relation, "tenure_band", ["under_1y", "5y_plus"])
    assert chosen.to_pylist() == ["cust:bob", "cust:cat", "cust:eve"]
    assert chosen.type == pa.string()
    assert segment_customers(connection, relation, "value_band", ["35_to_50"]).to_pylist() == []


def test_unknown_names_and_values_list_the_known_ones(session: tuple[Any, Any]) -> None:
    connection, relation = session
    with pytest.raises(InvalidInput, match=r"no segment 'age' \(segments: care_intensity, "):
        segment_table(connection, relation, "age")
    with pytest.raises(InvalidInput, match=r"no value 'old' \(values: under_1y, 1_to_3y"):
        segment_customers(connection, relation, "tenure_band", ["under_1y", "old"])


def test_segment_lookup_reads_the_lake_and_merge_map_at_each_call(lake: Lake) -> None:
    maps: list[dict[str, str]] = [{}]
    lookup = segment_lookup(lake, lambda: maps[0])
    assert "eve2" in lookup("care_intensity", ["medium"]).to_pylist()  # E3, E4 alone
    maps[0] = MERGE_MAP
    assert lookup("care_intensity", ["high"]).to_pylist() == ["cust:eve"]


def test_the_cache_keeps_tables_until_the_lake_or_merge_map_changes(tmp_path: Path) -> None:
    lake = build_lake(tmp_path)
    maps: list[dict[str, str]] = [MERGE_MAP]
    cache = SegmentCache(lake, lambda: maps[0])
    first = cache.table("care_intensity")
    assert cache.table("care_intensity") is first
    maps[0] = {}
    split = cache.table("care_intensity")
    assert split is not first and "eve2" in split.column("customer").to_pylist()
    maps[0] = MERGE_MAP
    contact = tp("dan", "care-CALLD1", "general_enquiry", "care", day(199), "care")
    lake.append(frame([contact]), pa.array(["cust:dan"]), "late", 3)
    after = {row["customer"]: row["segment"] for row in cache.table("care_intensity").to_pylist()}
    assert after["cust:dan"] == "low"


def test_a_table_called_touchpoints_does_not_leak_in(session: tuple[Any, Any]) -> None:
    connection, relation = session
    connection.execute("CREATE TABLE touchpoints AS SELECT 'intruder' AS customer")
    assert "intruder" not in assigned(session, "primary_channel")


# A reference for primary_channel and care_intensity, one customer at a time.
HUMAN = ("retail", "care", "ivr", "app", "web")
CHANNELS = (*HUMAN, "network", "billing", "sms")
EVENTS = ("general_enquiry", "ticket_opened", "csat_response", "login")


def reference(rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    as_of = max(row["ts"] for row in rows)
    primary: dict[str, str] = {}
    intensity: dict[str, str] = {}
    for customer in {row["customer"] for row in rows}:
        mine = [row for row in rows if row["customer"] == customer]
        counts = Counter(row["channel"] for row in mine if row["channel"] in HUMAN)
        primary[customer] = min(counts, key=lambda c: (-counts[c], c)) if counts else "none"
        contacts = sum(
            1
            for row in mine
            if row["channel"] in ("care", "ivr")
            and row["event_type"] not in ("ticket_opened", "csat_response")
            and as_of - timedelta(days=365) < row["ts"]
        )
        bands = ["none", "low", "medium", "medium"]
        intensity[customer] = bands[contacts] if contacts < 4 else "high"
    return {"primary_channel": primary, "care_intensity": intensity}


@st.composite
def random_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 30))
    return [
        tp(
            f"c{draw(st.integers(0, 4))}",
            f"e{n:03d}",
            draw(st.sampled_from(EVENTS)),
            draw(st.sampled_from(CHANNELS)),
            day(draw(st.integers(0, 500)), draw(st.integers(0, 23))),
        )
        for n in range(count)
    ]


@settings(max_examples=60, deadline=None)
@given(random_rows())
def test_segments_match_the_reference(rows: list[dict[str, Any]]) -> None:
    connection = open_session()
    try:
        relation = connection.from_arrow(pa.Table.from_pylist(rows).select(LAKE_COLUMNS))
        expected = reference(rows)
        for name in ("primary_channel", "care_intensity"):
            assert dict(segment_table(connection, relation, name).fetchall()) == expected[name]
    finally:
        connection.close()
