"""``journeygraph kpis [NAME]``: list the KPIs, or compute one over the lake."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.commands._output import JsonFlag, fail, print_json
from api.settings import get_settings
from graph import JourneyGraphError


def kpis(
    name: Annotated[
        str | None, typer.Argument(help="the KPI to compute; leave out to list them all")
    ] = None,
    grain: Annotated[str, typer.Option(help="none, day, week or month")] = "none",
    segment: Annotated[
        str | None, typer.Option(help="break down by a segment, e.g. tenure_band")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="facts at or after (ISO 8601, UTC if no zone)")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="facts before (ISO 8601)")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="a KPI parameter as NAME=VALUE; repeat for more")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Named KPIs over the lake (funnels, repeat contacts, CSAT by journey, ...)."""
    from journeys.kpis import KpiQuery, kpi_catalog, parse_params

    if name is None:
        catalog = kpi_catalog().model_dump(mode="json")
        if as_json:
            print_json(catalog)
        else:
            _show_catalog(catalog)
        return
    from api.bootstrap import open_lake
    from journeys.kpis import KpiRunner

    try:
        query = KpiQuery.of(
            kpi=name,
            params=parse_params(param or []),
            grain=grain,
            segment=segment,
            since=_utc(since),
            until=_utc(until),
        )
        result = KpiRunner(*open_lake(get_settings())).run(query)
    except JourneyGraphError as error:
        raise fail(error) from error
    answer = result.model_dump(mode="json")
    if as_json:
        print_json(answer)
    else:
        _show_result(answer)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _show_catalog(catalog: dict[str, Any]) -> None:
    table = Table(title=f"{len(catalog['kpis'])} KPIs (journeygraph kpis NAME --param k=v)")
    for column in ("name", "unit", "parameters (default)", "title"):
        table.add_column(column)
    for kpi in catalog["kpis"]:
        parameters = ", ".join(
            f"{key}={'REQUIRED' if spec['required'] else spec['default']}"
            for key, spec in kpi["parameters"].items()
        )
        table.add_row(kpi["name"], kpi["unit"], parameters, kpi["title"])
    Console().print(table)
    segments = ", ".join(segment["name"] for segment in catalog["segments"])
    Console().print(f"segments (--segment): {segments}")


def _show_result(result: dict[str, Any]) -> None:
    rows = [{**row, **(row["statistics"] or {})} for row in result["rows"]]
    columns = ["period", "segment", "dimension", "step", "value", "numerator", "denominator"]
    columns += ["count", "p90", "mean"]
    # Only the columns this KPI and query fill: no empty period column without a grain.
    shown = [column for column in columns if any(row.get(column) is not None for row in rows)]
    table = Table(title=f"{result['title']} ({result['unit']}): {len(rows)} rows")
    for column in shown:
        table.add_column(column, justify="left" if column in _TEXT else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in shown))
    Console().print(table)


_TEXT = frozenset({"period", "segment", "dimension"})


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)
