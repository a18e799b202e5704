"""API keys, embed tokens and rate limits, without the app."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.security import (
    EmbedClaims,
    KeyStore,
    RateLimiter,
    UnknownKey,
    issue_embed_token,
    verify_embed_token,
)
from graph.errors import (
    ExpiredToken,
    Forbidden,
    InvalidInput,
    InvalidToken,
    RateLimited,
    Unauthorized,
)

SECRET = "a-test-secret-that-is-long-enough"
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.db", SECRET)


def test_a_key_verifies_and_is_stored_only_hashed(keys: KeyStore, tmp_path: Path) -> None:
    record, key = keys.create("crm sync", ["read", "ingest"])
    assert key.startswith(f"jg_{record.id}_")
    assert keys.verify(key) == record
    assert record.allows("read") and record.allows("ingest") and not record.allows("admin")
    secret_part = key.rsplit("_", 1)[-1].encode()
    for stored in tmp_path.glob("keys.db*"):
        assert secret_part not in stored.read_bytes()
        assert key.encode() not in stored.read_bytes()


def test_wrong_malformed_and_revoked_keys_are_refused(keys: KeyStore) -> None:
    record, key = keys.create("agent desktop", ["read"])
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(Unauthorized, match="not valid"):
        keys.verify(forged)
    with pytest.raises(Unauthorized, match="malformed"):
        keys.verify("not-a-key")
    with pytest.raises(Unauthorized, match="not valid"):
        keys.verify(f"jg_{'0' * 12}_{'x' * 43}")
    revoked = keys.revoke(record.id)
    assert revoked.revoked_at is not None and not revoked.active
    with pytest.raises(Unauthorized, match="revoked"):
        keys.verify(key)
    with pytest.raises(UnknownKey):
        keys.revoke("0123456789ab")


def test_another_secret_cannot_verify_the_keys(keys: KeyStore, tmp_path: Path) -> None:
    _, key = keys.create("ops", ["admin"])
    with pytest.raises(Unauthorized), KeyStore(tmp_path / "keys.db", "another secret") as other:
        other.verify(key)


def test_scopes_and_names_are_checked(keys: KeyStore) -> None:
    with pytest.raises(InvalidInput, match="unknown scope 'write'"):
        keys.create("x", ["read", "write"])
    with pytest.raises(InvalidInput, match="at least one scope"):
        keys.create("x", [])
    with pytest.raises(InvalidInput, match="key name"):
        keys.create("x\n; drop", ["read"])
    admin, _ = keys.create("root", ["admin"])
    assert all(admin.allows(scope) for scope in ("read", "ingest", "admin"))
    assert [k.name for k in keys.keys()] == ["root"]


def token(params: dict[str, str] | None = None, ttl: timedelta = timedelta(hours=1)) -> str:
    signed, _ = issue_embed_token(
        SECRET, "customer-timeline", params or {"customer_id": "cust:P1"}, ttl, "abc", now=NOW
    )
    return signed


def test_a_token_carries_its_claims_until_it_expires() -> None:
    claims = verify_embed_token(SECRET, token(), now=NOW + timedelta(minutes=59))
    assert claims == EmbedClaims(
        widget="customer-timeline",
        params={"customer_id": "cust:P1"},
        expires_at=NOW + timedelta(hours=1),
        key_id="abc",
    )
    with pytest.raises(ExpiredToken, match="expired at 2026-01-01T13:00:00"):
        verify_embed_token(SECRET, token(), now=NOW + timedelta(hours=1))
    with pytest.raises(InvalidToken, match="does not match"):
        verify_embed_token("another secret", token(), now=NOW)
    with pytest.raises(InvalidInput):
        token(ttl=timedelta(0))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_change_to_a_token_is_refused(data: st.DataObject) -> None:
    signed = token()
    at = data.draw(st.integers(0, len(signed) - 1))
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    )
    changed = signed[:at] + replacement + signed[at + 1 :]
    if changed == signed:
        return
    try:
        verify_embed_token(SECRET, changed, now=NOW)
    except InvalidToken:
        return
    # Only a change base64 cannot see (the unused low bits of the signature's last
    # character) may pass: the signed payload text must be untouched.
    assert changed.partition(".")[0] == signed.partition(".")[0]
    assert at == len(signed) - 1


def test_a_widened_token_is_refused_even_when_re_encoded() -> None:
    payload, _, signature = token().partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["params"] = {}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="altered or forged"):
        verify_embed_token(SECRET, f"{forged}.{signature}", now=NOW)
    for garbage in ("", ".", "abc", "abc.", "a.b.c", "x" * 5000):
        with pytest.raises(InvalidToken):
            verify_embed_token(SECRET, garbage, now=NOW)


def test_locked_parameters_fill_in_and_cannot_change() -> None:
    claims = verify_embed_token(SECRET, token({"customer_id": "cust:P1"}), now=NOW)
    assert claims.lock({"customer_id": None, "limit": "5"}) == {
        "customer_id": "cust:P1",
        "limit": "5",
    }
    assert claims.lock({"customer_id": "cust:P1"}) == {"customer_id": "cust:P1"}
    with pytest.raises(Forbidden, match="fixes customer_id to 'cust:P1'"):
        claims.lock({"customer_id": "cust:P2"})


def test_the_rate_limiter_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        limiter.take("k")
    with pytest.raises(RateLimited) as refused:
        limiter.take("k")
    assert refused.value.details["retry_after_seconds"] == pytest.approx(0.5)
    limiter.take("other key")
    now[0] = 0.5
    limiter.take("k")
    with pytest.raises(RateLimited):
        limiter.take("k")
    now[0] = 100.0
    for _ in range(3):
        limiter.take("k")
    with pytest.raises(RateLimited):
        limiter.take("k")
