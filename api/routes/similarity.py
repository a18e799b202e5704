"""Similar customers: whose journeys are most like a customer's, or like a list of steps."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SimilarityAnalyzerDep
from journeys.similarity import SimilarityQuery, SimilarityResult

router = APIRouter(prefix="/journeys", tags=["journeys"])


@router.post("/similar", response_model=SimilarityResult)
def similar(query: SimilarityQuery, analyzer: SimilarityAnalyzerDep) -> SimilarityResult:
    """The customers whose journeys are most similar, with shared steps and outcomes."""
    return analyzer.run(query)
