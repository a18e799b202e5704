"""The views KPI and segment SQL reads: ``touchpoints`` and ``milestone_reaches``.

``touchpoints`` is the lake (``ingest.lake.Lake.relation``) with customers mapped to
their survivors. ``milestone_reaches`` is the milestone materialisation's current
reaches (``journeys.milestones.reaches_relation`` over ``<lake root>/milestones/``:
customer, milestone, version, reached_at, evidence; customers mapped the same way),
keeping of each milestone only the reaches of its latest version (a changed
definition is backfilled under a new version; the older version's reaches describe
a rule no longer in force). An empty lake, or no reaches yet, gives empty views of
the same columns, so every KPI answers "nothing yet" instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

import duckdb
import pyarrow as pa

from ingest.frame import FRAME_SCHEMA
from ingest.lake import Lake
from journeys.milestones import REACH_SCHEMA, reaches_relation

MergeMapSource: TypeAlias = Mapping[str, str] | Callable[[], Mapping[str, str]]
"""A merge map (loser -> survivor), or a function that reads the current one."""

LakeState: TypeAlias = tuple[object, ...]
"""What a lake and merge map were when something was computed from them."""


def current_merge_map(source: MergeMapSource) -> Mapping[str, str]:
    """The merge map itself, read now if ``source`` is a function."""
    return source() if callable(source) else source


def lake_state(lake: Lake, merge_map: Mapping[str, str]) -> LakeState:
    """Changes whenever the lake's files or the merge map do (names, sizes, mtimes)."""
    files = []
    for path in lake.files():
        stat = path.stat()
        files.append((path.name, path.parent.name, stat.st_size, stat.st_mtime_ns))
    return (tuple(files), lake.corrections.exists(), hash(frozenset(merge_map.items())))


LAKE_SCHEMA: Final = (
    FRAME_SCHEMA.append(pa.field("customer", pa.string()))
    .append(pa.field("batch", pa.int64()))
    .append(pa.field("month", pa.string()))
)
"""The columns of ``touchpoints``: the frame's, and what the lake adds to each row."""


def open_session() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose dates and periods are in UTC."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def touchpoints(
    connection: duckdb.DuckDBPyConnection, lake: Lake, merge_map: Mapping[str, str]
) -> duckdb.DuckDBPyRelation:
    """The lake's touchpoints with customers mapped (no rows when the lake is empty)."""
    relation = lake.relation(connection, merge_map)
    if relation is None:
        return connection.from_arrow(LAKE_SCHEMA.empty_table())
    return relation


def create_views(
    connection: duckdb.DuckDBPyConnection, lake: Lake, merge_map: Mapping[str, str]
) -> duckdb.DuckDBPyRelation:
    """Create ``touchpoints`` and ``milestone_reaches`` on ``connection``; returns the former."""
    lake_relation = touchpoints(connection, lake, merge_map)
    lake_relation.create_view("touchpoints", replace=True)
    reaches = reaches_relation(connection, lake.root, merge_map)
    if reaches is None:
        connection.register("_current_reaches", REACH_SCHEMA.empty_table())
    else:
        reaches.create_view("_current_reaches", replace=True)
    connection.execute(
        "CREATE OR REPLACE TEMP VIEW milestone_reaches AS "
        "SELECT customer, milestone, version, reached_at, evidence FROM _current_reaches "
        "QUALIFY version = max(version) OVER (PARTITION BY milestone)"
    )
    return lake_relation
