"""The push path shared by processes: one leader ingests, the others hand it their batches.

Identity resolution keeps its index in memory (``IdentityIndex``), so two processes
ingesting into one data folder at once would each resolve against a stale copy.
Every process that pushes (the service's uvicorn workers, ``journeygraph engage
run``) therefore goes through a ``PushIngestor``:

* the first to take the lock ``<workdir>/push.lock`` is the *leader*: it opens the
  ``Ingestor`` and ingests its own pushes directly;
* the others are *followers*: a batch goes into the spool (``push-spool.sqlite``
  beside it), the leader's drain thread ingests it and writes the answer back, and
  the follower returns that answer, so a push means the same from every process;
* when the leader exits, the kernel releases its lock and the next follower to
  push takes over, ingesting whatever was left in the spool first.

A single process is always the leader and never touches the spool.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import orjson

from graph import errors
from graph.errors import Conflict, GraphUnavailable, JourneyGraphError
from ingest.frame import QuarantinedRow
from ingest.mapping import load_mapping

if TYPE_CHECKING:
    from ingest.pipeline import Ingestor, IngestSummary

Answer = tuple["IngestSummary", list[QuarantinedRow]]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY,
    records BLOB NOT NULL,
    answer BLOB,
    queued REAL NOT NULL
);
"""


class PushIngestor:
    """Ingests pushed canonical events, through this process or the data folder's leader."""

    def __init__(
        self,
        open_ingestor: Callable[[], Ingestor],
        workdir: Path,
        wait_seconds: float = 300.0,
        poll_seconds: float = 0.005,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self._open_ingestor = open_ingestor
        self._ingestor: Ingestor | None = None
        self._mapping = load_mapping("canonical")
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self._spool = sqlite3.connect(
            str(workdir / "push-spool.sqlite"),
            isolation_level=None,
            check_same_thread=False,
            timeout=30,
        )
        self._spool.execute("PRAGMA journal_mode = WAL")
        self._spool.executescript(_SCHEMA)
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None

    @property
    def leader(self) -> bool:
        """Whether this process ingests (holds the data folder's push lock)."""
        return self._ingestor is not None

    def push(self, records: Sequence[Mapping[str, Any]]) -> Answer:
        """Ingest canonical events (``ingest/mappings/canonical.yaml``): counts and rejects."""
        if self.leader or self._lead():
            return self._ingest(records)
        return self._through_leader(records)

    def close(self) -> None:
        """Stop draining, close the pipeline (if leading) and release the lock."""
        self._stop.set()
        if self._drainer is not None:
            self._drainer.join(timeout=30)
        with self._lock:
            if self._ingestor is not None:
                self._ingestor.close()
                self._ingestor = None
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None
            self._spool.close()

    # --- leading -------------------------------------------------------------

    def _lead(self) -> bool:
        """Take the lock if no process holds it; open the pipeline and start draining."""
        with self._lock:
            if self._ingestor is not None:
                return True
            handle = (self.workdir / "push.lock").open("ab")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n".encode())
            handle.flush()
            self._lock_file = handle
            self._ingestor = self._open_ingestor()
        self._drain_pending()
        self._drainer = threading.Thread(target=self._drain_forever, name="push-drain", daemon=True)
        self._drainer.start()
        return True

    def _ingest(self, records: Sequence[Mapping[str, Any]]) -> Answer:
        with self._lock:
            if self._ingestor is None:
                raise GraphUnavailable("the push pipeline is closed")
            return self._ingestor.ingest_records(records, self._mapping, "push")

    def _drain_forever(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._drain_pending()

    def _drain_pending(self) -> None:
        while True:
            with self._lock:
                if self._ingestor is None:
                    return
                row = self._spool.execute(
                    "SELECT id, records FROM spool WHERE answer IS NULL ORDER BY id LIMIT 1"
                ).fetchone()
            if row is None:
                return
            spool_id, packed = row
            try:
                answer = _encode_answer(*self._ingest(orjson.loads(packed)))
            except JourneyGraphError as error:
                answer = orjson.dumps(
                    {"error": {"kind": type(error).__name__, "message": error.message}}
                )
            with self._lock:
                self._spool.execute("UPDATE spool SET answer = ? WHERE id = ?", (answer, spool_id))

    # --- following -----------------------------------------------------------

    def _through_leader(self, records: Sequence[Mapping[str, Any]]) -> Answer:
        with self._lock:
            spool_id = self._spool.execute(
                "INSERT INTO spool (records, queued) VALUES (?, ?)",
                (orjson.dumps(list(records)), time.time()),
            ).lastrowid
        deadline = time.monotonic() + self.wait_seconds
        polls = 0
        while time.monotonic() < deadline:
            with self._lock:
                row = self._spool.execute(
                    "SELECT answer FROM spool WHERE id = ?", (spool_id,)
                ).fetchone()
            if row is not None and row[0] is not None:
                with self._lock:
                    self._spool.execute("DELETE FROM spool WHERE id = ?", (spool_id,))
                return _decode_answer(row[0])
            polls += 1
            # A leader that exited leaves the lock free: take over (its drain includes this batch).
            if polls % 100 == 0 and self._lead():
                continue
            time.sleep(self.poll_seconds)
        with self._lock:
            self._spool.execute("DELETE FROM spool WHERE id = ? AND answer IS NULL", (spool_id,))
        raise GraphUnavailable(
            f"the ingesting process did not answer within {self.wait_seconds:g} s; "
            "the batch was withdrawn, push it again"
        )


def _encode_answer(summary: IngestSummary, rejected: list[QuarantinedRow]) -> bytes:
    return orjson.dumps({"summary": asdict(summary), "rejected": [r.as_dict() for r in rejected]})


def _decode_answer(packed: bytes) -> Answer:
    from ingest.pipeline import IngestSummary

    answer = orjson.loads(packed)
    if "error" in answer:
        kind = getattr(errors, answer["error"]["kind"], JourneyGraphError)
        if not (isinstance(kind, type) and issubclass(kind, JourneyGraphError)):
            kind = JourneyGraphError
        raise kind(answer["error"]["message"])
    rejected = [
        QuarantinedRow(row["source"], row["file"], row["row"], row["raw"], row["reasons"])
        for row in answer["rejected"]
    ]
    return IngestSummary(**answer["summary"]), rejected


@contextmanager
def exclusive_ingest(workdir: Path) -> Iterator[None]:
    """Hold the data folder's push lock for a batch job (a file ingest, the demo load).

    ``Conflict`` at once if a running service or another job holds it: two writers of
    one identity index would each resolve against a stale copy.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "push.lock"
    with path.open("ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8").strip() or "unknown"
            raise Conflict(
                f"process {holder} is ingesting into {workdir} (a running service leads its "
                "push path): stop it, or send the events to its POST /api/v1/events",
                details={"pid": holder},
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        yield
