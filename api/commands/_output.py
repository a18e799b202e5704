"""What every CLI command shares: the console, ``--json``, progress bars, clean errors."""

from __future__ import annotations

import json
import sys
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

console = Console(stderr=True)
"""Progress and errors go to stderr, so ``--json`` output on stdout stays parseable."""

JsonFlag = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]


def progress_bar() -> Progress:
    """A progress bar on stderr (silent when stderr is not a terminal)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def estimated_rows(path: Path) -> int:
    """Rows in a file: exact for Parquet, from the size for text (a bar needs a total)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as handle:
        sample = handle.read(1 << 20)
    lines = max(sample.count(b"\n"), 1)
    return int(path.stat().st_size * lines / max(len(sample), 1))


def fail(error: Exception) -> typer.Exit:
    """Print a domain error and return the exit to raise (status 2)."""
    console.print(f"[red]error:[/red] {error}")
    return typer.Exit(code=2)


def print_json(result: Any) -> None:
    """Write ``result`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(result, default=str, indent=2) + "\n")


def emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    """A flat result as JSON, or as a two-column table."""
    if as_json:
        print_json(result)
        return
    table = Table(title=title, show_header=False)
    for key, value in result.items():
        table.add_row(str(key), str(value))
    Console().print(table)
