"""The batch checks of ``graph.model`` agree with the one-at-a-time checks they stand for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from graph import InvalidInput, VertexLabel
from graph.model import (
    arrow_ids_valid,
    check_properties,
    check_vertex_id,
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
