"""The engagement loop's vocabulary: probe metrics, incidents, engagements, feedback.

A *probe event* is one measurement of one subscriber's experience on one radio cell
(four shares in [0, 1] and the weight of calls or sessions behind them). Probe events
update a rolling *profile* per subscriber; a decision-table rule that the profile
crosses raises an *incident*; incidents become an *engagement* (a contact queued for a
channel), and the subscriber's *feedback* to it moves their sentiment score.

Subscribers are keyed by MSISDN in E.164 form, the key the network side knows them by;
the graph resolves it to a Customer like any other identifier.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import pyarrow as pa

METRICS: Final[tuple[str, ...]] = (
    "call_drop_rate",
    "call_quality_impairment",
    "low_bitrate_share",
    "video_stalling_share",
)
"""The probe metrics, each a share in [0, 1]."""

DEFAULT_THRESHOLDS: Final[dict[str, float]] = {
    "call_drop_rate": 0.16,
    "call_quality_impairment": 0.18,
    "low_bitrate_share": 0.09,
    "video_stalling_share": 0.11,
}
"""A profile above one of these is an incident unless the decision table says otherwise."""

_PROBE_FIELDS: Final[list[pa.Field[Any]]] = [
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("subscriber", pa.string(), nullable=False),
    pa.field("cell_id", pa.string(), nullable=False),
    pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("weight", pa.float64(), nullable=False),
    *(pa.field(metric, pa.float64()) for metric in METRICS),
]
PROBE_SCHEMA: Final = pa.schema(_PROBE_FIELDS)
"""Validated probe events as one Arrow table: what the evaluator consumes.

A null metric means the probe did not measure it (a data-only session has no calls).
"""

ENGAGEMENT_SOURCE: Final = "engage"
"""The touchpoint source of engagements and feedback recorded in the graph and the lake."""
ENGAGEMENT_EVENT: Final = "engagement_sent"
FEEDBACK_EVENT: Final = "engagement_feedback"


@dataclass(frozen=True, slots=True)
class Incident:
    """A subscriber's profile crossed a rule's threshold."""

    subscriber: str
    rule: str
    """The decision-table row that fired."""
    metric: str
    value: float
    """The profile value over the rule's window when it crossed."""
    threshold: float
    window_seconds: int
    ts: datetime
    """Event time of the probe that made the profile cross."""
    cells: tuple[str, ...]
    """Cells that contributed to the window, the worst first."""
    probe_ids: tuple[str, ...] = ()
    """The probe events behind the crossing (the latest few)."""

    def as_dict(self) -> dict[str, Any]:
        """The incident as JSON-ready data."""
        return {
            "subscriber": self.subscriber,
            "rule": self.rule,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "window_seconds": self.window_seconds,
            "ts": self.ts.isoformat(),
            "cells": list(self.cells),
            "probe_ids": list(self.probe_ids),
        }


@dataclass(frozen=True, slots=True)
class Engagement:
    """A contact owed to a subscriber because of one or more incidents."""

    engagement_id: str
    subscriber: str
    rule: str
    created_at: datetime
    """Event time of the incident that triggered it (replays give the same engagement)."""
    dedupe_key: str
    """Engagements with the same key within the deduplication window are one."""
    incidents: tuple[Incident, ...] = field(default=())

    @property
    def cells(self) -> tuple[str, ...]:
        """The cells the incidents happened on, without repeats, the worst first."""
        return tuple(dict.fromkeys(cell for incident in self.incidents for cell in incident.cells))

    def payload(self) -> dict[str, Any]:
        """What a channel sends: the engagement and the incidents it is about."""
        return {
            "engagement_id": self.engagement_id,
            "subscriber": self.subscriber,
            "rule": self.rule,
            "created_at": self.created_at.isoformat(),
            "cells": list(self.cells),
            "incidents": [incident.as_dict() for incident in self.incidents],
        }


def dedupe_key(subscriber: str, rule: str) -> str:
    """The content key two engagements share when they are about the same thing."""
    return f"{subscriber}|{rule}"


def engagement_id(key: str, created_at: datetime) -> str:
    """A deterministic engagement id, so a replayed stream enqueues nothing new."""
    digest = hashlib.sha1(f"{key}|{created_at.isoformat()}".encode()).hexdigest()
    return f"eng-{digest[:20]}"


@dataclass(frozen=True, slots=True)
class InputCursor:
    """Where one input (a file, a stream) has been read up to: ``position`` rows."""

    input: str
    position: int


@dataclass(frozen=True, slots=True)
class Feedback:
    """A subscriber's answer to an engagement."""

    engagement_id: str
    score: int
    """1 (very bad) to 5 (very good)."""
    text: str
    received_at: datetime
