"""``journeygraph journeys ...``: frequency and variant analyses over the lake."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from api.commands._output import JsonFlag, console, fail, print_json
from api.commands.similarity import similar
from api.settings import get_settings
from graph import JourneyGraphError

app = typer.Typer(help="Journey analytics: frequent journeys, variants, similar customers.")

app.command("similar")(similar)

Names = Annotated[list[str] | None, typer.Option(help="repeat the option for several")]


def _timeline_options(
    since: datetime | None,
    until: datetime | None,
    channel: list[str] | None,
    source: list[str] | None,
    exclude: list[str] | None,
    segment: str | None,
    customer: list[str] | None,
    collapse_repeats: bool,
    session_gap: float | None,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "since": since,
        "until": until,
        "channels": channel,
        "sources": source,
        "exclude": exclude or [],
        "customers": customer,
        "collapse_repeats": collapse_repeats,
        "session_gap": None if session_gap is None else timedelta(seconds=session_gap),
    }
    if segment is not None:
        name, _, values = segment.partition("=")
        if not values:
            raise fail(ValueError(f"--segment {segment!r}: write NAME=VALUE[,VALUE...]"))
        options["segment"] = {"name": name, "values": values.split(",")}
    return options


Since = Annotated[
    datetime | None, typer.Option(help="keep touchpoints at or after (ISO 8601, UTC if no zone)")
]
Until = Annotated[datetime | None, typer.Option(help="keep touchpoints before (ISO 8601)")]
Segment = Annotated[
    str | None, typer.Option(help="keep a segment's customers: NAME=VALUE[,VALUE...]")
]
Collapse = Annotated[
    bool, typer.Option("--collapse-repeats", help="merge consecutive same-type touchpoints")
]
Gap = Annotated[
    float | None, typer.Option(help="split timelines at gaps longer than this many seconds")
]


@app.command()
def frequency(
    anchor: Annotated[str, typer.Option(help="the event type of interest")],
    direction: Annotated[str, typer.Option(help="start: journeys from it; end: to it")] = "start",
    max_steps: Annotated[int, typer.Option(help="2 to 20")] = 5,
    occurrence: Annotated[str, typer.Option(help="first or every anchor")] = "first",
    top: Annotated[int, typer.Option(help="how many journeys to list")] = 10,
    between: Annotated[
        str | None, typer.Option(help="end journeys at the first later event of this type")
    ] = None,
    since: Since = None,
    until: Until = None,
    channel: Names = None,
    source: Names = None,
    exclude: Names = None,
    segment: Segment = None,
    customer: Names = None,
    collapse_repeats: Collapse = False,
    session_gap: Gap = None,
    drill_journey: Annotated[
        str | None, typer.Option(help="list the customers of this journey: a,b,c")
    ] = None,
    drill_step: Annotated[
        str | None, typer.Option(help="list the customers at a step: STEP:EVENT[:NEXT_EVENT]")
    ] = None,
    limit: Annotated[int, typer.Option(help="customers to list when drilling down")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """The most frequent journeys from (or to) an event type, with steps and links."""
    from journeys.frequency import DrillDown, FrequencyQuery

    options = _timeline_options(
        since, until, channel, source, exclude, segment, customer, collapse_repeats, session_gap
    )
    fields = {"anchor": anchor, "direction": direction, "max_steps": max_steps}
    fields |= {"occurrence": occurrence, "top": top, "between": between}
    try:
        query = FrequencyQuery.model_validate(options | fields)
        drill = _drill(drill_journey, drill_step, limit)
    except ValidationError as error:
        raise fail(ValueError(_validation_message(error))) from error
    analyzer = _analyzer()
    try:
        if drill is not None:
            print_json(analyzer.customers(query, DrillDown.model_validate(drill)).model_dump())
            return
        result = analyzer.run(query)
    except (JourneyGraphError, ValidationError) as error:
        raise fail(error) from error
    _show(result.model_dump(mode="json"), as_json, f"journeys from {anchor}")


@app.command()
def variants(
    top: Annotated[int, typer.Option(help="how many variants to list")] = 10,
    since: Since = None,
    until: Until = None,
    channel: Names = None,
    source: Names = None,
    exclude: Names = None,
    segment: Segment = None,
    customer: Names = None,
    collapse_repeats: Collapse = False,
    session_gap: Gap = None,
    as_json: JsonFlag = False,
) -> None:
    """Whole timelines counted as variants (each customer's full sequence of event types)."""
    from journeys.frequency import VariantQuery

    options = _timeline_options(
        since, until, channel, source, exclude, segment, customer, collapse_repeats, session_gap
    )
    try:
        query = VariantQuery.model_validate(options | {"top": top})
    except ValidationError as error:
        raise fail(ValueError(_validation_message(error))) from error
    try:
        result = _analyzer().run(query)
    except JourneyGraphError as error:
        raise fail(error) from error
    _show(result.model_dump(mode="json"), as_json, "variants")


def _drill(journey: str | None, step: str | None, limit: int) -> dict[str, Any] | None:
    if journey is None and step is None:
        return None
    if journey is not None:
        return {"journey": journey.split(","), "limit": limit}
    assert step is not None
    number, _, rest = step.partition(":")
    event_type, _, target = rest.partition(":")
    if not number.isdigit() or not event_type:
        raise fail(ValueError(f"--drill-step {step!r}: write STEP:EVENT or STEP:EVENT:NEXT"))
    return {
        "step": int(number),
        "event_type": event_type,
        "target": target or None,
        "limit": limit,
    }


def _analyzer() -> Any:
    from api.bootstrap import open_frequency_analyzer, open_timelines

    with console.status("reading the lake's timelines (built once after each ingest)"):
        index = open_timelines(get_settings())
        try:
            index.load()
        except JourneyGraphError as error:
            raise fail(error) from error
    return open_frequency_analyzer(index)


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or 'query'}: {problem['msg']}"
        for problem in error.errors()
    )


def _show(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        print_json(result)
        return
    total = result["total_journeys"]
    table = Table(title=f"{title}: {total:,} journeys, {result['total_customers']:,} customers")
    for column in ("journey", "count", "customers", "share"):
        table.add_column(column, justify="left" if column == "journey" else "right")
    for journey in result["journeys"]:
        table.add_row(
            " > ".join(journey["steps"]),
            f"{journey['count']:,}",
            f"{journey['customers']:,}",
            f"{journey['share']:.1%}",
        )
    other = result["other"]
    if other["count"]:
        table.add_row(
            f"(other: {other['journeys']:,} journeys)",
            f"{other['count']:,}",
            f"{other['customers']:,}",
            f"{other['share']:.1%}",
        )
    Console().print(table)
    if result.get("not_reached"):
        Console().print(f"{result['not_reached']:,} journeys never reached the end anchor")
