"""Customer 360: profile, journey and identifiers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from api.deps import StoreDep
from api.pagination import PageDep, paginate
from api.schemas import CustomerOut, IdentifierOut, JourneyOut, ScoresOut, TouchpointOut
from journeys.customer360 import (
    canonical_customer_id,
    customer_identifiers,
    customer_profile,
    journey_page,
)
from models.scoring import customer_scores

router = APIRouter(prefix="/customers", tags=["customers"])
CustomerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=500,
        description="customer id, with or without the cust: prefix",
        examples=["cust:P0000001"],
    ),
]


@router.get("/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: CustomerId, store: StoreDep) -> CustomerOut:
    """A customer's properties and counts of identifiers and touchpoints."""
    return CustomerOut.of(customer_profile(store, customer_id))


@router.get("/{customer_id}/journey", response_model=JourneyOut)
def get_journey(
    customer_id: CustomerId,
    store: StoreDep,
    start: Annotated[datetime | None, Query(description="inclusive, timezone-aware")] = None,
    end: Annotated[datetime | None, Query(description="exclusive, timezone-aware")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="touchpoints per page")] = 1000,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="next_cursor of the page before")
    ] = None,
) -> JourneyOut:
    """The customer's touchpoints in (ts, event id) order, a page at a time."""
    page = journey_page(store, customer_id, start, end, limit, cursor)
    return JourneyOut(
        customer_id=canonical_customer_id(customer_id),
        touchpoints=[TouchpointOut.of(vertex) for vertex in page.touchpoints],
        next_cursor=page.next_cursor,
    )


@router.get("/{customer_id}/identifiers", response_model=list[IdentifierOut])
def get_identifiers(
    customer_id: CustomerId, store: StoreDep, page: PageDep, request: Request, response: Response
) -> list[IdentifierOut]:
    """The customer's identifiers with how each was linked (paged: X-Total-Count, Link)."""
    links = paginate(customer_identifiers(store, customer_id), page, request, response)
    return [IdentifierOut.of(link) for link in links]


@router.get("/{customer_id}/scores", response_model=ScoresOut)
def get_scores(customer_id: CustomerId, store: StoreDep) -> ScoresOut:
    """The propensity scores batch scoring wrote onto the customer, with model versions."""
    canonical = canonical_customer_id(customer_id)
    return ScoresOut(customer_id=canonical, scores=customer_scores(store, canonical))
