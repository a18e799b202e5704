"""Milestones: definitions with reach counts, dry runs, and a customer's milestones."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from api.deps import MilestonesDep
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
def list_milestones(milestones: MilestonesDep) -> list[MilestoneSummary]:
    """Milestone definitions with how many customers reached each."""
    return milestones.summaries()


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
    customer_id: CustomerId, milestones: MilestonesDep
) -> list[CustomerMilestone]:
    """The milestones a customer reached, earliest first, with their evidence."""
    return milestones.customer_milestones(customer_id)
