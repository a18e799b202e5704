"""The engagement loop as one run: read probe events, queue engagements, send them, record them.

``EngagementLoop.run`` drives three things at once:

* the engine, on the calling thread: each ``engage.probes.ProbeBatch`` is quarantined (its bad
  rows), evaluated, and committed with its cursor (``engage.engine``);
* the dispatcher, on a thread of its own with its own connection, woken as soon as
  the engine queues something (``engage.dispatcher``);
* the outbox, on a third thread: engagements sent are recorded as touchpoints
  through the ingest push path and marked recorded (``engage._recording``) every
  ``record_seconds`` and at the end. Recording off the engine's thread keeps the
  ingest pipeline's cost out of the probe-to-send latency, and doing it every few
  seconds keeps the lake from filling with one tiny file per micro-batch.

At the end of the input it waits (``drain_seconds`` at most) until nothing is
pending or in flight, so ``engage run --file`` returns with its engagements sent;
engagements deferred to after the quiet hours or waiting for a retry stay queued and
the next run sends them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engage._db import open_engage_db
from engage._recording import TouchpointPusher, record_engagements
from engage.channels import Channel
from engage.dispatcher import Dispatcher, DispatchSummary
from engage.engine import BatchSummary, EngagementEngine, applied_rows
from engage.probes import ProbeBatch
from engage.profiles import ProfileEvaluator
from engage.queue import EngagementQueue, QueuePolicy, QueueStats
from engage.rules import DecisionTable
from graph.errors import JourneyGraphError
from ingest.quarantine import QuarantineWriter

__all__ = ["EngagementLoop", "LoopProgress", "LoopSummary"]

log = logging.getLogger(__name__)

_OUTBOX_BATCH = 10_000
_DRAIN_POLL_SECONDS = 0.02


@dataclass(slots=True)
class LoopProgress:
    """The running counters of a loop, as its progress callback sees them."""

    engine: BatchSummary = field(default_factory=BatchSummary)
    dispatch: DispatchSummary = field(default_factory=DispatchSummary)
    quarantined: int = 0
    recorded: int = 0


@dataclass(slots=True)
class LoopSummary:
    """What a run did, and what it left in the queue."""

    engine: BatchSummary
    dispatch: DispatchSummary
    quarantined: int
    recorded: int
    queue: QueueStats
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (latency quantiles instead of every latency)."""
        dispatch = self.dispatch.model_dump(exclude={"latencies", "seconds"})
        dispatch["latency_p50_seconds"] = self.dispatch.latency(0.5)
        dispatch["latency_p99_seconds"] = self.dispatch.latency(0.99)
        return {
            "engine": self.engine.as_dict(),
            "dispatch": dispatch,
            "quarantined": self.quarantined,
            "recorded": self.recorded,
            "queue": self.queue.model_dump(),
            "seconds": round(self.seconds, 3),
        }


class EngagementLoop:
    """Probe batches in, engagements sent and recorded: the loop ``engage run`` runs.

    ``database`` is the engagement database; ``table`` the decision table; ``policy``
    the queue's; ``channel`` where engagements go (the caller closes it);
    ``recorder`` the ingest push path (``None``: engagements are not recorded as
    touchpoints, e.g. in a dry run without a graph); ``quarantine`` takes bad probe rows.
    """

    def __init__(
        self,
        database: Path,
        table: DecisionTable,
        policy: QueuePolicy,
        channel: Channel,
        *,
        recorder: TouchpointPusher | None = None,
        quarantine: QuarantineWriter | None = None,
        workers: int = 4,
        record_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.table = table
        self.policy = policy
        self.channel = channel
        self.recorder = recorder
        self.quarantine = quarantine
        self.workers = workers
        self.record_seconds = record_seconds
        self.clock = clock

    def applied(self, input_name: str) -> int:
        """Rows of ``input_name`` that earlier runs applied (where a rerun starts)."""
        connection = open_engage_db(self.database)
        try:
            return applied_rows(connection, input_name)
        finally:
            connection.close()

    def run(
        self,
        batches: Iterable[ProbeBatch],
        *,
        stop: threading.Event | None = None,
        drain_seconds: float = 30.0,
        progress: Callable[[LoopProgress], None] | None = None,
    ) -> LoopSummary:
        """Process ``batches`` until they end or ``stop`` is set; then drain and record."""
        started = time.perf_counter()
        connection = open_engage_db(self.database)
        queue = EngagementQueue(connection, self.policy, self.clock)
        dispatcher = Dispatcher(self.database, self.policy, self.channel, self.workers, self.clock)
        engine = EngagementEngine(
            connection, ProfileEvaluator(self.table), queue, dispatcher.notify, self.clock
        )
        state = LoopProgress()
        lock = threading.Lock()

        def dispatched(total: DispatchSummary) -> None:
            with lock:
                state.dispatch = total.model_copy(deep=True)

        halt = threading.Event()
        results: list[DispatchSummary] = []
        sender = threading.Thread(
            target=lambda: results.append(dispatcher.run(halt, progress=dispatched)),
            name="journeygraph-dispatcher",
            daemon=True,
        )
        sender.start()
        recording = threading.Thread(
            target=self._keep_recording,
            args=(halt, state, lock),
            name="journeygraph-recorder",
            daemon=True,
        )
        if self.recorder is not None:
            recording.start()
        try:
            for batch in batches:
                if stop is not None and stop.is_set():
                    break
                if batch.quarantined and self.quarantine is not None:
                    # On disk before the cursor moves past them: a crash may repeat a
                    # quarantined row, never lose one.
                    self.quarantine.write(batch.quarantined)
                    self.quarantine.flush()
                done = engine.process(batch.table, batch.cursor)
                with lock:
                    state.engine.add(done)
                    state.quarantined += len(batch.quarantined)
                if progress is not None:
                    progress(state)
            self._drain(queue, drain_seconds, stop)
        finally:
            halt.set()
            dispatcher.notify()
            sender.join()
            dispatcher.close()
            if recording.is_alive():
                recording.join()
        state.recorded += self._record(queue)
        summary = LoopSummary(
            engine=state.engine,
            dispatch=results[0] if results else state.dispatch,
            quarantined=state.quarantined,
            recorded=state.recorded,
            queue=queue.stats(),
            seconds=time.perf_counter() - started,
        )
        connection.close()
        return summary

    def _drain(self, queue: EngagementQueue, seconds: float, stop: threading.Event | None) -> None:
        """Wait until nothing is due or in flight, or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            if not queue.due_or_in_flight():
                return
            time.sleep(_DRAIN_POLL_SECONDS)

    def _keep_recording(
        self, halt: threading.Event, state: LoopProgress, lock: threading.Lock
    ) -> None:
        """Record the outbox every ``record_seconds`` until ``halt`` (own connection)."""
        connection = open_engage_db(self.database)
        try:
            queue = EngagementQueue(connection, self.policy, self.clock)
            while not halt.wait(self.record_seconds):
                try:
                    recorded = self._record(queue)
                except JourneyGraphError:
                    # The outbox keeps them; the next round or the end of the run retries.
                    log.exception("recording sent engagements failed; will retry")
                    continue
                with lock:
                    state.recorded += recorded
        finally:
            connection.close()

    def _record(self, queue: EngagementQueue) -> int:
        """Record sent engagements as touchpoints (the outbox); returns how many."""
        if self.recorder is None:
            return 0
        recorded = 0
        while sent := queue.unrecorded(_OUTBOX_BATCH):
            _, rejected = record_engagements(self.recorder, [item.engagement for item in sent])
            for row in rejected:
                log.warning("engagement touchpoint rejected: %s", "; ".join(row.reasons))
            queue.mark_recorded(queue.connection, [item.engagement.engagement_id for item in sent])
            recorded += len(sent)
        return recorded
