"""One exception handler maps the error tree to HTTP statuses and a JSON body.

Body shape: ``{"error": {"code": ..., "message": ..., "details": {...}}}``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from graph.errors import (
    Conflict,
    Forbidden,
    GraphError,
    GraphUnavailable,
    InvalidInput,
    JourneyGraphError,
    NotFound,
    PayloadTooLarge,
    QueryTimeout,
    RateLimited,
    RequestTimeout,
    Unauthorized,
)

_STATUS: list[tuple[type[JourneyGraphError], int]] = [
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (PayloadTooLarge, 413),
    (RequestTimeout, 408),
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
    headers: dict[str, str] = {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="journeygraph"'
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(error.details["retry_after_seconds"])))
    return JSONResponse(
        error_body(error.code, error.message, error.details),
        status_code=status_of(error),
        headers=headers,
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


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    message = str(error.detail) if error.detail else code.replace("_", " ")
    if error.status_code == 404:
        message = f"nothing is served at {request.url.path}"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return JSONResponse(
        error_body(code, message), status_code=error.status_code, headers=error.headers
    )


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    LOG.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse(
        error_body(
            "internal_error", "the service failed unexpectedly; the error is logged with its id"
        ),
        status_code=500,
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 406: "not_acceptable"}
LOG = logging.getLogger("journeygraph.api")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(JourneyGraphError, _journeygraph_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
