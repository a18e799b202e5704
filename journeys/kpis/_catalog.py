"""What a user can ask for: the KPIs with their parameters, the segments, the grains."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from graph.errors import InvalidInput
from journeys.kpis._definitions import Aggregate, KpiParameter, kpi_definitions
from journeys.segments import segment_definitions


class KpiInfo(BaseModel):
    """A KPI as a user sees it: its definition without the SQL."""

    name: str
    title: str
    description: str
    unit: str
    aggregate: Aggregate
    dimension: str | None
    parameters: dict[str, KpiParameter]


class SegmentInfo(BaseModel):
    """A segment results can be broken down by, and its values in display order."""

    name: str
    title: str
    description: str
    values: list[str]


class KpiCatalog(BaseModel):
    """Every KPI, every segment and the grains a KPI can be computed by."""

    kpis: list[KpiInfo]
    segments: list[SegmentInfo]
    grains: list[str]


def kpi_catalog() -> KpiCatalog:
    """The shipped KPIs and segments, by name."""
    kpis = [
        KpiInfo.model_validate(definition.model_dump(exclude={"sql"}))
        for _, definition in sorted(kpi_definitions().items())
    ]
    segments = [
        SegmentInfo(
            name=segment.name,
            title=segment.title,
            description=segment.description,
            values=list(segment.values),
        )
        for _, segment in sorted(segment_definitions().items())
    ]
    return KpiCatalog(kpis=kpis, segments=segments, grains=["none", "day", "week", "month"])


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` texts (a command line's ``--param``, a query string's ``param``).

    A name given twice is ``InvalidInput``; values stay text for the KPI to convert.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or not name:
            raise InvalidInput(f"parameter {pair!r}: write NAME=VALUE", details={"param": pair})
        if name in params:
            raise InvalidInput(f"parameter {name} is given twice", details={"param": name})
        params[name] = value.strip()
    return params
