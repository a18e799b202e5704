"""Milestones: definitions with reach counts, dry runs, and a customer's milestones."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response

from api.deps import MilestonesDep
from api.pagination import PageDep, paginate
from api.routes.customers import CustomerId
from journeys.milestones import CustomerMilestone, DryRunQuery, DryRunResult, MilestoneSummary

router = APIRouter(tags=["milestones"])
MilestoneName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=63,
        description="the milestone's name",
        examples=["repeat_care_3_in_7d"],
    ),
]


@router.get("/milestones", response_model=list[MilestoneSummary])
def list_milestones(
    milestones: MilestonesDep, page: PageDep, request: Request, response: Response
) -> list[MilestoneSummary]:
    """Milestone definitions with how many customers reached each (paged)."""
    return paginate(milestones.summaries(), page, request, response)


@router.post("/milestones/dry-run", response_model=DryRunResult)
def dry_run(
    query: Annotated[DryRunQuery, Body(description="a stored milestone's name, or a definition")],
    milestones: MilestonesDep,
) -> DryRunResult:
    """Who would reach a milestone if it were backfilled now; writes nothing."""
    return milestones.dry_run(query)


@router.get("/milestones/{name}", response_model=MilestoneSummary)
def get_milestone(name: MilestoneName, milestones: MilestonesDep) -> MilestoneSummary:
    """One milestone definition with how many customers reached it."""
    return milestones.summary(name)


@router.get("/customers/{customer_id}/milestones", response_model=list[CustomerMilestone])
def get_customer_milestones(
    customer_id: CustomerId,
    milestones: MilestonesDep,
    page: PageDep,
    request: Request,
    response: Response,
) -> list[CustomerMilestone]:
    """The milestones a customer reached, earliest first, with their evidence (paged)."""
    return paginate(milestones.customer_milestones(customer_id), page, request, response)
