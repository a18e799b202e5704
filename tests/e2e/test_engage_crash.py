"""``journeygraph engage run`` killed mid-stream and restarted: nothing lost, nothing twice.

The whole loop runs in a child process (engine, queue and dispatcher together) over a
probe file, sending to a real webhook receiver on 127.0.0.1. It is SIGKILLed three
times at random points and restarted each time; a last run finishes the file. The
engagements the receiver saw must be exactly those of an uninterrupted dry run over
the same file, each subscriber's in the same order, and a request repeated only for
an engagement a kill caught in flight (same Idempotency-Key, same body).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.unit.engage._http_server import Receiver

REPOSITORY = Path(__file__).resolve().parents[2]
SECRET = "crash-test-secret"
SUBSCRIBERS = 30
START = datetime(2024, 5, 1, tzinfo=UTC)


def _probe_file(path: Path) -> None:
    """Each subscriber has bad hours on three metrics at different times (three incidents)."""
    rng = random.Random(7)
    lines = []
    for minute in range(0, 6 * 60, 10):
        for number in range(SUBSCRIBERS):
            bad = {
                "call_drop_rate": 60 <= minute < 120,
                "video_stalling_share": 150 <= minute < 210,
                "low_bitrate_share": 240 <= minute < 300,
            }
            event = {
                "event_id": f"p-{number}-{minute}",
                "subscriber": f"+4477009{number:05d}",
                "cell_id": f"cell-{number % 7}",
                "ts": (START + timedelta(minutes=minute + rng.random())).isoformat(),
                "weight": 6,
                "call_drop_rate": 0.8 if bad["call_drop_rate"] else 0.01,
                "call_quality_impairment": 0.02,
                "low_bitrate_share": 0.8 if bad["low_bitrate_share"] else 0.01,
                "video_stalling_share": 0.8 if bad["video_stalling_share"] else 0.01,
            }
            lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")


def _env(data_dir: Path, url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPOSITORY),
        "JOURNEYGRAPH_DATA_DIR": str(data_dir),
        "JOURNEYGRAPH_ENGAGE_QUIET_HOURS": "",
        "JOURNEYGRAPH_ENGAGE_CONTACT_CAP": "1000",
        "JOURNEYGRAPH_ENGAGE_WEBHOOK_SECRET": SECRET,
        "JOURNEYGRAPH_ENGAGE_WEBHOOK_TIMEOUT": "1.5",
    }
    if url is not None:
        env["JOURNEYGRAPH_ENGAGE_WEBHOOK_URL"] = url
    return env


def _run(data_dir: Path, probes: Path, url: str | None, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "api.cli", "engage", "run", str(probes), "--no-record"]
    return subprocess.Popen(
        [*command, "--batch-rows", "60", *extra],
        cwd=REPOSITORY,
        env=_env(data_dir, url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


@pytest.mark.slow
def test_a_killed_engage_run_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    probes = tmp_path / "probes.jsonl"
    _probe_file(probes)
    reference_file = tmp_path / "reference.jsonl"
    reference = _run(tmp_path / "reference", probes, None, "--dry-run", str(reference_file))
    assert reference.wait(timeout=120) == 0, reference.stderr.read() if reference.stderr else ""
    expected: dict[str, list[str]] = defaultdict(list)
    for line in reference_file.read_text().splitlines():
        sent = json.loads(line)
        expected[sent["subscriber"]].append(sent["engagement_id"])
    assert sum(len(ids) for ids in expected.values()) == 3 * SUBSCRIBERS

    rng = random.Random(11)
    data_dir = tmp_path / "crashed"
    with Receiver(SECRET, delay=lambda: rng.uniform(0.0, 0.01)) as receiver:
        for _ in range(3):
            child = _run(data_dir, probes, receiver.url)
            target = len(receiver.deliveries) + rng.randint(5, 20)
            _wait_for(lambda n=target: len(receiver.deliveries) >= n, 60)
            time.sleep(rng.uniform(0.0, 0.005))
            child.send_signal(signal.SIGKILL)
            child.wait()
        child = _run(data_dir, probes, receiver.url)
        assert child.wait(timeout=120) == 0, child.stderr.read() if child.stderr else ""
        deliveries = list(receiver.deliveries)

    assert all(delivery.signature_ok for delivery in deliveries)
    by_key: dict[str | None, set[bytes]] = defaultdict(set)
    for delivery in deliveries:
        by_key[delivery.key].add(delivery.body)
    assert set(by_key) == {key for ids in expected.values() for key in ids}  # none lost
    assert all(len(bodies) == 1 for bodies in by_key.values())  # a repeat is the same request
    seen: set[str | None] = set()
    first: dict[str, list[str]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.key not in seen:
            seen.add(delivery.key)
            first[delivery.payload["subscriber"]].append(delivery.payload["engagement_id"])
    assert first == expected  # each subscriber's engagements in order
    repeats = len(deliveries) - len(by_key)
    assert repeats <= 3 * 4  # at most the sends in flight at each kill (4 workers)
