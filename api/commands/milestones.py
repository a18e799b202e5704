"""``journeygraph milestones``: define milestones, backfill them, follow the feed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.bootstrap import open_milestones, open_store
from api.commands._output import JsonFlag, console, emit, fail, print_json, progress_bar
from api.settings import get_settings
from graph import JourneyGraphError
from journeys.milestones import (
    DryRunQuery,
    FollowSummary,
    MilestoneDefinition,
    MilestoneService,
    load_definition,
)

app = typer.Typer(
    name="milestones",
    help="Milestones: definitions as data, reached by backfill and from the change feed.",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="the milestone's name, e.g. repeat_care_3_in_7d")]


@contextmanager
def _milestones() -> Iterator[MilestoneService]:
    """The configured store and milestones; domain errors end the command cleanly."""
    settings = get_settings()
    try:
        store = open_store(settings)
    except JourneyGraphError as error:
        raise fail(error) from error
    with store:
        try:
            yield open_milestones(settings, store)
        except (JourneyGraphError, OSError, ValueError) as error:
            raise fail(error) from error


@app.command("list")
def list_milestones(as_json: JsonFlag = False) -> None:
    """Every milestone definition with how many customers reached it."""
    with _milestones() as milestones:
        summaries = milestones.summaries()
    if as_json:
        print_json([summary.model_dump(mode="json") for summary in summaries])
        return
    table = Table(title=f"{len(summaries)} milestones")
    for column in ("name", "version", "reached", "description"):
        table.add_column(column)
    for summary in summaries:
        table.add_row(
            summary.name, str(summary.version), f"{summary.reached:,}", escape(summary.description)
        )
    Console().print(table)


@app.command()
def show(name: Name, as_json: JsonFlag = False) -> None:
    """One milestone: its definition and how many customers reached it."""
    with _milestones() as milestones:
        summary = milestones.summary(name)
        definition = milestones.catalog.get(name)
    if as_json:
        print_json(summary.model_dump(mode="json"))
        return
    console.print(f"[bold]{summary.name}[/bold] v{summary.version}: {summary.reached:,} reached")
    Console().print(definition.to_yaml(), markup=False, highlight=False)


@app.command()
def add(
    file: Annotated[Path, typer.Argument(help="a YAML or JSON definition", exists=True)],
    as_json: JsonFlag = False,
) -> None:
    """Validate a definition and store it (a new version replaces the old one)."""
    with _milestones() as milestones:
        added = milestones.add(load_definition(file))
    emit(added.model_dump(mode="json"), as_json, f"milestone {added.milestone}")
    if added.changed and not as_json:
        console.print(f"run `journeygraph milestones backfill {added.milestone}` to evaluate it")


@app.command()
def backfill(
    names: Annotated[
        list[str] | None, typer.Argument(help="milestones to evaluate (default: all)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate milestones over the whole lake and store the reaches (idempotent)."""
    with _milestones() as milestones:
        chosen = milestones.catalog.select(names)
        with progress_bar() as bar:
            task = bar.add_task("evaluating milestones", total=len(chosen))

            def advance(definition: MilestoneDefinition) -> None:
                bar.update(task, advance=1, description=definition.name)

            summary = milestones.backfill([d.name for d in chosen], advance)
    emit(summary.model_dump(mode="json"), as_json, "backfill")


@app.command("dry-run")
def dry_run(
    name: Annotated[str | None, typer.Argument(help="a stored milestone")] = None,
    file: Annotated[
        Path | None, typer.Option(help="evaluate this definition instead", exists=True)
    ] = None,
    sample: Annotated[int, typer.Option(min=0, max=1000, help="reaches to show")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Who would reach a milestone, without writing anything."""
    if (name is None) == (file is None):
        raise fail(ValueError("give a milestone NAME or --file, not both"))
    with _milestones() as milestones:
        if file is not None:
            document = load_definition(file).document()
            query = DryRunQuery(definition=document, sample=sample)
        else:
            query = DryRunQuery(name=name, sample=sample)
        result = milestones.dry_run(query)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    console.print(
        f"[bold]{result.milestone}[/bold] v{result.version}: {result.reached:,} of "
        f"{result.customers_evaluated:,} customers would reach it"
    )
    table = Table(title="earliest reaches")
    for column in ("customer", "reached_at", "evidence"):
        table.add_column(column)
    for reach in result.sample:
        table.add_row(reach.customer, str(reach.reached_at), ", ".join(reach.evidence))
    Console().print(table)


@app.command()
def follow(
    idle_exit: Annotated[
        float | None, typer.Option(help="stop after this many seconds without changes")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1_000_000)] = 20_000,
    as_json: JsonFlag = False,
) -> None:
    """Keep milestones current from the graph's change feed (resumes where it stopped)."""

    latest = [FollowSummary()]

    def report(total: FollowSummary) -> None:
        latest[0] = total.model_copy()
        if console.is_terminal:
            console.print(
                f"{total.touchpoints:,} touchpoints, {total.new:,} new reaches, "
                f"{total.updated:,} updated",
                end="\r",
            )

    with _milestones() as milestones:
        follower = milestones.follower(batch_size)
        try:
            summary = follower.follow(idle_exit=idle_exit, on_batch=report)
        except KeyboardInterrupt:
            summary = latest[0]  # stopped by hand: what was done until then
    emit(summary.model_dump(mode="json"), as_json, "follow ended")
