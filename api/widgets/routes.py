"""The pages: each widget by name, the dashboard, the error page, and their static files."""

from __future__ import annotations

import html
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from api.errors import status_of
from api.security import guard_of
from graph.errors import ExpiredToken, Forbidden, JourneyGraphError, NotFound, Unauthorized

WIDGETS: Final[dict[str, str]] = {
    "sankey": "Journeys from an event",
    "journey-table": "Top journeys",
    "kpi-tile": "KPI",
    "funnel": "Milestone funnel",
    "customer-timeline": "Customer timeline",
    "cell-heatmap": "Cell sentiment",
}
"""Widget name -> its title. Each is drawn by the function of that name in widgets.js."""

_FOLDER: Final = Path(__file__).parent
_STATIC: Final = {
    "widgets.js": "text/javascript",
    "widgets.css": "text/css",
    "dashboard.js": "text/javascript",
}


def _plotly_js() -> Path:
    spec = find_spec("plotly")
    assert spec is not None and spec.submodule_search_locations, "plotly is a dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


PLOTLY_JS: Final = _plotly_js()
"""plotly.js as the plotly Python package bundles it."""


class UnknownWidget(NotFound):
    """A widget name that is not registered (HTTP 404)."""

    code = "unknown_widget"


router = APIRouter(prefix="/widgets", tags=["widgets"])
dashboard_router = APIRouter(tags=["widgets"])


@router.get("/static/plotly.min.js", response_class=FileResponse, include_in_schema=False)
def plotly_js() -> FileResponse:
    """plotly.js, from the plotly package, for the widgets."""
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/{file}", response_class=FileResponse, include_in_schema=False)
def static_file(file: str) -> FileResponse:
    """The widgets' shared script and style sheet."""
    media_type = _STATIC.get(file)
    if media_type is None:
        raise NotFound(f"no static file is named {file!r}")
    return FileResponse(
        _FOLDER / "static" / file, media_type=media_type, headers={"Cache-Control": "no-cache"}
    )


@router.get("/{name}", response_class=HTMLResponse)
def widget(
    name: Annotated[str, PathParam(max_length=64, examples=["customer-timeline"])],
    request: Request,
    token: Annotated[
        str | None, Query(max_length=4096, description="an embed token for this widget")
    ] = None,
) -> HTMLResponse:
    """An embeddable widget page; with ``token``, the token is checked before anything shows."""
    title = WIDGETS.get(name)
    if title is None:
        raise UnknownWidget(f"no widget is named {name!r}", details={"widgets": sorted(WIDGETS)})
    if token is not None:
        try:
            claims = guard_of(request).embed_token(token).embed
            assert claims is not None
            if claims.widget != name:
                raise Forbidden(f"this embed link opens the {claims.widget!r} widget, not {name!r}")
        except JourneyGraphError as error:
            return error_page(error)
    page = (_FOLDER / "widget.html").read_text(encoding="utf-8")
    return HTMLResponse(
        page.replace("{{name}}", html.escape(name)).replace("{{title}}", html.escape(title))
    )


@dashboard_router.get("/dashboard", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    """The insights dashboard: journeys, KPIs, funnel, customer 360, cells (needs a read key)."""
    return HTMLResponse((_FOLDER / "dashboard.html").read_text(encoding="utf-8"))


def error_page(error: JourneyGraphError) -> HTMLResponse:
    """A page a person can read for a refused embed link, with the API's status."""
    if isinstance(error, ExpiredToken):
        heading = "This embedded view has expired"
        advice = "Ask whoever shared it for a new link."
    elif isinstance(error, Unauthorized):
        heading = "This embedded view's link is not valid"
        advice = "It may have been altered or revoked. Ask for a new link."
    else:
        heading = "This embedded view is not allowed"
        advice = "The link does not open this widget."
    page = (_FOLDER / "error.html").read_text(encoding="utf-8")
    for slot, text in (("heading", heading), ("detail", error.message), ("advice", advice)):
        page = page.replace("{{" + slot + "}}", html.escape(text))
    return HTMLResponse(page, status_code=status_of(error))
