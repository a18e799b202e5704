"""ASGI middleware: request ids, access logs and metrics; body size and time limits.

Both are plain ASGI (no ``BaseHTTPMiddleware``): they add a few microseconds a
request, which matters at the thousands of requests a second the widgets see.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any, Final

from prometheus_client import Counter, Histogram
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

request_id: ContextVar[str] = ContextVar("request_id", default="-")
"""The id of the request being served (``-`` outside one); log records carry it."""

ACCESS_LOG: Final = logging.getLogger("journeygraph.access")
_REQUEST_ID_FORMAT: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REQUESTS: Final = Counter(
    "journeygraph_http_requests",
    "HTTP requests served, by method, route template and status",
    ["method", "route", "status"],
)
LATENCY: Final = Histogram(
    "journeygraph_http_request_duration_seconds",
    "Time to serve an HTTP request, by method and route template",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def install_request_id_logging() -> None:
    """Give every log record a ``request_id`` attribute, for formats that show it."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "journeygraph", False):
        return

    def with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    with_request_id.journeygraph = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(with_request_id)


class RequestContext:
    """Names each request (``X-Request-ID``, taken from the client when well formed), logs
    one access line with it and the caller's key, and counts it in the metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID_FORMAT.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            template = _route_template(scope)
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(elapsed)
            state = scope.get("state") or {}
            principal = state.get("principal")
            caller = principal.key.id if principal is not None else "-"
            ACCESS_LOG.info(
                "request_id=%s %s %s %d %.1fms key=%s",
                rid,
                method,
                scope["path"],
                status,
                elapsed * 1000,
                caller,
            )
            request_id.reset(token)


class BodyLimit:
    """Refuses bodies over ``max_bytes`` (413) and clients that send them slower than
    ``timeout`` seconds in all (408), before any route reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send, 413, declared)
            return
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                await self._refuse(scope, receive, send, 408, None)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, 413, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, declared: str | None
    ) -> None:
        if status == 413:
            body = error_body(
                "payload_too_large",
                f"the request body is over the {self.max_bytes:,}-byte limit",
                {"limit_bytes": self.max_bytes, "content_length": declared},
            )
        else:
            body = error_body(
                "request_timeout",
                f"the request body did not arrive within {self.timeout:g} s",
                {"timeout_seconds": self.timeout},
            )
        response = JSONResponse(body, status_code=status, headers={"Connection": "close"})
        await response(scope, receive, send)


def _route_template(scope: Scope) -> str:
    """The matched route's path with its parameters as ``{name}`` (a metrics label: the raw
    path would make one time series per customer)."""
    if scope.get("endpoint") is None:
        return "<unmatched>"
    rest, tail = scope["path"], ""
    for name, value in reversed(list(scope.get("path_params", {}).items())):
        head, found, after = rest.rpartition(f"/{value}")
        if not found:
            return "<unmatched>"
        rest, tail = head, f"/{{{name}}}{after}{tail}"
    return str(rest + tail)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
