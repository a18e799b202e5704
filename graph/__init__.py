"""The graph layer: one ``GraphStore`` interface, an embedded default and a Gremlin backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graph.embedded import EmbeddedStore
from graph.errors import (
    GraphError,
    GraphUnavailable,
    InvalidInput,
    JourneyGraphError,
    MalformedId,
    NotFound,
    QueryTimeout,
    UnknownCustomer,
    UnknownLabel,
    UnknownVertex,
    UnsupportedProperty,
)
from graph.model import EdgeLabel, IdentifierKind, VertexLabel
from graph.store import (
    Change,
    ChangeBatch,
    ChangeKind,
    Edge,
    GraphStore,
    Neighbour,
    UpsertResult,
    Vertex,
)

if TYPE_CHECKING:
    from graph.gremlin import GremlinStore

__all__ = [
    "Change",
    "ChangeBatch",
    "ChangeKind",
    "Edge",
    "EdgeLabel",
    "EmbeddedStore",
    "GraphError",
    "GraphStore",
    "GraphUnavailable",
    "GremlinStore",
    "IdentifierKind",
    "InvalidInput",
    "JourneyGraphError",
    "MalformedId",
    "Neighbour",
    "NotFound",
    "QueryTimeout",
    "UnknownCustomer",
    "UnknownLabel",
    "UnknownVertex",
    "UnsupportedProperty",
    "UpsertResult",
    "Vertex",
    "VertexLabel",
]


def __getattr__(name: str) -> Any:
    # gremlinpython (and its event loop machinery) loads only for users of the Gremlin backend.
    if name == "GremlinStore":
        from graph.gremlin import GremlinStore

        return GremlinStore
    raise AttributeError(f"module 'graph' has no attribute {name!r}")
