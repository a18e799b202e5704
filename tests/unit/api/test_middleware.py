"""The body limit: too large or too slow bodies are refused before a route reads them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from api.middleware import BodyLimit


class Recorder:
    """An ASGI app that records the body it read."""

    def __init__(self) -> None:
        self.body: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.body = b"".join(chunks)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(
    limit: BodyLimit, chunks: list[bytes], headers: list[tuple[bytes, bytes]], pause: float = 0
) -> tuple[int, dict[str, Any] | None]:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    pending = list(chunks)
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(pause)
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(limit(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    status = sent[0]["status"]
    return status, (json.loads(body) if status != 200 else None)


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    app = Recorder()
    status, _ = call(BodyLimit(app, 100, 5), [b"a" * 60, b"b" * 40], [])
    assert status == 200 and app.body == b"a" * 60 + b"b" * 40


def test_too_large_bodies_are_413_declared_or_not() -> None:
    app = Recorder()
    status, error = call(BodyLimit(app, 100, 5), [b"x"], [(b"content-length", b"101")])
    assert status == 413 and error is not None
    assert error["error"]["code"] == "payload_too_large" and "100-byte limit" in str(error)
    status, _ = call(BodyLimit(app, 100, 5), [b"a" * 60, b"b" * 60], [])
    assert status == 413 and app.body is None
    status, _ = call(BodyLimit(app, 100, 5), [b"x"], [(b"content-length", b"-1")])
    assert status == 413


def test_a_slow_client_gets_408_not_a_hang() -> None:
    app = Recorder()
    status, error = call(BodyLimit(app, 100, 0.05), [b"a", b"b", b"c"], [], pause=0.03)
    assert status == 408 and error is not None
    assert error["error"]["code"] == "request_timeout" and app.body is None
