"""The ``journeygraph`` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.bootstrap import open_store
from api.settings import Settings, get_settings
from graph import GraphStore, JourneyGraphError

app = typer.Typer(
    name="journeygraph",
    help="Graph-based customer journey analytics for telecom operators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {error}")
    return typer.Exit(code=2)


def _emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, default=str, indent=2) + "\n")
        return
    table = Table(title=title, show_header=False)
    for key, value in result.items():
        table.add_row(str(key), str(value))
    Console().print(table)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder to write the sources and truth into")],
    customers: Annotated[int, typer.Option(min=1, max=5_000_000)] = 10_000,
    seed: Annotated[int, typer.Option(help="same seed, same bytes")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """Generate a realistic telco world: six source systems, noisy keys, planted journeys."""
    from ingest.generator import generate_world

    with _progress() as progress:
        task = progress.add_task("generating customers", total=customers)
        try:
            summary = generate_world(
                out, customers, seed, progress=lambda done: progress.update(task, completed=done)
            )
        except (JourneyGraphError, ValueError, OSError) as error:
            raise _fail(error) from error
    _emit(summary.as_dict(), as_json, f"generated {customers:,} customers into {out}")


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Counts of vertices and edges by label in the configured store."""
    from graph import EdgeLabel, VertexLabel

    with _open(get_settings()) as store:
        result: dict[str, Any] = {label.value: store.count(label) for label in VertexLabel}
        result.update({label.value: store.count_edges(label) for label in EdgeLabel})
    _emit(result, as_json, "store contents")


@app.command("load-demo")
def load_demo_command(
    customers: Annotated[int | None, typer.Option(min=1, max=5_000_000)] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate the demo world in memory and write it into the configured store."""
    settings = get_settings()
    with _open(settings) as store:
        summary = _load_demo(
            store, customers or settings.demo_customers, seed or settings.demo_seed
        )
    _emit(summary, as_json, "demo world loaded")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default JOURNEYGRAPH_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default JOURNEYGRAPH_PORT")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="load the demo world first if the store is empty")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
) -> None:
    """Serve the HTTP API (and, with --demo, fill an empty store with the demo world)."""
    import uvicorn

    settings = get_settings()
    try:
        settings.check_production_ready()
    except ValueError as error:
        raise _fail(error) from error
    if demo:
        with _open(settings) as store:
            if store.count("Customer") == 0:
                summary = _load_demo(store, settings.demo_customers, settings.demo_seed)
                console.print(f"demo world loaded: {summary}")
            else:
                console.print(f"store already holds {store.count('Customer'):,} customers")
    bind_host, bind_port = host or settings.host, port or settings.port
    console.print(f"serving on http://{bind_host}:{bind_port} (API docs at /docs)")
    uvicorn.run("api.app:create_app", factory=True, host=bind_host, port=bind_port, workers=workers)


def _open(settings: Settings) -> GraphStore:
    try:
        return open_store(settings)
    except JourneyGraphError as error:
        raise _fail(error) from error


def _load_demo(store: GraphStore, customers: int, seed: int) -> dict[str, Any]:
    from ingest.demo import load_demo

    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("loading demo customers", total=customers)
        summary = load_demo(
            store,
            customers,
            seed,
            progress=lambda done: progress.update(task, completed=done),
        )
    return {
        "customers": summary.customers,
        "touchpoints": summary.touchpoints,
        "identifiers": summary.identifiers,
        "next_edges": summary.next_edges,
        "identifier_problems": len(summary.identifier_problems),
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    app()
