"""The HTTP service under load at 1M customers (issue 6), uvicorn with 2 workers.

    .venv/bin/python -m bench.bench_service [--customers 1000000] [--runs 3]
        [--duration 20] [--folder /tmp/jg-bench-1m] [--frequency-via widget|api]
        [--only healthz customer frequency events] [--profile DIR]

The world is ``bench.service_world`` (built once per folder, then reused). The
service runs as ``uvicorn api.app:create_app --factory --workers 2`` in a process
of its own on 127.0.0.1; the load comes from this process (``bench.load``), so the
client's CPU is shared with the server's, as it is on one machine. Scenarios, each
``--runs`` times for ``--duration`` seconds, medians reported:

* ``healthz``: ``GET /healthz`` as fast as it is answered, the framework's floor
  (wrk when ``/usr/bin/wrk`` is there, and this script's closed loop beside it);
* ``customer``: ``GET /api/v1/customers/{id}`` of random customers at 500/s, open
  loop (target p99 under 20 ms);
* ``frequency``: a frequency query the widgets ask (the Sankey's data, or
  ``POST /api/v1/journeys/frequency`` with ``--frequency-via api``) at 1,000/s, open
  loop, after each worker answered it once (cached);
* ``events``: ``POST /api/v1/events`` with 1,000 canonical events a request, closed
  loop, with 2 workers and with 1 (target 20,000 events/s). 80% of the events name a
  known customer's MSISDN, 20% a new one. They are written into the world, so this
  runs last and the folder grows a little with each run.

Results are JSON on stdout (and ``--out``); a table goes to stderr. ``--profile DIR``
records each worker with py-spy during the first run of a scenario (flame graphs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from bench.load import LoadResult, Request, RequestSource, closed_loop, open_loop, run
from bench.service_world import (
    DEFAULT_FOLDER,
    WorldSpec,
    build_world,
    customer_ids,
    msisdns,
    print_summary,
)
from bench.synthetic_lake import VOCABULARY

HOST: Final = "127.0.0.1"
TARGETS: Final = {
    "customer": "p99 < 20 ms at 500/s",
    "frequency": "1,000/s (p99 not stated)",
    "events": "20,000 events/s",
}
ANCHORS: Final = ("login", "bill_shock", "page_view", "network_complaint")
EVENT_BATCH: Final = 1_000
KNOWN_SHARE: Final = 0.8
WRK: Final = Path("/usr/bin/wrk")


def create_api_key(data_dir: Path, scopes: tuple[str, ...] = ("read", "ingest")) -> str:
    """A fresh API key for the benchmark, made the way an operator makes one (the CLI)."""
    cli = str(Path(sys.executable).with_name("journeygraph"))
    command = [cli, "keys", "create", "bench-service", "--json"]
    for scope in scopes:
        command += ["--scope", scope]
    env = {**os.environ, "JOURNEYGRAPH_DATA_DIR": str(data_dir)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    key: str = json.loads(done.stdout)["key"]
    return key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes, from /proc (ticks)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Service:
    """A uvicorn process over a data folder: its port, its workers' pids."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, started_s: float) -> None:
        self.process = process
        self.port = port
        self.started_s = started_s

    @property
    def workers(self) -> list[int]:
        """Pids of the worker processes (the server itself with one worker)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        children = [int(pid) for pid in path.read_text().split()] if path.exists() else []
        return [pid for pid in children if _is_worker(pid)] or [self.process.pid]

    def cpu_seconds(self) -> float:
        """CPU seconds the server and its workers have used so far."""
        return _cpu_seconds([self.process.pid, *self.workers])


def _is_worker(pid: int) -> bool:
    """Whether a child of uvicorn is a worker (not multiprocessing's resource tracker)."""
    try:
        return "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return False


@contextmanager
def serve(data_dir: Path, workers: int, log: Path) -> Iterator[Service]:
    """Start uvicorn over ``data_dir`` and wait until ``/readyz`` answers; stop it after."""
    port = _free_port()
    env = {
        **os.environ,
        "JOURNEYGRAPH_DATA_DIR": str(data_dir),
        "JOURNEYGRAPH_RETRAIN_SCHEDULE": "",  # no training in the middle of a run
    }
    command = [
        sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
        "--workers", str(workers), "--host", HOST, "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    started = time.perf_counter()
    with log.open("ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
    try:
        deadline = started + 300
        while True:
            if process.poll() is not None:
                raise SystemExit(f"uvicorn exited with {process.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise SystemExit(f"uvicorn did not get ready in 300 s; see {log}")
            time.sleep(0.2)
        yield Service(process, port, time.perf_counter() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def customer_requests(spec: WorldSpec, key: str, seed: int) -> RequestSource:
    """``GET /api/v1/customers/{id}`` of customers drawn at random from the whole world."""
    drawn = np.random.default_rng(seed).integers(0, spec.customers, 200_000)
    ids = customer_ids(drawn, spec.seed)
    headers = (("X-API-Key", key),)
    return lambda i: Request("GET", f"/api/v1/customers/{ids[i % len(ids)]}", b"", headers)


def frequency_request(anchor: str, key: str, via: str) -> Request:
    """The frequency query a Sankey widget asks, through its data route or the API."""
    headers = (("X-API-Key", key),)
    if via == "widget":
        return Request("GET", f"/widgets/sankey/data?anchor={anchor}", b"", headers)
    return Request("POST", "/api/v1/journeys/frequency", orjson.dumps({"anchor": anchor}), headers)


def event_requests(spec: WorldSpec, key: str, tag: str, seed: int) -> RequestSource:
    """Batches of canonical events, 80% naming a known customer's MSISDN, 20% a new one."""
    rng = np.random.default_rng(seed)
    headers = (("X-API-Key", key),)
    now = datetime(2025, 6, 1, tzinfo=UTC)

    def batch(number: int) -> Request:
        known = rng.random(EVENT_BATCH) < KNOWN_SHARE
        people = np.where(
            known,
            rng.integers(0, spec.customers, EVENT_BATCH),
            # New subscribers: numbers past the world's, distinct per batch and run.
            spec.customers + (seed % 1000) * 10_000_000 + number * EVENT_BATCH
            + np.arange(EVENT_BATCH),
        )  # fmt: skip
        kinds = rng.integers(0, len(VOCABULARY), EVENT_BATCH).tolist()
        phones = msisdns(people.astype(np.int64), spec.seed)
        events = [
            {
                "event_id": f"bench-{tag}-{number}-{position}",
                "source": VOCABULARY[kind][1],
                "event_type": VOCABULARY[kind][0],
                "channel": VOCABULARY[kind][2],
                "ts": (now + timedelta(seconds=number * EVENT_BATCH + position)).isoformat(),
                "identifiers": {"msisdn": phone},
                "attributes": {},
            }
            for position, (kind, phone) in enumerate(zip(kinds, phones, strict=True))
        ]
        return Request("POST", "/api/v1/events", orjson.dumps({"events": events}), headers)

    return batch


def wrk_ceiling(port: int, duration: float, connections: int = 32) -> dict[str, Any] | None:
    """``GET /healthz`` through wrk (one thread, keep-alive), or None without wrk."""
    if not WRK.exists():
        return None
    done = subprocess.run(
        [str(WRK), "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency",
         f"http://{HOST}:{port}/healthz"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", done.stdout)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests_per_s": float(rate.group(1)) if rate else None,
        "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None,
        "connections": connections,
    }


def _measured(service: Service, load: Coroutine[Any, Any, LoadResult]) -> dict[str, Any]:
    """A load run with the server's CPU over it (in cores busy)."""
    cpu = service.cpu_seconds()
    result = run(load)
    summary = result.as_dict()
    summary["server_cores"] = round((service.cpu_seconds() - cpu) / result.duration_s, 2)
    summary["client_cores"] = round(result.client_cpu_s / result.duration_s, 2)
    return summary


@contextmanager
def _profiled(service: Service, folder: Path | None, name: str, seconds: float) -> Iterator[None]:
    """py-spy recording each worker for ``seconds`` (when asked for and installed)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if folder is None or not Path(spy).exists():
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    recorders = []
    for pid in service.workers:
        output = folder / f"{name}-{pid}.speedscope.json"
        command = [
            spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50", "--nonblocking",
            "-f", "speedscope", "-o", str(output),
        ]  # fmt: skip
        recorders.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.wait(timeout=seconds + 60)


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over runs, and every run as it was."""
    middle: dict[str, Any] = {
        "achieved_rate": statistics.median(run["achieved_rate"] for run in runs),
        "latency_ms": {
            name: statistics.median(run["latency_ms"][name] or 0.0 for run in runs)
            for name in ("p50", "p90", "p99", "max")
        },
        "server_cores": statistics.median(run["server_cores"] for run in runs),
        "client_cores": statistics.median(run["client_cores"] for run in runs),
        "errors": sum(sum(run["errors"].values()) for run in runs),
        "not_2xx": sum(run["completed"] - run["ok"] for run in runs),
    }
    return {"median": middle, "runs": runs}


def _say(console: Console, name: str, summary: dict[str, Any]) -> None:
    latency = summary["latency_ms"]
    console.print(
        f"  {name}: {summary['achieved_rate']:,.0f}/s p50 {latency['p50']} p99 {latency['p99']} "
        f"max {latency['max']} ms, statuses {summary['statuses']}, errors {summary['errors']}, "
        f"server {summary['server_cores']} cores"
    )


def read_scenarios(
    args: argparse.Namespace, spec: WorldSpec, key: str, console: Console, log: Path
) -> dict[str, Any]:
    """healthz, customer and frequency against one 2-worker service."""
    report: dict[str, Any] = {}
    with serve(args.folder, args.workers, log) as service:
        report["startup_s"] = round(service.started_s, 1)
        console.print(f"service up in {service.started_s:.1f} s on port {service.port}")
        port = service.port
        if "healthz" in args.only:
            healthz = Request("GET", "/healthz")
            entry: dict[str, Any] = {"wrk": [wrk_ceiling(port, args.duration)]}
            runs = []
            for _ in range(args.runs):
                load = closed_loop(HOST, port, lambda _: healthz, 16, args.duration)
                runs.append(_measured(service, load))
                _say(console, "healthz closed loop", runs[-1])
            entry["load_py_closed_loop"] = _medians(runs)
            console.print(f"  healthz wrk: {entry['wrk'][0]}")
            report["healthz"] = entry
        if "customer" in args.only:
            requests = customer_requests(spec, key, seed=11)
            run(open_loop(HOST, port, requests, 200, 2.0))  # warm both workers' caches
            runs = []
            for number in range(args.runs):
                source = customer_requests(spec, key, seed=100 + number)
                with _profiled(service, args.profile if number == 0 else None, "customer", 15):
                    runs.append(
                        _measured(service, open_loop(HOST, port, source, 500, args.duration))
                    )
                _say(console, "customer 500/s", runs[-1])
            report["customer"] = {"target": TARGETS["customer"], **_medians(runs)}
        if "frequency" in args.only:
            asked = [frequency_request(anchor, key, args.frequency_via) for anchor in ANCHORS]
            began = time.perf_counter()
            # Concurrent first asks reach both workers: each computes each anchor once.
            run(open_loop(HOST, port, lambda i: asked[i % len(asked)], 40, 1.0))
            run(closed_loop(HOST, port, lambda i: asked[i % len(asked)], 16, 2.0))
            report["frequency_first_answers_s"] = round(time.perf_counter() - began, 1)
            runs = []
            for number in range(args.runs):
                load = open_loop(HOST, port, lambda i: asked[i % len(asked)], 1000, args.duration)
                with _profiled(service, args.profile if number == 0 else None, "frequency", 15):
                    runs.append(_measured(service, load))
                _say(console, "frequency 1000/s", runs[-1])
            report["frequency"] = {
                "target": TARGETS["frequency"],
                "via": args.frequency_via,
                "request": asked[0].path,
                **_medians(runs),
            }
    return report


def events_scenario(
    args: argparse.Namespace, spec: WorldSpec, key: str, workers: int, console: Console, log: Path
) -> dict[str, Any]:
    """Closed-loop event batches against a service with ``workers`` workers."""
    with serve(args.folder, workers, log) as service:
        port = service.port
        tag = f"w{workers}-{int(time.time())}"
        began = time.perf_counter()
        # The first push makes a worker the data folder's ingest leader: it loads the
        # identity index (every identifier of the world) before answering.
        first = run(closed_loop(HOST, port, event_requests(spec, key, f"{tag}-warm", 1), 2, 1.0))
        first_push_s = time.perf_counter() - began
        runs = []
        for number in range(args.runs):
            source = event_requests(spec, key, f"{tag}-{number}", seed=500 + number)
            load = closed_loop(HOST, port, source, args.event_connections, args.duration)
            with _profiled(
                service, args.profile if number == 0 else None, f"events-w{workers}", 15
            ):
                runs.append(_measured(service, load))
            runs[-1]["events_per_s"] = round(runs[-1]["ok"] * EVENT_BATCH / runs[-1]["duration_s"])
            _say(console, f"events {workers} worker(s)", runs[-1])
        entry = _medians(runs)
        entry["median"]["events_per_s"] = statistics.median(run["events_per_s"] for run in runs)
        return {
            "workers": workers,
            "target": TARGETS["events"],
            "first_push_s": round(first_push_s, 1),
            "first_push": first.as_dict(),
            **entry,
        }


def print_table(report: dict[str, Any], console: Console) -> None:
    """The medians as one table."""
    table = Table(title=f"service at {report['customers']:,} customers ({report['machine']})")
    for column in ("scenario", "target", "rate/s", "p50 ms", "p99 ms", "max ms", "errors"):
        table.add_column(column)
    for name in ("customer", "frequency", "events_w2", "events_w1"):
        if name not in report:
            continue
        middle = report[name]["median"]
        latency = middle["latency_ms"]
        rate = f"{middle['achieved_rate']:,.0f}"
        if "events_per_s" in middle:
            rate += f" ({middle['events_per_s']:,.0f} events)"
        table.add_row(
            name, report[name]["target"], rate, str(latency["p50"]), str(latency["p99"]),
            str(latency["max"]), str(middle["errors"] + middle["not_2xx"]),
        )  # fmt: skip
    if "healthz" in report:
        closed = report["healthz"]["load_py_closed_loop"]["median"]
        wrk = report["healthz"]["wrk"][0] or {}
        table.add_row(
            "healthz (ceiling)", "-", f"{closed['achieved_rate']:,.0f} (wrk "
            f"{wrk.get('requests_per_s') or 0:,.0f})", str(closed["latency_ms"]["p50"]),
            str(closed["latency_ms"]["p99"]), str(closed["latency_ms"]["max"]), "-",
        )  # fmt: skip
    console.print(table)


def main() -> None:
    """Build or reuse the world, run the scenarios, print a table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000, help="1000000 for issue 6")
    parser.add_argument("--folder", type=Path, help=f"default {DEFAULT_FOLDER} at 1M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds a run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--frequency-via", choices=("widget", "api"), default="widget")
    parser.add_argument("--event-connections", type=int, default=4)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("healthz", "customer", "frequency", "events"),
        default=["healthz", "customer", "frequency", "events"],
    )
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs into this folder")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.folder is None:
        args.folder = (
            DEFAULT_FOLDER
            if args.customers == 1_000_000
            else Path(f"/tmp/jg-bench-{args.customers}")
        )
    console = Console(stderr=True)
    spec = WorldSpec(args.customers)
    world = build_world(args.folder, spec, console)
    print_summary(world, console)
    key = create_api_key(args.folder)
    log = args.folder / "bench-service-uvicorn.log"
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_before": [round(value, 2) for value in os.getloadavg()],
        "customers": args.customers,
        "world": {"reused": world.reused, "seconds": world.seconds, "disk_mb": world.disk_mb},
        "runs": args.runs,
        "duration_s": args.duration,
        "workers": args.workers,
    }
    if set(args.only) - {"events"}:
        report |= read_scenarios(args, spec, key, console, log)
    if "events" in args.only:
        for workers in (2, 1):
            report[f"events_w{workers}"] = events_scenario(args, spec, key, workers, console, log)
    report["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    print_table(report, console)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
