"""``journeygraph journeys similar``: customers whose journeys are most like one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from api.commands._output import JsonFlag, console, fail, print_json
from api.settings import get_settings
from graph import JourneyGraphError

if TYPE_CHECKING:
    from journeys.similarity import SimilarityAnalyzer


def similar(
    customer: Annotated[
        str | None, typer.Option(help="compare with this customer's journey (cust:... or bare)")
    ] = None,
    steps: Annotated[
        str | None, typer.Option(help="or with these event types, in order: a,b,c")
    ] = None,
    top: Annotated[int, typer.Option(help="how many similar customers to list")] = 10,
    min_similarity: Annotated[
        float, typer.Option(help="count the customers at or above this similarity")
    ] = 0.7,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="event types to drop (repeat; default network_kpi; '' for none)"),
    ] = None,
    collapse_repeats: Annotated[
        bool, typer.Option("--collapse-repeats/--keep-repeats", help="merge repeated steps")
    ] = True,
    last_steps: Annotated[int, typer.Option(help="compare the most recent steps")] = 20,
    since: Annotated[
        datetime | None,
        typer.Option(help="keep touchpoints at or after (ISO 8601, UTC if no zone)"),
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="keep touchpoints before")] = None,
    method: Annotated[str, typer.Option(help="lsh (the index) or exact (scan all)")] = "lsh",
    outcome: Annotated[
        bool, typer.Option("--outcome/--no-outcome", help="say what became of each customer")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Customers whose journeys are most similar to a customer's, or to a list of steps."""
    fields: dict[str, Any] = {
        "customer": customer,
        "steps": None if steps is None else [s.strip() for s in steps.split(",") if s.strip()],
        "top": top,
        "min_similarity": min_similarity,
        "collapse_repeats": collapse_repeats,
        "last_steps": last_steps,
        "since": _utc(since),
        "until": _utc(until),
        "include_outcome": outcome,
        "method": method,
    }
    if exclude is not None:
        fields["exclude"] = [name for name in exclude if name]
    from journeys.similarity import SimilarityQuery

    try:
        query = SimilarityQuery.model_validate(fields)
    except ValidationError as error:
        raise fail(ValueError(_problems(error))) from error
    analyzer = _analyzer()
    try:
        result = analyzer.run(query).model_dump(mode="json")
    except JourneyGraphError as error:
        raise fail(error) from error
    if as_json:
        print_json(result)
        return
    _show(result)


def _analyzer() -> SimilarityAnalyzer:
    from api.bootstrap import open_similarity_analyzer, open_timelines

    with console.status("opening the similarity index (built once, then kept up to date)"):
        analyzer = open_similarity_analyzer(open_timelines(get_settings()))
        try:
            analyzer.warm()
        except JourneyGraphError as error:
            raise fail(error) from error
    return analyzer


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or 'query'}: {problem['msg']}"
        for problem in error.errors()
    )


def _show(result: dict[str, Any]) -> None:
    counted = "" if result["count_exact"] else "at least "
    title = (
        f"{' > '.join(result['steps'])}\n{counted}{result['count']:,} customers at or above "
        f"{result['min_similarity']:.0%} similarity ({result['method']})"
    )
    table = Table(title=title)
    for column in ("customer", "similarity", "shared", "outcome", "journey"):
        table.add_column(column, justify="right" if column in ("similarity", "shared") else "left")
    for match in result["similar"]:
        table.add_row(
            match["customer"],
            f"{match['similarity']:.2f}",
            f"{len(match['shared_steps'])}/{len(result['steps'])}",
            match["outcome"] or "",
            " > ".join(match["steps"]),
        )
    Console().print(table)
    if result["outcomes"]:
        mix = ", ".join(f"{name} {count}" for name, count in result["outcomes"].items())
        Console().print(f"outcomes of these {len(result['similar'])}: {mix}")
