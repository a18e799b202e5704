"""A real webhook receiver for the channel and dispatcher tests.

``Receiver`` runs ``http.server`` on 127.0.0.1 (a random free port) in a thread. It
checks each request's signature with ``engage.channels.verify_signature`` (401 when
it fails), records every request it gets, and answers as it is told: ``ok`` (200),
a status code (500, 400, 429 ...), or ``hang`` (say nothing until ``hang_seconds``
pass or the receiver closes, past the client's timeout). ``answer_for(payload)``
decides first (e.g. by subscriber); then ``script(...)`` queues answers for the
next requests; ``default`` answers the rest. A request cut off before its body
is complete (its sender was killed) is not a delivery; ``broken`` counts them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from engage.channels import IDEMPOTENCY_HEADER, InvalidSignature, verify_signature

Answer = int | str
"""An HTTP status to answer with, "ok" (200) or "hang"."""


@dataclass(frozen=True)
class Delivery:
    """One request the receiver got."""

    key: str | None
    body: bytes
    headers: dict[str, str]
    """Lower-cased names."""
    signature_ok: bool
    answer: Answer
    received: float = field(default_factory=time.monotonic)

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Receiver:
    """A webhook receiver that records requests and fails, hangs or recovers on request."""

    def __init__(
        self,
        secret: str,
        default: Answer = "ok",
        hang_seconds: float = 5.0,
        delay: Callable[[], float] | None = None,
        answer_for: Callable[[dict[str, Any]], Answer | None] | None = None,
    ) -> None:
        self.secret = secret
        self.default = default
        self.answer_for = answer_for
        """Picks the answer from the payload (None: the script, then ``default``)."""
        self.hang_seconds = hang_seconds
        self.delay = delay
        """Seconds to wait after recording a request before answering it (None: 0)."""
        self.deliveries: list[Delivery] = []
        self.broken = 0
        """Requests cut off before their body was complete (not deliveries)."""
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/engagement"

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers``, in order, then with ``default``."""
        with self._lock:
            self._script.extend(answers)

    def keys(self) -> list[str | None]:
        """The Idempotency-Key of every request, in arrival order."""
        with self._lock:
            return [delivery.key for delivery in self.deliveries]

    def accepted(self) -> list[Delivery]:
        """Requests answered 200 with a valid signature, in arrival order."""
        with self._lock:
            return [d for d in self.deliveries if d.answer == "ok" and d.signature_ok]

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _take(self, body: bytes, headers: dict[str, str]) -> Delivery:
        try:
            verify_signature(body, headers, self.secret)
            signature_ok = True
        except InvalidSignature:
            signature_ok = False
        chosen = self.answer_for(json.loads(body)) if self.answer_for is not None else None
        with self._lock:
            answer: Answer
            if chosen is not None:
                answer = chosen
            elif self._script:
                answer = self._script.popleft()
            else:
                answer = self.default
            if not signature_ok:
                answer = 401
            delivery = Delivery(
                key=headers.get(IDEMPOTENCY_HEADER.lower()),
                body=body,
                headers=headers,
                signature_ok=signature_ok,
                answer=answer,
            )
            self.deliveries.append(delivery)
        return delivery


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = self.rfile.read(length)
            except OSError:
                body = b""
            if len(body) < length:  # the sender died mid-request: nothing was delivered
                with receiver._lock:
                    receiver.broken += 1
                self.close_connection = True
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            delivery = receiver._take(body, headers)
            if receiver.delay is not None:
                time.sleep(receiver.delay())
            if delivery.answer == "hang":
                receiver._closing.wait(receiver.hang_seconds)
                self.close_connection = True
                return
            status = 200 if delivery.answer == "ok" else int(delivery.answer)
            reply = json.dumps({"status": status}).encode()
            try:
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "7")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except OSError:
                self.close_connection = True  # the client gave up (a timeout) or died

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet: the tests assert on ``deliveries``."""

    return Handler


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/engagement"
