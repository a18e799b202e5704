"""Customer segments: named SQL definitions that give every customer one segment value.

The definitions are data (``journeys/segments.yaml``): a name, the known values in
display order, a description precise enough to check a result by hand, and SQL over
the view ``touchpoints`` that returns ``(customer, segment)``. The shipped ones are
``primary_channel``, ``tenure_band``, ``value_band`` and ``care_intensity``.

KPIs break their results down by a segment (``journeys.kpis``); the journey
analyzers keep the customers of some of its values (``segment_customers``, or
``segment_lookup`` for a lake on disk). Segment names and values are checked against
the definitions, so SQL text never contains a caller's input.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graph.errors import InvalidInput
from ingest.lake import Lake
from journeys._lake_views import (
    LakeState,
    MergeMapSource,
    current_merge_map,
    lake_state,
    open_session,
    touchpoints,
)

_LAKE_VIEW = "_segment_touchpoints"
_PLACEHOLDER = re.compile(r"\$[A-Za-z_]")

SegmentLookup = Callable[[str, list[str]], "pa.Array[Any]"]
"""Customer ids of some values of a named segment (what the journey analyzers take)."""


class SegmentDefinition(BaseModel):
    """A named segment: its values in display order and the SQL that assigns them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    values: tuple[str, ...] = Field(min_length=1)
    sql: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> SegmentDefinition:
        if len(set(self.values)) != len(self.values):
            raise ValueError("values must not repeat")
        if _PLACEHOLDER.search(self.sql) or self.sql.rstrip().endswith(";"):
            raise ValueError("SQL must be one query without parameters or a trailing semicolon")
        return self

    def check_values(self, values: list[str]) -> None:
        """``InvalidInput`` naming the known values if any of ``values`` is not one."""
        unknown = [value for value in values if value not in self.values]
        if unknown:
            raise InvalidInput(
                f"segment {self.name} has no value {', '.join(map(repr, unknown))} "
                f"(values: {', '.join(self.values)})",
                details={"segment": self.name, "values": unknown},
            )


@cache
def _builtin() -> dict[str, SegmentDefinition]:
    text = (resources.files("journeys") / "segments.yaml").read_text(encoding="utf-8")
    found: dict[str, SegmentDefinition] = {}
    for name, fields in yaml.safe_load(text).items():
        try:
            found[name] = SegmentDefinition.model_validate({"name": name, **fields})
        except ValidationError as error:
            raise InvalidInput(f"segment definition {name}: {error}") from None
    return found


def segment_definitions() -> dict[str, SegmentDefinition]:
    """The segments shipped with journeygraph, by name (the registry)."""
    return dict(_builtin())


def segment_names() -> list[str]:
    """The names of the known segments, sorted."""
    return sorted(_builtin())


def segment_definition(name: str) -> SegmentDefinition:
    """One segment by name; ``InvalidInput`` listing the known ones if there is none."""
    definitions = _builtin()
    if name not in definitions:
        raise InvalidInput(
            f"no segment {name!r} (segments: {', '.join(sorted(definitions))})",
            details={"segment": name},
        )
    return definitions[name]


def segment_table(
    connection: duckdb.DuckDBPyConnection, lake_relation: duckdb.DuckDBPyRelation, name: str
) -> duckdb.DuckDBPyRelation:
    """``(customer, segment)`` for every customer in ``lake_relation``, one row each.

    ``lake_relation`` is the lake's touchpoints on ``connection`` (``Lake.relation``);
    the answer is a lazy relation on the same connection.
    """
    definition = segment_definition(name)
    lake_relation.create_view(_LAKE_VIEW, replace=True)
    # The CTE shadows any table called touchpoints, so the definition reads this lake;
    # materialised (DuckDB's choice for a CTE read twice) it would copy the whole lake.
    return connection.sql(
        f"WITH touchpoints AS NOT MATERIALIZED (SELECT * FROM {_LAKE_VIEW}) "
        f"SELECT customer, segment FROM ({definition.sql})"
    )


def segment_customers(
    connection: duckdb.DuckDBPyConnection,
    lake_relation: duckdb.DuckDBPyRelation,
    name: str,
    values: list[str],
) -> pa.Array[Any]:
    """The ids of the customers whose value of segment ``name`` is one of ``values``, sorted."""
    segment_definition(name).check_values(values)
    chosen = duckdb.ColumnExpression("segment").isin(
        *(duckdb.ConstantExpression(value) for value in values)
    )
    rows = segment_table(connection, lake_relation, name).filter(chosen).order("customer")
    return rows.select("customer").to_arrow_table().column("customer").combine_chunks()


class SegmentCache:
    """Segment tables of one lake, computed once for each state of its files and merge map.

    A segment reads every touchpoint (seconds at ten million); a dashboard asks for
    many KPIs by the same segment, a journey analyzer filters by it again and again.
    The tables are kept until the lake's files or the merge map change.
    """

    def __init__(self, lake: Lake, merge_map: MergeMapSource) -> None:
        self.lake = lake
        self.merge_map = merge_map
        self._state: LakeState | None = None
        self._tables: dict[str, pa.Table] = {}
        self._lock = threading.Lock()

    def table(self, name: str, merge_map: Mapping[str, str] | None = None) -> pa.Table:
        """``(customer, segment)`` of every customer (``merge_map``: the one already read)."""
        segment_definition(name)
        current = current_merge_map(self.merge_map) if merge_map is None else merge_map
        state = lake_state(self.lake, current)
        with self._lock:
            if state != self._state:
                self._state, self._tables = state, {}
            cached = self._tables.get(name)
        if cached is not None:
            return cached
        connection = open_session()
        try:
            relation = touchpoints(connection, self.lake, current)
            table = segment_table(connection, relation, name).to_arrow_table()
        finally:
            connection.close()
        with self._lock:
            if self._state == state:
                self._tables[name] = table
        return table

    def customers(self, name: str, values: list[str]) -> pa.Array[Any]:
        """The ids of the customers in any of ``values`` of segment ``name``, sorted."""
        segment_definition(name).check_values(values)
        table = self.table(name)
        chosen = table.filter(pc.is_in(table.column("segment"), pa.array(values, pa.string())))
        customers = chosen.column("customer").combine_chunks()
        return customers.take(pc.sort_indices(customers))


def segment_lookup(lake: Lake, merge_map: MergeMapSource) -> SegmentLookup:
    """``segment_customers`` over ``lake`` as it is at each call, for the journey analyzers."""
    return SegmentCache(lake, merge_map).customers
