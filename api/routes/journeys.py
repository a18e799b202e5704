"""Journey analytics over the lake: frequent journeys, variants and drill-downs."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from api.deps import FrequencyAnalyzerDep
from journeys.frequency import (
    CustomerList,
    DrillDown,
    FrequencyAnalyzer,
    FrequencyQuery,
    FrequencyResult,
    VariantQuery,
)

router = APIRouter(prefix="/journeys", tags=["journeys"])


async def answer(
    analyzer: FrequencyAnalyzer, query: FrequencyQuery | VariantQuery
) -> FrequencyResult:
    """A repeated query's answer straight from the cache, on the event loop; anything
    else counted in a thread. Dashboards ask the same few queries over and over, and
    the hand-off to a thread (and the locking it brings) was most of such an answer."""
    cached = analyzer.cached(query)
    if cached is not None:
        return cached
    return await run_in_threadpool(analyzer.run, query)


class FrequencyDrillDown(BaseModel):
    """A frequency query and which of its journeys, steps or links to list customers of."""

    model_config = ConfigDict(extra="forbid")

    query: FrequencyQuery
    drill: DrillDown


@router.post("/frequency", response_model=FrequencyResult)
async def frequency(query: FrequencyQuery, analyzer: FrequencyAnalyzerDep) -> FrequencyResult:
    """The most frequent journeys from (or to) an event type, with step counts and links."""
    return await answer(analyzer, query)


@router.post("/frequency/customers", response_model=CustomerList)
def frequency_customers(
    request: FrequencyDrillDown, analyzer: FrequencyAnalyzerDep
) -> CustomerList:
    """The customers behind one journey, step or link of a frequency query."""
    return analyzer.customers(request.query, request.drill)


@router.post("/variants", response_model=FrequencyResult)
async def variants(query: VariantQuery, analyzer: FrequencyAnalyzerDep) -> FrequencyResult:
    """Whole timelines counted as variants (each customer's full sequence of event types)."""
    return await answer(analyzer, query)
