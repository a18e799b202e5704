"""The ``journeygraph`` command line."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.bootstrap import open_store
from api.commands import engage, journeys, keys, kpis, milestones, models, offers
from api.commands._output import (
    JsonFlag,
    console,
    emit,
    estimated_rows,
    fail,
    print_json,
    progress_bar,
)
from api.settings import Settings, get_settings
from graph import GraphStore, JourneyGraphError

if TYPE_CHECKING:
    from ingest.mapping import SourceMapping
    from ingest.pipeline import Ingestor

app = typer.Typer(
    name="journeygraph",
    help="Graph-based customer journey analytics for telecom operators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.add_typer(journeys.app, name="journeys")
app.command("kpis")(kpis.kpis)
app.add_typer(milestones.app, name="milestones")
app.add_typer(engage.app, name="engage")
app.add_typer(offers.app, name="offers")
app.add_typer(keys.app, name="keys")
app.add_typer(models.app, name="models")
app.command("train")(models.train)
app.command("score")(models.score)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder to write the sources and truth into")],
    customers: Annotated[int, typer.Option(min=1, max=5_000_000)] = 10_000,
    seed: Annotated[int, typer.Option(help="same seed, same bytes")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """Generate a realistic telco world: six source systems, noisy keys, planted journeys."""
    from ingest.generator import generate_world

    with progress_bar() as progress:
        task = progress.add_task("generating customers", total=customers)
        try:
            summary = generate_world(
                out, customers, seed, progress=lambda done: progress.update(task, completed=done)
            )
        except (JourneyGraphError, ValueError, OSError) as error:
            raise fail(error) from error
    emit(summary.as_dict(), as_json, f"generated {customers:,} customers into {out}")


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Counts of vertices and edges by label in the configured store."""
    from graph import EdgeLabel, VertexLabel

    with _open(get_settings()) as store:
        result: dict[str, Any] = {label.value: store.count(label) for label in VertexLabel}
        result.update({label.value: store.count_edges(label) for label in EdgeLabel})
    emit(result, as_json, "store contents")


@app.command()
def customers(
    identifier: Annotated[
        str | None,
        typer.Option(help="the customer holding this identifier, e.g. id:msisdn:+447700900123"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Customer ids to look at: the first few in the store, or an identifier's holder."""
    from graph import EdgeLabel, VertexLabel

    with _open(get_settings()) as store:
        if identifier is not None:
            holders = store.neighbours(identifier, "in", [EdgeLabel.HAS_IDENTIFIER])
            found = [n.vertex for n in holders]
        else:
            found = store.find_vertices(VertexLabel.CUSTOMER, limit=limit)
    rows = [{"id": vertex.id, **vertex.properties} for vertex in found[:limit]]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} customers")
    for name in ("id", "first_name", "last_name", "postcode"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            *(str(row.get(name, "")) for name in ("id", "first_name", "last_name", "postcode"))
        )
    Console().print(table)


@app.command("load-demo")
def load_demo_command(
    customers: Annotated[int | None, typer.Option(min=1, max=5_000_000)] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate the demo world and ingest it into the configured store."""
    settings = get_settings()
    with _open(settings) as store:
        summary = _load_demo(
            settings, store, customers or settings.demo_customers, seed or settings.demo_seed
        )
    emit(summary, as_json, "demo world loaded")


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

    from api.bootstrap import open_milestones
    from api.serving import HeaderDeadline

    settings = get_settings()
    try:
        settings.check_production_ready()
    except ValueError as error:
        raise fail(error) from error
    if demo:
        with _open(settings) as store:
            if store.count("Customer") == 0:
                summary = _load_demo(settings, store, settings.demo_customers, settings.demo_seed)
                # The dashboard's funnel and customer 360 show milestones: reach them now.
                summary["milestone_reaches"] = open_milestones(settings, store).backfill().reaches
                console.print(f"demo world loaded: {summary}")
            else:
                console.print(f"store already holds {store.count('Customer'):,} customers")
    bind_host, bind_port = host or settings.host, port or settings.port
    base = f"http://{bind_host}:{bind_port}"
    if demo and settings.mode == "development":
        console.print(f"demo API key (admin): {_demo_key(settings)}", soft_wrap=True)
    console.print(f"serving on {base}: dashboard at {base}/dashboard, API docs at {base}/docs")
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # One /metrics answer for all workers: each writes its samples to files here.
        samples = tempfile.mkdtemp(prefix="journeygraph-metrics-")
        atexit.register(shutil.rmtree, samples, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = samples
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        access_log=False,
        log_config=_log_config(),
        http=HeaderDeadline,
    )


def _demo_key(settings: Settings) -> str:
    """The demo's admin key: made on the first demo run, kept in <data_dir>/demo-api-key.txt."""
    from api.bootstrap import open_key_store

    saved = settings.data_dir / "demo-api-key.txt"
    with open_key_store(settings) as keys:
        if saved.exists():
            key = saved.read_text(encoding="utf-8").strip()
            try:
                keys.verify(key)
                return key
            except JourneyGraphError:
                pass
        _, key = keys.create("demo", ["admin"])
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(key + "\n", encoding="utf-8")
    saved.chmod(0o600)
    return key


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus journeygraph's access lines (with request ids) at INFO."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["journeygraph"] = {"handlers": ["default"], "level": "INFO"}
    return config


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files, or folders to search")],
    source: Annotated[
        str, typer.Option(help="a built-in source mapping (crm, billing, ...) or a YAML file")
    ],
    link: Annotated[
        bool,
        typer.Option(
            help="relink NEXT chains at the end (--no-link: leave it to the next run, "
            "when loading several sources in a row)"
        ),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Ingest files of one source: validate, quarantine, resolve, write graph and lake."""
    mapping = _mapping(source)
    with _pipeline() as ingestor:
        files = ingestor.expand(paths, mapping)
        total = sum(estimated_rows(path) for path, _ in files)
        with progress_bar() as progress:
            task = progress.add_task(f"ingesting {mapping.source}", total=total)
            summary = ingestor.ingest_paths(
                paths, mapping, progress=lambda rows: progress.advance(task, rows), link=link
            )
    result: dict[str, Any] = dict(summary.as_dict())
    result["quarantine"] = str(ingestor.quarantine_path(mapping.source))
    emit(result, as_json, f"ingested {len(files)} file(s) of {mapping.source}")


@app.command()
def stream(
    source: Annotated[
        str, typer.Option(help="mapping of the lines; canonical = Touchpoint JSON")
    ] = "canonical",
    follow_file: Annotated[
        Path | None, typer.Option("--follow", help="follow a growing file instead of stdin")
    ] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="with --follow: stop after this many idle seconds")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1_000_000)] = 20_000,
    max_wait: Annotated[float, typer.Option(help="seconds before a partial batch goes")] = 0.5,
    model: Annotated[
        Path | None,
        typer.Option(help="a Splink model (from resolve): link each micro-batch with it too"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ingest JSON Lines from stdin (or a followed file) in micro-batches until it ends."""
    from ingest.stream import StreamOptions, follow, read_lines, run_stream

    mapping = _mapping(source)
    lines = (
        follow(follow_file, idle_exit=idle_exit)
        if follow_file is not None
        else read_lines(sys.stdin.buffer)
    )
    options = StreamOptions(batch_size=batch_size, max_wait=max_wait)
    with _pipeline() as ingestor:
        if model is not None:
            from ingest.resolution.resolver import IncrementalLinker

            ingestor.incremental = IncrementalLinker(ingestor, model)
        summary = run_stream(
            ingestor,
            lines,
            mapping,
            options,
            origin=str(follow_file) if follow_file else "stdin",
            progress=lambda done: (
                console.print(
                    f"streamed {done.read:,} lines, {done.quarantined:,} quarantined", end="\r"
                )
                if console.is_terminal
                else None
            ),
        )
    emit(summary.as_dict(), as_json, "stream ended")


@app.command()
def resolve(
    evaluate: Annotated[
        Path | None,
        typer.Option(
            help="score against ground truth: a generator world folder or its truth/records.parquet"
        ),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="a saved Splink model; trained unsupervised if absent")
    ] = None,
    probabilistic: Annotated[
        bool, typer.Option(help="run the Splink pass (--no-probabilistic: only evaluate)")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Link customers probabilistically (Splink) and optionally score against truth."""
    from ingest.resolution.evaluation import evaluate_lake
    from ingest.resolution.resolver import link_customers

    result: dict[str, Any] = {}
    with _pipeline() as ingestor:
        if probabilistic:
            with console.status("linking customers with Splink"):
                linked = link_customers(ingestor, ingestor.workdir / "models", model)
            result["probabilistic"] = linked.as_dict()
        if evaluate is not None:
            truth = evaluate / "truth" / "records.parquet" if evaluate.is_dir() else evaluate
            result["evaluation"] = evaluate_lake(ingestor.lake, ingestor.index.merge_map(), truth)
    emit(result, as_json, "resolution")


@app.command()
def merge(
    customers: Annotated[list[str], typer.Argument(help="two or more customer ids")],
    as_json: JsonFlag = False,
) -> None:
    """Merge customers into the oldest of them (a data steward's decision)."""
    from ingest.resolution.operations import merge_customers

    with _pipeline() as ingestor:
        survivor = merge_customers(ingestor, customers)
    emit(
        {"survivor": survivor, "merged": [c for c in customers if c != survivor]}, as_json, "merged"
    )


@app.command()
def detach(
    customer: Annotated[str, typer.Argument(help="the customer id")],
    identifier: Annotated[str, typer.Argument(help="identifier id, e.g. id:email:ann@example.com")],
    as_json: JsonFlag = False,
) -> None:
    """Move an identifier, and the touchpoints carrying it, to a new customer (a split)."""
    from ingest.resolution.operations import detach_identifier

    with _pipeline() as ingestor:
        done = detach_identifier(ingestor, customer, identifier)
    emit(
        {
            "customer": done.customer,
            "new_customer": done.new_customer,
            "touchpoints_moved": done.touchpoints_moved,
        },
        as_json,
        "detached",
    )


@app.command()
def review(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Open pairs of the review queue (between the thresholds, or two MSISDNs)."""
    from ingest.resolution.operations import review_queue

    with _pipeline() as ingestor:
        pairs = review_queue(ingestor, limit)
    if as_json:
        print_json(pairs)
        return
    table = Table(title=f"{len(pairs)} open review pairs")
    for name in ("customer_l", "customer_r", "record_l", "record_r", "probability"):
        table.add_column(name)
    for pair in pairs:
        table.add_row(*(str(pair[name]) for name in pair))
    Console().print(table)


@contextmanager
def _pipeline() -> Iterator[Ingestor]:
    """The configured store and ingest pipeline; domain errors end the command cleanly."""
    from api.bootstrap import open_ingestor

    settings = get_settings()
    with _open(settings) as store, _exclusive(settings):
        ingestor = open_ingestor(settings, store)
        try:
            yield ingestor
        except (JourneyGraphError, OSError, ValueError) as error:
            raise fail(error) from error
        finally:
            ingestor.close()


@contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """Hold the data folder's ingest lock; if a service or another job holds it, say so."""
    from ingest.push import exclusive_ingest

    with ExitStack() as stack:
        try:
            stack.enter_context(exclusive_ingest(settings.ingest_path))
        except JourneyGraphError as error:
            raise fail(error) from error
        yield


def _mapping(source: str) -> SourceMapping:
    from ingest.mapping import load_mapping

    try:
        return load_mapping(source)
    except JourneyGraphError as error:
        raise fail(error) from error


def _open(settings: Settings) -> GraphStore:
    try:
        return open_store(settings)
    except JourneyGraphError as error:
        raise fail(error) from error


def _load_demo(settings: Settings, store: GraphStore, customers: int, seed: int) -> dict[str, Any]:
    from api.bootstrap import open_ingestor

    world = settings.data_dir / f"demo-world-{customers}-{seed}"
    with _exclusive(settings):
        return _ingest_demo(open_ingestor(settings, store), world, customers, seed)


def _ingest_demo(ingestor: Ingestor, world: Path, customers: int, seed: int) -> dict[str, Any]:
    from ingest.demo import load_demo

    try:
        with progress_bar() as progress:
            task = progress.add_task("generating and ingesting the demo world", total=None)
            summary = load_demo(
                ingestor, customers, seed, world, lambda rows: progress.advance(task, rows)
            )
    finally:
        ingestor.close()
    result: dict[str, Any] = dict(summary.as_dict())
    result["world"] = str(world)
    return result


if __name__ == "__main__":
    app()
