"""How uvicorn reads requests: a deadline on the request line and headers.

uvicorn times out idle keep-alive connections but not a client that opens a
connection, or starts a request, and then trickles its headers (slowloris): such a
connection would be held forever. ``HeaderDeadline`` answers it with 408 and closes
it once ``JOURNEYGRAPH_BODY_TIMEOUT`` seconds pass without complete headers; the body
has the same limit, enforced by ``api.middleware.BodyLimit``.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.errors import error_body
from api.settings import get_settings


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request's headers."""

    timeout: float | None = None
    """Seconds; None reads ``body_timeout`` from the settings."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        seconds = self.timeout if self.timeout is not None else get_settings().body_timeout
        self._deadline = self.loop.call_later(seconds, self._too_slow, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: its own limits apply
        body = orjson.dumps(
            error_body(
                "request_timeout",
                f"the request headers did not arrive within {seconds:g} s",
                {"timeout_seconds": seconds},
            )
        )
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()
