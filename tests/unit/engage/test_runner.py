"""The loop as a whole: probe batches in, engagements sent, recorded as touchpoints."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from engage.channels import FileChannel
from engage.probes import ProbeBatch
from engage.queue import QueuePolicy
from engage.rules import default_decision_table
from engage.runner import EngagementLoop
from graph import EmbeddedStore
from graph.model import VertexLabel
from ingest.frame import QuarantinedRow
from ingest.pipeline import Ingestor
from ingest.push import PushIngestor
from ingest.quarantine import QuarantineWriter, read_quarantine
from tests.unit.engage._probe_fixtures import probe, probe_table

POLICY = QueuePolicy(contact_cap=None, quiet_hours=None)


def _bad_calls(subscriber: str, count: int, cell: str) -> list[dict]:
    return [
        probe(f"{subscriber}-{i}", subscriber, i, cell=cell, weight=5, call_drop_rate=0.5)
        for i in range(count)
    ]


def _loop(tmp_path: Path, **kwargs: object) -> tuple[EngagementLoop, FileChannel]:
    channel = FileChannel(tmp_path / "sent.jsonl")
    loop = EngagementLoop(
        tmp_path / "engage.db", default_decision_table(), POLICY, channel, **kwargs
    )  # type: ignore[arg-type]
    return loop, channel


def _sent(tmp_path: Path) -> list[dict]:
    path = tmp_path / "sent.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_loop_sends_each_engagement_once_in_order(tmp_path: Path) -> None:
    subscribers = [f"+4477009000{i:02d}" for i in range(6)]
    events = [event for i, s in enumerate(subscribers) for event in _bad_calls(s, 3, f"c{i}")]
    loop, channel = _loop(tmp_path)
    summary = loop.run([ProbeBatch(probe_table(events[:9])), ProbeBatch(probe_table(events[9:]))])
    channel.close()

    sent = _sent(tmp_path)
    assert sorted(item["subscriber"] for item in sent) == subscribers
    assert summary.engine.incidents == 6 and summary.engine.queued == 6
    assert summary.dispatch.sent == 6 and summary.queue.sent == 6 and summary.queue.pending == 0

    again, channel = _loop(tmp_path)  # the same input again: nothing new
    repeat = again.run([ProbeBatch(probe_table(events))])
    channel.close()
    assert repeat.engine.queued == 0 and len(_sent(tmp_path)) == 6


def test_bad_rows_are_quarantined_and_the_stream_goes_on(tmp_path: Path) -> None:
    rejected = QuarantinedRow("probes", "probes.jsonl", 7, {"subscriber": "?"}, ["bad"])
    with QuarantineWriter(tmp_path / "quarantine.jsonl") as rejects:
        loop, channel = _loop(tmp_path, quarantine=rejects)
        summary = loop.run(
            [ProbeBatch(probe_table(_bad_calls("+447700900001", 3, "c1")), [rejected])]
        )
        channel.close()
    assert summary.quarantined == 1 and summary.dispatch.sent == 1
    assert [row.row for row in read_quarantine(tmp_path / "quarantine.jsonl")] == [7]


def test_sent_engagements_become_touchpoints_of_the_subscriber(tmp_path: Path) -> None:
    subscriber = "+447700900001"
    with EmbeddedStore(tmp_path / "graph.db") as store:
        pusher = PushIngestor(lambda: Ingestor(store, tmp_path / "ingest"), tmp_path / "ingest")
        loop, channel = _loop(tmp_path, recorder=pusher)
        summary = loop.run([ProbeBatch(probe_table(_bad_calls(subscriber, 3, "c1")))])
        channel.close()
        assert summary.recorded == 1 and summary.queue.unrecorded == 0
        touchpoints = store.find_vertices(VertexLabel.TOUCHPOINT, {"event_type": "engagement_sent"})
        assert len(touchpoints) == 1
        assert touchpoints[0].properties["source"] == "engage"
        pusher.close()


def test_a_set_stop_ends_the_run_between_batches(tmp_path: Path) -> None:
    stop = threading.Event()
    loop, channel = _loop(tmp_path)

    def batches():  # type: ignore[no-untyped-def]
        yield ProbeBatch(probe_table(_bad_calls("+447700900001", 3, "c1")))
        stop.set()
        yield ProbeBatch(probe_table(_bad_calls("+447700900002", 3, "c2")))

    summary = loop.run(batches(), stop=stop)
    channel.close()
    assert summary.engine.batches == 1
