"""Channels: how an engagement reaches the subscriber's SMS, push or outbound-call platform.

A ``Channel`` sends one engagement (``Engagement.payload()``) or raises
``ChannelError`` saying whether trying again later may help. The dispatcher turns
that into an ack, a retry with backoff, or a dead letter.

``WebhookChannel`` POSTs the payload as JSON to the operator's platform::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <engagement_id>
    X-Journeygraph-Timestamp: <unix seconds>
    X-Journeygraph-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>

Delivery is *at least once*: a sender killed after the receiver got the request but
before the queue recorded the ack sends it again, with the same ``Idempotency-Key``
(the engagement id) and the same body. A receiver must treat a key it has seen as
done (answer 2xx, do nothing). It should check the signature with
``verify_signature``, which also refuses a timestamp outside the tolerance, so a
captured request cannot be replayed later.

Outcomes: 2xx is delivered; 408, 429, 5xx, timeouts and connection errors are
retryable; any other answer (4xx, or a redirect, which is not followed) is not.

``FileChannel`` appends one JSON line per engagement to a file (dry runs).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import httpx
import orjson

from engage.model import Engagement
from graph.errors import InvalidInput, JourneyGraphError

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Channel",
    "ChannelError",
    "FileChannel",
    "InvalidSignature",
    "WebhookChannel",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "X-Journeygraph-Signature"
TIMESTAMP_HEADER: Final = "X-Journeygraph-Timestamp"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
_RETRYABLE_STATUS: Final = frozenset({408, 429})
_MAX_REPLY: Final = 300
"""Characters of a receiver's reply kept in the error (and the dead-letter queue)."""


class ChannelError(JourneyGraphError):
    """A channel could not deliver an engagement."""

    code = "channel_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: timedelta | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.retryable = retryable
        """Whether sending again later may succeed (an outage, a timeout, a rate limit)."""
        self.retry_after = retry_after
        """How long the receiver asked us to wait (``Retry-After``), if it said."""


class InvalidSignature(InvalidInput):
    """A webhook request whose signature or timestamp does not check out."""

    code = "invalid_signature"


class Channel(ABC):
    """Where engagements go. ``send`` may be called from several threads at once."""

    name: str
    """What the channel is called in counters and logs."""
    timeout: float | None = None
    """The longest one send may take, in seconds (None: no limit is known)."""

    @abstractmethod
    def send(self, engagement: Engagement) -> None:
        """Deliver ``engagement`` or raise ``ChannelError``."""

    def close(self) -> None:  # noqa: B027 - a channel may hold nothing to release
        """Release what the channel holds; closing twice is harmless."""

    def __enter__(self) -> Channel:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the HMAC of ``<timestamp>.<body>``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    tolerance: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> None:
    """Check a webhook request as a receiver; raise ``InvalidSignature`` if it fails.

    ``body`` is the raw request body exactly as received (parse it only after this
    check), ``headers`` the request headers (any capitalisation), ``secret`` the
    shared secret. The timestamp must be within ``tolerance`` of ``now`` (the
    current time) either way, which refuses a captured request replayed later.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    signature = lowered.get(SIGNATURE_HEADER.lower())
    if timestamp is None or signature is None:
        raise InvalidSignature(
            f"the request has no {TIMESTAMP_HEADER} or no {SIGNATURE_HEADER} header"
        )
    try:
        sent = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError) as error:
        raise InvalidSignature(
            f"{TIMESTAMP_HEADER} {timestamp[:40]!r} is not unix seconds"
        ) from error
    skew = abs((now or datetime.now(UTC)) - sent)
    if skew > tolerance:
        raise InvalidSignature(
            f"{TIMESTAMP_HEADER} is {skew.total_seconds():.0f} s away from now, more than "
            f"the tolerance of {tolerance.total_seconds():.0f} s (a stale or replayed request)"
        )
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise InvalidSignature(
            f"{SIGNATURE_HEADER} does not match the body (wrong secret, or the body changed)"
        )


class WebhookChannel(Channel):
    """POSTs each engagement, signed, to an operator's HTTP endpoint (module docstring)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"webhook url {url!r} is not an http:// or https:// URL")
        if not secret:
            raise InvalidInput("the webhook secret is empty; receivers could not verify requests")
        if timeout <= 0:
            raise InvalidInput(f"webhook timeout must be positive, got {timeout}")
        self.url = url
        self.timeout = timeout
        self.clock = clock
        self._secret = secret
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def send(self, engagement: Engagement) -> None:
        """POST the engagement; raise ``ChannelError`` unless the receiver answers 2xx."""
        body = orjson.dumps(engagement.payload())
        timestamp = str(int(self.clock().timestamp()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: engagement.engagement_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        where = {"engagement_id": engagement.engagement_id, "url": self.url}
        try:
            response = self._client.post(
                self.url, content=body, headers=headers, timeout=self.timeout
            )
        except httpx.TimeoutException as error:
            raise ChannelError(
                f"no answer from {self.url} within {self.timeout} s ({type(error).__name__})",
                retryable=True,
                details=where,
            ) from error
        except httpx.TransportError as error:
            raise ChannelError(
                f"cannot reach {self.url}: {type(error).__name__}: {error}",
                retryable=True,
                details=where,
            ) from error
        status = response.status_code
        if 200 <= status < 300:
            return
        retryable = status >= 500 or status in _RETRYABLE_STATUS
        reply = response.text[:_MAX_REPLY].strip()
        raise ChannelError(
            f"{self.url} answered {status} {response.reason_phrase}"
            + (f": {reply}" if reply else ""),
            retryable=retryable,
            retry_after=_retry_after(response) if retryable else None,
            details={**where, "status": status},
        )

    def close(self) -> None:
        """Close the HTTP client if the channel made it."""
        if self._owns_client:
            self._client.close()


class FileChannel(Channel):
    """Appends each engagement's payload as one JSON line (dry runs), flushed and fsynced."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = self.path.open("ab")
        self._lock = threading.Lock()

    def send(self, engagement: Engagement) -> None:
        """Append the payload; durable on disk when this returns."""
        line = orjson.dumps(engagement.payload()) + b"\n"
        with self._lock:
            if self._file.closed:
                raise ChannelError(f"the file channel {self.path} is closed", retryable=True)
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file; closing twice is harmless."""
        with self._lock:
            if not self._file.closed:
                self._file.close()


def _retry_after(response: httpx.Response) -> timedelta | None:
    """The wait a 429 or 503 asked for, when given in seconds (dates are ignored)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value.isdigit():
        return None
    return timedelta(seconds=min(int(value), 86_400))
