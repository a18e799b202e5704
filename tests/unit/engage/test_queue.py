"""The engagement queue: FIFO per subscriber, dedupe, retries, dead letters, quiet hours, cap."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engage._db import open_engage_db, transaction
from engage.model import Engagement, Incident, dedupe_key, engagement_id
from engage.queue import (
    Claimed,
    EngagementQueue,
    EngagementState,
    QueuePolicy,
    UnknownEngagement,
)
from graph.errors import InvalidInput

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
ANN, BOB, CAT = "+447700900001", "+447700900002", "+447700900003"


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def engagement(
    subscriber: str, at: datetime = T0, rule: str = "call_drop", cell: str = "cell-1"
) -> Engagement:
    """An engagement about one call-drop incident at event time ``at``."""
    key = dedupe_key(subscriber, rule)
    incident = Incident(
        subscriber=subscriber,
        rule=rule,
        metric="call_drop_rate",
        value=0.25,
        threshold=0.16,
        window_seconds=3600,
        ts=at,
        cells=(cell, "cell-9"),
        probe_ids=("p-1", "p-2"),
    )
    return Engagement(engagement_id(key, at), subscriber, rule, at, key, (incident,))


def series(subscriber: str, count: int, start: datetime = T0) -> list[Engagement]:
    """``count`` engagements a day apart (outside any dedupe window used here)."""
    return [engagement(subscriber, start + timedelta(days=day)) for day in range(count)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Any) -> Any:
    connection = open_engage_db(tmp_path / "engage.db")
    yield connection
    connection.close()


def make_queue(db: sqlite3.Connection, clock: Clock, **policy: Any) -> EngagementQueue:
    settings = {"jitter": 0.0, "contact_cap": None, **policy}
    return EngagementQueue(db, QueuePolicy(**settings), clock)


def ids(claimed: list[Claimed]) -> list[str]:
    return [item.engagement.engagement_id for item in claimed]


def state(queue: EngagementQueue, item: Engagement) -> EngagementState:
    found = queue.status(item.engagement_id)
    assert found is not None
    return found.state


# --- enqueue -------------------------------------------------------------------------


def test_an_engagement_comes_back_with_its_incidents(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    first = engagement(ANN)
    result = queue.enqueue(db, [first, engagement(BOB)])
    assert (result.queued, result.duplicate_id, result.deduplicated) == (2, 0, 0)
    assert queue.engagement(first.engagement_id) == first
    assert queue.engagement("eng-nope") is None
    status = queue.status(first.engagement_id)
    assert status is not None
    assert (status.state, status.attempts, status.enqueued_at) == ("pending", 0, T0)
    assert queue.stats().pending == 2


def test_the_same_engagement_id_again_is_a_no_op(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    queue.enqueue(db, [engagement(ANN)])
    again = queue.enqueue(db, [engagement(ANN), engagement(ANN)])
    assert (again.queued, again.duplicate_id) == (0, 2)
    assert queue.stats().pending == 1


def test_enqueue_is_part_of_the_callers_transaction(tmp_path: Any, clock: Clock) -> None:
    writer = open_engage_db(tmp_path / "engage.db")
    reader = open_engage_db(tmp_path / "engage.db")
    queue, elsewhere = make_queue(writer, clock), make_queue(reader, clock)
    with pytest.raises(RuntimeError), transaction(writer):
        queue.enqueue(writer, [engagement(ANN)])
        assert writer.in_transaction  # nothing committed yet ...
        assert elsewhere.stats().pending == 0  # ... nor visible elsewhere
        raise RuntimeError("the engine's batch failed")
    assert queue.stats().pending == 0  # rolled back with the batch
    with transaction(writer):
        queue.enqueue(writer, [engagement(ANN)])
    assert elsewhere.stats().pending == 1


def test_a_created_at_without_time_zone_is_refused(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    naive = engagement(ANN, at=T0.replace(tzinfo=None))
    with pytest.raises(InvalidInput, match="no time zone"):
        queue.enqueue(db, [engagement(BOB), naive])
    assert queue.stats().pending == 0


def test_dedupe_is_within_the_window_of_event_time(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock, dedupe_window=timedelta(hours=1))
    first = engagement(ANN, T0)
    inside = engagement(ANN, T0 + timedelta(minutes=59))
    earlier = engagement(ANN, T0 - timedelta(minutes=30))  # arrives late, still inside
    outside = engagement(ANN, T0 + timedelta(hours=1))
    other_rule = engagement(ANN, T0 + timedelta(minutes=1), rule="video_stalling")
    result = queue.enqueue(db, [first, inside, earlier, outside, other_rule])
    assert (result.queued, result.deduplicated) == (3, 2)
    assert state(queue, inside) == state(queue, earlier) == "deduplicated"
    status = queue.status(inside.engagement_id)
    assert status is not None and status.reason is not None
    assert first.engagement_id in status.reason
    assert state(queue, outside) == state(queue, other_rule) == "pending"
    assert [s.engagement_id for s in queue.statuses("deduplicated")] == [
        inside.engagement_id,
        earlier.engagement_id,
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([ANN, BOB]), st.sampled_from(["a", "b"]), st.integers(0, 300)),
        max_size=30,
    )
)
def test_dedupe_matches_a_plain_python_reference(draws: list[tuple[str, str, int]]) -> None:
    window = timedelta(minutes=60)
    connection = sqlite3.connect(":memory:", isolation_level=None)
    queue = EngagementQueue(connection, QueuePolicy(dedupe_window=window), Clock())
    items = [engagement(who, T0 + timedelta(minutes=minute), rule) for who, rule, minute in draws]
    result = queue.enqueue(connection, items)

    seen: set[str] = set()
    kept: list[Engagement] = []
    expected: dict[str, str] = {}
    for item in items:
        if item.engagement_id in seen:
            continue
        seen.add(item.engagement_id)
        close = [
            k
            for k in kept
            if k.dedupe_key == item.dedupe_key and abs(k.created_at - item.created_at) < window
        ]
        expected[item.engagement_id] = "deduplicated" if close else "pending"
        if not close:
            kept.append(item)
    assert result.queued == len(kept)
    assert result.duplicate_id == len(items) - len(seen)
    assert {key: state(queue, engagement_of(items, key)) for key in expected} == expected


def engagement_of(items: list[Engagement], key: str) -> Engagement:
    return next(item for item in items if item.engagement_id == key)


# --- FIFO, claim, ack ------------------------------------------------------------------


def test_fifo_within_a_subscriber_parallel_across(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    ann, bob = series(ANN, 3), series(BOB, 2)
    queue.enqueue(db, [ann[0], ann[1], bob[0], ann[2], bob[1]])
    first = queue.claim(10).claimed
    assert ids(first) == [ann[0].engagement_id, bob[0].engagement_id]  # heads only
    assert queue.claim(10).claimed == []  # one in flight per subscriber
    assert queue.ack(first[0])
    assert ids(queue.claim(10).claimed) == [ann[1].engagement_id]
    assert queue.ack(first[1])
    assert ids(queue.claim(10).claimed) == [bob[1].engagement_id]
    assert queue.stats().model_dump() == {
        "pending": 1,
        "sending": 2,
        "sent": 2,
        "dead": 0,
        "suppressed": 0,
        "deduplicated": 0,
        "unrecorded": 2,
    }


def test_claim_hands_out_the_oldest_heads_up_to_the_limit(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    for subscriber in (CAT, BOB, ANN):
        queue.enqueue(db, [engagement(subscriber)])
        clock.advance(seconds=1)
    batch = queue.claim(2)
    assert [c.engagement.subscriber for c in batch.claimed] == [CAT, BOB]
    assert [c.attempt for c in batch.claimed] == [1, 1]
    assert batch.claimed[0].lease_until == clock.now + QueuePolicy().lease
    assert batch.claimed[0].enqueued_at == T0
    with pytest.raises(InvalidInput):
        queue.claim(0)


def test_the_queue_survives_a_new_connection(tmp_path: Any, clock: Clock) -> None:
    first = open_engage_db(tmp_path / "engage.db")
    make_queue(first, clock).enqueue(first, series(ANN, 2))
    first.close()
    again = open_engage_db(tmp_path / "engage.db")
    queue = make_queue(again, clock)
    assert [c.engagement.subscriber for c in queue.claim(5).claimed] == [ANN]
    again.close()


# --- retries and dead letters ----------------------------------------------------------


def test_retries_back_off_exponentially_up_to_the_maximum(db: Any, clock: Clock) -> None:
    queue = make_queue(
        db, clock, backoff_base=timedelta(seconds=1), backoff_max=timedelta(seconds=4)
    )
    item = engagement(ANN)
    queue.enqueue(db, [item])
    waits = []
    for attempt in range(1, 6):
        (claimed,) = queue.claim(1).claimed
        assert claimed.attempt == attempt
        assert queue.fail(claimed, "HTTP 500", retryable=True) == "pending"
        status = queue.status(item.engagement_id)
        assert status is not None and status.not_before is not None
        waits.append((status.not_before - clock.now).total_seconds())
        assert status.last_error == "HTTP 500"
        clock.now = status.not_before - timedelta(microseconds=1)
        assert queue.claim(1).claimed == []  # not due yet
        clock.now = status.not_before
    assert waits == [1, 2, 4, 4, 4]


def test_jitter_shortens_the_wait_by_a_random_share(db: Any, clock: Clock) -> None:
    policy = QueuePolicy(backoff_base=timedelta(seconds=10), jitter=0.5)
    assert policy.backoff(1, draw=0.0) == timedelta(seconds=10)
    assert policy.backoff(1, draw=1.0) == timedelta(seconds=5)
    assert policy.backoff(200) == policy.backoff_max
    queue = EngagementQueue(db, policy.model_copy(update={"contact_cap": None}), clock, lambda: 1)
    queue.enqueue(db, [engagement(ANN)])
    queue.fail(queue.claim(1).claimed[0], "boom", retryable=True)
    status = queue.status(engagement(ANN).engagement_id)
    assert status is not None and status.not_before == clock.now + timedelta(seconds=5)


def test_a_receivers_retry_after_is_respected(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    queue.enqueue(db, [engagement(ANN)])
    queue.fail(queue.claim(1).claimed[0], "429", True, retry_after=timedelta(seconds=30))
    status = queue.status(engagement(ANN).engagement_id)
    assert status is not None and status.not_before == clock.now + timedelta(seconds=30)


def test_the_last_failed_attempt_goes_to_the_dead_letters(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock, max_attempts=3, backoff_base=timedelta(seconds=1))
    first, second = series(ANN, 2)
    queue.enqueue(db, [first, second])
    states = []
    for _ in range(3):
        (claimed,) = queue.claim(5).claimed
        assert claimed.engagement == first
        states.append(queue.fail(claimed, "HTTP 503 Service Unavailable", retryable=True))
        clock.advance(seconds=10)
    assert states == ["pending", "pending", "dead"]
    (dead,) = queue.dead_letters()
    assert (dead.engagement_id, dead.attempts) == (first.engagement_id, 3)
    assert dead.last_error == "HTTP 503 Service Unavailable"
    assert dead.reason == "gave up after 3 attempts"
    assert ids(queue.claim(5).claimed) == [second.engagement_id]  # the next one moves up


def test_a_failure_that_is_not_retryable_is_dead_at_once(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    queue.enqueue(db, [engagement(ANN)])
    assert queue.fail(queue.claim(1).claimed[0], "HTTP 400", retryable=False) == "dead"
    (dead,) = queue.dead_letters()
    assert dead.attempts == 1 and dead.reason is not None and "not retryable" in dead.reason
    assert queue.dead_letters(limit=5, offset=1) == []


def test_replay_keeps_the_fifo_place_by_enqueue_order(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    first, second, third = series(ANN, 3)
    queue.enqueue(db, [first, second, third])
    queue.fail(queue.claim(1).claimed[0], "HTTP 400", retryable=False)
    queue.ack(queue.claim(1).claimed[0])  # second is sent meanwhile
    assert queue.replay([first.engagement_id]) == 1
    status = queue.status(first.engagement_id)
    assert status is not None and (status.state, status.attempts) == ("pending", 0)
    (claimed,) = queue.claim(5).claimed
    assert (claimed.engagement, claimed.attempt) == (first, 1)  # before third
    queue.ack(claimed)
    assert ids(queue.claim(5).claimed) == [third.engagement_id]


def test_a_replayed_dead_letter_waits_for_the_one_in_flight(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    first, second = series(ANN, 2)
    queue.enqueue(db, [first, second])
    queue.fail(queue.claim(1).claimed[0], "HTTP 400", retryable=False)
    in_flight = queue.claim(1).claimed[0]
    queue.replay()
    assert queue.claim(5).claimed == []  # still one in flight per subscriber
    queue.ack(in_flight)
    assert ids(queue.claim(5).claimed) == [first.engagement_id]


def test_replay_is_all_or_nothing_with_clear_errors(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    dead, pending = engagement(ANN), engagement(BOB)
    queue.enqueue(db, [dead, pending])
    batch = queue.claim(5).claimed
    queue.fail(batch[0], "HTTP 400", retryable=False)
    queue.fail(batch[1], "boom", retryable=True)
    with pytest.raises(UnknownEngagement, match="eng-nope"):
        queue.replay([dead.engagement_id, "eng-nope"])
    with pytest.raises(InvalidInput, match="pending"):
        queue.replay([dead.engagement_id, pending.engagement_id])
    assert state(queue, dead) == "dead"
    assert queue.replay() == 1
    assert queue.replay() == 0


# --- leases ---------------------------------------------------------------------------


def test_a_lost_lease_is_claimed_again_with_the_same_id(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock, lease=timedelta(seconds=30))
    item = engagement(ANN)
    queue.enqueue(db, [item])
    (lost,) = queue.claim(1).claimed
    clock.advance(seconds=29)
    assert queue.claim(1).claimed == []
    clock.advance(seconds=1)
    batch = queue.claim(1)
    (again,) = batch.claimed
    assert batch.expired == 1
    assert (again.engagement, again.attempt) == (item, 2)
    assert queue.fail(lost, "late failure of the first attempt", retryable=True) is None
    assert state(queue, item) == "sending"
    assert queue.ack(lost)  # the first send did arrive after all: it counts
    assert not queue.ack(again)
    assert state(queue, item) == "sent"


def test_a_lease_lost_on_the_last_attempt_is_a_dead_letter(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock, lease=timedelta(seconds=10), max_attempts=2)
    poison, after = series(ANN, 2)
    queue.enqueue(db, [poison, after])
    queue.claim(1)
    clock.advance(seconds=10)
    assert queue.claim(1).claimed[0].attempt == 2
    clock.advance(seconds=10)
    batch = queue.claim(1)
    assert (batch.dead, batch.expired) == (1, 1)
    assert ids(batch.claimed) == [after.engagement_id]  # moved up in the same claim
    (dead,) = queue.dead_letters()
    assert dead.last_error is not None and "lease lost on attempt 2" in dead.last_error


# --- quiet hours ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quiet", "zone", "now", "end"),
    [
        # 22:30 in Berlin (CET, UTC+1): quiet until 08:00 the next morning.
        ("21:00-08:00", "Europe/Berlin", "2024-03-01T21:30Z", "2024-03-02T07:00Z"),
        # 01:30 after midnight: quiet until 08:00 the same day.
        ("21:00-08:00", "Europe/Berlin", "2024-03-02T00:30Z", "2024-03-02T07:00Z"),
        # 07:59 in Berlin is still quiet, 08:00 is not.
        ("21:00-08:00", "Europe/Berlin", "2024-03-02T06:59Z", "2024-03-02T07:00Z"),
        ("21:00-08:00", "Europe/Berlin", "2024-03-02T07:00Z", None),
        ("21:00-08:00", "Europe/Berlin", "2024-03-01T19:59Z", None),
        # Summer time (CEST, UTC+2).
        ("21:00-08:00", "Europe/Berlin", "2024-07-01T19:00Z", "2024-07-02T06:00Z"),
        # New York springs forward overnight: 22:00 EST, quiet until 07:00 EDT.
        ("22:00-07:00", "America/New_York", "2024-03-10T03:00Z", "2024-03-10T11:00Z"),
        # Not across midnight, half-hour zone: 12:15 in Kolkata, quiet until 13:00.
        ("12:00-13:00", "Asia/Kolkata", "2024-03-01T06:45Z", "2024-03-01T07:30Z"),
        ("12:00-13:00", "Asia/Kolkata", "2024-03-01T07:30Z", None),
    ],
)
def test_quiet_hours_end(quiet: str, zone: str, now: str, end: str | None) -> None:
    policy = QueuePolicy(quiet_hours=quiet, timezone=zone)
    expected = None if end is None else datetime.fromisoformat(end)
    assert policy.quiet_end(datetime.fromisoformat(now)) == expected


def test_a_head_due_in_quiet_hours_is_deferred_to_their_end(db: Any, clock: Clock) -> None:
    clock.now = datetime(2024, 3, 1, 21, 30, tzinfo=UTC)  # 22:30 in Berlin
    queue = make_queue(db, clock, quiet_hours="21:00-08:00", timezone="Europe/Berlin")
    ann, bob = engagement(ANN), engagement(BOB)
    queue.enqueue(db, [ann, bob])
    batch = queue.claim(1)
    assert (batch.claimed, batch.deferred) == ([], 2)  # all due heads, whatever the limit
    status = queue.status(ann.engagement_id)
    morning = datetime(2024, 3, 2, 7, 0, tzinfo=UTC)
    assert status is not None and (status.state, status.not_before) == ("pending", morning)
    assert status.attempts == 0  # a deferral is not an attempt
    clock.now = morning - timedelta(seconds=1)
    assert queue.claim(5).deferred == 0  # not due again until the end
    clock.now = morning
    assert ids(queue.claim(5).claimed) == [ann.engagement_id, bob.engagement_id]


@pytest.mark.parametrize(
    "fields",
    [
        {"quiet_hours": "25:00-08:00"},
        {"quiet_hours": "21:00-21:00"},
        {"quiet_hours": "9pm-8am"},
        {"timezone": "Mars/Olympus_Mons"},
        {"lease": timedelta(0)},
        {"backoff_base": timedelta(minutes=5), "backoff_max": timedelta(minutes=1)},
        {"max_attempts": 0},
    ],
)
def test_a_bad_policy_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QueuePolicy(**fields)


# --- contact cap ----------------------------------------------------------------------


def test_over_the_cap_is_suppressed_with_the_reason(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock, contact_cap=2, cap_period=timedelta(days=7))
    ann = series(ANN, 4)
    queue.enqueue(db, [*ann, engagement(BOB)])
    for _ in range(2):
        for claimed in queue.claim(5).claimed:
            queue.ack(claimed)
        clock.advance(hours=1)
    batch = queue.claim(5)
    assert batch.claimed == [] and batch.suppressed == 2  # the third, then the fourth moved up
    (suppressed, _) = queue.statuses("suppressed")
    assert suppressed.engagement_id == ann[2].engagement_id
    assert suppressed.reason == "contact cap: 2 sent in the last 7 days, 0:00:00 (cap 2)"
    assert queue.stats().sent == 3  # two to Ann, one to Bob: Bob was under his cap
    clock.advance(days=7)
    later = engagement(ANN, T0 + timedelta(days=30))
    queue.enqueue(db, [later])
    assert ids(queue.claim(5).claimed) == [later.engagement_id]


def test_the_cap_counts_only_sends_that_happened(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock, contact_cap=2)
    refused, first, second, third = series(ANN, 4)
    queue.enqueue(db, [refused, first, second, third])
    queue.fail(queue.claim(1).claimed[0], "HTTP 400", retryable=False)
    queue.ack(queue.claim(1).claimed[0])
    queue.ack(queue.claim(1).claimed[0])
    assert queue.stats().sent == 2 and queue.stats().suppressed == 0
    assert queue.claim(1).suppressed == 1
    assert state(queue, third) == "suppressed"


# --- outbox, inspection ---------------------------------------------------------------


def test_the_outbox_lists_sent_engagements_until_recorded(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    ann, bob = engagement(ANN), engagement(BOB)
    queue.enqueue(db, [ann, bob, engagement(CAT)])
    clock.advance(seconds=3)
    for claimed in queue.claim(2).claimed:
        queue.ack(claimed)
    outbox = queue.unrecorded()
    assert [sent.engagement for sent in outbox] == [ann, bob]
    assert outbox[0].sent_at == clock.now and outbox[0].enqueued_at == T0
    with transaction(db):
        queue.mark_recorded(db, [ann.engagement_id])
    assert [sent.engagement for sent in queue.unrecorded()] == [bob]
    queue.mark_recorded(db, [ann.engagement_id, bob.engagement_id])
    assert queue.unrecorded() == [] and queue.stats().unrecorded == 0
    status = queue.status(ann.engagement_id)
    assert status is not None and status.recorded and status.sent_at == clock.now


def test_due_or_in_flight_counts_what_a_dispatcher_can_do_now(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock, backoff_base=timedelta(seconds=5))
    queue.enqueue(db, [*series(ANN, 3), engagement(BOB), engagement(CAT)])
    assert queue.due_or_in_flight() == 3  # three heads due; Ann's later ones wait behind
    ann, bob, _ = queue.claim(3).claimed
    assert queue.due_or_in_flight() == 3  # in flight
    queue.fail(ann, "HTTP 500", retryable=True)
    queue.ack(bob)
    assert queue.due_or_in_flight() == 1  # Ann backs off, Bob is done, Cat is in flight
    clock.advance(seconds=5)
    assert queue.due_or_in_flight() == 2


def test_listing_an_unknown_state_or_a_bad_page_is_refused(db: Any, clock: Clock) -> None:
    queue = make_queue(db, clock)
    with pytest.raises(InvalidInput, match="unknown engagement state 'lost'"):
        queue.statuses("lost")
    with pytest.raises(InvalidInput):
        queue.dead_letters(limit=0)


# --- the queue against a plain-Python reference ---------------------------------------


@dataclass
class _Item:
    engagement_id: str
    subscriber: str
    state: str = "pending"
    attempts: int = 0
    due: datetime = T0


class ReferenceQueue:
    """The claim/ack/fail/replay semantics, written plainly (no quiet hours, no cap)."""

    def __init__(self, policy: QueuePolicy) -> None:
        self.policy = policy
        self.items: list[_Item] = []  # enqueue order

    def head(self, subscriber: str) -> _Item | None:
        mine = [item for item in self.items if item.subscriber == subscriber]
        sending = [item for item in mine if item.state == "sending"]
        pending = [item for item in mine if item.state == "pending"]
        if sending:
            return sending[0]
        return pending[0] if pending else None

    def claim(self, now: datetime, limit: int) -> list[tuple[str, int]]:
        claimed: list[tuple[str, int]] = []
        while len(claimed) < limit:
            subscribers = dict.fromkeys(item.subscriber for item in self.items)
            heads = [h for s in subscribers if (h := self.head(s)) is not None and h.due <= now]
            heads.sort(key=lambda h: (h.due, self.items.index(h)))
            if not heads:
                break
            for head in heads[: limit - len(claimed)]:
                if head.state == "sending" and head.attempts >= self.policy.max_attempts:
                    head.state = "dead"
                    continue
                head.state, head.attempts = "sending", head.attempts + 1
                head.due = now + self.policy.lease
                claimed.append((head.engagement_id, head.attempts))
        return claimed

    def find(self, key: str) -> _Item:
        return next(item for item in self.items if item.engagement_id == key)

    def ack(self, key: str) -> None:
        item = self.find(key)
        if item.state not in ("sent", "deduplicated"):
            item.state = "sent"

    def fail(self, now: datetime, key: str, attempt: int, retryable: bool) -> None:
        item = self.find(key)
        if item.state != "sending" or item.attempts != attempt:
            return
        if retryable and item.attempts < self.policy.max_attempts:
            item.state, item.due = "pending", now + self.policy.backoff(item.attempts)
        else:
            item.state = "dead"

    def replay(self, now: datetime) -> None:
        for item in self.items:
            if item.state == "dead":
                item.state, item.attempts, item.due = "pending", 0, now


_STEPS = st.one_of(
    st.tuples(st.just("enqueue"), st.sampled_from([ANN, BOB, CAT])),
    st.tuples(st.just("claim"), st.integers(1, 3)),
    st.tuples(st.just("ack"), st.integers(0, 5)),
    st.tuples(st.just("fail"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("advance"), st.sampled_from([0, 1, 3, 5, 10, 11])),
    st.tuples(st.just("replay")),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_STEPS, min_size=20, max_size=60))
def test_the_queue_matches_a_plain_python_reference(steps: list[tuple[Any, ...]]) -> None:
    policy = QueuePolicy(
        max_attempts=2,
        lease=timedelta(seconds=10),
        backoff_base=timedelta(seconds=3),
        backoff_max=timedelta(seconds=5),
        jitter=0.0,
        contact_cap=None,
    )
    clock = Clock()
    connection = sqlite3.connect(":memory:", isolation_level=None)
    queue = EngagementQueue(connection, policy, clock)
    reference = ReferenceQueue(policy)
    outstanding: list[Claimed] = []  # every claim handed out, stale ones included
    counts = {ANN: 0, BOB: 0, CAT: 0}
    for step in steps:
        if step[0] == "enqueue":
            counts[step[1]] += 1
            item = engagement(step[1], T0 + timedelta(days=counts[step[1]]))
            queue.enqueue(connection, [item])
            reference.items.append(_Item(item.engagement_id, step[1], due=clock.now))
        elif step[0] == "claim":
            claimed = queue.claim(step[1]).claimed
            outstanding.extend(claimed)
            assert [(c.engagement.engagement_id, c.attempt) for c in claimed] == (
                reference.claim(clock.now, step[1])
            )
        elif step[0] in ("ack", "fail") and outstanding:
            chosen = outstanding.pop(step[1] % len(outstanding))
            key = chosen.engagement.engagement_id
            if step[0] == "ack":
                queue.ack(chosen)
                reference.ack(key)
            else:
                queue.fail(chosen, "boom", retryable=step[2])
                reference.fail(clock.now, key, chosen.attempt, step[2])
        elif step[0] == "advance":
            clock.advance(seconds=step[1])
        elif step[0] == "replay":
            queue.replay()
            reference.replay(clock.now)
        for expected in reference.items:
            status = queue.status(expected.engagement_id)
            assert status is not None
            assert (status.state, status.attempts) == (expected.state, expected.attempts)
        sending = [i.subscriber for i in reference.items if i.state == "sending"]
        assert len(sending) == len(set(sending))  # never two in flight for one subscriber
