"""The engagement queue: durable, FIFO per subscriber, in the engagement database.

Engagements wait in ``queue_engagements``, one row each, numbered in enqueue order
(``seq``). A subscriber's *head* is their engagement in flight, or else their
earliest pending one (``queue_heads`` keeps it, with when it is due, so a claim
reads only due heads, oldest due first). Only heads are handed out, so there is
at most one send in flight per subscriber and a subscriber is contacted in the
order their engagements were queued, while different subscribers are sent in
parallel (the message-group model of a FIFO queue; a partitioned log keyed by
subscriber is the same contract at scale).

States and transitions::

    state         meaning                                  goes to
    pending       waiting until ``not_before``             sending (claim)
                                                           pending (claim in quiet hours:
                                                             deferred to their end)
                                                           suppressed (claim over the cap)
    sending       leased to a sender until ``lease_until``  sent (ack)
                                                           pending (retryable failure:
                                                             backoff)
                                                           dead (not retryable, or the
                                                             last attempt failed)
                                                           sending (lease lost: claimed
                                                             again, same id, next attempt)
                                                           dead (lease lost on the last
                                                             attempt)
    sent          delivered (``recorded`` once it is a     -
                  touchpoint in the graph and the lake)
    dead          the dead-letter queue                    pending (replay)
    suppressed    over the contact cap; never sent         -
    deduplicated  same content as a kept engagement        -
                  within the window; never sent

Decisions:

* Deduplication is by ``dedupe_key`` on *event* time: an engagement whose key matches
  an engagement already queued (in any state but deduplicated, so suppressed and
  dead ones count) with ``created_at`` less than ``dedupe_window`` apart is kept
  as a ``deduplicated`` row naming the one it duplicates, so it can be inspected.
  The same ``engagement_id`` again is a no-op (a replayed probe stream enqueues
  nothing).
* Every claim is an attempt, whether it ends in an ack, a failure or a lost lease (a
  sender killed mid-send). A lost lease is claimed again once it expires, with the
  same engagement id, so a receiver that deduplicates on the ``Idempotency-Key``
  sees it once; an engagement that kills its sender every time still ends in the
  dead-letter queue after ``max_attempts``. The contract is *at least once, with an
  idempotency key*.
* Quiet hours and the contact cap are applied when a head is claimed, not when it is
  queued: the cap must count contacts that really happened (an earlier engagement
  may yet fail, be suppressed or wait out quiet hours), and only at claim time is
  nothing else in flight for the subscriber, so the count is exact. A head due in
  quiet hours is deferred to their end (it is not an attempt); a head over the cap
  is suppressed with the reason and the subscriber's next engagement moves up.
* Wall-clock times (queueing, retries, leases, quiet hours, the cap) come from the
  ``clock`` argument, so tests control them.
* An ack wins over whatever became of the lease meanwhile: the send happened, so the
  engagement is ``sent``. A failure reported by an attempt that no longer holds the
  lease is ignored.
* Replayed dead letters keep their place: the subscriber's FIFO is by enqueue order,
  so a replayed engagement goes before the subscriber's later pending ones (after
  the one in flight, if there is one).
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engage._db import transaction
from engage.model import Engagement, Incident
from graph.errors import InvalidInput, NotFound

__all__ = [
    "ClaimBatch",
    "Claimed",
    "EngagementQueue",
    "EngagementState",
    "EngagementStatus",
    "EnqueueResult",
    "QueuePolicy",
    "QueueStats",
    "SentEngagement",
    "UnknownEngagement",
    "ensure_schema",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_QUIET_HOURS: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_MAX_ERROR: Final = 2_000
"""Characters of a failure message kept (a receiver may answer with a whole page)."""


class EngagementState(StrEnum):
    """Where an engagement is in the queue (the module docstring has the transitions)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"
    SUPPRESSED = "suppressed"
    DEDUPLICATED = "deduplicated"


class UnknownEngagement(NotFound):
    """An engagement id that the queue has never seen."""

    code = "unknown_engagement"


class QueuePolicy(BaseModel):
    """How the queue deduplicates, retries, leases and protects subscribers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dedupe_window: timedelta = Field(
        default=timedelta(hours=24),
        description="engagements with the same dedupe key less than this apart in event "
        "time are one",
    )
    max_attempts: int = Field(default=8, ge=1, le=100, description="sends tried before DLQ")
    backoff_base: timedelta = Field(
        default=timedelta(seconds=2), description="the wait after the first failed attempt"
    )
    backoff_max: timedelta = Field(
        default=timedelta(minutes=10), description="the wait doubles per attempt up to this"
    )
    jitter: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="each wait is shortened by a random share up to this (0: exact "
        "schedule), so receivers recovering from an outage are not hit all at once",
    )
    quiet_hours: str | None = Field(
        default=None,
        description='"HH:MM-HH:MM" local time in which nobody is contacted (may cross '
        "midnight, e.g. 21:00-08:00); None: no quiet hours",
    )
    timezone: str = Field(default="UTC", description="IANA time zone of the quiet hours")
    contact_cap: int | None = Field(
        default=2, ge=1, description="engagements sent per subscriber per cap period at most"
    )
    cap_period: timedelta = Field(default=timedelta(days=7), description="the cap's window")
    lease: timedelta = Field(
        default=timedelta(seconds=60),
        description="how long a claimed engagement is held by its sender before it is "
        "claimed again; keep it above the channel's timeout",
    )

    @field_validator("dedupe_window", "backoff_base", "backoff_max", "cap_period", "lease")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is None:
            return None
        found = _QUIET_HOURS.match(value.strip())
        if found is None:
            raise ValueError(f'{value!r} is not "HH:MM-HH:MM" (24-hour clock)')
        if found[1] == found[3] and found[2] == found[4]:
            raise ValueError(f"{value!r} starts and ends at the same time")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{value!r} is not an IANA time zone") from error
        return value

    @model_validator(mode="after")
    def _check(self) -> QueuePolicy:
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max is shorter than backoff_base")
        return self

    def backoff(self, attempt: int, draw: float = 0.0) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1-based).

        ``backoff_base * 2 ** (attempt - 1)``, at most ``backoff_max``, shortened by
        ``jitter * draw`` of itself (``draw`` uniform in [0, 1)).
        """
        exponent = min(max(attempt - 1, 0), 62)
        seconds = min(
            self.backoff_base.total_seconds() * 2.0**exponent,
            self.backoff_max.total_seconds(),
        )
        return timedelta(seconds=seconds * (1.0 - self.jitter * draw))

    def quiet_end(self, now: datetime) -> datetime | None:
        """The end of the quiet hours ``now`` is in (UTC), or None when it is outside them."""
        if self.quiet_hours is None:
            return None
        first, last = self.quiet_hours.split("-")
        start, end = time.fromisoformat(first), time.fromisoformat(last)
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        clock_time = local.time().replace(tzinfo=None)
        day = local.date()
        if start < end:
            if not start <= clock_time < end:
                return None
        elif end <= clock_time < start:
            return None
        elif clock_time >= start:
            day += timedelta(days=1)  # the quiet hours end tomorrow morning
        # A wall time skipped by a DST change resolves to the later offset's instant.
        return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


class EnqueueResult(BaseModel):
    """What one ``enqueue`` did with the engagements it was given."""

    queued: int = 0
    duplicate_id: int = 0
    """Already in the queue under the same id: nothing done."""
    deduplicated: int = 0
    """Same dedupe key within the window of a queued one: kept as deduplicated, not sent."""

    def add(self, other: EnqueueResult) -> None:
        """Accumulate another call's counts."""
        self.queued += other.queued
        self.duplicate_id += other.duplicate_id
        self.deduplicated += other.deduplicated


class EngagementStatus(BaseModel):
    """One engagement's place in the queue, for inspection (CLI, API, dead letters)."""

    engagement_id: str
    subscriber: str
    rule: str
    state: EngagementState
    attempts: int
    created_at: datetime = Field(description="event time of the incident behind it")
    enqueued_at: datetime = Field(description="wall-clock time it was queued")
    not_before: datetime | None = Field(
        default=None, description="pending: when it is due (after a backoff or quiet hours)"
    )
    lease_until: datetime | None = Field(default=None, description="sending: the lease's end")
    sent_at: datetime | None = None
    last_error: str | None = None
    reason: str | None = Field(
        default=None,
        description="why it was suppressed, deduplicated or dead-lettered",
    )
    recorded: bool = Field(default=False, description="sent and recorded as a touchpoint")


class QueueStats(BaseModel):
    """How many engagements are in each state."""

    pending: int = 0
    sending: int = 0
    sent: int = 0
    dead: int = 0
    suppressed: int = 0
    deduplicated: int = 0
    unrecorded: int = 0
    """Sent but not yet recorded as touchpoints."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """An engagement leased to a sender: send it, then ``ack`` or ``fail`` it."""

    engagement: Engagement
    attempt: int
    """1 for the first send; a lost lease also used up an attempt."""
    enqueued_at: datetime
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """What one ``claim`` handed out, and what it did to the heads it could not."""

    claimed: list[Claimed]
    deferred: int = 0
    """Due heads moved to the end of the quiet hours."""
    suppressed: int = 0
    """Heads over the contact cap."""
    dead: int = 0
    """Lost leases on their last attempt, dead-lettered."""
    expired: int = 0
    """Lost leases found (a sender died or hung past its lease)."""


@dataclass(frozen=True, slots=True)
class SentEngagement:
    """A sent engagement, for recording as a touchpoint."""

    engagement: Engagement
    sent_at: datetime
    enqueued_at: datetime
    attempts: int


class _Head(NamedTuple):
    """A row of ``_HEADS``."""

    seq: int
    engagement_id: str
    subscriber: str
    rule: str
    dedupe_key: str
    created_us: int
    incidents: bytes
    state: str
    attempts: int
    enqueued_us: int


_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS queue_engagements (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        engagement_id TEXT NOT NULL UNIQUE,
        subscriber TEXT NOT NULL,
        rule TEXT NOT NULL,
        dedupe_key TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        incidents BLOB NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        due_us INTEGER,
        enqueued_us INTEGER NOT NULL,
        updated_us INTEGER NOT NULL,
        sent_us INTEGER,
        last_error TEXT,
        reason TEXT,
        recorded INTEGER NOT NULL DEFAULT 0
    )""",
    # Each subscriber's head and when it may be claimed: the row of their engagement
    # in flight if there is one, else of their earliest pending one. Kept in step with
    # queue_engagements by every write, so a claim reads only due heads.
    """CREATE TABLE IF NOT EXISTS queue_heads (
        subscriber TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        due_us INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS queue_heads_due ON queue_heads (due_us, seq)",
    "CREATE INDEX IF NOT EXISTS queue_subscriber ON queue_engagements (subscriber, state, seq)",
    "CREATE INDEX IF NOT EXISTS queue_dedupe ON queue_engagements (dedupe_key, created_us)",
    "CREATE INDEX IF NOT EXISTS queue_sent ON queue_engagements (subscriber, sent_us) "
    "WHERE state = 'sent'",
    "CREATE INDEX IF NOT EXISTS queue_unrecorded ON queue_engagements (seq) "
    "WHERE state = 'sent' AND recorded = 0",
    "CREATE INDEX IF NOT EXISTS queue_state ON queue_engagements (state, seq)",
)


class _Row(NamedTuple):
    """The columns of a row that transitions need."""

    seq: int
    subscriber: str
    state: str
    attempts: int


_ROW_COLUMNS: Final = "seq, subscriber, state, attempts"

_DUE_HEADS: Final = """
    SELECT q.seq, q.engagement_id, q.subscriber, q.rule, q.dedupe_key, q.created_us,
           q.incidents, q.state, q.attempts, q.enqueued_us
    FROM queue_heads AS head JOIN queue_engagements AS q ON q.seq = head.seq
    WHERE head.due_us <= ?
    ORDER BY head.due_us, head.seq
    LIMIT ?
"""

_STATUS_COLUMNS: Final = (
    "engagement_id, subscriber, rule, state, attempts, created_us, enqueued_us, due_us, "
    "sent_us, last_error, reason, recorded"
)


def ensure_schema(connection: sqlite3.Connection) -> None:
    """Create the queue's tables and indexes if they are missing (never commits)."""
    for statement in _SCHEMA:
        connection.execute(statement)


class EngagementQueue:
    """The durable engagement queue over one connection to the engagement database.

    ``enqueue`` and ``mark_recorded`` take the caller's connection and join its
    transaction; the other writes are transactions of their own on ``connection``.
    Use one queue per thread (SQLite connections belong to the thread that opened
    them); several queues, in several processes, may share a database.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        policy: QueuePolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.connection = connection
        self.policy = policy or QueuePolicy()
        self.clock = clock
        self.draw = draw
        """Uniform [0, 1) numbers for the backoff jitter."""
        created = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queue_heads'"
        ).fetchone()
        if created is None:  # a reader of an existing queue takes no write lock
            with transaction(connection):
                ensure_schema(connection)

    def enqueue(
        self, connection: sqlite3.Connection, engagements: Iterable[Engagement]
    ) -> EnqueueResult:
        """Queue ``engagements`` in the order given, within the caller's transaction.

        Never commits: inside ``transaction(connection)`` it is part of the caller's
        write (the engine's batch); outside one it is a transaction of its own.
        """
        result = EnqueueResult()
        now_us = _micros(self.clock())
        window_us = self.policy.dedupe_window // _MICROSECOND
        with transaction(connection):
            for engagement in engagements:
                created_us = _micros(_aware(engagement))
                known = connection.execute(
                    "SELECT 1 FROM queue_engagements WHERE engagement_id = ?",
                    (engagement.engagement_id,),
                ).fetchone()
                if known is not None:
                    result.duplicate_id += 1
                    continue
                original = connection.execute(
                    "SELECT engagement_id FROM queue_engagements WHERE dedupe_key = ? "
                    "AND created_us > ? AND created_us < ? AND state != 'deduplicated' "
                    "ORDER BY seq LIMIT 1",
                    (engagement.dedupe_key, created_us - window_us, created_us + window_us),
                ).fetchone()
                if original is None:
                    state, due, reason = EngagementState.PENDING, now_us, None
                    result.queued += 1
                else:
                    state, due = EngagementState.DEDUPLICATED, None
                    reason = f"duplicate of {original[0]} (within {self.policy.dedupe_window})"
                    result.deduplicated += 1
                inserted = connection.execute(
                    "INSERT INTO queue_engagements (engagement_id, subscriber, rule, dedupe_key,"
                    " created_us, incidents, state, due_us, enqueued_us, updated_us, reason)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        engagement.engagement_id,
                        engagement.subscriber,
                        engagement.rule,
                        engagement.dedupe_key,
                        created_us,
                        orjson.dumps([incident.as_dict() for incident in engagement.incidents]),
                        state,
                        due,
                        now_us,
                        now_us,
                        reason,
                    ),
                )
                if state == EngagementState.PENDING:
                    # A new row is never ahead of a subscriber's existing head.
                    connection.execute(
                        "INSERT OR IGNORE INTO queue_heads (subscriber, seq, due_us) "
                        "VALUES (?, ?, ?)",
                        (engagement.subscriber, inserted.lastrowid, now_us),
                    )
        return result

    def claim(self, limit: int) -> ClaimBatch:
        """Lease up to ``limit`` due heads, at most one per subscriber (committed).

        Due heads that may not be sent now are dealt with on the way: deferred in
        quiet hours, suppressed over the contact cap (the subscriber's next one moves
        up), dead-lettered when a lost lease was their last attempt.
        """
        if limit < 1:
            raise InvalidInput(f"claim limit must be at least 1, got {limit}")
        now = self.clock()
        now_us = _micros(now)
        quiet_end = self.policy.quiet_end(now)
        lease_us = _micros(now + self.policy.lease)
        claimed: list[Claimed] = []
        tally = {"deferred": 0, "suppressed": 0, "dead": 0, "expired": 0}
        with transaction(self.connection) as connection:
            while len(claimed) < limit:
                # In quiet hours every due head is deferred, so take them all at once.
                room = -1 if quiet_end is not None else limit - len(claimed)
                heads = connection.execute(_DUE_HEADS, (now_us, room)).fetchall()
                if not heads:
                    break
                for row in heads:
                    head = _Head(*row)
                    if head.state == EngagementState.SENDING:
                        tally["expired"] += 1
                        if head.attempts >= self.policy.max_attempts:
                            self._bury(
                                head,
                                now_us,
                                f"lease lost on attempt {head.attempts} of "
                                f"{self.policy.max_attempts} (the sender died or hung)",
                                "gave up: the last attempt's lease was lost",
                            )
                            tally["dead"] += 1
                            continue
                    if quiet_end is not None:
                        self._move(head, EngagementState.PENDING, _micros(quiet_end), now_us)
                        tally["deferred"] += 1
                        continue
                    over_cap = self._over_cap(head.subscriber, now_us)
                    if over_cap is not None:
                        self._move(head, EngagementState.SUPPRESSED, None, now_us, reason=over_cap)
                        tally["suppressed"] += 1
                        continue
                    self._move(
                        head, EngagementState.SENDING, lease_us, now_us, attempts=head.attempts + 1
                    )
                    claimed.append(
                        Claimed(
                            engagement=_engagement(row[1:7]),
                            attempt=head.attempts + 1,
                            enqueued_at=_moment(head.enqueued_us),
                            lease_until=_moment(lease_us),
                        )
                    )
        return ClaimBatch(claimed=claimed, **tally)

    def ack(self, claimed: Claimed) -> bool:
        """Record that ``claimed`` was delivered; False if it was already marked sent.

        A late ack (after the lease was lost and the engagement claimed again,
        deferred, suppressed or dead-lettered) still counts: the send happened.
        """
        now_us = _micros(self.clock())
        with transaction(self.connection):
            row = self._row(claimed.engagement.engagement_id)
            if row is None or row.state in (EngagementState.SENT, EngagementState.DEDUPLICATED):
                return False
            self._move(row, EngagementState.SENT, None, now_us, sent_us=now_us)
        return True

    def fail(
        self,
        claimed: Claimed,
        error: str,
        retryable: bool,
        retry_after: timedelta | None = None,
    ) -> EngagementState | None:
        """Record a failed send: back to pending after a backoff, or to the dead letters.

        A retryable failure waits ``backoff(attempt)`` (or ``retry_after`` when the
        receiver asked for longer) unless it was the last attempt. Returns the new
        state, or None when ``claimed`` no longer holds the lease (a stale report,
        ignored).
        """
        now = self.clock()
        now_us = _micros(now)
        error = error[:_MAX_ERROR]
        with transaction(self.connection):
            row = self._row(claimed.engagement.engagement_id)
            if row is None or row.state != EngagementState.SENDING:
                return None
            if row.attempts != claimed.attempt:
                return None
            if retryable and row.attempts < self.policy.max_attempts:
                wait = self.policy.backoff(row.attempts, self.draw())
                if retry_after is not None:
                    wait = max(wait, retry_after)
                due_us = _micros(now + wait)
                self._move(row, EngagementState.PENDING, due_us, now_us, last_error=error)
                return EngagementState.PENDING
            if retryable:
                reason = f"gave up after {row.attempts} attempts"
            else:
                reason = "the channel refused it (not retryable)"
            self._bury(row, now_us, error, reason)
            return EngagementState.DEAD

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[EngagementStatus]:
        """The dead-letter queue in enqueue order, with each one's last error and attempts."""
        return self.statuses(EngagementState.DEAD, limit, offset)

    def statuses(
        self, state: EngagementState | str, limit: int = 100, offset: int = 0
    ) -> list[EngagementStatus]:
        """Engagements in ``state``, in enqueue order (a page of ``limit`` from ``offset``)."""
        try:
            state = EngagementState(state)
        except ValueError as error:
            known = ", ".join(EngagementState)
            raise InvalidInput(f"unknown engagement state {state!r}; known: {known}") from error
        if limit < 1 or offset < 0:
            raise InvalidInput(f"page limit must be >= 1 and offset >= 0, got {limit}, {offset}")
        rows = self.connection.execute(
            f"SELECT {_STATUS_COLUMNS} FROM queue_engagements WHERE state = ? "
            "ORDER BY seq LIMIT ? OFFSET ?",
            (state, limit, offset),
        ).fetchall()
        return [_status(row) for row in rows]

    def replay(self, engagement_ids: Sequence[str] | None = None) -> int:
        """Put dead letters back in the queue (all of them when ``engagement_ids`` is None).

        They are due at once with their attempts reset, and keep their enqueue-order
        place in their subscriber's FIFO. All or nothing: an unknown id raises
        ``UnknownEngagement``, an id that is not a dead letter ``InvalidInput``.
        Returns how many were replayed.
        """
        now_us = _micros(self.clock())
        with transaction(self.connection) as connection:
            if engagement_ids is None:
                rows = [
                    _Row(*found)
                    for found in connection.execute(
                        f"SELECT {_ROW_COLUMNS} FROM queue_engagements WHERE state = 'dead' "
                        "ORDER BY seq"
                    )
                ]
            else:
                rows = self._dead_rows(engagement_ids)
            for row in rows:
                self._move(row, EngagementState.PENDING, now_us, now_us, attempts=0, reason=None)
        return len(rows)

    def engagement(self, engagement_id: str) -> Engagement | None:
        """The engagement with its incidents, whatever its state; None if unknown."""
        row = self.connection.execute(
            "SELECT engagement_id, subscriber, rule, dedupe_key, created_us, incidents "
            "FROM queue_engagements WHERE engagement_id = ?",
            (engagement_id,),
        ).fetchone()
        return None if row is None else _engagement(row)

    def status(self, engagement_id: str) -> EngagementStatus | None:
        """Where the engagement is in the queue; None if unknown."""
        row = self.connection.execute(
            f"SELECT {_STATUS_COLUMNS} FROM queue_engagements WHERE engagement_id = ?",
            (engagement_id,),
        ).fetchone()
        return None if row is None else _status(row)

    def stats(self) -> QueueStats:
        """How many engagements are in each state, and how many are not yet recorded."""
        counts = dict(
            self.connection.execute(
                "SELECT state, COUNT(*) FROM queue_engagements GROUP BY state"
            ).fetchall()
        )
        (unrecorded,) = self.connection.execute(
            "SELECT COUNT(*) FROM queue_engagements WHERE state = 'sent' AND recorded = 0"
        ).fetchone()
        return QueueStats(**counts, unrecorded=unrecorded)

    def due_or_in_flight(self) -> int:
        """How many subscribers have a head due now or a send in flight.

        Zero means a dispatcher has nothing to do until a retry, a deferral or a new
        engagement comes due (the engagements waiting behind a head do not count).
        """
        (count,) = self.connection.execute(
            "SELECT COUNT(*) FROM queue_heads AS head JOIN queue_engagements AS q "
            "ON q.seq = head.seq WHERE head.due_us <= ? OR q.state = 'sending'",
            (_micros(self.clock()),),
        ).fetchone()
        return int(count)

    def unrecorded(self, limit: int = 1_000) -> list[SentEngagement]:
        """Sent engagements not yet recorded as touchpoints, in enqueue order (the outbox)."""
        rows = self.connection.execute(
            "SELECT engagement_id, subscriber, rule, dedupe_key, created_us, incidents, "
            "sent_us, enqueued_us, attempts FROM queue_engagements "
            "WHERE state = 'sent' AND recorded = 0 ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            SentEngagement(
                engagement=_engagement(row[:6]),
                sent_at=_moment(row[6]),
                enqueued_at=_moment(row[7]),
                attempts=row[8],
            )
            for row in rows
        ]

    def mark_recorded(self, connection: sqlite3.Connection, engagement_ids: Iterable[str]) -> None:
        """Mark sent engagements as recorded, within the caller's transaction (never commits)."""
        with transaction(connection):
            connection.executemany(
                "UPDATE queue_engagements SET recorded = 1 WHERE engagement_id = ? "
                "AND state = 'sent'",
                [(engagement_id,) for engagement_id in engagement_ids],
            )

    def _over_cap(self, subscriber: str, now_us: int) -> str | None:
        cap = self.policy.contact_cap
        if cap is None:
            return None
        since = now_us - self.policy.cap_period // _MICROSECOND
        (sent,) = self.connection.execute(
            "SELECT COUNT(*) FROM queue_engagements WHERE subscriber = ? AND state = 'sent' "
            "AND sent_us > ?",
            (subscriber, since),
        ).fetchone()
        if sent < cap:
            return None
        return f"contact cap: {sent} sent in the last {self.policy.cap_period} (cap {cap})"

    def _bury(self, row: _Row | _Head, now_us: int, error: str, reason: str) -> None:
        self._move(row, EngagementState.DEAD, None, now_us, last_error=error, reason=reason)

    def _move(
        self,
        row: _Row | _Head,
        state: EngagementState,
        due_us: int | None,
        now_us: int,
        **columns: object,
    ) -> None:
        """Set a row's state (and ``columns``), then its subscriber's head."""
        assignments = "".join(f", {name} = ?" for name in columns)  # names from this module
        self.connection.execute(
            f"UPDATE queue_engagements SET state = ?, due_us = ?, updated_us = ?{assignments} "
            "WHERE seq = ?",
            (state, due_us, now_us, *columns.values(), row.seq),
        )
        _refresh_head(self.connection, row.subscriber)

    def _row(self, engagement_id: str) -> _Row | None:
        found = self.connection.execute(
            f"SELECT {_ROW_COLUMNS} FROM queue_engagements WHERE engagement_id = ?",
            (engagement_id,),
        ).fetchone()
        return None if found is None else _Row(*found)

    def _dead_rows(self, engagement_ids: Sequence[str]) -> list[_Row]:
        rows: list[_Row] = []
        unknown: list[str] = []
        not_dead: list[str] = []
        for engagement_id in dict.fromkeys(engagement_ids):
            found = self._row(engagement_id)
            if found is None:
                unknown.append(engagement_id)
            elif found.state != EngagementState.DEAD:
                not_dead.append(f"{engagement_id} ({found.state})")
            else:
                rows.append(found)
        if unknown:
            raise UnknownEngagement(
                f"no engagement {', '.join(unknown)} in the queue; nothing was replayed",
                details={"engagement_ids": unknown},
            )
        if not_dead:
            raise InvalidInput(
                f"not in the dead-letter queue: {', '.join(not_dead)}; nothing was replayed",
                details={"engagement_ids": not_dead},
            )
        return sorted(rows)


def _refresh_head(connection: sqlite3.Connection, subscriber: str) -> None:
    """Point ``queue_heads`` at the subscriber's engagement in flight, else earliest pending."""
    for state in (EngagementState.SENDING, EngagementState.PENDING):
        head = connection.execute(
            "SELECT seq, due_us FROM queue_engagements WHERE subscriber = ? AND state = ? "
            "ORDER BY seq LIMIT 1",
            (subscriber, state),
        ).fetchone()
        if head is not None:
            connection.execute(
                "INSERT INTO queue_heads (subscriber, seq, due_us) VALUES (?, ?, ?) "
                "ON CONFLICT (subscriber) DO UPDATE SET seq = excluded.seq, "
                "due_us = excluded.due_us",
                (subscriber, *head),
            )
            return
    connection.execute("DELETE FROM queue_heads WHERE subscriber = ?", (subscriber,))


def _aware(engagement: Engagement) -> datetime:
    created_at = engagement.created_at
    if created_at.tzinfo is None or created_at.utcoffset() is None:
        raise InvalidInput(
            f"engagement {engagement.engagement_id}: created_at {created_at.isoformat()} "
            "has no time zone",
            details={"engagement_id": engagement.engagement_id},
        )
    return created_at


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _maybe_moment(micros: int | None) -> datetime | None:
    return None if micros is None else _moment(micros)


def _engagement(row: Sequence[Any]) -> Engagement:
    """An engagement from ``(id, subscriber, rule, dedupe_key, created_us, incidents)``."""
    engagement_id, subscriber, rule, key, created_us, incidents = row
    return Engagement(
        engagement_id=engagement_id,
        subscriber=subscriber,
        rule=rule,
        created_at=_moment(created_us),
        dedupe_key=key,
        incidents=tuple(_incidents(orjson.loads(incidents))),
    )


def _incidents(items: list[dict[str, Any]]) -> Iterator[Incident]:
    for item in items:
        yield Incident(
            subscriber=item["subscriber"],
            rule=item["rule"],
            metric=item["metric"],
            value=item["value"],
            threshold=item["threshold"],
            window_seconds=item["window_seconds"],
            ts=datetime.fromisoformat(item["ts"]),
            cells=tuple(item["cells"]),
            probe_ids=tuple(item["probe_ids"]),
        )


def _status(row: Sequence[Any]) -> EngagementStatus:
    (
        engagement_id,
        subscriber,
        rule,
        state,
        attempts,
        created_us,
        enqueued_us,
        due_us,
        sent_us,
        last_error,
        reason,
        recorded,
    ) = row
    return EngagementStatus(
        engagement_id=engagement_id,
        subscriber=subscriber,
        rule=rule,
        state=state,
        attempts=attempts,
        created_at=_moment(created_us),
        enqueued_at=_moment(enqueued_us),
        not_before=_maybe_moment(due_us) if state == EngagementState.PENDING else None,
        lease_until=_maybe_moment(due_us) if state == EngagementState.SENDING else None,
        sent_at=_maybe_moment(sent_us),
        last_error=last_error,
        reason=reason,
        recorded=bool(recorded),
    )
