"""What the widgets draw: one GET route per widget, under ``/widgets/{name}/data``.

Each takes its parameters as strings, so an embed token can fix any of them: the
route runs the request's parameters through ``_locked`` (the token's widget must be
this one; a fixed parameter fills in or, if the request changes it, is refused) and
only then builds the domain query. A read-scope API key (the dashboard) passes
parameters as they come.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field, ValidationError

from api.deps import (
    CellSentimentDep,
    FrequencyAnalyzerDep,
    KpiRunnerDep,
    MilestonesDep,
    StoreDep,
)
from api.routes.journeys import answer
from api.schemas import IdentifierOut, TouchpointOut
from api.security import Principal, widget_principal
from engage.cells import CellSentimentQuery, CellSentimentReport
from graph.errors import Forbidden, InvalidInput
from journeys.customer360 import (
    canonical_customer_id,
    customer_identifiers,
    customer_profile,
    journey_page,
)
from journeys.frequency import (
    CustomerList,
    DrillDown,
    FrequencyQuery,
    FrequencyResult,
)
from journeys.kpis import KpiQuery, KpiResult, parse_params
from journeys.milestones import CustomerMilestone
from models.scoring import customer_scores

router = APIRouter(prefix="/widgets", tags=["widgets"])

Access = Annotated[Principal, Depends(widget_principal)]
Text = Annotated[str | None, Query(max_length=200)]
Number = Annotated[str | None, Query(max_length=20, pattern=r"^\d{1,9}$")]
TIMELINE_TOUCHPOINTS: Final = 200


def _locked(principal: Principal, widget: str, requested: dict[str, str | None]) -> dict[str, str]:
    """The parameters to use: as requested, or with the embed token's fixed ones enforced."""
    claims = principal.embed
    if claims is None:
        return {name: value for name, value in requested.items() if value is not None}
    if claims.widget != widget:
        raise Forbidden(
            f"this embed token opens the {claims.widget!r} widget, not {widget!r}",
            details={"token_widget": claims.widget},
        )
    return claims.lock(requested)


def _frequency_query(params: dict[str, str]) -> FrequencyQuery:
    """A frequency query from widget parameters; ``InvalidInput`` naming what is wrong."""
    if "anchor" not in params:
        raise InvalidInput("anchor is required: the event type the journeys start or end at")
    fields: dict[str, Any] = {
        "anchor": params["anchor"],
        "direction": params.get("direction", "start"),
        "max_steps": params.get("max_steps", "5"),
        "top": params.get("top", "10"),
    }
    if "segment" in params:
        name, equals, value = params["segment"].partition("=")
        if not equals or not name or not value:
            raise InvalidInput(f"segment {params['segment']!r}: expected NAME=VALUE")
        fields["segment"] = {"name": name, "values": value.split(",")}
    try:
        return FrequencyQuery.model_validate(fields)
    except ValidationError as error:
        raise InvalidInput(f"journey query: {_problems(error)}") from None


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'query'}: {problem['msg']}"
        for problem in error.errors()
    )


async def _journey_params(
    anchor: Text = None,
    direction: Annotated[str | None, Query(pattern="^(start|end)$")] = None,
    max_steps: Number = None,
    top: Number = None,
    segment: Annotated[
        str | None,
        Query(max_length=200, description="NAME=VALUE[,VALUE]", examples=["tenure_band=0-1y"]),
    ] = None,
) -> dict[str, str | None]:
    return {
        "anchor": anchor,
        "direction": direction,
        "max_steps": max_steps,
        "top": top,
        "segment": segment,
    }


JourneyParams = Annotated[dict[str, str | None], Depends(_journey_params)]


_ENCODED: OrderedDict[int, tuple[FrequencyResult, bytes]] = OrderedDict()
"""The JSON of recent answers by identity: the analyzer hands back the same object for a
repeated query, and encoding a Sankey's 80 kB each time was most of a cached request."""


def _encoded(result: FrequencyResult) -> Response:
    entry = _ENCODED.get(id(result))
    if entry is None or entry[0] is not result:
        entry = (result, result.model_dump_json().encode())
        _ENCODED[id(result)] = entry
        while len(_ENCODED) > 64:
            _ENCODED.popitem(last=False)
    return Response(entry[1], media_type="application/json")


@router.get("/sankey/data", response_model=FrequencyResult)
async def sankey_data(
    params: JourneyParams, principal: Access, analyzer: FrequencyAnalyzerDep
) -> Response:
    """The Sankey's journeys from (or to) an event, with the links between steps."""
    query = _frequency_query(_locked(principal, "sankey", params))
    return _encoded(await answer(analyzer, query))


@router.get("/journey-table/data", response_model=FrequencyResult)
async def journey_table_data(
    params: JourneyParams, principal: Access, analyzer: FrequencyAnalyzerDep
) -> Response:
    """The journey table's top journeys from (or to) an event."""
    query = _frequency_query(_locked(principal, "journey-table", params))
    return _encoded(await answer(analyzer, query))


class DrillIn(BaseModel):
    """Which journey, step or link of a widget's answer to list the customers of."""

    journey: str | None = Field(None, description="steps joined by '>'")
    step: int | None = Field(None, ge=1, le=20)
    event_type: str | None = Field(None, max_length=200)
    target: str | None = Field(None, max_length=200)
    offset: int = Field(0, ge=0, le=10_000_000)
    limit: int = Field(50, ge=1, le=1000)


@router.get("/{widget}/customers", response_model=CustomerList)
def drill_down(
    widget: Annotated[str, Path(pattern="^(sankey|journey-table)$")],
    params: JourneyParams,
    drill: Annotated[DrillIn, Query()],
    principal: Access,
    analyzer: FrequencyAnalyzerDep,
) -> CustomerList:
    """The customers behind a journey, step or link of the Sankey or the journey table."""
    query = _frequency_query(_locked(principal, widget, params))
    try:
        target = DrillDown(
            journey=drill.journey.split(">") if drill.journey else None,
            step=drill.step,
            event_type=drill.event_type,
            target=drill.target,
            offset=drill.offset,
            limit=drill.limit,
        )
    except ValidationError as error:
        raise InvalidInput(f"drill-down: {_problems(error)}") from None
    return analyzer.customers(query, target)


@router.get("/kpi-tile/data", response_model=KpiResult)
def kpi_tile_data(
    principal: Access,
    runner: KpiRunnerDep,
    kpi: Text = None,
    grain: Annotated[str | None, Query(pattern="^(none|day|week|month)$")] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
) -> KpiResult:
    """One KPI by period (weekly by default): the tile shows the latest and the trend."""
    params = _locked(principal, "kpi-tile", {"kpi": kpi, "grain": grain, "since": since})
    if "kpi" not in params:
        raise InvalidInput("kpi is required, e.g. repeat_contacts (GET /api/v1/kpis lists them)")
    return runner.run(
        KpiQuery.of(kpi=params["kpi"], grain=params.get("grain", "week"), since=params.get("since"))
    )


@router.get("/funnel/data", response_model=KpiResult)
def funnel_data(
    principal: Access,
    runner: KpiRunnerDep,
    steps: Annotated[
        str | None, Query(max_length=1000, description="milestones, comma-separated")
    ] = None,
    window_days: Number = None,
) -> KpiResult:
    """Conversion between milestones in order (the funnel_conversion KPI)."""
    params = _locked(principal, "funnel", {"steps": steps, "window_days": window_days})
    if "steps" not in params:
        raise InvalidInput("steps is required: two or more milestone names, comma-separated")
    raw = [f"steps={params['steps']}"]
    if "window_days" in params:
        raw.append(f"window_days={params['window_days']}")
    return runner.run(KpiQuery.of(kpi="funnel_conversion", params=parse_params(raw)))


class CustomerView(BaseModel):
    """Everything the customer timeline shows: who, what happened, what it led to."""

    customer_id: str
    properties: dict[str, Any]
    identifiers: list[IdentifierOut]
    touchpoints: list[TouchpointOut] = Field(description="the latest touchpoints, oldest first")
    touchpoints_total: int
    milestones: list[CustomerMilestone]
    scores: dict[str, dict[str, Any]]


@router.get("/customer-timeline/data", response_model=CustomerView)
def customer_timeline_data(
    principal: Access,
    store: StoreDep,
    milestones: MilestonesDep,
    customer_id: Annotated[str | None, Query(max_length=500, examples=["cust:P0000001"])] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="only touchpoints from this time (ISO 8601)")
    ] = None,
) -> CustomerView:
    """One customer's 360: identifiers with provenance, touchpoints, milestones, scores."""
    params = _locked(principal, "customer-timeline", {"customer_id": customer_id, "since": since})
    if "customer_id" not in params:
        raise InvalidInput("customer_id is required")
    since = params.get("since")
    try:
        start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    except ValueError:
        raise InvalidInput(f"since={since!r} is not an ISO 8601 time") from None
    profile = customer_profile(store, params["customer_id"])
    page = journey_page(store, profile.id, start, None, 10_000)
    latest = page.touchpoints[-TIMELINE_TOUCHPOINTS:]
    return CustomerView(
        customer_id=canonical_customer_id(profile.id),
        properties=profile.properties,
        identifiers=[IdentifierOut.of(link) for link in customer_identifiers(store, profile.id)],
        touchpoints=[TouchpointOut.of(vertex) for vertex in latest],
        touchpoints_total=profile.touchpoints,
        milestones=milestones.customer_milestones(profile.id),
        scores=customer_scores(store, profile.id),
    )


@router.get("/cell-heatmap/data", response_model=CellSentimentReport)
def cell_heatmap_data(
    principal: Access,
    reports: CellSentimentDep,
    metric: Text = None,
    limit: Number = None,
    min_subscribers: Number = None,
) -> CellSentimentReport:
    """Cells ranked by what to fix first, for the heatmap."""
    params = _locked(
        principal,
        "cell-heatmap",
        {"metric": metric, "limit": limit, "min_subscribers": min_subscribers},
    )
    try:
        query = CellSentimentQuery.model_validate(params)
    except ValidationError as error:
        raise InvalidInput(f"cell query: {_problems(error)}") from None
    with reports() as runner:
        return runner.run(query)
