"""One exception handler maps the error tree to HTTP statuses and a JSON body.

Body shape: ``{"error": {"code": ..., "message": ..., "details": {...}}}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from graph.errors import (
    Conflict,
    GraphError,
    GraphUnavailable,
    InvalidInput,
    JourneyGraphError,
    NotFound,
    QueryTimeout,
)

_STATUS: list[tuple[type[JourneyGraphError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (QueryTimeout, 504),
    (GraphUnavailable, 503),
    (GraphError, 503),
]


def status_of(error: JourneyGraphError) -> int:
    """The HTTP status for an error of the tree (500 for anything unexpected)."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON error envelope."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


async def _journeygraph_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, JourneyGraphError)
    return JSONResponse(
        error_body(error.code, error.message, error.details), status_code=status_of(error)
    )


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {
            "where": ".".join(str(part) for part in problem.get("loc", ())),
            "problem": problem.get("msg", ""),
        }
        for problem in error.errors()
    ]
    return JSONResponse(
        error_body("invalid_request", "the request is malformed", {"problems": problems}),
        status_code=422,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(JourneyGraphError, _journeygraph_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
