"""KPIs over the lake: the catalog, and one KPI by period and segment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import KpiRunnerDep
from journeys.kpis import Grain, KpiCatalog, KpiQuery, KpiResult, kpi_catalog, parse_params

router = APIRouter(prefix="/kpis", tags=["kpis"])


@router.get("", response_model=KpiCatalog)
def list_kpis() -> KpiCatalog:
    """Every KPI with its parameters, and the segments and grains results come by."""
    return kpi_catalog()


@router.get("/{name}", response_model=KpiResult)
def get_kpi(
    name: Annotated[str, Path(max_length=64, examples=["repeat_contacts"])],
    runner: KpiRunnerDep,
    grain: Annotated[Grain, Query(description="one row per day, ISO week, month")] = "none",
    segment: Annotated[
        str | None, Query(max_length=64, description="break down by a segment")
    ] = None,
    since: Annotated[datetime | None, Query(description="inclusive, timezone-aware")] = None,
    until: Annotated[datetime | None, Query(description="exclusive, timezone-aware")] = None,
    param: Annotated[
        list[str] | None,
        Query(description="a KPI parameter as NAME=VALUE; repeat for more", examples=["days=7"]),
    ] = None,
) -> KpiResult:
    """One KPI's rows by period, segment value and dimension, with its definition."""
    query = KpiQuery.of(
        kpi=name,
        params=parse_params(param or []),
        grain=grain,
        segment=segment,
        since=since,
        until=until,
    )
    return runner.run(query)
