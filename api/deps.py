"""Dependency aliases for routes (``Annotated[..., Depends(...)]``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.settings import Settings, get_settings
from graph import GraphStore


def get_store(request: Request) -> GraphStore:
    """The graph store opened at start-up (see ``api.app.create_app``)."""
    store: GraphStore = request.app.state.store
    return store


StoreDep = Annotated[GraphStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
