"""Paging through a customer's journey: no repeats, no gaps, ties included."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph import EmbeddedStore, InvalidInput
from graph.model import customer_id, touchpoint_id
from journeys.customer360 import journey_page
from tests.builders import T0


def store_with(tmp_path: Path, hours: list[int]) -> EmbeddedStore:
    store = EmbeddedStore(tmp_path / "g.db")
    store.upsert_vertices("Customer", [(customer_id("ann"), {})])
    store.upsert_vertices(
        "Touchpoint",
        [
            (
                touchpoint_id(f"e{n:02d}"),
                {"event_type": "x", "ts": T0 + timedelta(hours=h), "source": "t"},
            )
            for n, h in enumerate(hours)
        ],
    )
    store.upsert_edges(
        "PERFORMED",
        [(customer_id("ann"), touchpoint_id(f"e{n:02d}"), {}) for n in range(len(hours))],
    )
    return store


@settings(max_examples=40, deadline=None)
@given(hours=st.lists(st.integers(0, 3), max_size=40), limit=st.integers(1, 7))
def test_pages_join_up_to_the_whole_journey(
    tmp_path_factory: pytest.TempPathFactory, hours: list[int], limit: int
) -> None:
    with store_with(tmp_path_factory.mktemp("j"), hours) as store:
        whole = [v.id for v in store.timeline(customer_id("ann"))]
        seen: list[str] = []
        cursor = None
        for _ in range(len(hours) + 2):
            page = journey_page(store, "cust:ann", None, None, limit, cursor)
            assert len(page.touchpoints) <= limit
            seen += [v.id for v in page.touchpoints]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == whole


def test_a_cursor_that_was_not_given_out_is_refused(tmp_path: Path) -> None:
    with store_with(tmp_path, [0, 1]) as store:
        for cursor in ("nonsense", "W10", "WyJhIiwgMV0"):
            with pytest.raises(InvalidInput, match="cursor is not one this API gave out"):
                journey_page(store, "cust:ann", None, None, 1, cursor)
