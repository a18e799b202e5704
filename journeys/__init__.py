"""Journey analytics: customer 360 reads, the frequency analyzer and the timelines it reads."""

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
