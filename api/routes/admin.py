"""Administration: API keys and embed tokens (``admin`` scope)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request, Response

from api.pagination import PageDep, paginate
from api.schemas import EmbedTokenIn, EmbedTokenOut, KeyCreated, KeyIn, KeyOut
from api.security import Principal, guard_of, issue_embed_token
from api.widgets import WIDGETS, UnknownWidget

router = APIRouter(prefix="/admin", tags=["admin"])
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", examples=["3f9c2a17b0d4"])]


@router.get("/keys", response_model=list[KeyOut])
def list_keys(page: PageDep, request: Request, response: Response) -> list[KeyOut]:
    """Every API key, revoked ones included (never the keys themselves; paged)."""
    keys = paginate(guard_of(request).keys.keys(), page, request, response)
    return [KeyOut.of(key) for key in keys]


@router.post("/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyIn, request: Request) -> KeyCreated:
    """Create an API key; the response is the only place the key is ever shown."""
    record, key = guard_of(request).keys.create(body.name, body.scopes)
    return KeyCreated(**KeyOut.of(record).model_dump(), key=key)


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: KeyId, request: Request) -> KeyOut:
    """Revoke an API key and every embed token it issued."""
    return KeyOut.of(guard_of(request).keys.revoke(key_id))


@router.post("/embed-tokens", response_model=EmbedTokenOut, status_code=201)
def create_embed_token(body: EmbedTokenIn, request: Request) -> EmbedTokenOut:
    """Sign an embed token for one widget, issued by (and revoked with) the calling key."""
    if body.widget not in WIDGETS:
        raise UnknownWidget(
            f"no widget is named {body.widget!r}", details={"widgets": sorted(WIDGETS)}
        )
    principal: Principal = request.state.principal
    guard = guard_of(request)
    token, claims = issue_embed_token(
        guard.secret,
        body.widget,
        body.params,
        timedelta(seconds=body.ttl_seconds),
        principal.key.id,
    )
    return EmbedTokenOut(
        token=token,
        url=f"/widgets/{body.widget}?{urlencode({'token': token})}",
        widget=claims.widget,
        params=claims.params,
        expires_at=claims.expires_at,
        key_id=claims.key_id,
    )
