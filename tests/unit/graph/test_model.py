"""The batch checks of ``graph.model`` agree with the one-at-a-time checks they stand for;
derived event ids are readable where they can be and never collide."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graph import InvalidInput, VertexLabel
from graph.model import (
    arrow_ids_valid,
    check_properties,
    check_vertex_id,
    derived_event_id,
    plain_properties,
    vertex_ids_valid,
)

_TRICKY = st.sampled_from(["", " ", "\n", "\t", "\x7f", "\u00a0", "\u2028", "é", ":", "cust:"])
_IDS = st.one_of(
    st.builds(lambda key: "cust:" + key, st.text(max_size=8)),
    st.builds("".join, st.lists(st.one_of(_TRICKY, st.text(max_size=3)), max_size=4)),
    st.just("cust:" + "x" * 508),
    st.just("cust:" + "x" * 507),
    st.integers(),
)


def _accepted(vertex_id: object) -> bool:
    try:
        check_vertex_id(VertexLabel.CUSTOMER, vertex_id)
    except InvalidInput:
        return False
    return True


@given(st.lists(_IDS, min_size=1, max_size=6))
def test_vertex_ids_valid_agrees_with_check_vertex_id(ids: list[object]) -> None:
    assert vertex_ids_valid(VertexLabel.CUSTOMER, ids) == all(map(_accepted, ids))


@given(st.lists(_IDS.filter(lambda i: isinstance(i, str)), min_size=1, max_size=6))
def test_arrow_ids_valid_only_vouches_for_valid_ids(ids: list[str]) -> None:
    if arrow_ids_valid(VertexLabel.CUSTOMER, pa.chunked_array([pa.array(ids, pa.string())])):
        assert all(map(_accepted, ids))
    elif all(map(_accepted, ids)):
        assert not all(i.isascii() for i in ids)  # only non-ASCII ids are left to Python


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.just("x" * 65_537),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])),
    st.datetimes(),
    st.lists(st.integers(), max_size=1),
)
_PROPERTIES = st.dictionaries(
    st.sampled_from(["a", "ts", "uid", "bad key", "b2"]), _VALUES, max_size=3
)


def _properties_accepted(properties: object) -> bool:
    try:
        check_properties("test", properties)
    except InvalidInput:
        return False
    return True


@given(st.lists(_PROPERTIES, min_size=1, max_size=4))
def test_plain_properties_never_accepts_what_check_properties_refuses(
    batch: list[dict[str, object]],
) -> None:
    if plain_properties(batch):
        assert all(map(_properties_accepted, batch))


def test_plain_properties_leaves_other_mappings_and_subclasses_to_the_full_check() -> None:
    class Text(str):
        pass

    assert plain_properties([{}, {"a": 1, "ts": datetime(2024, 1, 1, tzinfo=UTC)}])
    assert not plain_properties([{"a": Text("x")}])
    assert not plain_properties([{"a": 1}, [("a", 1)]])


# --- derived event ids ------------------------------------------------------------------

_SOURCES = st.one_of(
    st.sampled_from(["billing", "care", "crm", "a", "b_2"]),
    st.text(max_size=6),
)
_RECORD_IDS = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
    st.text(max_size=70),
    st.sampled_from(["", "-", "a-b", "x" * 64, "x" * 65, "1f503232c3973aa8e96b453e"]),
)


def test_derived_event_id_is_readable_for_a_token_source_and_a_short_safe_record_id() -> None:
    assert derived_event_id("billing", "BIL00030000123") == "billing-BIL00030000123"
    assert derived_event_id("crm", "77") == "crm-77"
    assert derived_event_id("care_2", "a.b-c_D") == "care_2-a.b-c_D"


@pytest.mark.parametrize(
    ("source", "record_id"),
    [
        ("care", "has space"),
        ("care", "colon:inside"),
        ("care", ""),
        ("care", "x" * 65),
        ("care", "é"),
        ("Care", "1"),
        ("my-source", "1"),
        ("", "1"),
    ],
)
def test_derived_event_id_hashes_anything_else(source: str, record_id: str) -> None:
    event_id = derived_event_id(source, record_id)
    assert re.fullmatch(re.escape(source) + r"~[0-9a-f]{24}", event_id)
    assert derived_event_id(source, record_id) == event_id  # stable


@given(st.lists(st.tuples(_SOURCES, _RECORD_IDS), min_size=2, max_size=8, unique=True))
def test_derived_event_ids_of_distinct_records_are_distinct(records: list[tuple[str, str]]) -> None:
    event_ids = [derived_event_id(source, record_id) for source, record_id in records]
    assert len(set(event_ids)) == len(records)


@given(st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True), min_size=2))
def test_readable_event_ids_of_one_source_sort_as_their_record_ids(record_ids: list[str]) -> None:
    event_ids = [derived_event_id("network", record_id) for record_id in sorted(record_ids)]
    assert event_ids == sorted(event_ids)
    assert all("~" not in event_id for event_id in event_ids)
