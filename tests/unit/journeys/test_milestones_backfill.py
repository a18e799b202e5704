"""Backfill, dry runs, the reach files and the service on small hand-made worlds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from graph import EdgeLabel, EmbeddedStore, UnknownCustomer, VertexLabel
from ingest.pipeline import Ingestor
from journeys.milestones import (
    REACH_SCHEMA,
    DryRunQuery,
    MilestoneBackfill,
    MilestoneCatalog,
    MilestoneService,
    UnknownMilestone,
    read_reaches,
    shipped_definitions,
)
from journeys.milestones.reaches import ReachStore
from tests.unit.journeys.test_milestones_incremental import (
    FIRST_CALL,
    THREE_CALLS,
    World,
    call,
    follow,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = World(tmp_path)
    yield built
    built.store.close()


def service(world: World, merge_map: dict[str, str] | None = None) -> MilestoneService:
    folder = world.root / "definitions"
    folder.mkdir(exist_ok=True)
    for milestone in (THREE_CALLS, FIRST_CALL):
        (folder / f"{milestone.name}.yaml").write_text(milestone.to_yaml())
    return MilestoneService(
        MilestoneCatalog(folder, shipped=False),
        world.store,
        world.lake,
        lambda: merge_map or {},
        world.root / "state",
    )


def test_reach_files_have_the_contract_schema(world: World) -> None:
    world.arrive(*(call("ann", f"a{n}", n) for n in range(3)))
    MilestoneBackfill(world.lake, world.store).run([THREE_CALLS, FIRST_CALL])
    (path,) = ReachStore(world.lake.root).files()
    assert path.name == "part-000001.parquet"
    assert pq.read_schema(path).remove_metadata() == REACH_SCHEMA
    table = read_reaches(world.lake.root)
    assert table.schema == REACH_SCHEMA
    assert table.column("milestone").to_pylist() == ["first_call", "three_calls"]
    assert read_reaches(world.root / "nowhere").num_rows == 0


def test_backfill_writes_vertices_and_edges_once(world: World) -> None:
    world.arrive(*(call("ann", f"a{n}", n) for n in range(4)), call("bob", "b1", 0))
    first = MilestoneBackfill(world.lake, world.store).run([THREE_CALLS, FIRST_CALL])
    assert (first.new, first.customers_evaluated, first.touchpoints) == (3, 2, 5)
    assert first.per_milestone["three_calls@1"]["new"] == 1
    milestone = world.store.get_vertex("ms:three_calls")
    assert milestone is not None and milestone.properties["version"] == 1
    assert '"count":3' in str(milestone.properties["definition"])
    assert world.store.count_edges(EdgeLabel.REACHED) == 3
    assert world.store.count_edges(EdgeLabel.EVIDENCED_BY) == 5  # a0 a1 a2, a0 again, b1
    written = world.store.changes(0, 100_000).cursor
    again = MilestoneBackfill(world.lake, world.store).run([THREE_CALLS, FIRST_CALL])
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)
    assert len(ReachStore(world.lake.root).files()) == 1
    assert world.store.changes(written, 100_000).changes == []  # the graph: nothing either


def test_a_split_customer_loses_a_reach_on_the_next_backfill(world: World) -> None:
    world.arrive(*(call("ann", f"a{n}", n) for n in range(3)))
    MilestoneBackfill(world.lake, world.store).run([THREE_CALLS, FIRST_CALL])
    lake = world.lake.touchpoints()
    moved = lake.filter(pc.equal(lake["event_id"], pa.scalar("a1")))
    world.lake.correct(moved, "cust:new", "detach-1", 9)
    world.store.upsert_vertices(VertexLabel.CUSTOMER, [("cust:new", {})])
    world.store.delete_edges(EdgeLabel.PERFORMED, [("cust:ann", "tp:a1")])
    world.store.upsert_edges(EdgeLabel.PERFORMED, [("cust:new", "tp:a1", {})])
    summary = MilestoneBackfill(world.lake, world.store).run([THREE_CALLS, FIRST_CALL])
    assert (summary.retracted, summary.new, summary.unchanged) == (1, 1, 1)
    assert world.store.get_edge("REACHED", "cust:ann", "ms:three_calls") is None
    assert world.store.count_edges(EdgeLabel.EVIDENCED_BY) == 2  # a0 for ann, a1 for new
    assert len(ReachStore(world.lake.root).files()) == 1  # rebuilt
    rows = read_reaches(world.lake.root).to_pylist()
    assert [(r["customer"], r["milestone"]) for r in rows] == [
        ("cust:ann", "first_call"),
        ("cust:new", "first_call"),
    ]


def test_a_dry_run_writes_nothing(world: World) -> None:
    world.arrive(*(call("ann", f"a{n}", n) for n in range(4)), call("bob", "b1", 0))
    milestones = service(world)
    by_name = milestones.dry_run(DryRunQuery(name="first_call", sample=1))
    assert (by_name.reached, by_name.customers_evaluated) == (2, 2)
    assert [(r.customer, r.evidence) for r in by_name.sample] == [("cust:ann", ["a0"])]
    inline = milestones.dry_run(
        DryRunQuery(
            definition={
                "name": "two_calls",
                "description": "two calls in a day",
                "condition": {"event_type": "call", "count": 2, "within": "1d"},
            }
        )
    )
    assert inline.reached == 1 and inline.sample[0].evidence == ["a0", "a1"]
    assert not (world.lake.root / "milestones").exists()
    assert world.store.count(VertexLabel.MILESTONE) == 0
    with pytest.raises(UnknownMilestone):
        milestones.dry_run(DryRunQuery(name="nothing"))
    with pytest.raises(ValueError, match="either name or definition"):
        DryRunQuery()


def test_service_summaries_and_a_customers_milestones(world: World) -> None:
    world.arrive(*(call("ann", f"a{n}", n) for n in range(3)), call("bob", "b1", 0))
    milestones = service(world)
    assert [s.reached for s in milestones.summaries()] == [0, 0]
    summary = milestones.backfill(["three_calls"])
    assert summary.milestones == ["three_calls@1"]
    overview = {s.name: s for s in milestones.summaries()}
    assert overview["three_calls"].reached == 1 and overview["first_call"].reached == 0
    mine = milestones.customer_milestones("ann")
    assert [(m.milestone, m.evidence) for m in mine] == [("three_calls", ["a0", "a1", "a2"])]
    with pytest.raises(UnknownCustomer):
        milestones.customer_milestones("nobody")
    follower = milestones.follower()
    follow(follower)
    assert milestones.summary("first_call").reached == 2
    assert (world.root / "state" / "follow-cursor.json").exists()


@pytest.mark.slow
def test_a_generated_world_gives_the_same_reaches_both_ways(tmp_path: Path) -> None:
    """The generator's world, ingested source by source (out of time order): the
    follower over the feed and the backfill over the lake agree on every reach."""
    from ingest.demo import load_demo

    store = EmbeddedStore(tmp_path / "graph.db")
    ingestor = Ingestor(store, tmp_path / "ingest")
    try:
        load_demo(ingestor, 60, 5, tmp_path / "world")
        definitions = shipped_definitions()
        merge_map = ingestor.index.merge_map()
        state = tmp_path / "state"
        milestones = MilestoneService(
            MilestoneCatalog(None), store, ingestor.lake, lambda: merge_map, state
        )
        followed = follow(milestones.follower())
        assert followed[0] > 60
        by_feed = read_reaches(ingestor.lake.root, merge_map)
        summary = milestones.backfill()
        assert (summary.new, summary.updated, summary.retracted) == (0, 0, 0)
        assert summary.unchanged == by_feed.num_rows
        assert {d.key for d in definitions} == set(summary.per_milestone)
    finally:
        ingestor.close()
        store.close()
