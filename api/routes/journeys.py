"""Journey analytics over the lake: frequent journeys, variants and drill-downs."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from api.deps import FrequencyAnalyzerDep
from journeys.frequency import (
    CustomerList,
    DrillDown,
    FrequencyQuery,
    FrequencyResult,
    VariantQuery,
)

router = APIRouter(prefix="/journeys", tags=["journeys"])


class FrequencyDrillDown(BaseModel):
    """A frequency query and which of its journeys, steps or links to list customers of."""

    model_config = ConfigDict(extra="forbid")

    query: FrequencyQuery
    drill: DrillDown


@router.post("/frequency", response_model=FrequencyResult)
def frequency(query: FrequencyQuery, analyzer: FrequencyAnalyzerDep) -> FrequencyResult:
    """The most frequent journeys from (or to) an event type, with step counts and links."""
    return analyzer.run(query)


@router.post("/frequency/customers", response_model=CustomerList)
def frequency_customers(
    request: FrequencyDrillDown, analyzer: FrequencyAnalyzerDep
) -> CustomerList:
    """The customers behind one journey, step or link of a frequency query."""
    return analyzer.customers(request.query, request.drill)


@router.post("/variants", response_model=FrequencyResult)
def variants(query: VariantQuery, analyzer: FrequencyAnalyzerDep) -> FrequencyResult:
    """Whole timelines counted as variants (each customer's full sequence of event types)."""
    return analyzer.run(query)
