"""Signed embed tokens: what lets a CRM page show one widget without an API key.

A token is ``<payload>.<signature>``, both base64url: the payload is JSON claims
(the widget, the parameters it locks, the expiry, the issuing key's id) and the
signature is HMAC-SHA256 of the payload under the service's secret. Changing any
byte of the payload breaks the signature, so a holder cannot widen what the token
allows; revoking the issuing key, or rotating the secret, voids its tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graph.errors import ExpiredToken, Forbidden, InvalidInput, InvalidToken

_CONTEXT: Final = b"journeygraph.embed.v1."
MAX_TTL: Final = timedelta(days=366)


class EmbedClaims(BaseModel):
    """What one embed token allows: one widget, with some parameters fixed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    widget: str = Field(min_length=1, max_length=64, description="the widget it opens")
    params: dict[str, str] = Field(
        default_factory=dict, description="parameters the holder cannot change"
    )
    expires_at: datetime = Field(description="the token is refused from this time on")
    key_id: str = Field(description="the API key that issued it; revoking the key voids it")

    def lock(self, requested: Mapping[str, str | None]) -> dict[str, str]:
        """The request's parameters with the locked ones enforced.

        A parameter the request leaves out takes its locked value; one it sets to
        another value is ``Forbidden``, so a changed URL fails loudly instead of
        quietly showing something else.
        """
        chosen = {name: value for name, value in requested.items() if value is not None}
        for name, value in self.params.items():
            asked = chosen.get(name)
            if asked is not None and asked != value:
                raise Forbidden(
                    f"the embed token fixes {name} to {value!r}; it cannot be changed to {asked!r}",
                    details={"parameter": name},
                )
            chosen[name] = value
        return chosen


def issue_embed_token(
    secret: str,
    widget: str,
    params: Mapping[str, str],
    ttl: timedelta,
    key_id: str,
    now: datetime | None = None,
) -> tuple[str, EmbedClaims]:
    """A signed token for ``widget`` with ``params`` fixed, valid for ``ttl``."""
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidInput(f"an embed token lives between 1 second and {MAX_TTL.days} days")
    moment = now or datetime.now(UTC)
    claims = EmbedClaims(
        widget=widget,
        params=dict(params),
        expires_at=(moment + ttl).replace(microsecond=0),
        key_id=key_id,
    )
    payload = _encode(claims.model_dump_json().encode())
    return f"{payload}.{_encode(_sign(secret, payload))}", claims


def verify_embed_token(secret: str, token: str, now: datetime | None = None) -> EmbedClaims:
    """The claims of a token this service signed; ``InvalidToken`` or ``ExpiredToken``."""
    payload, dot, signature = token.partition(".")
    if not dot or not payload or len(token) > 4096:
        raise InvalidToken("the embed token is malformed (expected <payload>.<signature>)")
    try:
        given = _decode(signature)
    except (binascii.Error, ValueError):
        raise InvalidToken("the embed token's signature is not base64url") from None
    if not hmac.compare_digest(given, _sign(secret, payload)):
        raise InvalidToken("the embed token's signature does not match: it was altered or forged")
    try:
        claims = EmbedClaims.model_validate(json.loads(_decode(payload)))
    except (binascii.Error, ValueError, ValidationError):
        raise InvalidToken("the embed token's claims are unreadable") from None
    moment = now or datetime.now(UTC)
    if claims.expires_at <= moment:
        raise ExpiredToken(
            f"the embed token expired at {claims.expires_at.isoformat()}; ask for a new one",
            details={"expired_at": claims.expires_at.isoformat()},
        )
    return claims


def _sign(secret: str, payload: str) -> bytes:
    return hmac.new(secret.encode(), _CONTEXT + payload.encode(), hashlib.sha256).digest()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
