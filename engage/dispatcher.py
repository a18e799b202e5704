"""The dispatcher: claims due engagements, sends them through a channel, acks or fails them.

Each round claims the due heads of the queue (at most one per subscriber, so a
subscriber's engagements go out in FIFO order), sends them in a thread pool (so a
slow subscriber's send does not hold up the others), and records each outcome:
an ack, a retry with backoff, or a dead letter. ``run`` keeps up to ``workers``
sends in flight and claims again as soon as one finishes, or when ``notify`` says
something was queued; ``run_once`` does one claim and waits for its sends.

Threads: all database work stays on the thread that calls ``run``/``run_once``; the
pool's threads only call ``Channel.send`` (and the clock). SQLite takes one writer
at a time anyway, so connections per worker would only contend for the write lock,
while a claim, an ack or a failure is a few indexed statements, far cheaper than a
send. One connection also lets the outcomes of every send that finished together
go into one commit.

A dispatcher killed at any point loses nothing: what it claimed stays leased in the
database and is claimed again, with the same engagement id, once the lease expires
(``QueuePolicy.lease``; keep it above the channel's timeout). Delivery is therefore
at least once, with the engagement id as ``Idempotency-Key`` for the receiver to
deduplicate on (``engage.channels``).

The latency of a sent engagement is from when it was queued (wall clock, which is
when the engine processed the probe event behind it) to when its send returned.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final

from pydantic import BaseModel, Field

from engage._db import open_engage_db, transaction
from engage.channels import Channel, ChannelError
from engage.queue import ClaimBatch, Claimed, EngagementQueue, EngagementState, QueuePolicy
from graph.errors import InvalidInput

__all__ = ["DispatchSummary", "Dispatcher"]

log = logging.getLogger(__name__)

LATENCY_SAMPLES: Final = 10_000
"""Latencies ``Dispatcher.run`` keeps in its running summary (the most recent)."""


class DispatchSummary(BaseModel):
    """What the dispatcher did: counts of outcomes and the latency of each send."""

    claimed: int = 0
    sent: int = 0
    retried: int = Field(default=0, description="failed sends that will be tried again")
    dead: int = Field(default=0, description="engagements moved to the dead-letter queue")
    suppressed: int = Field(default=0, description="heads over the contact cap, not sent")
    deferred: int = Field(default=0, description="due heads moved to the end of quiet hours")
    expired: int = Field(default=0, description="lost leases found (a sender died or hung)")
    latencies: list[float] = Field(
        default_factory=list,
        description="seconds from queued to sent, per sent engagement (in ``run``'s running "
        "total, the most recent ones)",
    )
    seconds: float = 0.0

    def add(self, other: DispatchSummary, keep: int | None = None) -> None:
        """Accumulate another round, keeping at most ``keep`` latencies (the latest)."""
        for name in ("claimed", "sent", "retried", "dead", "suppressed", "deferred", "expired"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies.extend(other.latencies)
        if keep is not None and len(self.latencies) > keep:
            del self.latencies[: len(self.latencies) - keep]
        self.seconds = round(self.seconds + other.seconds, 3)

    def latency(self, quantile: float) -> float | None:
        """The ``quantile`` (0-1, nearest rank) of the latencies; None when nothing was sent."""
        if not 0.0 <= quantile <= 1.0:
            raise InvalidInput(f"quantile must be in [0, 1], got {quantile}")
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = max(math.ceil(quantile * len(ordered)) - 1, 0)
        return ordered[rank]


class Dispatcher:
    """Sends due engagements from the engagement database through one channel.

    ``database`` is the engagement database's path or a function opening a
    connection to it; the connection is opened on first use, by the thread that
    uses the dispatcher, and only that thread may use it until it is closed. The
    channel belongs to the caller (the dispatcher does not close it).
    """

    def __init__(
        self,
        database: str | Path | Callable[[], sqlite3.Connection],
        policy: QueuePolicy | None,
        channel: Channel,
        workers: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if workers < 1:
            raise InvalidInput(f"the dispatcher needs at least 1 worker, got {workers}")
        if callable(database):
            self._connect = database
        else:
            path = Path(database)
            self._connect = lambda: open_engage_db(path)
        self.policy = policy or QueuePolicy()
        lease = self.policy.lease.total_seconds()
        if channel.timeout is not None and channel.timeout >= lease:
            # A send outliving its lease would be claimed again while still in flight.
            raise InvalidInput(
                f"the queue's lease ({lease:g} s) must be longer than the {channel.name} "
                f"channel's timeout ({channel.timeout:g} s)"
            )
        self.channel = channel
        self.workers = workers
        self.clock = clock
        self._queue: EngagementQueue | None = None
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="journeygraph-dispatch")
        self._wake = threading.Event()

    @property
    def queue(self) -> EngagementQueue:
        """The queue on this dispatcher's connection (opened on first use)."""
        if self._queue is None:
            self._queue = EngagementQueue(self._connect(), self.policy, self.clock)
        return self._queue

    def notify(self) -> None:
        """Say that engagements were queued, so a running ``run`` claims at once."""
        self._wake.set()

    def run_once(self, limit: int | None = None) -> DispatchSummary:
        """Claim due heads once (up to ``limit``, default ``workers``), send them, record."""
        started = time.perf_counter()
        batch = self.queue.claim(limit or self.workers)
        summary = _claim_summary(batch)
        futures = {self._pool.submit(self._deliver, claimed): claimed for claimed in batch.claimed}
        for future in as_completed(futures):
            self._settle(futures[future], future, summary)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def run(
        self,
        stop: threading.Event,
        poll_interval: float = 0.1,
        progress: Callable[[DispatchSummary], None] | None = None,
    ) -> DispatchSummary:
        """Dispatch until ``stop`` is set, then let the sends in flight finish.

        Keeps up to ``workers`` sends in flight; claims again when one finishes, when
        ``notify`` is called, or every ``poll_interval`` seconds (for retries and
        deferrals coming due). A set ``stop`` is noticed within ``poll_interval``, or at
        once after ``notify``. ``progress`` gets the running total after each change.
        A connection that ``run`` opened is closed when it returns, since ``run``
        usually has a thread of its own.
        """
        opened_here = self._queue is None
        try:
            return self._run(stop, poll_interval, progress)
        finally:
            if opened_here and self._queue is not None:
                self._queue.connection.close()
                self._queue = None

    def _run(
        self,
        stop: threading.Event,
        poll_interval: float,
        progress: Callable[[DispatchSummary], None] | None,
    ) -> DispatchSummary:
        started = time.perf_counter()
        total = DispatchSummary()
        in_flight: dict[Future[datetime], Claimed] = {}
        while True:
            self._wake.clear()  # before looking, so a send finishing now still wakes us
            done = [future for future in in_flight if future.done()]
            round_ = DispatchSummary()
            if done:
                with transaction(self.queue.connection):
                    for future in done:
                        self._settle(in_flight.pop(future), future, round_)
            stopping = stop.is_set()
            if not stopping and len(in_flight) < self.workers:
                batch = self.queue.claim(self.workers - len(in_flight))
                round_.add(_claim_summary(batch))
                for claimed in batch.claimed:
                    future = self._pool.submit(self._deliver, claimed)
                    future.add_done_callback(lambda _: self._wake.set())
                    in_flight[future] = claimed
            if round_ != DispatchSummary():
                total.add(round_, keep=LATENCY_SAMPLES)
                total.seconds = round(time.perf_counter() - started, 3)
                if progress is not None:
                    progress(total)
            if stopping and not in_flight:
                break
            if not done:
                self._wake.wait(poll_interval)
        total.seconds = round(time.perf_counter() - started, 3)
        return total

    def close(self) -> None:
        """Wait for sends in flight, stop the pool and close the connection.

        Call it from the thread that used the dispatcher last (``run`` closes the
        connection it opened itself).
        """
        self._pool.shutdown(wait=True)
        if self._queue is not None:
            self._queue.connection.close()
            self._queue = None

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _deliver(self, claimed: Claimed) -> datetime:
        """Send one engagement (on a pool thread); returns when the send returned."""
        self.channel.send(claimed.engagement)
        return self.clock()

    def _settle(self, claimed: Claimed, future: Future[datetime], summary: DispatchSummary) -> None:
        """Record a finished send's outcome in the queue and in ``summary``."""
        error = future.exception()
        if error is None:
            sent_at = future.result()
            if self.queue.ack(claimed):
                summary.sent += 1
                summary.latencies.append((sent_at - claimed.enqueued_at).total_seconds())
            return
        if isinstance(error, ChannelError):
            state = self.queue.fail(claimed, str(error), error.retryable, error.retry_after)
        else:
            # A bug in a channel must not stop the stream: retry, and dead-letter in the end.
            log.error("channel %s raised unexpectedly", self.channel.name, exc_info=error)
            state = self.queue.fail(claimed, f"{type(error).__name__}: {error}", retryable=True)
        if state == EngagementState.PENDING:
            summary.retried += 1
        elif state == EngagementState.DEAD:
            summary.dead += 1


def _claim_summary(batch: ClaimBatch) -> DispatchSummary:
    return DispatchSummary(
        claimed=len(batch.claimed),
        suppressed=batch.suppressed,
        deferred=batch.deferred,
        dead=batch.dead,
        expired=batch.expired,
    )
