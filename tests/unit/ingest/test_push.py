"""The push path across processes: one leader ingests, followers hand it their batches.

``flock`` locks belong to open files, so two ``PushIngestor`` objects in one process
contend exactly as two processes do.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from graph import EmbeddedStore
from graph.errors import InvalidInput
from ingest.pipeline import Ingestor
from ingest.push import PushIngestor, _decode_answer


def event(n: int, **identifiers: str) -> dict[str, object]:
    return {
        "event_id": f"push-{n}",
        "source": "app",
        "event_type": "login",
        "channel": "app",
        "ts": f"2024-05-01T10:{n:02d}:00Z",
        "identifiers": identifiers,
    }


def pusher(store: EmbeddedStore, workdir: Path) -> PushIngestor:
    return PushIngestor(lambda: Ingestor(store, workdir), workdir, wait_seconds=30)


def spooled(workdir: Path) -> int:
    with sqlite3.connect(workdir / "push-spool.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])


def test_a_follower_gets_the_leaders_answer_and_one_identity(tmp_path: Path) -> None:
    workdir = tmp_path / "ingest"
    with EmbeddedStore(tmp_path / "g.db") as store:
        first, second = pusher(store, workdir), pusher(store, workdir)
        try:
            summary, _ = first.push([event(1, msisdn="07700 900123")])
            assert first.leader and summary.customers_created == 1
            summary, rejected = second.push(
                [event(2, msisdn="+44 7700 900123", email="ann@example.com"), {"event_id": "x"}]
            )
            assert not second.leader, "the lock is taken: the batch went through the spool"
            assert (summary.read, summary.accepted, summary.quarantined) == (2, 1, 1)
            assert summary.customers_created == 0, "resolved against the leader's identities"
            assert rejected[0].row == 2 and rejected[0].reasons
            assert store.count("Customer") == 1 and store.count("Touchpoint") == 2
            assert spooled(workdir) == 0, "answered batches leave the spool"
        finally:
            first.close()
        summary, _ = second.push([event(3, email="ann@example.com")])
        assert second.leader, "the leader left: the next push took over"
        assert summary.customers_created == 0 and store.count("Touchpoint") == 3
        second.close()


def test_a_new_leader_drains_what_was_left_in_the_spool(tmp_path: Path) -> None:
    workdir = tmp_path / "ingest"
    with EmbeddedStore(tmp_path / "g.db") as store:
        follower = pusher(store, workdir)
        with sqlite3.connect(workdir / "push-spool.sqlite") as db:
            db.execute(
                "INSERT INTO spool (records, queued) VALUES (?, 0)",
                (orjson.dumps([event(1, msisdn="07700 900123")]),),
            )
        follower.push([event(2, msisdn="07700 900999")])
        assert follower.leader and store.count("Touchpoint") == 2
        follower.close()


def test_errors_come_back_as_the_same_kind() -> None:
    packed = orjson.dumps({"error": {"kind": "InvalidInput", "message": "no events"}})
    with pytest.raises(InvalidInput, match="no events"):
        _decode_answer(packed)


def test_a_batch_job_cannot_ingest_while_a_service_leads(tmp_path: Path) -> None:
    from graph.errors import Conflict
    from ingest.push import exclusive_ingest

    workdir = tmp_path / "ingest"
    with EmbeddedStore(tmp_path / "g.db") as store:
        service = pusher(store, workdir)
        service.push([event(1, msisdn="07700 900123")])
        with pytest.raises(Conflict, match=r"process \d+ is ingesting"), exclusive_ingest(workdir):
            pass
        service.close()
    with exclusive_ingest(workdir):
        pass
