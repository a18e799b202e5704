"""Hand-made probe events for the incident tests (profiles, probes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from engage.model import METRICS, PROBE_SCHEMA

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """``minutes`` after ``T0``."""
    return T0 + timedelta(minutes=minutes)


def probe(
    event_id: str,
    subscriber: str = "+447700900001",
    minutes: float = 0,
    *,
    cell: str = "cell-1",
    weight: float = 1.0,
    **metrics: float | None,
) -> dict[str, Any]:
    """One probe event as a row of ``PROBE_SCHEMA`` (unnamed metrics are null)."""
    unknown = set(metrics) - set(METRICS)
    assert not unknown, unknown
    return {
        "event_id": event_id,
        "subscriber": subscriber,
        "cell_id": cell,
        "ts": at(minutes),
        "weight": weight,
        **{metric: metrics.get(metric) for metric in METRICS},
    }


def probe_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as a ``PROBE_SCHEMA`` table."""
    return pa.Table.from_pylist(rows, schema=PROBE_SCHEMA)
