"""Who is calling: API keys (header ``X-API-Key`` or ``Authorization: Bearer``), embed tokens.

``Guard`` holds the key store, the signing secret and the rate limiter; the app
opens one at start-up. ``require(scope)`` is the dependency every router but
health is mounted with; ``widget_principal`` also accepts an embed token, which
only the widget routes do.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.security.keys import ApiKey, KeyStore, UnknownKey
from api.security.limits import RateLimiter
from api.security.tokens import EmbedClaims, verify_embed_token
from graph.errors import Forbidden, InvalidToken, Unauthorized


@dataclass(frozen=True)
class Principal:
    """The caller: its API key, and the embed token's claims when it came with one."""

    key: ApiKey
    embed: EmbedClaims | None = None


class Guard:
    """Checks credentials and spends the rate allowance of the key behind them."""

    def __init__(self, keys: KeyStore, secret: str, limiter: RateLimiter) -> None:
        self.keys = keys
        self.secret = secret
        self.limiter = limiter

    def api_key(self, presented: str | None, scope: str) -> Principal:
        """The caller of an API key that allows ``scope``."""
        if not presented:
            raise Unauthorized(
                "an API key is required: send it as X-API-Key or Authorization: Bearer "
                "(create one with `journeygraph keys create`)"
            )
        key = self.keys.verify(presented)
        if not key.allows(scope):
            raise Forbidden(
                f"the API key {key.id} lacks the {scope!r} scope "
                f"(it has {', '.join(sorted(key.scopes))})",
                details={"needs": scope, "has": sorted(key.scopes)},
            )
        self.limiter.take(key.id)
        return Principal(key)

    def embed_token(self, token: str) -> Principal:
        """The caller of an embed token, which its issuing key must still back."""
        claims = verify_embed_token(self.secret, token)
        try:
            key = self.keys.get(claims.key_id)
        except UnknownKey:
            raise InvalidToken("the embed token names an API key that does not exist") from None
        if not key.active or not key.allows("read"):
            raise InvalidToken(f"the API key {key.id} that issued this embed token was revoked")
        self.limiter.take(key.id)
        return Principal(key, claims)


_API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key from `journeygraph keys create`"
)
_BEARER = HTTPBearer(auto_error=False, description="an API key, or an embed token on widgets")

ApiKeyHeader = Annotated[str | None, Security(_API_KEY_HEADER)]
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]


def guard_of(request: Request) -> Guard:
    """The guard opened at start-up (see ``api.app.create_app``)."""
    guard: Guard = request.app.state.guard
    return guard


def require(
    scope: str,
) -> Callable[
    [Request, str | None, HTTPAuthorizationCredentials | None], Coroutine[Any, Any, Principal]
]:
    """A dependency that admits API keys allowing ``scope`` and records the caller."""

    async def dependency(
        request: Request, header: ApiKeyHeader, bearer: BearerCredentials
    ) -> Principal:
        presented = header or (bearer.credentials if bearer is not None else None)
        principal = guard_of(request).api_key(presented, scope)
        request.state.principal = principal
        return principal

    dependency.__doc__ = f"Admit API keys with the {scope!r} scope."
    return dependency


async def widget_principal(
    request: Request,
    header: ApiKeyHeader,
    bearer: BearerCredentials,
    token: Annotated[
        str | None,
        Query(max_length=4096, description="an embed token (`journeygraph keys embed`)"),
    ] = None,
) -> Principal:
    """A read key, or an embed token (query ``token`` or bearer) for a widget."""
    guard = guard_of(request)
    presented = header or (bearer.credentials if bearer is not None else None)
    if token is not None:
        principal = guard.embed_token(token)
    elif presented is not None and not presented.startswith("jg_"):
        principal = guard.embed_token(presented)
    else:
        principal = guard.api_key(presented, "read")
    request.state.principal = principal
    return principal
