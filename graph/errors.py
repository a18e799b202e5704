"""The journeygraph error tree.

Every error the library raises on purpose is a ``JourneyGraphError``; backends
translate driver and database errors into it with ``raise ... from e`` so callers
never have to know which backend they talk to::

    JourneyGraphError
     +-- InvalidInput            the caller sent something malformed (HTTP 422)
     |    +-- UnknownLabel       a vertex or edge label outside the data model
     |    +-- MalformedId        an id that breaks the id rules of its label
     |    +-- UnsupportedProperty  a property key or value type the model cannot store
     +-- NotFound                something named by the caller does not exist (HTTP 404)
     |    +-- UnknownVertex      an edge endpoint or a looked-up vertex is missing
     |    +-- UnknownCustomer    a customer id that is not in the graph
     +-- Conflict                the request clashes with what is recorded (HTTP 409)
     +-- GraphError              the graph store failed (HTTP 503 / 504)
          +-- GraphUnavailable   the store cannot be reached or dropped the connection
          +-- QueryTimeout       the store did not answer in time

Each error carries a short machine-readable ``code`` and optional ``details``
(for example the offending row index) so the HTTP layer can map the tree to
``{"error": {"code", "message", "details"}}`` bodies in one handler.
"""

from __future__ import annotations

from typing import Any


class JourneyGraphError(Exception):
    """Base of every error raised by journeygraph on purpose."""

    code = "journeygraph_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        if not self.details:
            return self.message
        extra = ", ".join(f"{key}={value!r}" for key, value in self.details.items())
        return f"{self.message} ({extra})"


class InvalidInput(JourneyGraphError):
    """The caller sent something malformed; nothing was written."""

    code = "invalid_input"


class UnknownLabel(InvalidInput):
    """A vertex or edge label that the data model does not define."""

    code = "unknown_label"


class MalformedId(InvalidInput):
    """An id that is empty, too long, has control characters or the wrong prefix."""

    code = "malformed_id"


class UnsupportedProperty(InvalidInput):
    """A property key or value type that the data model cannot store."""

    code = "unsupported_property"


class NotFound(JourneyGraphError):
    """Something the caller named does not exist."""

    code = "not_found"


class UnknownVertex(NotFound):
    """A vertex id that is not in the graph (for example an edge endpoint)."""

    code = "unknown_vertex"


class UnknownCustomer(NotFound):
    """A customer id that is not in the graph."""

    code = "unknown_customer"


class Conflict(JourneyGraphError):
    """The request clashes with what is already recorded (an answer given twice)."""

    code = "conflict"


class GraphError(JourneyGraphError):
    """The graph store failed; the batch that was being written was not applied."""

    code = "graph_error"


class GraphUnavailable(GraphError):
    """The graph store cannot be reached, or it dropped the connection."""

    code = "graph_unavailable"


class QueryTimeout(GraphError):
    """The graph store did not answer within the configured timeout."""

    code = "query_timeout"
