"""Liveness and readiness probes (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import SettingsDep, StoreDep
from api.schemas import Health
from graph import JourneyGraphError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(store: StoreDep, settings: SettingsDep) -> Health | JSONResponse:
    """The graph store answers; 503 with the reason otherwise."""
    try:
        store.ping()
    except JourneyGraphError as error:
        body = Health(status="unavailable", backend=settings.backend, detail=str(error))
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ready", backend=settings.backend)
