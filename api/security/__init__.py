"""Security: API keys with scopes, signed embed tokens, per-key rate limits.

Every endpoint but the health probes needs an API key (``X-API-Key`` or
``Authorization: Bearer``) whose scopes allow it: ``read`` for queries, ``ingest``
for pushing events and feedback, ``admin`` for everything including key and token
management. Widgets also accept an embed token, which fixes the widget and some of
its parameters (see ``api.security.tokens``).
"""

from __future__ import annotations

from api.security.access import Guard, Principal, guard_of, require, widget_principal
from api.security.keys import SCOPES, ApiKey, KeyStore, Scope, UnknownKey, check_scopes
from api.security.limits import RateLimiter
from api.security.tokens import EmbedClaims, issue_embed_token, verify_embed_token

__all__ = [
    "SCOPES",
    "ApiKey",
    "EmbedClaims",
    "Guard",
    "KeyStore",
    "Principal",
    "RateLimiter",
    "Scope",
    "UnknownKey",
    "check_scopes",
    "guard_of",
    "issue_embed_token",
    "require",
    "verify_embed_token",
    "widget_principal",
]
