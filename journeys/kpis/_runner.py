"""Running a KPI: its facts grouped by period, segment and dimension, then aggregated.

``KpiRunner(lake, merge_map).run(KpiQuery(...))`` opens a DuckDB session over the
lake, creates the views definitions read, binds the definition's parameters and the
time window, and aggregates the definition's facts (``journeys.kpis._definitions``):

* ``ratio``: ``value = sum(numerator) / sum(denominator)`` (a rate, or a mean when
  every denominator is 1);
* ``share``: ``numerator = sum(numerator)`` of the dimension value,
  ``denominator`` the same sum over every dimension value of the period and
  segment, ``value = numerator / denominator``;
* ``distribution``: ``value`` is the median of the facts' values, with ``p50``,
  ``p90`` (linear interpolation between closest ranks) and ``mean`` in
  ``statistics``.

A fact counts when its ``ts`` is in ``[since, until)``; its period is the UTC day,
the ISO week (from Monday) or the month that holds ``ts``. With a segment, each
fact's customer is looked up in the segment's table (``journeys.segments``).
Grain and segment reach the SQL only as names taken from fixed tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

import duckdb
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from graph.errors import InvalidInput
from ingest.lake import Lake
from journeys._lake_views import MergeMapSource, create_views, current_merge_map, open_session
from journeys.kpis._definitions import PLACEHOLDER, Aggregate, KpiDefinition, kpi_definition
from journeys.segments import SegmentCache, segment_definition

Grain = Literal["none", "day", "week", "month"]

_DAY: Final = "(epoch_ms(f.ts) // 86400000)"
_PERIOD_KEY: Final[dict[str, str]] = {
    "none": "NULL::BIGINT",
    "day": _DAY,
    "week": f"({_DAY} - (({_DAY} + 3) % 7 + 7) % 7)",
    "month": f"(year(DATE '1970-01-01' + CAST({_DAY} AS INTEGER)) * 12 "
    f"+ month(DATE '1970-01-01' + CAST({_DAY} AS INTEGER)) - 1)",
}
"""Each fact's period as a number: days since 1970 of its first day, or months since year 0.

Integer arithmetic on epoch milliseconds: ``date_trunc`` on a timestamp with time zone
goes through ICU and took 8 s per 10M facts, these take under one (1970-01-01 was a
Thursday, so ``(day + 3) % 7`` is days since Monday).
"""
_PERIOD: Final[dict[str, str]] = {
    "none": "CAST(NULL AS DATE)",
    "day": "DATE '1970-01-01' + CAST(period AS INTEGER)",
    "week": "DATE '1970-01-01' + CAST(period AS INTEGER)",
    "month": "make_date(CAST(period // 12 AS INTEGER), CAST(period % 12 + 1 AS INTEGER), 1)",
}
"""The first day of each period from its number (on the grouped rows only)."""
_EARLIEST: Final = datetime(1, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_FACT_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "ratio": ("customer", "ts", "dimension", "step", "numerator", "denominator"),
    "share": ("customer", "ts", "dimension", "step", "numerator"),
    "distribution": ("customer", "ts", "dimension", "step", "value"),
}
_MEASURES: Final[dict[str, str]] = {
    "ratio": (
        "sum(f.numerator)::DOUBLE AS numerator, sum(f.denominator)::DOUBLE AS denominator, "
        "NULL::DOUBLE AS p50, NULL::DOUBLE AS p90, NULL::DOUBLE AS mean"
    ),
    "share": (
        "sum(f.numerator)::DOUBLE AS numerator, NULL::DOUBLE AS denominator, "
        "NULL::DOUBLE AS p50, NULL::DOUBLE AS p90, NULL::DOUBLE AS mean"
    ),
    "distribution": (
        "NULL::DOUBLE AS numerator, NULL::DOUBLE AS denominator, "
        "quantile_cont(f.value, 0.5) AS p50, quantile_cont(f.value, 0.9) AS p90, "
        "avg(f.value) AS mean"
    ),
}
"""What each aggregate sums up per group."""
_VALUES: Final[dict[str, str]] = {
    "ratio": "numerator, denominator, numerator / nullif(denominator, 0) AS value",
    "share": (
        "numerator, sum(numerator) OVER (PARTITION BY period, segment) AS denominator, "
        "numerator / nullif(sum(numerator) OVER (PARTITION BY period, segment), 0) AS value"
    ),
    "distribution": "numerator, denominator, p50 AS value",
}
"""How each aggregate makes a row's value from the group's sums."""


class KpiQuery(BaseModel):
    """Which KPI to compute, with which parameters, over which window, by what."""

    model_config = ConfigDict(extra="forbid")

    kpi: str = Field(min_length=1, description="a KPI name, e.g. repeat_contacts")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the KPI's parameters; defaults fill the rest"
    )
    grain: Grain = Field(default="none", description="one row per day, ISO week, month, or none")
    segment: str | None = Field(
        default=None, description="break down by a segment, e.g. tenure_band"
    )
    since: AwareDatetime | None = Field(default=None, description="facts at or after this time")
    until: AwareDatetime | None = Field(default=None, description="facts before this time")

    @classmethod
    def of(cls, **fields: Any) -> KpiQuery:
        """A query from loose fields; what is wrong is ``InvalidInput``, field by field."""
        try:
            query = cls.model_validate(fields)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or 'query'}: {problem['msg']}"
                for problem in error.errors()
            )
            raise InvalidInput(f"KPI query: {problems}") from None
        if query.since and query.until and query.since >= query.until:
            raise InvalidInput("KPI query: since must be before until")
        return query


class KpiRow(BaseModel):
    """One aggregated group: a period, a segment value and a dimension value."""

    period: date | None = Field(description="first day of the period; none without a grain")
    segment: str | None = Field(description="the segment value; none without a segment")
    dimension: str | None = Field(description="the KPI's dimension value, if it has one")
    step: int | None = Field(description="the order of the dimension value (funnel step)")
    value: float | None = Field(description="the KPI; none when the denominator is 0")
    numerator: float | None = None
    denominator: float | None = None
    count: int = Field(description="facts behind the row (contacts, customers, answers)")
    statistics: dict[str, float] | None = Field(
        None, description="p50, p90 and mean of a distribution"
    )


class KpiResult(BaseModel):
    """A KPI's rows and what they mean: the definition's metadata and the query's settings."""

    kpi: str
    title: str
    description: str
    unit: str
    aggregate: Aggregate
    dimension: str | None
    parameters: dict[str, Any]
    grain: Grain
    segment: str | None
    since: datetime | None
    until: datetime | None
    rows: list[KpiRow]


class KpiRunner:
    """Computes KPIs over a lake; one DuckDB session per query.

    ``merge_map`` is the identity merge map, or a function that reads the current one
    (so a long-lived runner follows merges made after it was built). Segment tables
    are kept between queries while the lake and merge map stay the same
    (``journeys.segments.SegmentCache``).
    """

    def __init__(self, lake: Lake, merge_map: MergeMapSource) -> None:
        self.lake = lake
        self.merge_map = merge_map
        self.segments = SegmentCache(lake, merge_map)

    def run(self, query: KpiQuery) -> KpiResult:
        """The query's KPI, grouped and aggregated (see the module docstring)."""
        definition = kpi_definition(query.kpi)
        parameters = definition.bind(query.params)
        segment_values = None if query.segment is None else segment_definition(query.segment)
        merge_map = current_merge_map(self.merge_map)
        segments = (
            None if segment_values is None else self.segments.table(segment_values.name, merge_map)
        )
        connection = open_session()
        try:
            create_views(connection, self.lake, merge_map)
            if segments is not None:
                connection.register("kpi_segment", segments)
            sql = _query_sql(definition, query.grain, segmented=segment_values is not None)
            window = {"since": query.since or _EARLIEST, "until": query.until or _LATEST}
            order = {"segment_order": list(segment_values.values)} if segment_values else {}
            bound = {**parameters, **window, **order}
            used = set(PLACEHOLDER.findall(sql))
            try:
                found = connection.execute(sql, {k: v for k, v in bound.items() if k in used})
                records = found.fetchall()
            except duckdb.Error as error:
                raise InvalidInput(f"KPI {definition.name} failed on this lake: {error}") from error
        finally:
            connection.close()
        return KpiResult(
            kpi=definition.name,
            title=definition.title,
            description=definition.description,
            unit=definition.unit,
            aggregate=definition.aggregate,
            dimension=definition.dimension,
            parameters=parameters,
            grain=query.grain,
            segment=query.segment,
            since=query.since,
            until=query.until,
            rows=[_row(record, definition.aggregate) for record in records],
        )


def run_kpi(
    name: str,
    lake: Lake,
    merge_map: MergeMapSource,
    params: Mapping[str, Any] | None = None,
    grain: Grain = "none",
    segment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> KpiResult:
    """Compute KPI ``name`` over ``lake`` (``KpiRunner(lake, merge_map).run`` in one call)."""
    query = KpiQuery.of(
        kpi=name, params=dict(params or {}), grain=grain, segment=segment, since=since, until=until
    )
    return KpiRunner(lake, merge_map).run(query)


def _query_sql(definition: KpiDefinition, grain: Grain, segmented: bool) -> str:
    segment = "coalesce(s.segment, 'unknown')" if segmented else "CAST(NULL AS VARCHAR)"
    join = "LEFT JOIN kpi_segment s ON s.customer = f.customer" if segmented else ""
    segment_order = "list_position($segment_order, segment), " if segmented else ""
    columns = ", ".join(f"f.{name}" for name in _FACT_COLUMNS[definition.aggregate])
    return (
        f"WITH facts AS ({definition.sql}), "
        f"grouped AS MATERIALIZED ("
        f"SELECT {_PERIOD_KEY[grain]} AS period, {segment} AS segment, f.dimension, f.step, "
        f"count(*) AS count, {_MEASURES[definition.aggregate]} "
        f"FROM (SELECT {columns} FROM facts f) f {join} "
        f"WHERE f.ts >= $since AND f.ts < $until "
        f"GROUP BY ALL) "
        f"SELECT {_PERIOD[grain]} AS period, segment, dimension, step, "
        f"{_VALUES[definition.aggregate]}, count, p50, p90, mean FROM grouped "
        f"ORDER BY period NULLS FIRST, {segment_order}segment, step NULLS LAST, "
        f"dimension NULLS FIRST"
    )


def _row(record: tuple[Any, ...], aggregate: Aggregate) -> KpiRow:
    period, segment, dimension, step, numerator, denominator, value, count, p50, p90, mean = record
    statistics = {"p50": p50, "p90": p90, "mean": mean} if aggregate == "distribution" else None
    return KpiRow(
        period=period,
        segment=segment,
        dimension=dimension,
        step=step,
        value=value,
        numerator=numerator,
        denominator=denominator,
        count=count,
        statistics=statistics,
    )
