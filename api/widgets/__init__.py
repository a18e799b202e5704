"""The insights dashboard and embeddable widgets: HTML pages over JSON, no build step.

Every widget is one function in ``static/widgets.js`` that draws into an element,
registered by name in ``WIDGETS``; ``/widgets/<name>`` is a page holding just that
widget (for an iframe, with an embed token), and ``/dashboard`` composes all of them
for a person with a read key. Each widget reads ``/widgets/<name>/data`` (``data.py``),
which enforces what an embed token fixes. Pages load plotly.js from the copy the plotly
package bundles (never a CDN) and use relative URLs, so they work wherever the app is
mounted. ``docs/widgets.md`` shows how to embed one.
"""

from __future__ import annotations

from api.widgets.data import router as data_router
from api.widgets.routes import PLOTLY_JS, WIDGETS, UnknownWidget, dashboard_router, router

__all__ = ["PLOTLY_JS", "WIDGETS", "UnknownWidget", "dashboard_router", "data_router", "router"]
