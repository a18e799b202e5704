"""Radio cells: which cells hurt subscribers' sentiment, ranked by what to fix first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CellSentimentDep
from engage.cells import CellSentimentQuery, CellSentimentReport

router = APIRouter(prefix="/cells", tags=["engagement"])


@router.get("/sentiment", response_model=CellSentimentReport)
def get_cell_sentiment(
    query: Annotated[CellSentimentQuery, Query()], reports: CellSentimentDep
) -> CellSentimentReport:
    """Cells ranked by what to fix first: subscribers with incidents and sentiment change."""
    with reports() as runner:
        return runner.run(query)
