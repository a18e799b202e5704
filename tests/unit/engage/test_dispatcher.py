"""The dispatcher against a real local HTTP server, and killed mid-stream in a subprocess.

The delivery contract under test: *at least once, with an idempotency key*. Every
queued engagement is delivered; a receiver that deduplicates on ``Idempotency-Key``
acts on each exactly once; a raw re-delivery happens only for an engagement that
was in flight when a dispatcher died, with the same key and body; and each
subscriber's engagements are first delivered in the order they were queued.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engage._db import open_engage_db
from engage.channels import Channel, WebhookChannel
from engage.dispatcher import Dispatcher, DispatchSummary
from engage.model import Engagement, Incident, dedupe_key, engagement_id
from engage.queue import EngagementQueue, QueuePolicy
from graph.errors import InvalidInput
from tests.unit.engage._http_server import Receiver

SECRET = "s3cret"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
REPOSITORY = Path(__file__).resolve().parents[3]


class Clock:
    """A wall clock the test moves by hand (read from the dispatcher's threads too)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def engagement(subscriber: str, day: int = 0) -> Engagement:
    at = T0 + timedelta(days=day)
    key = dedupe_key(subscriber, "call_drop")
    incident = Incident(subscriber, "call_drop", "call_drop_rate", 0.2, 0.16, 3600, at, ("c1",))
    return Engagement(engagement_id(key, at), subscriber, "call_drop", at, key, (incident,))


def subscriber(number: int) -> str:
    return f"+4477009{number:05d}"


def policy(**fields: Any) -> QueuePolicy:
    return QueuePolicy(
        **{
            "jitter": 0.0,
            "contact_cap": None,
            "backoff_base": timedelta(seconds=1),
            "max_attempts": 4,
            **fields,
        }
    )


def enqueue(path: Path, items: list[Engagement], clock: Clock | None = None) -> None:
    connection = open_engage_db(path)
    EngagementQueue(connection, policy(), clock or Clock()).enqueue(connection, items)
    connection.close()


@pytest.fixture
def receiver() -> Any:
    with Receiver(SECRET, hang_seconds=3.0) as running:
        yield running


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "engage.db"


def drain(dispatcher: Dispatcher, rounds: int = 50) -> DispatchSummary:
    """``run_once`` until a round claims nothing."""
    total = DispatchSummary()
    for _ in range(rounds):
        summary = dispatcher.run_once()
        total.add(summary)
        if summary.claimed == 0:  # a claim takes every head that moved up: nothing is due
            break
    return total


def first_deliveries(receiver: Receiver) -> dict[str, list[str]]:
    """Each subscriber's engagement ids in the order the receiver first accepted them."""
    seen: set[str | None] = set()
    order: dict[str, list[str]] = defaultdict(list)
    for delivery in receiver.accepted():
        if delivery.key not in seen:
            seen.add(delivery.key)
            order[delivery.payload["subscriber"]].append(delivery.payload["engagement_id"])
    return dict(order)


def test_sends_every_subscriber_in_fifo_order_with_latency(
    receiver: Receiver, database: Path
) -> None:
    clock = Clock()
    queued = {subscriber(n): [engagement(subscriber(n), day) for day in range(3)] for n in range(4)}
    enqueue(database, [queued[who][day] for day in range(3) for who in queued], clock)
    clock.advance(seconds=2)
    with (
        WebhookChannel(receiver.url, SECRET, timeout=1.0) as channel,
        Dispatcher(database, policy(), channel, workers=3, clock=clock) as dispatcher,
    ):
        total = drain(dispatcher)
        stats = dispatcher.queue.stats()
    assert (total.claimed, total.sent, total.retried, total.dead) == (12, 12, 0, 0)
    assert total.latencies == [2.0] * 12  # queued at T0, sent at T0 + 2 s
    assert stats.sent == 12 and stats.pending == 0
    assert first_deliveries(receiver) == {
        who: [item.engagement_id for item in items] for who, items in queued.items()
    }
    assert all(delivery.signature_ok for delivery in receiver.deliveries)


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(
    receiver: Receiver, database: Path
) -> None:
    clock = Clock()
    item = engagement(subscriber(1))
    enqueue(database, [item], clock)
    receiver.script(500, "hang")
    with (
        WebhookChannel(receiver.url, SECRET, timeout=0.3) as channel,
        Dispatcher(database, policy(), channel, clock=clock) as dispatcher,
    ):
        assert dispatcher.run_once().retried == 1  # 500
        assert dispatcher.run_once().claimed == 0  # waiting out the 1 s backoff
        clock.advance(seconds=1)
        assert dispatcher.run_once().retried == 1  # timed out
        clock.advance(seconds=2)
        summary = dispatcher.run_once()
        status = dispatcher.queue.status(item.engagement_id)
    assert (summary.sent, summary.latencies) == (1, [3.0])
    assert status is not None and (status.state, status.attempts) == ("sent", 3)
    assert receiver.keys() == [item.engagement_id] * 3


def test_a_receiver_failing_forever_dead_letters_while_others_flow(
    database: Path,
) -> None:
    broken = subscriber(0)
    clock = Clock()
    items = [engagement(subscriber(n), day) for day in range(2) for n in range(3)]
    enqueue(database, items, clock)

    def answer(payload: dict[str, Any]) -> int | None:
        return 500 if payload["subscriber"] == broken else None

    with (
        Receiver(SECRET, answer_for=answer) as receiver,
        WebhookChannel(receiver.url, SECRET, timeout=1.0) as channel,
        Dispatcher(database, policy(), channel, clock=clock) as dispatcher,
    ):
        total = DispatchSummary()
        for _ in range(12):
            total.add(dispatcher.run_once())
            clock.advance(seconds=10)
        dead = dispatcher.queue.dead_letters()
    assert (total.sent, total.dead, total.retried) == (4, 2, 6)  # 4 attempts each, then DLQ
    assert [d.subscriber for d in dead] == [broken, broken]
    assert all(d.attempts == 4 and "500" in (d.last_error or "") for d in dead)
    assert {who for who in first_deliveries(receiver)} == {subscriber(1), subscriber(2)}


def test_a_refusal_is_dead_at_once(receiver: Receiver, database: Path) -> None:
    enqueue(database, [engagement(subscriber(1)), engagement(subscriber(1), 1)])
    receiver.script(400)
    with (
        WebhookChannel(receiver.url, SECRET, timeout=1.0) as channel,
        Dispatcher(database, policy(), channel) as dispatcher,
    ):
        assert dispatcher.run_once().dead == 1
        assert dispatcher.run_once().sent == 1  # the subscriber's next one moves up
        (dead,) = dispatcher.queue.dead_letters()
        assert dead.attempts == 1 and "400" in (dead.last_error or "")
        assert dispatcher.queue.replay() == 1
        assert dispatcher.run_once().sent == 1


def test_suppressed_and_deferred_heads_are_counted(database: Path) -> None:
    clock = Clock(datetime(2024, 3, 1, 22, 0, tzinfo=UTC))  # 23:00 in Berlin
    enqueue(database, [engagement(subscriber(1), day) for day in range(3)], clock)

    class Collecting(Channel):
        name = "collecting"

        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, engagement: Engagement) -> None:
            self.sent.append(engagement.engagement_id)

    channel = Collecting()
    rules = policy(contact_cap=1, quiet_hours="21:00-08:00", timezone="Europe/Berlin")
    with Dispatcher(database, rules, channel, clock=clock) as dispatcher:
        night = dispatcher.run_once()
        clock.now = datetime(2024, 3, 2, 7, 0, tzinfo=UTC)
        morning = drain(dispatcher)
    assert (night.claimed, night.deferred) == (0, 1)
    assert (morning.sent, morning.suppressed) == (1, 2)
    assert channel.sent == [engagement(subscriber(1)).engagement_id]


def test_a_channel_bug_is_retried_then_dead_lettered(database: Path) -> None:
    class Broken(Channel):
        name = "broken"

        def send(self, engagement: Engagement) -> None:
            raise RuntimeError("bug in the channel")

    clock = Clock()
    enqueue(database, [engagement(subscriber(1))], clock)
    with Dispatcher(database, policy(max_attempts=2), Broken(), clock=clock) as dispatcher:
        first = dispatcher.run_once()
        clock.advance(seconds=5)
        second = dispatcher.run_once()
        (dead,) = dispatcher.queue.dead_letters()
    assert (first.retried, second.dead) == (1, 1)
    assert dead.last_error == "RuntimeError: bug in the channel"


def test_run_sends_until_stopped_and_wakes_on_notify(receiver: Receiver, database: Path) -> None:
    enqueue(database, [engagement(subscriber(n), day) for day in range(4) for n in range(5)])
    stop = threading.Event()
    summaries: list[DispatchSummary] = []
    with (
        WebhookChannel(receiver.url, SECRET, timeout=2.0) as channel,
        Dispatcher(database, policy(), channel, workers=3) as dispatcher,
    ):
        runner = threading.Thread(
            target=lambda: summaries.append(dispatcher.run(stop, poll_interval=30.0))
        )
        runner.start()
        wait_for(lambda: len(receiver.accepted()) == 20)
        enqueue(database, [engagement(subscriber(9))])
        dispatcher.notify()  # without it the next claim is 30 s away
        wait_for(lambda: len(receiver.accepted()) == 21)
        stop.set()
        dispatcher.notify()
        runner.join(timeout=10)
    assert not runner.is_alive()
    (total,) = summaries
    assert (total.sent, total.claimed, len(total.latencies)) == (21, 21, 21)
    assert all(latency >= 0 for latency in total.latencies)
    assert {who: len(ids) for who, ids in first_deliveries(receiver).items()} == {
        **{subscriber(n): 4 for n in range(5)},
        subscriber(9): 1,
    }


def test_latency_quantiles_and_bad_settings() -> None:
    summary = DispatchSummary(latencies=[0.4, 0.1, 0.3, 0.2])
    assert (summary.latency(0.5), summary.latency(1.0), summary.latency(0.0)) == (0.2, 0.4, 0.1)
    assert DispatchSummary().latency(0.99) is None
    with pytest.raises(InvalidInput):
        summary.latency(99)
    total = DispatchSummary()
    total.add(DispatchSummary(sent=3, latencies=[1.0, 2.0, 3.0]), keep=2)
    assert (total.sent, total.latencies) == (3, [2.0, 3.0])
    with pytest.raises(InvalidInput):
        Dispatcher("x.db", None, Receiverless(), workers=0)
    slow = WebhookChannel("http://127.0.0.1:9/hook", SECRET, timeout=60.0)
    with pytest.raises(InvalidInput, match="lease"):
        Dispatcher("x.db", policy(lease=timedelta(seconds=60)), slow)


class Receiverless(Channel):
    name = "nowhere"

    def send(self, engagement: Engagement) -> None:
        raise AssertionError("not sent in this test")


def wait_for(condition: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


# --- crash test: SIGKILL a dispatcher subprocess mid-stream, restart, check the contract ---

CHILD = """
import sys, threading
from datetime import timedelta
from engage.channels import WebhookChannel
from engage.dispatcher import Dispatcher
from engage.queue import QueuePolicy

database, url, secret = sys.argv[1:4]
policy = QueuePolicy(
    lease=timedelta(seconds=2), backoff_base=timedelta(milliseconds=50), jitter=0,
    contact_cap=None, max_attempts=10,
)
with WebhookChannel(url, secret, timeout=1.5) as channel:
    with Dispatcher(database, policy, channel, workers=4) as dispatcher:
        dispatcher.run(threading.Event(), poll_interval=0.02)
"""


@pytest.mark.slow
def test_a_killed_dispatcher_loses_nothing_and_keeps_the_order(database: Path) -> None:
    rng = random.Random(20240301)
    subscribers = [subscriber(n) for n in range(20)]
    counts = dict.fromkeys(subscribers, 0)
    items = []
    for _ in range(200):  # interleaved, ten per subscriber
        who = rng.choice([s for s in subscribers if counts[s] < 10])
        items.append(engagement(who, counts[who]))
        counts[who] += 1
    enqueue(database, items, Clock(datetime.now(UTC)))
    inspector = open_engage_db(database)
    queue = EngagementQueue(inspector, policy())
    in_flight_at_kills: set[str] = set()
    deadline = time.monotonic() + 25

    def start(url: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(database), url, SECRET],
            cwd=REPOSITORY,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        )

    with Receiver(SECRET, delay=lambda: rng.uniform(0.0, 0.01)) as receiver:
        for _ in range(3):
            child = start(receiver.url)
            target = len(receiver.deliveries) + rng.randint(15, 45)
            wait_for(lambda n=target: len(receiver.deliveries) >= n, deadline - time.monotonic())
            time.sleep(rng.uniform(0.0, 0.005))
            child.send_signal(signal.SIGKILL)
            child.wait()
            in_flight_at_kills |= {s.engagement_id for s in queue.statuses("sending", 1000)}
        child = start(receiver.url)
        try:
            wait_for(lambda: queue.stats().sent == 200, deadline - time.monotonic())
        finally:
            child.kill()
            child.wait()
        deliveries = list(receiver.deliveries)
    stats = queue.stats()
    inspector.close()

    assert in_flight_at_kills, "no kill caught a send in flight: the test proved nothing"
    assert (stats.sent, stats.dead, stats.pending, stats.sending) == (200, 0, 0, 0)
    assert all(d.signature_ok and d.answer == "ok" for d in deliveries)
    by_key: dict[str | None, list[bytes]] = defaultdict(list)
    for delivery in deliveries:
        by_key[delivery.key].append(delivery.body)
    assert set(by_key) == {item.engagement_id for item in items}  # none lost
    redelivered = {key for key, bodies in by_key.items() if len(bodies) > 1}
    assert redelivered <= in_flight_at_kills  # only what a kill left in flight ...
    assert all(len(set(by_key[key])) == 1 for key in redelivered)  # ... and the same request
    expected: dict[str, list[str]] = defaultdict(list)
    for item in items:
        expected[item.subscriber].append(item.engagement_id)
    seen: set[str | None] = set()
    first: dict[str, list[str]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.key not in seen:
            seen.add(delivery.key)
            first[delivery.payload["subscriber"]].append(delivery.payload["engagement_id"])
    assert first == expected  # FIFO per subscriber
