"""The widget routes: the pages by name, and the plotly.js they load."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from graph.errors import NotFound

WIDGETS: Final[dict[str, str]] = {
    "cell-heatmap": "cell_heatmap.html",
}
"""Widget name -> its page in this folder."""

_FOLDER: Final = Path(__file__).parent


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


@router.get("/static/plotly.min.js", response_class=FileResponse, include_in_schema=False)
def plotly_js() -> FileResponse:
    """plotly.js, from the plotly package, for the widgets."""
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/{name}", response_class=HTMLResponse)
def widget(
    name: Annotated[str, PathParam(max_length=64, examples=["cell-heatmap"])],
) -> HTMLResponse:
    """An embeddable widget page by name (cell-heatmap)."""
    page = WIDGETS.get(name)
    if page is None:
        raise UnknownWidget(f"no widget is named {name!r}", details={"widgets": sorted(WIDGETS)})
    return HTMLResponse((_FOLDER / page).read_text(encoding="utf-8"))
