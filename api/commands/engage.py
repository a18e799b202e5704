"""``journeygraph engage``: run the engagement loop, inspect the queue, replay dead letters."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.bootstrap import (
    engage_policy,
    open_channel,
    open_engagement_loop,
    open_feedback,
    open_push_ingestor,
    open_store,
)
from api.commands._output import JsonFlag, emit, estimated_rows, fail, print_json, progress_bar
from api.settings import Settings, get_settings
from engage._db import open_engage_db
from engage.cells import CellSentimentQuery, CellSentimentRunner
from engage.probes import known_cells_from_file
from engage.probes_input import file_batches, follow_batches, stream_batches
from engage.queue import EngagementQueue
from engage.rules import load_decision_table
from engage.runner import LoopProgress
from graph import JourneyGraphError
from ingest.push import PushIngestor
from ingest.quarantine import QuarantineWriter
from ingest.stream import read_lines

app = typer.Typer(
    name="engage",
    help="Real-time engagement: network incidents -> engagements -> feedback -> cell sentiment.",
    no_args_is_help=True,
)
dlq = typer.Typer(name="dlq", help="The dead-letter queue: engagements that could not be sent.")
app.add_typer(dlq, name="dlq")


@app.command("run")
def run(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="probe files (Parquet, CSV, JSONL); none or '-': JSON lines on stdin"),
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="POST engagements here (default: the settings' webhook)")
    ] = None,
    dry_run: Annotated[
        Path | None, typer.Option(help="write engagements to this JSON Lines file instead")
    ] = None,
    follow: Annotated[
        bool, typer.Option(help="follow the one JSON Lines file as it grows (resumable)")
    ] = False,
    idle_exit: Annotated[
        float | None, typer.Option(help="--follow: stop after this many idle seconds")
    ] = None,
    batch_rows: Annotated[int, typer.Option(min=1, max=1_000_000)] = 50_000,
    max_delay: Annotated[
        float, typer.Option(help="stdin: the longest a probe event waits for its batch (s)")
    ] = 0.05,
    drain: Annotated[
        float, typer.Option(help="at the end, wait this long for queued engagements to go (s)")
    ] = 30.0,
    record: Annotated[
        bool, typer.Option(help="record sent engagements as touchpoints in the graph and lake")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Process probe events (files once, a followed file, or stdin until it ends) and send them.

    Resumes where an earlier run over the same files (or followed file) stopped; bad
    rows go to the probe quarantine file. Ends with a summary of every counter.
    """
    settings = get_settings()
    quarantine_path = settings.engage_path / "quarantine" / "probes.jsonl"
    try:
        with _recorder(settings, record) as recorder, QuarantineWriter(quarantine_path) as rejects:
            channel = open_channel(settings, webhook, dry_run)
            try:
                loop = open_engagement_loop(settings, channel, recorder, rejects)
                cells = (
                    known_cells_from_file(settings.engage_cells) if settings.engage_cells else None
                )
                streaming = follow or not files or files == [Path("-")]
                if follow:
                    if not files or len(files) != 1:
                        raise ValueError("--follow takes exactly one JSON Lines file")
                    batches = follow_batches(
                        files[0], loop.applied, batch_rows, max_delay, cells, idle_exit
                    )
                elif streaming:
                    lines = read_lines(sys.stdin.buffer)
                    batches = stream_batches(lines, batch_rows, max_delay, cells)
                else:
                    batches = file_batches(files or [], loop.applied, batch_rows, cells)
                with progress_bar() as bar:
                    total = None if streaming else sum(estimated_rows(p) for p in files or [])
                    task = bar.add_task("probe events", total=total)

                    def report(progress: LoopProgress) -> None:
                        engine, dispatch = progress.engine, progress.dispatch
                        bar.update(
                            task,
                            completed=engine.probe_events + progress.quarantined,
                            description=f"probe events ({engine.incidents:,} incidents, "
                            f"{dispatch.sent:,} sent, {progress.quarantined:,} quarantined)",
                        )

                    try:
                        summary = loop.run(batches, drain_seconds=drain, progress=report)
                    except KeyboardInterrupt:
                        raise typer.Exit(code=130) from None
            finally:
                channel.close()
    except (JourneyGraphError, OSError, ValueError) as error:
        raise fail(error) from error
    result = summary.as_dict()
    result["quarantine"] = str(quarantine_path) if summary.quarantined else None
    if as_json:
        print_json(result)
        return
    table = Table(title="engage run", show_header=False)
    for section in ("engine", "dispatch", "queue"):
        for key, value in result[section].items():
            table.add_row(f"{section}.{key}", escape(str(value)))
    for key in ("quarantined", "recorded", "seconds", "quarantine"):
        table.add_row(key, escape(str(result[key])))
    Console().print(table)


@contextmanager
def _recorder(settings: Settings, record: bool) -> Iterator[PushIngestor | None]:
    """The ingest push path that records engagements as touchpoints (or none)."""
    if not record:
        yield None
        return
    with open_store(settings) as store:
        pusher = open_push_ingestor(settings, store)
        try:
            yield pusher
        finally:
            pusher.close()


@contextmanager
def _queue() -> Iterator[EngagementQueue]:
    settings = get_settings()
    try:
        connection = open_engage_db(settings.engage_db)
    except OSError as error:
        raise fail(error) from error
    try:
        yield EngagementQueue(connection, engage_policy(settings))
    except JourneyGraphError as error:
        raise fail(error) from error
    finally:
        connection.close()


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """How many engagements are pending, in flight, sent, dead, suppressed, deduplicated."""
    with _queue() as queue:
        stats = queue.stats()
    emit(stats.model_dump(), as_json, "engagement queue")


@app.command("rules")
def rules(as_json: JsonFlag = False) -> None:
    """The incident decision table in force (the settings' file or the shipped one)."""
    try:
        table = load_decision_table(get_settings().engage_rules)
    except JourneyGraphError as error:
        raise fail(error) from error
    if as_json:
        print_json(table.as_dict())
        return
    shown = Table(title="incident rules")
    for column in ("name", "metric", "threshold", "window", "min weight", "enabled"):
        shown.add_column(column)
    for rule in table.rules:
        described = rule.as_dict()
        shown.add_row(
            rule.name,
            rule.metric,
            f"{rule.threshold:g}",
            str(described["window"]),
            f"{rule.min_weight:g}",
            "yes" if rule.enabled else "no",
        )
    Console().print(shown)


@dlq.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Dead-lettered engagements with their attempts and last error, oldest first."""
    with _queue() as queue:
        dead = queue.dead_letters(limit, offset)
    if as_json:
        print_json([item.model_dump(mode="json") for item in dead])
        return
    table = Table(title=f"{len(dead)} dead letters")
    for column in ("engagement", "subscriber", "rule", "attempts", "last error"):
        table.add_column(column)
    for item in dead:
        table.add_row(
            item.engagement_id,
            item.subscriber,
            item.rule,
            str(item.attempts),
            escape(item.last_error or ""),
        )
    Console().print(table)


@dlq.command("replay")
def dlq_replay(
    engagement_ids: Annotated[
        list[str] | None, typer.Argument(help="engagements to send again (default: all)")
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Put dead letters back in their subscribers' queues (attempts reset, order kept)."""
    if not engagement_ids and not replay_all:
        raise fail(ValueError("name engagement ids to replay, or pass --all"))
    with _queue() as queue:
        replayed = queue.replay(engagement_ids or None)
    emit({"replayed": replayed}, as_json, "dead letters replayed")


@app.command("cells")
def cells(
    start: Annotated[
        str | None, typer.Option(help="event time, inclusive (ISO 8601 with a zone)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="event time, exclusive (default: now)")] = None,
    metric: Annotated[str | None, typer.Option(help="only incidents of this metric")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Radio cells ranked by how much they hurt sentiment (fix the first ones first)."""
    connection = open_engage_db(get_settings().engage_db)
    try:
        query = CellSentimentQuery.of(start=start, end=end, metric=metric, limit=limit)
        report = CellSentimentRunner(connection).run(query)
    except JourneyGraphError as error:
        raise fail(error) from error
    finally:
        connection.close()
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    table = Table(title=f"cells to fix first, {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d}")
    for column in ("rank", "cell", "subscribers", "incidents", "answers", "sentiment change"):
        table.add_column(column)
    for row in report.cells:
        change = "" if row.sentiment_change is None else f"{row.sentiment_change:+.3f}"
        table.add_row(
            str(row.rank),
            row.cell_id,
            str(row.subscribers),
            str(row.incidents),
            str(row.answers),
            change,
        )
    Console().print(table)


@app.command("feedback")
def feedback(
    engagement_id: Annotated[str, typer.Argument(help="the engagement answered")],
    score: Annotated[int, typer.Argument(help="1 (very bad) to 5 (very good)")],
    text: Annotated[str, typer.Option(help="what the subscriber wrote")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Record a subscriber's answer to an engagement and update their sentiment score."""
    settings = get_settings()
    try:
        with open_store(settings) as store:
            pusher = open_push_ingestor(settings, store)
            try:
                with open_feedback(settings, store, pusher) as service:
                    update = service.record(engagement_id, score, text)
            finally:
                pusher.close()
    except (JourneyGraphError, OSError) as error:
        raise fail(error) from error
    emit(update.model_dump(mode="json"), as_json, "sentiment updated")
