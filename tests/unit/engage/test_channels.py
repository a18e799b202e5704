"""Channels against a real local HTTP server: signed POSTs, failures, timeouts, recovery."""

from __future__ import annotations

import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from engage.channels import (
    ChannelError,
    FileChannel,
    InvalidSignature,
    WebhookChannel,
    sign,
    verify_signature,
)
from engage.model import Engagement, Incident, dedupe_key, engagement_id
from graph.errors import InvalidInput
from tests.unit.engage._http_server import Receiver, closed_port_url

SECRET = "s3cret-shared-with-the-sms-platform"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def engagement(subscriber: str = "+447700900001", at: datetime = T0) -> Engagement:
    key = dedupe_key(subscriber, "video_stalling")
    incident = Incident(
        subscriber, "video_stalling", "video_stalling_share", 0.3, 0.11, 900, at, ("cell-7",)
    )
    return Engagement(engagement_id(key, at), subscriber, "video_stalling", at, key, (incident,))


@pytest.fixture
def receiver() -> Any:
    with Receiver(SECRET, hang_seconds=3.0) as running:
        yield running


@pytest.fixture
def webhook(receiver: Receiver) -> Any:
    with WebhookChannel(receiver.url, SECRET, timeout=0.5) as channel:
        yield channel


def test_the_webhook_posts_the_payload_signed(receiver: Receiver, webhook: WebhookChannel) -> None:
    item = engagement()
    webhook.send(item)
    (delivery,) = receiver.deliveries
    assert delivery.signature_ok and delivery.answer == "ok"
    assert delivery.key == item.engagement_id
    assert delivery.payload == json.loads(json.dumps(item.payload()))
    assert delivery.headers["content-type"] == "application/json"


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    seen: list[httpx.Request] = []

    def platform(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    moment = datetime(2024, 3, 1, 9, 0, 5, tzinfo=UTC)
    client = httpx.Client(transport=httpx.MockTransport(platform))
    channel = WebhookChannel(
        "https://sms.example/hook", SECRET, client=client, clock=lambda: moment
    )
    channel.send(engagement())
    (request,) = seen
    timestamp = str(int(moment.timestamp()))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.content, "sha256")
    assert request.headers["X-Journeygraph-Timestamp"] == timestamp
    assert request.headers["X-Journeygraph-Signature"] == f"sha256={expected.hexdigest()}"
    assert request.headers["Idempotency-Key"] == engagement().engagement_id
    channel.close()
    assert not client.is_closed  # the caller's client stays the caller's


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_outages_and_rate_limits_are_retryable(
    receiver: Receiver, webhook: WebhookChannel, status: int
) -> None:
    receiver.script(status)
    with pytest.raises(ChannelError) as raised:
        webhook.send(engagement())
    assert raised.value.retryable
    assert str(status) in str(raised.value)
    assert raised.value.details["status"] == status
    assert raised.value.retry_after == (timedelta(seconds=7) if status == 429 else None)


@pytest.mark.parametrize("status", [400, 404, 410, 422])
def test_other_client_errors_are_not_retryable(
    receiver: Receiver, webhook: WebhookChannel, status: int
) -> None:
    receiver.script(status)
    with pytest.raises(ChannelError) as raised:
        webhook.send(engagement())
    assert not raised.value.retryable


def test_a_wrong_secret_is_refused_by_the_receiver(receiver: Receiver) -> None:
    with WebhookChannel(receiver.url, "not-the-secret", timeout=0.5) as channel:
        with pytest.raises(ChannelError, match="401") as raised:
            channel.send(engagement())
    assert not raised.value.retryable
    assert not receiver.deliveries[0].signature_ok


def test_a_receiver_that_hangs_times_out_retryably(
    receiver: Receiver, webhook: WebhookChannel
) -> None:
    receiver.script("hang")
    with pytest.raises(ChannelError, match="within 0.5 s") as raised:
        webhook.send(engagement())
    assert raised.value.retryable


def test_nothing_listening_is_retryable() -> None:
    with WebhookChannel(closed_port_url(), SECRET, timeout=0.5) as channel:
        with pytest.raises(ChannelError, match="cannot reach") as raised:
            channel.send(engagement())
    assert raised.value.retryable


def test_the_channel_recovers_with_the_receiver(
    receiver: Receiver, webhook: WebhookChannel
) -> None:
    receiver.script(500, "hang", 503)
    item = engagement()
    outcomes = []
    for _ in range(4):
        try:
            webhook.send(item)
            outcomes.append("ok")
        except ChannelError as error:
            outcomes.append("retry" if error.retryable else "dead")
    assert outcomes == ["retry", "retry", "retry", "ok"]
    assert set(receiver.keys()) == {item.engagement_id}  # one key for every try
    assert len({delivery.body for delivery in receiver.deliveries}) == 1


@pytest.mark.parametrize(
    ("url", "secret", "timeout"),
    [("ftp://sms.example", SECRET, 1.0), ("https://sms.example", "", 1.0), ("http://x", "k", 0)],
)
def test_a_misconfigured_webhook_is_refused(url: str, secret: str, timeout: float) -> None:
    with pytest.raises(InvalidInput):
        WebhookChannel(url, secret, timeout=timeout)


# --- verify_signature -------------------------------------------------------------------


def signed(body: bytes, at: datetime, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(at.timestamp()))
    return {
        "X-Journeygraph-Timestamp": timestamp,
        "X-Journeygraph-Signature": sign(secret, timestamp, body),
    }


def test_verify_signature_accepts_a_fresh_signed_request() -> None:
    body = b'{"engagement_id": "eng-1"}'
    verify_signature(body, signed(body, T0), SECRET, now=T0 + timedelta(minutes=4))
    lowered = {key.lower(): value for key, value in signed(body, T0).items()}
    verify_signature(body, lowered, SECRET, now=T0)


@pytest.mark.parametrize(
    ("body", "headers", "now", "problem"),
    [
        (b'{"engagement_id": "eng-2"}', signed(b'{"engagement_id": "eng-1"}', T0), T0, "match"),
        (b"{}", signed(b"{}", T0, secret="other"), T0, "match"),
        (b"{}", signed(b"{}", T0), T0 + timedelta(minutes=6), "tolerance"),
        (b"{}", signed(b"{}", T0), T0 - timedelta(minutes=6), "tolerance"),
        (b"{}", {"X-Journeygraph-Signature": "sha256=00"}, T0, "no X-Journeygraph-Timestamp"),
        (b"{}", {**signed(b"{}", T0), "X-Journeygraph-Timestamp": "yesterday"}, T0, "unix"),
    ],
)
def test_verify_signature_refuses(
    body: bytes, headers: dict[str, str], now: datetime, problem: str
) -> None:
    with pytest.raises(InvalidSignature, match=problem):
        verify_signature(body, headers, SECRET, now=now)


# --- the file channel -------------------------------------------------------------------


def test_the_file_channel_appends_one_json_line_each(tmp_path: Any) -> None:
    path = tmp_path / "dry-run" / "engagements.jsonl"
    items = [engagement(f"+4477009{n:05d}") for n in range(200)]
    with FileChannel(path) as channel:
        threads = [
            threading.Thread(target=lambda part=part: [channel.send(i) for i in part])
            for part in (items[:100], items[100:])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with FileChannel(path) as channel:  # a later run appends
        channel.send(items[0])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 201
    expected = [json.loads(json.dumps(item.payload())) for item in items]
    assert sorted(lines[:200], key=lambda line: line["subscriber"]) == expected
    with pytest.raises(ChannelError, match="closed"):
        channel.send(items[0])
    channel.close()
