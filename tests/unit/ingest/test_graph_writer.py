"""GraphWriter: the data model written right, NEXT chains correct whatever the arrival order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from graph import EmbeddedStore
from ingest.graph_writer import GraphWriter, ResolvedTouchpoint
from ingest.touchpoint import Touchpoint

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def _tp(n: int, hours: float, **attributes: object) -> Touchpoint:
    return Touchpoint(
        event_id=f"e{n:03d}",
        source="care",
        event_type=f"step_{n}",
        channel="care",
        ts=T0 + timedelta(hours=hours),
        identifiers={"msisdn": "07700 900123", "email": "Ann@Example.com"},
        attributes=attributes,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "g.db")


def _chain(store: EmbeddedStore, customer: str) -> list[str]:
    timeline = store.timeline(customer)
    for earlier, later in zip(timeline, timeline[1:], strict=False):
        assert store.get_edge("NEXT", earlier.id, later.id) is not None
    assert store.count_edges("NEXT") == max(len(timeline) - 1, 0)
    return [v.id for v in timeline]


def test_writes_the_data_model(store: EmbeddedStore) -> None:
    writer = GraphWriter(store)
    summary = writer.write(
        [
            ResolvedTouchpoint("cust:ann", _tp(1, 0, offer_id="O1")),
            ResolvedTouchpoint("cust:ann", _tp(2, 5, cell_id="C9")),
        ]
    )
    assert (summary.touchpoints, summary.customers, summary.identifiers) == (2, 1, 2)
    identifiers = {
        n.vertex.id: n.edge.properties
        for n in store.neighbours("cust:ann", "out", ["HAS_IDENTIFIER"])
    }
    assert set(identifiers) == {"id:msisdn:+447700900123", "id:email:ann@example.com"}
    link = identifiers["id:msisdn:+447700900123"]
    assert link["first_seen"] == T0 and link["last_seen"] == T0 + timedelta(hours=5)
    assert link["method"] == "det"
    assert store.get_edge("ABOUT", "tp:e001", "offer:O1") is not None
    assert store.get_edge("AT_CELL", "tp:e002", "cell:C9") is not None
    edge = store.get_edge("NEXT", "tp:e001", "tp:e002")
    assert edge is not None and edge.properties["dt_seconds"] == 5 * 3600


def test_rewriting_a_batch_changes_nothing(store: EmbeddedStore) -> None:
    batch = [ResolvedTouchpoint("cust:ann", _tp(n, n)) for n in range(5)]
    GraphWriter(store).write(batch)
    cursor = store.changes(0, limit=100_000).cursor
    GraphWriter(store).write(batch)
    assert store.changes(cursor).changes == []


@pytest.mark.parametrize("seed", range(5))
def test_next_chain_is_right_whatever_the_arrival_order(store: EmbeddedStore, seed: int) -> None:
    touchpoints = [_tp(n, hours=n * 1.5) for n in range(12)]
    shuffled = touchpoints[:]
    random.Random(seed).shuffle(shuffled)
    writer = GraphWriter(store)
    for start in range(0, len(shuffled), 3):
        writer.write([ResolvedTouchpoint("cust:ann", tp) for tp in shuffled[start : start + 3]])
    assert _chain(store, "cust:ann") == [tp.vertex_id for tp in touchpoints]


def test_first_and_last_seen_widen_across_batches(store: EmbeddedStore) -> None:
    writer = GraphWriter(store)
    writer.write([ResolvedTouchpoint("cust:ann", _tp(2, 10))])
    writer.write(
        [ResolvedTouchpoint("cust:ann", _tp(1, 1)), ResolvedTouchpoint("cust:ann", _tp(3, 20))]
    )
    edge = store.get_edge("HAS_IDENTIFIER", "cust:ann", "id:email:ann@example.com")
    assert edge is not None
    assert edge.properties["first_seen"] == T0 + timedelta(hours=1)
    assert edge.properties["last_seen"] == T0 + timedelta(hours=20)


def test_a_bad_identifier_is_reported_and_the_touchpoint_kept(store: EmbeddedStore) -> None:
    tp = _tp(1, 0).model_copy(update={"identifiers": {"imei": "123"}})
    summary = GraphWriter(store).write([ResolvedTouchpoint("cust:ann", tp)])
    assert summary.touchpoints == 1
    assert summary.identifier_problems and "imei" in summary.identifier_problems[0]
    assert store.count("Identifier") == 0
