"""Real-time engagement: network incidents -> engagements -> feedback -> sentiment per cell.

Probe events update rolling profiles (``profiles``, rules in ``rules``); crossings
become engagements queued durably (``engine``, ``queue``) and sent through a channel
(``dispatcher``, ``channels``); answers move sentiment (``feedback``) and the cell
report ranks the radio cells that hurt it most (``cells``). ``runner`` runs the loop;
``docs/engagement.md`` has the whole story. Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engage.cells import (
        CellSentimentQuery,
        CellSentimentReport,
        CellSentimentRunner,
    )
    from engage.channels import (
        Channel,
        ChannelError,
        FileChannel,
        InvalidSignature,
        WebhookChannel,
        verify_signature,
    )
    from engage.dispatcher import (
        Dispatcher,
        DispatchSummary,
    )
    from engage.engine import (
        BatchSummary,
        EngagementEngine,
        InputCursor,
    )
    from engage.feedback import (
        AlreadyAnswered,
        FeedbackService,
        SentimentUpdate,
    )
    from engage.model import (
        DEFAULT_THRESHOLDS,
        METRICS,
        PROBE_SCHEMA,
        Engagement,
        Feedback,
        Incident,
    )
    from engage.probes import ProbeBatch
    from engage.profiles import (
        ProfileEvaluator,
    )
    from engage.queue import (
        EngagementQueue,
        EngagementState,
        EngagementStatus,
        QueuePolicy,
        QueueStats,
        UnknownEngagement,
    )
    from engage.rules import (
        DecisionTable,
        Rule,
        default_decision_table,
        load_decision_table,
    )
    from engage.runner import (
        EngagementLoop,
        LoopSummary,
    )

_HOMES = {
    "METRICS": "engage.model",
    "DEFAULT_THRESHOLDS": "engage.model",
    "PROBE_SCHEMA": "engage.model",
    "Incident": "engage.model",
    "Engagement": "engage.model",
    "Feedback": "engage.model",
    "Rule": "engage.rules",
    "DecisionTable": "engage.rules",
    "default_decision_table": "engage.rules",
    "load_decision_table": "engage.rules",
    "ProfileEvaluator": "engage.profiles",
    "EngagementEngine": "engage.engine",
    "BatchSummary": "engage.engine",
    "InputCursor": "engage.engine",
    "EngagementQueue": "engage.queue",
    "QueuePolicy": "engage.queue",
    "QueueStats": "engage.queue",
    "EngagementState": "engage.queue",
    "EngagementStatus": "engage.queue",
    "UnknownEngagement": "engage.queue",
    "Channel": "engage.channels",
    "ChannelError": "engage.channels",
    "FileChannel": "engage.channels",
    "WebhookChannel": "engage.channels",
    "InvalidSignature": "engage.channels",
    "verify_signature": "engage.channels",
    "Dispatcher": "engage.dispatcher",
    "DispatchSummary": "engage.dispatcher",
    "EngagementLoop": "engage.runner",
    "LoopSummary": "engage.runner",
    "ProbeBatch": "engage.probes",
    "FeedbackService": "engage.feedback",
    "SentimentUpdate": "engage.feedback",
    "AlreadyAnswered": "engage.feedback",
    "CellSentimentQuery": "engage.cells",
    "CellSentimentReport": "engage.cells",
    "CellSentimentRunner": "engage.cells",
}

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METRICS",
    "PROBE_SCHEMA",
    "AlreadyAnswered",
    "BatchSummary",
    "CellSentimentQuery",
    "CellSentimentReport",
    "CellSentimentRunner",
    "Channel",
    "ChannelError",
    "DecisionTable",
    "DispatchSummary",
    "Dispatcher",
    "Engagement",
    "EngagementEngine",
    "EngagementLoop",
    "EngagementQueue",
    "EngagementState",
    "EngagementStatus",
    "Feedback",
    "FeedbackService",
    "FileChannel",
    "Incident",
    "InputCursor",
    "InvalidSignature",
    "LoopSummary",
    "ProbeBatch",
    "ProfileEvaluator",
    "QueuePolicy",
    "QueueStats",
    "Rule",
    "SentimentUpdate",
    "UnknownEngagement",
    "WebhookChannel",
    "default_decision_table",
    "load_decision_table",
    "verify_signature",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'engage' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
