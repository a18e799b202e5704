"""Engagement: subscribers' answers to the contacts the engagement loop made."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api.deps import FeedbackDep
from api.schemas import FeedbackIn
from engage.feedback import SentimentUpdate

router = APIRouter(prefix="/engagement", tags=["engagement"])


@router.post(
    "/feedback",
    response_model=SentimentUpdate,
    responses={404: {"description": "unknown engagement"}, 409: {"description": "answered"}},
)
def post_feedback(
    answer: Annotated[FeedbackIn, Body(description="the score (1-5) and free text")],
    feedback: FeedbackDep,
) -> SentimentUpdate:
    """Record a subscriber's answer to an engagement and update their sentiment score."""
    with feedback() as service:
        return service.record(answer.engagement_id, answer.score, answer.text)
