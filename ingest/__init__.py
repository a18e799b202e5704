"""Ingest: sources in, canonical touchpoints, identity resolution, graph and lake out."""

from ingest.frame import FRAME_SCHEMA, FrameBatch, QuarantinedRow
from ingest.identifiers import IdentifierError, normalise_identifier
from ingest.lake import Lake
from ingest.mapping import SourceMapping, builtin_mappings, load_mapping
from ingest.pipeline import Ingestor, IngestSummary
from ingest.touchpoint import Channel, RowProblem, Touchpoint

__all__ = [
    "FRAME_SCHEMA",
    "Channel",
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
