"""Ingest: sources in, canonical touchpoints, identity resolution, graph and lake out.

Names are imported on first use: ``import ingest.lake`` (what the analyzers need)
then does not pay for the pipeline, Splink and SciPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.frame import FRAME_SCHEMA, FrameBatch, QuarantinedRow
    from ingest.identifiers import IdentifierError, normalise_identifier
    from ingest.lake import Lake
    from ingest.mapping import SourceMapping, builtin_mappings, load_mapping
    from ingest.pipeline import Ingestor, IngestSummary
    from ingest.touchpoint import Channel, RowProblem, Touchpoint

_HOMES = {
    "FRAME_SCHEMA": "ingest.frame",
    "FrameBatch": "ingest.frame",
    "QuarantinedRow": "ingest.frame",
    "IdentifierError": "ingest.identifiers",
    "normalise_identifier": "ingest.identifiers",
    "Lake": "ingest.lake",
    "SourceMapping": "ingest.mapping",
    "builtin_mappings": "ingest.mapping",
    "load_mapping": "ingest.mapping",
    "Ingestor": "ingest.pipeline",
    "IngestSummary": "ingest.pipeline",
    "Channel": "ingest.touchpoint",
    "RowProblem": "ingest.touchpoint",
    "Touchpoint": "ingest.touchpoint",
}

__all__ = [
    "Channel",
    "FRAME_SCHEMA",
    "FrameBatch",
    "IdentifierError",
    "IngestSummary",
    "Ingestor",
    "Lake",
    "QuarantinedRow",
    "RowProblem",
    "SourceMapping",
    "Touchpoint",
    "builtin_mappings",
    "load_mapping",
    "normalise_identifier",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
