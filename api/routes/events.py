"""The push path: operators' systems POST touchpoints as they happen."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from api.deps import IngestorDep
from api.schemas import EventsIn, EventsOut

router = APIRouter(prefix="/events", tags=["ingest"])


@router.post("", response_model=EventsOut)
def post_events(
    events: Annotated[EventsIn, Body(description="touchpoints in the canonical JSON shape")],
    ingestor: IngestorDep,
) -> EventsOut:
    """Ingest touchpoints: validate, resolve to customers, write graph and lake."""
    records: list[dict[str, Any]] = events.events
    summary, rejected = ingestor.push(records)
    return EventsOut.of(summary, rejected)
