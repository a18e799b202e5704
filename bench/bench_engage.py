"""Engagement loop benchmark: probe event to engagement sent, end to end, on 127.0.0.1.

    .venv/bin/python -m bench.bench_engage [--rate 10000] [--seconds 15] [--incidents 50]
        [--runs 3]

Each run starts ``journeygraph engage run`` in a child process reading JSON lines on
stdin and sending to a webhook receiver in this process (``http.server`` with
TCP_NODELAY, answering 200 at once). Once a warm-up engagement has arrived (the child is
up), this process writes probe events at ``--rate`` events/s for ``--seconds``;
``--incidents`` of them a second are the first event of a new subscriber with a dropped-
call share of 0.9 over 6 calls, which crosses the default call-drop rule at once. Every
probe line is stamped with its wall-clock write time (kept here, by event id); an
engagement names its probe (the incident's newest probe id), so latency = receiver's
arrival time - the probe's write time. It covers the stdin pipe, micro-batching (50 ms),
evaluation, the batch's commit, the dispatcher's claim, the HTTP POST and the receiver.
Quiet hours and the contact cap are off; engagements are recorded as touchpoints (graph
and lake) only with ``--record``. Reported per run: p50/p99/max
latency, engagements received, the events/s the child kept up with; the median run's
numbers first.

The target (issue 7) is p99 under 1 s in the embedded default. Results are JSON on
stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        arrived = time.time()
        server: _Receiver = self.server  # type: ignore[assignment]
        with server.lock:
            server.arrivals.append((arrived, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


def _run(rate: int, seconds: float, incidents: int, folder: Path, record: bool) -> dict[str, Any]:
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPOSITORY),
        "JOURNEYGRAPH_DATA_DIR": str(folder),
        "JOURNEYGRAPH_ENGAGE_QUIET_HOURS": "",
        "JOURNEYGRAPH_ENGAGE_CONTACT_CAP": "1000000",
        "JOURNEYGRAPH_ENGAGE_WEBHOOK_URL": url,
        "JOURNEYGRAPH_ENGAGE_WEBHOOK_SECRET": SECRET,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "engage", "run", "--json"]
        + ([] if record else ["--no-record"]),
        cwd=REPOSITORY,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdin is not None and child.stdout is not None
    written: dict[str, float] = {}
    start = datetime(2024, 5, 1, tzinfo=UTC)
    # One engagement first, so the timed part starts with the child up and warm.
    warm_up = {"event_id": "warm-up", "subscriber": "+447999999999", "cell_id": "cell-0",
               "ts": start.isoformat(), "weight": 6, "call_drop_rate": 0.9}  # fmt: skip
    child.stdin.write(json.dumps(warm_up).encode() + b"\n")
    child.stdin.flush()
    while not receiver.arrivals:
        assert child.poll() is None, "engage run ended before it sent anything"
        time.sleep(0.01)
    receiver.arrivals.clear()
    tick = 0.01
    per_tick, planted_per_tick = rate * tick, incidents * tick
    sent = planted = 0.0
    event = 0
    began = time.time()
    while (now := time.time()) < began + seconds:
        due = (now - began) / tick
        while sent < due * per_tick:
            sent += 1
            event += 1
            bad = planted < due * planted_per_tick
            if bad:
                planted += 1
                subscriber = f"+4478{int(planted):08d}"
            else:
                subscriber = f"+4477{event % 50_000:08d}"
            line = {
                "event_id": f"p{event}",
                "subscriber": subscriber,
                "cell_id": f"cell-{event % 997}",
                "ts": (start + timedelta(milliseconds=event)).isoformat(),
                "weight": 6,
                "call_drop_rate": 0.9 if bad else 0.01,
                "low_bitrate_share": 0.02,
            }
            written[line["event_id"]] = time.time()
            child.stdin.write(json.dumps(line).encode() + b"\n")
        child.stdin.flush()
        time.sleep(tick)
    child.stdin.close()
    summary = json.loads(child.stdout.read() or b"{}")
    child.wait()
    receiver.shutdown()
    latencies = sorted(
        arrived - written[payload["incidents"][0]["probe_ids"][0]]
        for arrived, payload in receiver.arrivals
    )
    fed = event / seconds

    def quantile(q: float) -> float:
        return round(latencies[max(int(q * len(latencies)) - 1, 0)], 4) if latencies else -1.0

    return {
        "events_fed": event,
        "events_per_second_fed": round(fed),
        "planted": int(planted),
        "received": len(latencies),
        "p50_seconds": quantile(0.5),
        "p99_seconds": quantile(0.99),
        "max_seconds": round(latencies[-1], 4) if latencies else -1.0,
        "child_seconds": summary.get("seconds"),
    }


def main() -> None:
    """Run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--record", action="store_true", help="record sent engagements as touchpoints too"
    )
    arguments = parser.parse_args()
    runs = []
    for number in range(arguments.runs):
        with tempfile.TemporaryDirectory(prefix="jg-bench-engage-") as folder:
            runs.append(
                _run(
                    arguments.rate,
                    arguments.seconds,
                    arguments.incidents,
                    Path(folder),
                    arguments.record,
                )
            )
        print(f"run {number + 1}: {runs[-1]}", file=sys.stderr)
    median = sorted(runs, key=lambda run: run["p99_seconds"])[len(runs) // 2]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
                f"load {os.getloadavg()[0]:.1f}",
                "rate": arguments.rate,
                "incidents_per_second": arguments.incidents,
                "recorded_as_touchpoints": arguments.record,
                "median_run": median,
                "p99_seconds_all_runs": [run["p99_seconds"] for run in runs],
                "p50_seconds_median": statistics.median(run["p50_seconds"] for run in runs),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
