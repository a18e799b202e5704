"""The stream: JSON Lines from stdin or a growing file, ingested in micro-batches.

Lines are read on a background thread into a bounded queue (so a slow writer to
the graph slows the reader instead of filling memory), grouped into micro-batches
of up to ``batch_size`` lines or ``max_wait`` seconds, whichever comes first, and
each micro-batch goes through ``Ingestor.ingest_batch``: validation with quarantine,
duplicate event ids dropped, deterministic resolution, graph and lake. NEXT chains
are relinked every ``link_every`` seconds and at the end.

The same shape scales out as a partitioned log keyed by subscriber (Kafka, NATS
JetStream) with one such consumer per partition.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from ingest.mapping import SourceMapping
from ingest.pipeline import Ingestor, IngestSummary
from ingest.readers import frame_from_lines

_END: Final = object()


@dataclass(frozen=True)
class StreamOptions:
    """Micro-batching and stopping rules of one stream run."""

    batch_size: int = 20_000
    max_wait: float = 0.5
    link_every: float = 5.0
    max_lines: int | None = None


def follow(
    path: Path, poll: float = 0.2, idle_exit: float | None = None, from_start: bool = True
) -> Iterator[bytes]:
    """Lines appended to ``path`` as they arrive (``tail -f``); a partial line waits.

    Stops after ``idle_exit`` seconds without new data (never, if None).
    """
    with path.open("rb") as handle:
        if not from_start:
            handle.seek(0, 2)
        pending = b""
        idle_since = time.monotonic()
        while True:
            chunk = handle.readline()
            if chunk:
                idle_since = time.monotonic()
                pending += chunk
                if pending.endswith(b"\n"):
                    yield pending
                    pending = b""
                continue
            if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                if pending:
                    yield pending
                return
            time.sleep(poll)


def read_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of a binary stream (stdin) until it closes."""
    yield from iter(stream.readline, b"")


def micro_batches(
    lines: Iterable[bytes], batch_size: int, max_wait: float, max_lines: int | None = None
) -> Iterator[list[bytes]]:
    """Group lines into batches of ``batch_size``, or fewer after ``max_wait`` seconds."""
    inbox: queue.Queue[object] = queue.Queue(maxsize=batch_size * 4)

    def pump() -> None:
        try:
            for count, line in enumerate(lines, start=1):
                inbox.put(line)
                if max_lines is not None and count >= max_lines:
                    break
        finally:
            inbox.put(_END)

    threading.Thread(target=pump, name="stream-reader", daemon=True).start()
    batch: list[bytes] = []
    deadline = time.monotonic() + max_wait
    while True:
        timeout = max(deadline - time.monotonic(), 0.0)
        try:
            item = inbox.get(timeout=timeout)
        except queue.Empty:
            item = None
        if item is _END:
            if batch:
                yield batch
            return
        if isinstance(item, bytes):
            batch.append(item)
        if len(batch) >= batch_size or (batch and time.monotonic() >= deadline):
            yield batch
            batch = []
        if time.monotonic() >= deadline:
            deadline = time.monotonic() + max_wait


def run_stream(
    ingestor: Ingestor,
    lines: Iterable[bytes],
    mapping: SourceMapping,
    options: StreamOptions | None = None,
    origin: str = "stream",
    progress: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    """Ingest a stream of JSON lines until it ends; returns the totals."""
    options = options or StreamOptions()
    started = time.perf_counter()
    total = IngestSummary()
    first_row = 1
    last_link = time.monotonic()
    for batch in micro_batches(lines, options.batch_size, options.max_wait, options.max_lines):
        frames = frame_from_lines(batch, mapping, origin=origin, first_row=first_row)
        part = f"stream-{time.time_ns()}-{first_row}"
        total.add(ingestor.ingest_batch(frames, part))
        first_row += len(batch)
        if time.monotonic() - last_link >= options.link_every:
            total.add(ingestor.link_chains())
            last_link = time.monotonic()
        if progress is not None:
            progress(total)
    total.add(ingestor.link_chains())
    total.seconds = time.perf_counter() - started
    return total
