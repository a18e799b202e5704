"""Ingest: canonical touchpoints, identifier normalisation, graph writes and the generator."""

from ingest.graph_writer import GraphWriter, ResolvedTouchpoint, WriteSummary
from ingest.identifiers import IdentifierError, normalise_identifier
from ingest.touchpoint import Channel, RowProblem, Touchpoint

__all__ = [
    "Channel",
    "GraphWriter",
    "IdentifierError",
    "ResolvedTouchpoint",
    "RowProblem",
    "Touchpoint",
    "WriteSummary",
    "normalise_identifier",
]
