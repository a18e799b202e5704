"""Embeddable widgets: self-contained HTML pages over the JSON API, no build step.

Each widget is one HTML file in this folder, registered by name in ``WIDGETS`` and
served at ``/widgets/<name>``. Pages load plotly.js from the copy the plotly package
bundles, served at ``/widgets/static/plotly.min.js`` (never a CDN: the service must
work without the internet), and fetch their data with relative URLs, so they work
wherever the app is mounted.
"""

from __future__ import annotations

from api.widgets.routes import PLOTLY_JS, WIDGETS, UnknownWidget, router

__all__ = ["PLOTLY_JS", "WIDGETS", "UnknownWidget", "router"]
