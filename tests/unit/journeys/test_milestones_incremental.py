"""The change-feed follower on hand-made arrivals: windows, late touchpoints, merges, restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph import EdgeLabel, EmbeddedStore, VertexLabel
from ingest.frame_writer import FrameWriter
from ingest.lake import Lake
from journeys.milestones import (
    FollowCursor,
    MilestoneBackfill,
    MilestoneDefinition,
    MilestoneFollower,
    read_reaches,
)
from journeys.milestones.incremental import performed_pair
from journeys.milestones.reaches import milliseconds
from tests.unit.journeys.test_milestones_reference import DAY_MS, T0, Event, definition, frame

THREE_CALLS = definition({"event_type": "call", "count": 3, "within": "7d"}, name="three_calls")
PORT_AFTER_INCIDENT = definition(
    {"steps": [{"event_type": "incident"}, {"event_type": "port", "max_gap": "30d"}]},
    name="port_after_incident",
)
FIRST_CALL = definition({"event_type": "call"}, name="first_call")
ALL = [THREE_CALLS, PORT_AFTER_INCIDENT, FIRST_CALL]


class World:
    """A store and a lake that touchpoints arrive in, and a follower of its feed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = EmbeddedStore(root / "graph.db")
        self.lake = Lake(root / "lake")
        self.batches = 0

    def arrive(self, *events: Event) -> None:
        self.batches += 1
        table, customers = frame(list(events))
        FrameWriter(self.store).write(table, customers, {})
        self.lake.append(table, customers, f"b{self.batches}", self.batches)

    def follower(
        self, definitions: list[MilestoneDefinition] = ALL, cursor: str = "cursor.json"
    ) -> MilestoneFollower:
        return MilestoneFollower(
            self.store, self.lake.root, definitions, FollowCursor(self.root / cursor)
        )

    def reaches(self, merge_map: dict[str, str] | None = None) -> dict[tuple[str, str], object]:
        return {
            (row["customer"], row["milestone"]): (
                (milliseconds(row["reached_at"]) - milliseconds(T0)) // DAY_MS,
                row["evidence"],
            )
            for row in read_reaches(self.lake.root, merge_map).to_pylist()
        }

    def evidence_edges(self) -> set[tuple[Any, Any]]:
        table = self.store.export_edges(EdgeLabel.EVIDENCED_BY)
        pairs = zip(
            table.column("source").to_pylist(), table.column("target").to_pylist(), strict=True
        )
        return set(pairs)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = World(tmp_path)
    yield built
    built.store.close()


def call(customer: str, event_id: str, day: float, event_type: str = "call") -> Event:
    return Event(f"cust:{customer}", event_id, int(day * DAY_MS), event_type)


def follow(follower: MilestoneFollower) -> tuple[int, int]:
    new = updated = 0
    while True:
        done = follower.step()
        new, updated = new + done.new, updated + done.updated
        if not done.changes:
            return new, updated


def test_calls_arriving_one_by_one_complete_the_window(world: World) -> None:
    follower = world.follower()
    world.arrive(call("ann", "a1", 0))
    assert follow(follower) == (1, 0)  # first_call
    world.arrive(call("ann", "a2", 3))
    world.arrive(call("ann", "a3", 9))  # a1..a3 span 9 days
    assert follow(follower) == (0, 0)
    world.arrive(call("ann", "a4", 10))
    assert follow(follower) == (1, 0)
    assert world.reaches()[("cust:ann", "three_calls")] == (10, ["a2", "a3", "a4"])
    reached = world.store.get_edge("REACHED", "cust:ann", "ms:three_calls")
    assert reached is not None and reached.properties["evidence_count"] == 3


def test_a_late_touchpoint_moves_a_reach_earlier_and_replaces_its_evidence(world: World) -> None:
    follower = world.follower([THREE_CALLS])
    world.arrive(call("ann", "a2", 2), call("ann", "a3", 4), call("ann", "a5", 6))
    assert follow(follower) == (1, 0)
    assert world.reaches()[("cust:ann", "three_calls")] == (6, ["a2", "a3", "a5"])
    world.arrive(call("ann", "a1", 1))  # late: a1, a2, a3 already make three in 7 days
    assert follow(follower) == (0, 1)
    assert world.reaches()[("cust:ann", "three_calls")] == (4, ["a1", "a2", "a3"])
    assert world.evidence_edges() == {("ms:three_calls", f"tp:a{n}") for n in (1, 2, 3)}
    assert len(list((world.lake.root / "milestones").glob("part-*.parquet"))) == 2


def test_a_late_first_step_completes_a_sequence_already_stored(world: World) -> None:
    follower = world.follower([PORT_AFTER_INCIDENT])
    world.arrive(call("bob", "b2", 40, "port"))
    assert follow(follower) == (0, 0)
    world.arrive(call("bob", "b0", 1, "incident"))  # 39 days before: too early
    assert follow(follower) == (0, 0)
    world.arrive(call("bob", "b1", 20, "incident"))
    assert follow(follower) == (1, 0)
    assert world.reaches()[("cust:bob", "port_after_incident")] == (40, ["b1", "b2"])


def test_ties_in_time_are_ordered_by_event_id(world: World) -> None:
    follower = world.follower([PORT_AFTER_INCIDENT])
    world.arrive(call("cy", "c2", 5, "incident"), call("cy", "c1", 5, "port"))
    assert follow(follower) == (0, 0)
    world.arrive(call("cy", "c3", 5, "port"))
    assert follow(follower) == (1, 0)
    assert world.reaches()[("cust:cy", "port_after_incident")] == (5, ["c2", "c3"])


def test_rereading_the_feed_or_restarting_writes_nothing(world: World) -> None:
    follower = world.follower()
    world.arrive(*(call("ann", f"a{n}", n) for n in range(4)), call("bob", "b1", 0, "incident"))
    world.arrive(call("bob", "b2", 3, "port"))
    assert follow(follower) == (3, 0)  # ann: first_call, three_calls; bob: port_after_incident
    files = sorted((world.lake.root / "milestones").iterdir())
    assert follow(world.follower()) == (0, 0)  # restarted: resumes at the saved cursor
    assert follow(world.follower(cursor="fresh.json")) == (0, 0)  # the whole feed again
    assert sorted((world.lake.root / "milestones").iterdir()) == files
    summary = MilestoneBackfill(world.lake, world.store).run(ALL)
    assert (summary.new, summary.updated, summary.unchanged) == (0, 0, 3)


def test_a_follower_started_after_a_backfill_reads_the_window_it_needs(world: World) -> None:
    world.arrive(call("ann", "a1", 0), call("ann", "a2", 1))
    assert MilestoneBackfill(world.lake, world.store).run(ALL).new == 1  # first_call
    late = world.follower()
    late.cursor.save(world.store.changes(0, 1_000_000).cursor)  # starts at "now"
    world.arrive(call("ann", "a3", 2))
    assert follow(late) == (1, 0)
    assert world.reaches()[("cust:ann", "three_calls")] == (2, ["a1", "a2", "a3"])
    assert world.reaches()[("cust:ann", "first_call")] == (0, ["a1"])


def test_customers_created_in_the_feed_need_no_timeline_read(world: World) -> None:
    follower = world.follower()
    world.arrive(call("ann", "a1", 0), call("ann", "a2", 1))
    world.arrive(call("bob", "b1", 0, "incident"))
    assert follower.follow(idle_exit=0).timelines_read == 0
    # A split (as ingest.resolution.operations.detach_identifier writes it): cust:new is
    # created after the cursor and gets a1; its window is the feed's alone.
    world.store.upsert_vertices(VertexLabel.CUSTOMER, [("cust:new", {})])
    world.store.delete_edges(EdgeLabel.PERFORMED, [("cust:ann", "tp:a1")])
    world.store.upsert_edges(EdgeLabel.PERFORMED, [("cust:new", "tp:a1", {})])
    world.arrive(call("new", "n2", 3), call("new", "n3", 4), call("bob", "b2", 9, "port"))
    done = follower.follow(idle_exit=0)
    assert (done.timelines_read, done.new) == (0, 3)
    reaches = world.reaches()
    assert reaches[("cust:new", "three_calls")] == (4, ["a1", "n2", "n3"])
    assert reaches[("cust:new", "first_call")] == (0, ["a1"])
    assert reaches[("cust:bob", "port_after_incident")] == (9, ["b1", "b2"])
    # A customer the follower never saw created is read from the store, once.
    late = world.follower(cursor="late.json")
    late.cursor.save(world.store.changes(0, 1_000_000).cursor)
    world.arrive(call("ann", "a4", 5), call("ann", "a5", 6))
    assert late.follow(idle_exit=0).timelines_read == 1
    assert world.reaches()[("cust:ann", "three_calls")] == (6, ["a2", "a4", "a5"])


def test_a_merge_is_evaluated_on_the_merged_timeline(world: World) -> None:
    follower = world.follower([THREE_CALLS, FIRST_CALL])
    world.arrive(call("ann", "a1", 0), call("ann", "a2", 2))
    world.arrive(call("dup", "d1", 1), call("dup", "d2", 5))
    assert follow(follower) == (2, 0)  # first_call of each
    FrameWriter(world.store).merge({"cust:dup": "cust:ann"})
    merge_map = {"cust:dup": "cust:ann"}
    # three_calls on a1, d1, a2 is new; first_call is rewritten, as the merge moved dup's
    # edge (day 1) onto ann.
    assert follow(follower) == (1, 1)
    reaches = world.reaches(merge_map)
    assert reaches[("cust:ann", "three_calls")] == (2, ["a1", "d1", "a2"])
    assert reaches[("cust:ann", "first_call")] == (0, ["a1"])
    assert ("cust:dup", "first_call") not in reaches
    summary = MilestoneBackfill(world.lake, world.store).run([THREE_CALLS, FIRST_CALL], merge_map)
    assert (summary.new, summary.updated, summary.retracted) == (0, 0, 0)


def test_a_merge_moving_an_earlier_reach_onto_the_survivor_is_corrected(world: World) -> None:
    follower = world.follower([FIRST_CALL])
    world.arrive(call("ann", "a1", 5), call("dup", "d1", 1))
    assert follow(follower) == (2, 0)
    FrameWriter(world.store).merge({"cust:dup": "cust:ann"})
    assert follow(follower) == (0, 1)  # the moved edge is evaluated for ann: d1 on day 1
    reached = world.store.get_edge("REACHED", "cust:ann", "ms:first_call")
    assert reached is not None
    assert reached.properties["evaluated_for"] == "cust:ann"
    assert world.reaches({"cust:dup": "cust:ann"})[("cust:ann", "first_call")] == (1, ["d1"])
    assert world.evidence_edges() == {("ms:first_call", "tp:d1")}


def test_performed_edge_ids_split_at_the_touchpoint() -> None:
    assert performed_pair("PERFORMED:cust:a>b>tp:e-1>2") == ("cust:a>b", "tp:e-1>2")
    assert performed_pair("NEXT:tp:a>tp:b") is None
