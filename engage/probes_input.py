"""Probe inputs as ``ProbeBatch`` streams: files (resumable) and a live stream of JSON lines.

Files are read in batches of ``batch_rows``; each batch carries a cursor (the rows
of that file applied so far, keyed by the file's path, size and modification time),
so a rerun starts after what an earlier run committed. Even without it a rerun would
be exact: the evaluator drops events it has seen (``engage.profiles``) and
engagement ids follow from the incident.

A stream (stdin, a pipe from Kafka's console consumer) is cut into micro-batches
(``ingest.stream.micro_batches``): a batch closes at ``batch_rows`` lines or after
``max_delay`` seconds, whichever comes first, so a quiet stream still gets each
event evaluated promptly (the target is probe event to engagement sent in under a
second).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa

from engage.model import InputCursor
from engage.probes import ProbeBatch, probes_from_lines, read_probe_file
from ingest.stream import follow, micro_batches

__all__ = ["file_batches", "follow_batches", "input_name", "stream_batches"]

if TYPE_CHECKING:
    KnownCells: TypeAlias = Collection[str] | pa.Array[Any] | None


def input_name(path: Path) -> str:
    """The cursor key of a probe file: its path, size and modification time."""
    stat = path.stat()
    return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def file_batches(
    paths: Sequence[Path],
    applied: Callable[[str], int],
    batch_rows: int,
    known_cells: KnownCells = None,
) -> Iterator[ProbeBatch]:
    """Batches of each file in turn, starting after the rows ``applied(input)`` says were done."""
    for path in paths:
        name = input_name(path)
        position = applied(name)
        for read in read_probe_file(
            path, chunk_rows=batch_rows, start_row=position, known_cells=known_cells
        ):
            position += read.rows_read
            yield read._replace(cursor=InputCursor(name, position))


def stream_batches(
    lines: Iterable[bytes],
    batch_rows: int,
    max_delay: float,
    known_cells: KnownCells = None,
    origin: str = "stdin",
    cursor: InputCursor | None = None,
) -> Iterator[ProbeBatch]:
    """Micro-batches of JSON ``lines`` until they end.

    With a ``cursor`` (an input, e.g. a followed file, and how many of its lines were
    applied) the applied lines are skipped and each batch moves the cursor, so a
    restarted follower goes on where the last committed batch ended.
    """
    done = cursor.position if cursor is not None else 0
    for batch in micro_batches(islice(lines, done, None), batch_rows, max_delay):
        read = probes_from_lines(batch, origin=origin, first_row=done + 1, known_cells=known_cells)
        done += len(batch)
        moved = InputCursor(cursor.input, done) if cursor is not None else None
        yield read._replace(cursor=moved)


def follow_batches(
    path: Path,
    applied: Callable[[str], int],
    batch_rows: int,
    max_delay: float,
    known_cells: KnownCells = None,
    idle_exit: float | None = None,
) -> Iterator[ProbeBatch]:
    """Micro-batches of a JSON Lines file as it grows (``tail -f``), resumable by line.

    Ends after ``idle_exit`` seconds without new lines (never, if None).
    """
    name = f"follow:{path.resolve()}"
    yield from stream_batches(
        follow(path, idle_exit=idle_exit),
        batch_rows,
        max_delay,
        known_cells,
        origin=str(path),
        cursor=InputCursor(name, applied(name)),
    )
