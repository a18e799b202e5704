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
 +-- Unauthorized            no credentials, or an unknown or revoked API key (HTTP 401)
 |    +-- InvalidToken       an embed token that is malformed or was tampered with
 |         +-- ExpiredToken  an embed token past its expiry
 +-- Forbidden               the credentials do not allow this (HTTP 403)
 +-- RateLimited             the key sent more requests than its rate allows (HTTP 429)
 +-- RequestRejected         the HTTP request itself is unacceptable
 |    +-- PayloadTooLarge    a body over the size limit (HTTP 413)
 |    +-- RequestTimeout     a client that sent its body too slowly (HTTP 408)
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


class Unauthorized(JourneyGraphError):
    """No credentials were sent, or they name no active API key."""

    code = "unauthorized"


class InvalidToken(Unauthorized):
    """An embed token that is malformed, was tampered with or whose key was revoked."""

    code = "invalid_token"


class ExpiredToken(InvalidToken):
    """An embed token past its expiry."""

    code = "expired_token"


class Forbidden(JourneyGraphError):
    """The credentials are valid but do not allow this request."""

    code = "forbidden"


class RateLimited(JourneyGraphError):
    """The key sent more requests than its rate allows; ``details`` says when to retry."""

    code = "rate_limited"


class RequestRejected(JourneyGraphError):
    """The HTTP request itself is unacceptable (too large, too slow)."""

    code = "request_rejected"


class PayloadTooLarge(RequestRejected):
    """A request body over the configured size limit."""

    code = "payload_too_large"


class RequestTimeout(RequestRejected):
    """A client that did not send its whole body within the configured time."""

    code = "request_timeout"


class GraphError(JourneyGraphError):
    """The graph store failed; the batch that was being written was not applied."""

    code = "graph_error"


class GraphUnavailable(GraphError):
    """The graph store cannot be reached, or it dropped the connection."""

    code = "graph_unavailable"


class QueryTimeout(GraphError):
    """The graph store did not answer within the configured timeout."""

    code = "query_timeout"
