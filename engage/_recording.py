"""Engagements and feedback as canonical touchpoints, pushed through the ingest path.

Recording through ``PushIngestor.push`` (the canonical mapping, as ``POST /api/v1/events``
takes) resolves the subscriber's MSISDN to a customer like any other touchpoint, and
writes the graph (Touchpoint, PERFORMED, AT_CELL for the worst cell) and the lake, so
journeys, KPIs and milestones see contacts and answers beside everything else.

Event ids come from the engagement id (``engage-<engagement id>-sent`` and
``-feedback``), so recording the same engagement or answer again is a duplicate the
pipeline skips. Attributes: ``engagement_id``, ``rule``, ``cells`` (comma-joined, worst
first), ``cell_id`` (the worst cell) and, for feedback, ``csat`` (the 1-5 score). The
free text of an answer stays in the engagement database: it may hold anything the
subscriber wrote, and the lake is for analytics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from engage.model import ENGAGEMENT_EVENT, ENGAGEMENT_SOURCE, FEEDBACK_EVENT, Engagement, Feedback
from ingest.frame import QuarantinedRow
from ingest.pipeline import IngestSummary
from ingest.touchpoint import Channel

__all__ = [
    "TouchpointPusher",
    "engagement_event",
    "feedback_event",
    "record_engagements",
    "record_feedback",
]

Pushed = tuple[IngestSummary, list[QuarantinedRow]]


class TouchpointPusher(Protocol):
    """The push path of the ingest pipeline (``ingest.pipeline.PushIngestor``)."""

    def push(self, records: Sequence[Mapping[str, Any]]) -> Pushed:
        """Ingest canonical events; returns the counts and the rejected rows."""
        ...


def engagement_event(engagement: Engagement, channel: Channel = Channel.OUTBOUND) -> dict[str, Any]:
    """The canonical touchpoint of a contact made: at the engagement's (event) time."""
    return {
        "event_id": f"{ENGAGEMENT_SOURCE}-{engagement.engagement_id}-sent",
        "source": ENGAGEMENT_SOURCE,
        "event_type": ENGAGEMENT_EVENT,
        "channel": str(channel),
        "ts": engagement.created_at.isoformat(),
        "identifiers": {"msisdn": engagement.subscriber},
        "attributes": _attributes(engagement),
    }


def feedback_event(
    feedback: Feedback, engagement: Engagement, channel: Channel = Channel.SMS
) -> dict[str, Any]:
    """The canonical touchpoint of an answer: at the time it was received."""
    return {
        "event_id": f"{ENGAGEMENT_SOURCE}-{engagement.engagement_id}-feedback",
        "source": ENGAGEMENT_SOURCE,
        "event_type": FEEDBACK_EVENT,
        "channel": str(channel),
        "ts": feedback.received_at.isoformat(),
        "identifiers": {"msisdn": engagement.subscriber},
        "attributes": {**_attributes(engagement), "csat": feedback.score},
    }


def record_engagements(
    ingestor: TouchpointPusher,
    engagements: Sequence[Engagement],
    channel: Channel = Channel.OUTBOUND,
) -> Pushed:
    """Record engagements as touchpoints; engagements recorded before are skipped.

    Returns the pipeline's counts and rejected rows (also in its quarantine, source
    ``engage``).
    """
    if not engagements:
        return IngestSummary(), []
    return ingestor.push([engagement_event(engagement, channel) for engagement in engagements])


def record_feedback(
    ingestor: TouchpointPusher,
    feedback: Feedback,
    engagement: Engagement,
    channel: Channel = Channel.SMS,
) -> Pushed:
    """Record an answer as a touchpoint (a second time is a no-op); as ``record_engagements``."""
    return ingestor.push([feedback_event(feedback, engagement, channel)])


def _attributes(engagement: Engagement) -> dict[str, Any]:
    cells = engagement.cells
    attributes: dict[str, Any] = {
        "engagement_id": engagement.engagement_id,
        "rule": engagement.rule,
    }
    if cells:
        attributes["cells"] = ",".join(cells)
        attributes["cell_id"] = cells[0]
    return attributes
