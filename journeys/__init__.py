"""Journey analytics: customer 360 reads, frequency and similarity analyzers, milestones, KPIs.

Names are imported on first use, so a command that needs one analyzer does not load
the others (rapidfuzz, the graph store, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from journeys.customer360 import (
        CustomerProfile,
        IdentifierLink,
        customer_identifiers,
        customer_journey,
        customer_profile,
    )
    from journeys.frequency import (
        DrillDown,
        FrequencyAnalyzer,
        FrequencyQuery,
        FrequencyResult,
        VariantQuery,
    )
    from journeys.similarity import SimilarityAnalyzer, SimilarityQuery, SimilarityResult
    from journeys.timelines import TimelineIndex, Timelines

_HOMES = {
    "CustomerProfile": "journeys.customer360",
    "IdentifierLink": "journeys.customer360",
    "customer_identifiers": "journeys.customer360",
    "customer_journey": "journeys.customer360",
    "customer_profile": "journeys.customer360",
    "DrillDown": "journeys.frequency",
    "FrequencyAnalyzer": "journeys.frequency",
    "FrequencyQuery": "journeys.frequency",
    "FrequencyResult": "journeys.frequency",
    "VariantQuery": "journeys.frequency",
    "SimilarityAnalyzer": "journeys.similarity",
    "SimilarityQuery": "journeys.similarity",
    "SimilarityResult": "journeys.similarity",
    "TimelineIndex": "journeys.timelines",
    "Timelines": "journeys.timelines",
}

__all__ = [
    "CustomerProfile",
    "DrillDown",
    "FrequencyAnalyzer",
    "FrequencyQuery",
    "FrequencyResult",
    "IdentifierLink",
    "SimilarityAnalyzer",
    "SimilarityQuery",
    "SimilarityResult",
    "TimelineIndex",
    "Timelines",
    "VariantQuery",
    "customer_identifiers",
    "customer_journey",
    "customer_profile",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'journeys' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
