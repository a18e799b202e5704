"""The ingest pipeline: exactly once, resumable, quarantining, chains right, merges moved."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from graph import EmbeddedStore, GraphStore
from ingest import pipeline as ingest_pipeline
from ingest.mapping import load_mapping
from ingest.pipeline import Ingestor
from ingest.quarantine import read_quarantine
from ingest.readers import frame_from_records

T0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
CANONICAL = load_mapping("canonical")


def event(n: int, hours: float, source: str = "app", **identifiers: str) -> dict[str, Any]:
    return {
        "event_id": f"e{n:04d}",
        "source": source,
        "event_type": f"step_{n % 7}",
        "channel": "app",
        "ts": (T0 + timedelta(hours=hours)).isoformat(),
        "identifiers": identifiers,
    }


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "graph.db")


def chain_of(store: GraphStore, customer: str) -> list[str]:
    """The customer's timeline, checked to be linked by exactly its NEXT edges."""
    timeline = [v.id for v in store.timeline(customer)]
    for earlier, later in zip(timeline, timeline[1:], strict=False):
        assert store.get_edge("NEXT", earlier, later) is not None, (earlier, later)
    return timeline


def test_a_file_lands_in_graph_and_lake_and_a_rerun_changes_nothing(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    rows = [event(n, n, msisdn="07700 900001") for n in range(5)]
    rows += [event(10 + n, n, email="Bob@Example.com") for n in range(3)]
    path = write_jsonl(tmp_path / "events.jsonl", rows)
    ingestor = Ingestor(store, tmp_path / "work", chunk_rows=3)
    summary = ingestor.ingest_paths([path], CANONICAL)
    assert (summary.read, summary.accepted, summary.quarantined) == (8, 8, 0)
    assert summary.customers_created == 2
    assert store.count("Touchpoint") == 8
    assert store.count_edges("NEXT") == 4 + 2
    assert ingestor.lake.touchpoints(["event_id"]).num_rows == 8

    again = ingestor.ingest_paths([path], CANONICAL)
    assert again.files_skipped == 1 and again.accepted == 0
    copy = write_jsonl(tmp_path / "copy.jsonl", rows)
    duplicate = ingestor.ingest_paths([copy], CANONICAL)
    assert duplicate.files_skipped == 1  # same content, another name
    assert store.count("Touchpoint") == 8
    assert ingestor.lake.touchpoints(["event_id"]).num_rows == 8


def test_events_of_one_customer_arriving_out_of_order_are_chained_in_time_order(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    ingestor = Ingestor(store, tmp_path / "work")
    late = write_jsonl(tmp_path / "late.jsonl", [event(n, n * 2) for n in range(1, 4)])
    early = write_jsonl(tmp_path / "early.jsonl", [event(n, n * 2 - 5) for n in range(4, 7)])
    for path in (late, early):
        for row_path in (path,):
            rows = [json.loads(line) for line in row_path.read_text().splitlines()]
            for row in rows:
                row["identifiers"] = {"msisdn": "+447700900001"}
            write_jsonl(row_path, rows)
        ingestor.ingest_paths([path], CANONICAL)
    customer = ingestor.index.customer_of("id:msisdn:+447700900001")
    assert customer is not None
    timeline = chain_of(store, customer)
    assert len(timeline) == 6
    assert store.count_edges("NEXT") == 5


def test_bad_rows_are_quarantined_with_position_and_reasons(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    rows: list[Any] = [event(1, 1, msisdn="+447700900001")]
    rows.append({**event(2, 2), "ts": "1800-01-01T00:00:00Z"})
    rows.append("{not json")
    rows.append({**event(3, 3), "identifiers": {"msisdn": "7" * 10_000}})
    rows.append(event(4, 4, msisdn="+447700900001"))
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    ingestor = Ingestor(store, tmp_path / "work")
    summary = ingestor.ingest_paths([path], CANONICAL)
    assert (summary.read, summary.accepted, summary.quarantined) == (5, 2, 3)
    rejected = list(read_quarantine(ingestor.quarantine_path("canonical")))
    assert [row.row for row in rejected] == [2, 3, 4]
    assert all(row.reasons and row.origin == str(path) for row in rejected)
    assert store.count("Touchpoint") == 2


class Crash(RuntimeError):
    pass


def test_an_interrupted_run_resumes_without_loss_or_duplicates(
    tmp_path: Path, store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[Any] = []
    for n in range(40):
        rows.append(event(n, n, msisdn=f"+4477009000{n % 4:02d}"))
        if n % 10 == 3:
            rows.append({**event(1000 + n, n), "ts": "not a time"})
    path = write_jsonl(tmp_path / "events.jsonl", rows)

    clean_store = EmbeddedStore(tmp_path / "clean.db")
    clean = Ingestor(clean_store, tmp_path / "clean", chunk_rows=7)
    clean.ingest_paths([path], CANONICAL)

    ingestor = Ingestor(store, tmp_path / "work", chunk_rows=7)
    calls = {"n": 0}
    real_append = ingestor.lake.append

    def crash_on_third(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash("power cut after the graph write, before the lake")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(ingestor.lake, "append", crash_on_third)
    # A power cut: nothing runs after it, not even taking the batch back.
    monkeypatch.setattr(ingestor, "_take_back", lambda *args: None)
    with pytest.raises(Crash):
        ingestor.ingest_paths([path], CANONICAL)
    ingestor.close()

    resumed = Ingestor(store, tmp_path / "work", chunk_rows=7)
    resumed.ingest_paths([path], CANONICAL)

    lake = resumed.lake.touchpoints(["event_id"]).column("event_id").to_pylist()
    assert sorted(lake) == sorted(
        clean.lake.touchpoints(["event_id"]).column("event_id").to_pylist()
    )
    assert len(lake) == len(set(lake)) == 40
    assert store.count("Touchpoint") == clean_store.count("Touchpoint") == 40
    assert store.count_edges("NEXT") == clean_store.count_edges("NEXT") == 36
    quarantined = list(read_quarantine(resumed.quarantine_path("canonical")))
    assert len(quarantined) == 4


def test_a_merge_moves_touchpoints_identifiers_and_chains_to_the_survivor(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    ingestor = Ingestor(store, tmp_path / "work")
    web = write_jsonl(tmp_path / "web.jsonl", [event(n, n * 2, cookie="c1") for n in range(3)])
    calls = write_jsonl(
        tmp_path / "calls.jsonl",
        [event(10 + n, n * 2 + 1, msisdn="+447700900001") for n in range(3)],
    )
    login = write_jsonl(
        tmp_path / "login.jsonl", [event(20, 9, cookie="c1", msisdn="+447700900001")]
    )
    for path in (web, calls):
        ingestor.ingest_paths([path], CANONICAL)
    assert store.count("Customer") == 2
    summary = ingestor.ingest_paths([login], CANONICAL)
    assert summary.customers_merged == 1
    assert store.count("Customer") == 1
    survivor = ingestor.index.customer_of("id:cookie:c1")
    assert survivor is not None
    timeline = chain_of(store, survivor)
    assert len(timeline) == 7
    assert store.count_edges("NEXT") == 6
    identifiers = {n.vertex.id for n in store.neighbours(survivor, "out", ["HAS_IDENTIFIER"])}
    assert identifiers == {"id:cookie:c1", "id:msisdn:+447700900001"}


def test_the_stream_ingests_micro_batches_and_quarantines_bad_lines(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    from ingest.stream import StreamOptions, run_stream

    lines = [json.dumps(event(n, n, msisdn=f"+4477009000{n % 3:02d}")).encode() for n in range(50)]
    lines.insert(10, b"{broken")
    lines.insert(30, b"")
    ingestor = Ingestor(store, tmp_path / "work")
    seen: list[int] = []
    summary = run_stream(
        ingestor,
        iter(lines),
        CANONICAL,
        StreamOptions(batch_size=8, max_wait=0.05),
        progress=lambda total: seen.append(total.read),
    )
    assert (summary.accepted, summary.quarantined) == (50, 1)
    assert len(seen) >= 6 and seen == sorted(seen)
    assert store.count("Touchpoint") == 50
    assert store.count_edges("NEXT") == 50 - 3
    [bad] = read_quarantine(ingestor.quarantine_path("canonical"))
    assert bad.row == 11 and bad.origin == "stream"


def test_follow_reads_lines_appended_while_it_runs(tmp_path: Path) -> None:
    import threading
    import time

    from ingest.stream import follow

    path = tmp_path / "growing.jsonl"
    path.write_bytes(b"one\n")

    def append_later() -> None:
        time.sleep(0.1)
        with path.open("ab") as handle:
            handle.write(b"tw")
            handle.flush()
            time.sleep(0.1)
            handle.write(b"o\nthree\n")

    threading.Thread(target=append_later).start()
    assert list(follow(path, poll=0.02, idle_exit=0.5)) == [b"one\n", b"two\n", b"three\n"]


def test_a_manual_merge_then_a_detach_move_touchpoints_and_chains_both_ways(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    from graph.errors import InvalidInput
    from ingest.resolution.operations import detach_identifier, merge_customers

    ingestor = Ingestor(store, tmp_path / "work")
    rows = [event(n, n * 2, msisdn="+447700900001") for n in range(3)]
    rows += [event(10 + n, n * 2 + 1, email="ann@example.com") for n in range(2)]
    ingestor.ingest_paths([write_jsonl(tmp_path / "a.jsonl", rows)], CANONICAL)
    line = ingestor.index.customer_of("id:msisdn:+447700900001")
    mail = ingestor.index.customer_of("id:email:ann@example.com")
    assert line and mail and line != mail

    survivor = merge_customers(ingestor, [mail, line])
    assert survivor == line  # the older customer survives
    assert store.count("Customer") == 1
    assert len(chain_of(store, survivor)) == 5
    assert ingestor.index.survivor(mail) == survivor

    done = detach_identifier(ingestor, mail, "id:email:ann@example.com")
    assert (done.customer, done.touchpoints_moved) == (survivor, 2)
    assert len(chain_of(store, survivor)) == 3
    assert len(chain_of(store, done.new_customer)) == 2
    assert store.count_edges("NEXT") == 2 + 1
    assert ingestor.index.customer_of("id:email:ann@example.com") == done.new_customer
    customers = ingestor.lake.touchpoints(["event_id", "customer"], ingestor.index.merge_map())
    assert customers.num_rows == 5
    assert customers.column("customer").to_pylist().count(done.new_customer) == 2

    # A later event with the detached email follows it to its new customer.
    later = write_jsonl(tmp_path / "b.jsonl", [event(30, 20, email="ann@example.com")])
    ingestor.ingest_paths([later], CANONICAL)
    assert len(chain_of(store, done.new_customer)) == 3

    # Merged back and detached again, the email gets a customer of its own once more,
    # not the one merged away (the index would still send that one to the survivor).
    assert merge_customers(ingestor, [survivor, done.new_customer]) == survivor
    again = detach_identifier(ingestor, survivor, "id:email:ann@example.com")
    assert again.new_customer != done.new_customer
    assert ingestor.index.survivor(again.new_customer) == again.new_customer
    assert len(chain_of(store, again.new_customer)) == 3
    customers = ingestor.lake.touchpoints(["event_id", "customer"], ingestor.index.merge_map())
    assert customers.column("customer").to_pylist().count(again.new_customer) == 3

    with pytest.raises(InvalidInput, match="at least two"):
        merge_customers(ingestor, [survivor, survivor])


def test_a_deferred_relink_is_caught_up_by_the_next_run(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [event(n, n * 2, cookie="c1") for n in range(3)])
    second = write_jsonl(
        tmp_path / "b.jsonl", [event(10 + n, n * 2 + 1, cookie="c1") for n in range(3)]
    )
    ingestor = Ingestor(store, tmp_path / "work")
    ingestor.ingest_paths([first], CANONICAL, link=False)
    ingestor.close()
    assert store.count_edges("NEXT") == 0
    later = Ingestor(store, tmp_path / "work")  # another process: nothing in memory
    later.ingest_paths([second], CANONICAL)
    customer = later.index.customer_of("id:cookie:c1")
    assert customer is not None
    assert len(chain_of(store, customer)) == 6
    assert store.count_edges("NEXT") == 5


def _next_edges(store: GraphStore) -> set[tuple[str, str, float]]:
    edges = store.export_edges("NEXT")
    if edges.num_rows == 0:
        return set()
    return set(
        zip(
            edges.column("source").to_pylist(),
            edges.column("target").to_pylist(),
            edges.column("dt_seconds").to_pylist(),
            strict=True,
        )
    )


def _pushes(seed: int) -> list[list[dict[str, Any]]]:
    """Push batches of a small population: events late and early, repeats of earlier
    events, and now and then a line and an email seen together (a merge)."""
    rng = random.Random(seed)
    batches, number = [], 0
    for batch in range(14):
        rows = []
        for _ in range(rng.randint(1, 12)):
            number += 1
            person = rng.randrange(20)
            line, email = f"+4477009{person:05d}", f"p{person}@example.com"
            # Mostly a line alone; sometimes the person's email alone (a customer of
            # its own until the two are seen together, in every fifth batch: a merge).
            identifiers = {"email": email} if rng.random() < 0.3 else {"msisdn": line}
            if batch % 5 == 4 and rng.random() < 0.5:
                identifiers = {"msisdn": line, "email": email}
            rows.append(event(number, rng.uniform(-200, 200), **identifiers))
        if batch and rng.random() < 0.3:
            rows.append(rng.choice(batches[-1]))  # sent again
        batches.append(rows)
    return batches


@pytest.mark.parametrize(("seed", "every"), [(1, 1), (2, 1), (3, 1), (4, 3), (5, 2)])
def test_pushed_batches_chain_as_a_full_relink_does(
    tmp_path: Path, seed: int, every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relinking after every batch, or every few (as the stream does), from the graph
    when nothing merged gives the chains a full relink from the lake gives."""
    fast_store = EmbeddedStore(tmp_path / "fast.db")
    fast = Ingestor(fast_store, tmp_path / "fast")
    full_store = EmbeddedStore(tmp_path / "full.db")
    full = Ingestor(full_store, tmp_path / "full")
    used = []
    real = ingest_pipeline.link_appended

    def counted(*args: Any) -> tuple[int, int]:
        used.append(1)
        return real(*args)

    monkeypatch.setattr(ingest_pipeline, "link_appended", counted)
    batches = _pushes(seed)
    for number, rows in enumerate(batches):
        for ingestor in (fast, full):
            ingestor.ingest_batch(frame_from_records(rows, CANONICAL, origin="p"), f"p-{number}")
        if (number + 1) % every == 0 or number == len(batches) - 1:
            fast.link_chains()
            full._appended = None  # always the full relink from the lake
            full.link_chains()
            assert _next_edges(fast_store) == _next_edges(full_store)
    assert used, "some relinks took the quick path"
    assert len(used) < -(-len(batches) // every), "and those after merges the full relink"
    for customer in fast.index.customers():
        chain_of(fast_store, customer)


@pytest.mark.parametrize("failing", ["lake", "commit"])
def test_a_batch_that_fails_half_way_leaves_nothing_behind_and_its_retry_lands(
    tmp_path: Path, store: EmbeddedStore, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push that dies after the graph write (the lake's disk full, the index's commit
    failing) takes its touchpoints back out of the graph and the lake: a retry is not a
    duplicate, and the chains later relinked from the graph match the lake's."""
    ingestor = Ingestor(store, tmp_path / "work")
    line = "+447700900001"
    ingestor.ingest_records([event(1, 0, msisdn=line), event(2, 10, msisdn=line)], CANONICAL, "p")
    target = ingestor.lake if failing == "lake" else ingestor.index
    name = "append" if failing == "lake" else "commit"

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(target, name, broken)
        with pytest.raises(OSError, match="No space"):
            ingestor.ingest_records([event(3, 5, msisdn=line)], CANONICAL, "p")
    assert store.get_vertex("tp:e0003") is None
    assert ingestor.lake.touchpoints(["event_id"]).column("event_id").to_pylist() == [
        "e0001",
        "e0002",
    ]
    retried, _ = ingestor.ingest_records([event(3, 5, msisdn=line)], CANONICAL, "p")
    assert (retried.accepted, retried.duplicates) == (1, 0)
    ingestor.ingest_records([event(4, 7, msisdn=line)], CANONICAL, "p")
    ingestor.ingest_records([event(5, 6, msisdn=line)], CANONICAL, "p")
    (customer,) = ingestor.index.customers()
    assert chain_of(store, customer) == [f"tp:e000{n}" for n in (1, 3, 5, 4, 2)]
    assert len(_next_edges(store)) == 4


def test_the_graph_relink_stops_collecting_past_its_customer_limit(
    tmp_path: Path, store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long run without a relink does not hoard every touchpoint id: past the limit
    the lake's pass relinks, and the chains are still right."""
    monkeypatch.setattr(ingest_pipeline, "_APPENDED_CUSTOMERS", 2)
    ingestor = Ingestor(store, tmp_path / "work")
    for n in range(4):
        rows = [event(n * 2 + k, n + k, msisdn=f"+44770090000{n}") for k in range(2)]
        ingestor.ingest_batch(frame_from_records(rows, CANONICAL, origin="p"), f"p-{n}")
    assert ingestor._appended is None
    ingestor.link_chains()
    assert sum(len(chain_of(store, c)) - 1 for c in ingestor.index.customers()) == 4
    assert store.count_edges("NEXT") == 4


def test_a_resumed_batch_that_fails_again_keeps_what_other_files_wrote(
    tmp_path: Path, store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed batch skips the duplicate check; if it fails too, it takes back only
    the touchpoints it added, not those an earlier file brought."""
    line = "+447700900001"
    first = write_jsonl(tmp_path / "a.jsonl", [event(1, 0, msisdn=line)])
    second = write_jsonl(tmp_path / "b.jsonl", [event(n, n, msisdn=line) for n in (1, 2, 3)])
    ingestor = Ingestor(store, tmp_path / "work")
    ingestor.ingest_paths([first], CANONICAL)

    def broken(*args: Any, **kwargs: Any) -> int:
        raise Crash("lake unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(ingestor.lake, "append", broken)
        patch.setattr(ingestor, "_take_back", lambda *args: None)  # a power cut
        with pytest.raises(Crash):
            ingestor.ingest_paths([second], CANONICAL)
    with monkeypatch.context() as patch:
        patch.setattr(ingestor.lake, "append", broken)  # the resume fails as well
        with pytest.raises(Crash):
            ingestor.ingest_paths([second], CANONICAL)
    assert store.get_vertex("tp:e0001") is not None  # file a's, kept
    assert store.get_vertex("tp:e0002") is not None  # the power cut's: taken back by nobody
    ingestor.ingest_paths([second], CANONICAL)
    (customer,) = ingestor.index.customers()
    assert chain_of(store, customer) == ["tp:e0001", "tp:e0002", "tp:e0003"]
    lake = ingestor.lake.touchpoints(["event_id"]).column("event_id").to_pylist()
    assert sorted(lake) == ["e0001", "e0002", "e0003"]  # e0001 once: a duplicate
