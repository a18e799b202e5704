"""The similarity analyzer: customers whose journeys are most like a given one.

A journey is a customer's event types in time order, shaped by a
``JourneyRepresentation`` (machine events excluded, repeats collapsed, the most
recent steps kept). Similarity is ``1 - normalised edit distance`` of two journeys
(rapidfuzz). Candidates come from a MinHash-LSH ``SimilarityIndex`` over the
distinct journeys (k-gram shingles, signatures computed in NumPy with datasketch's
hashing scheme) and are re-ranked exactly; the index is persisted beside the lake
and kept up to date incrementally. See docs/similarity.md.

    analyzer = SimilarityAnalyzer(timeline_index.load, folder=lake.root / "similarity")
    analyzer.run(SimilarityQuery(customer="cust:0001", top=10))
"""

from journeys.similarity._analyzer import SimilarityAnalyzer, shared_steps
from journeys.similarity._index import SimilarityIndex, timelines_digest
from journeys.similarity._models import (
    DEFAULT_OUTCOMES,
    STILL_ACTIVE,
    IndexSettings,
    JourneyRepresentation,
    Method,
    OutcomeRules,
    SimilarCustomer,
    SimilarityQuery,
    SimilarityResult,
)

__all__ = [
    "DEFAULT_OUTCOMES",
    "STILL_ACTIVE",
    "IndexSettings",
    "JourneyRepresentation",
    "Method",
    "OutcomeRules",
    "SimilarCustomer",
    "SimilarityAnalyzer",
    "SimilarityIndex",
    "SimilarityQuery",
    "SimilarityResult",
    "shared_steps",
    "timelines_digest",
]
