"""The benchmark load generator against a tiny local HTTP server: counts and latencies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import Request, closed_loop, open_loop, percentiles, run


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops the warm-up's burst of connections

    def __init__(self, handler: type[BaseHTTPRequestHandler] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), handler or _Handler)
        self.served: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stall_once = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        with self.server.lock:
            self.server.served[path] = self.server.served.get(path, 0) + 1
        if path == "/slow":
            time.sleep(0.02)
        if path == "/hold":
            time.sleep(0.2)
        if path == "/stall" and self.server.stall_once.is_set():
            self.server.stall_once.clear()
            time.sleep(0.3)
        body = b'{"ok": true}' if path != "/missing" else b'{"error": "not found"}'
        self.send_response(200 if path != "/missing" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def _port(server: _Server) -> int:
    return int(server.server_address[1])


def test_open_loop_sends_the_scheduled_count_at_the_rate(server: _Server) -> None:
    result = run(open_loop("127.0.0.1", _port(server), lambda _: Request("GET", "/ok"), 200, 1.0))
    assert result.sent == result.completed == server.served["/ok"] == 200
    assert result.statuses == {200: 200}
    assert not result.errors
    assert 150 <= result.achieved_rate <= 201
    summary = result.as_dict()
    assert summary["latency_ms"]["p50"] < 50


def test_latency_is_measured_and_statuses_are_counted(server: _Server) -> None:
    paths = ["/slow", "/missing"]
    result = run(
        open_loop(
            "127.0.0.1", _port(server), lambda i: Request("POST", paths[i % 2], b"{}"), 50, 1.0
        )
    )
    assert result.statuses == {200: 25, 404: 25}
    assert result.ok == 25
    slow = sorted(result.latencies)[-25:]
    assert min(slow) >= 0.02  # the server's 20 ms are inside every slow request's latency


def test_a_stall_is_charged_to_every_request_scheduled_behind_it(server: _Server) -> None:
    server.stall_once.set()
    result = run(
        open_loop(
            "127.0.0.1",
            _port(server),
            lambda _: Request("GET", "/stall"),
            100,
            1.0,
            max_connections=1,
            warm_connections=1,
        )
    )
    assert result.completed == 100
    # One 300 ms stall on the only connection: the ~30 requests scheduled during it
    # waited, and each is timed from its schedule, not from when it could be sent.
    assert sum(latency > 0.1 for latency in result.latencies) >= 15
    assert result.as_dict()["latency_ms"]["max"] >= 290


def test_closed_loop_keeps_each_connection_busy(server: _Server) -> None:
    result = run(closed_loop("127.0.0.1", _port(server), lambda _: Request("GET", "/slow"), 2, 0.5))
    assert result.completed == server.served["/slow"]
    assert 20 <= result.completed <= 52  # two connections, 20 ms a request, for 0.5 s
    assert not result.errors


def test_a_refused_connection_is_an_error_not_a_crash() -> None:
    holder = _Server()  # bind a port, then close it: nothing listens there
    port = _port(holder)
    holder.server_close()
    with pytest.raises(OSError):  # warming up fails fast: the server is not there
        run(open_loop("127.0.0.1", port, lambda _: Request("GET", "/"), 10, 0.2))
    result = run(
        open_loop("127.0.0.1", port, lambda _: Request("GET", "/"), 10, 0.2, warm_connections=0)
    )
    assert result.sent == 2
    assert result.completed == 0
    assert result.errors == {"ConnectionRefusedError": 2}


class _ShortKeepAlive(_Handler):
    timeout = 0.3  # closes a connection idle this long, as uvicorn does after 5 s


def test_connections_idle_past_the_keep_alive_are_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bench.load.KEEP_ALIVE_S", 0.2)
    running = _Server(_ShortKeepAlive)
    threading.Thread(target=running.serve_forever, daemon=True).start()

    def requests(number: int) -> Request:
        # A burst of slow requests opens several connections; quick ones then use only
        # the top of the stack, so the rest idle past the server's 0.3 s; a second
        # burst needs them again.
        return Request("GET", "/hold" if number < 8 or 40 <= number < 48 else "/ok")

    try:
        result = run(open_loop("127.0.0.1", _port(running), requests, 40, 1.5, warm_connections=1))
    finally:
        running.shutdown()
        running.server_close()
    assert result.completed == 60
    assert not result.errors


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    assert percentiles([i / 1000 for i in range(1, 101)]) == {
        "p50": 51.0,
        "p90": 91.0,
        "p99": 100.0,
        "max": 100.0,
    }
    assert percentiles([])["p99"] is None
