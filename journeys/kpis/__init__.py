"""KPIs: named SQL definitions over the lake, by period and by customer segment.

The definitions are data (``journeys/kpis/definitions/*.yaml``, documented in
``docs/kpis.md``): funnel conversion and drop-off between milestones, time to a
milestone, repeat contacts, first-contact resolution, digital containment, channel
mix, churn after a milestone and CSAT by journey. ``KpiRunner(lake, merge_map)``
runs a ``KpiQuery`` and returns a ``KpiResult``; ``run_kpi`` does both in one call.
"""

from journeys._lake_views import MergeMapSource
from journeys.kpis._catalog import KpiCatalog, KpiInfo, SegmentInfo, kpi_catalog, parse_params
from journeys.kpis._definitions import (
    KpiDefinition,
    KpiParameter,
    UnknownKpi,
    kpi_definition,
    kpi_definitions,
)
from journeys.kpis._runner import (
    Grain,
    KpiQuery,
    KpiResult,
    KpiRow,
    KpiRunner,
    run_kpi,
)

__all__ = [
    "Grain",
    "KpiCatalog",
    "KpiInfo",
    "KpiDefinition",
    "KpiParameter",
    "KpiQuery",
    "KpiResult",
    "KpiRow",
    "KpiRunner",
    "MergeMapSource",
    "SegmentInfo",
    "UnknownKpi",
    "kpi_catalog",
    "kpi_definition",
    "kpi_definitions",
    "parse_params",
    "run_kpi",
]
