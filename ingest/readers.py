"""Readers: CSV, JSON Lines and Parquet files, pushed records and streamed lines to frames.

Each reader yields ``FrameBatch``es: a touchpoint frame (``ingest.frame``) of the
accepted rows and a ``QuarantinedRow`` for every rejected one, with its position,
the row as read and every reason. A bad row never stops the batch.

Files are read in chunks of ``chunk_rows`` rows, so memory stays flat however large
the file. Text files are parsed by Arrow a block at a time; when a block holds a row
Arrow cannot parse (a shifted CSV row, invalid JSON, a byte that is not UTF-8, a
value of the wrong JSON type) the block is split and only the pieces with such rows
are read row by row. Positions (``origin_row``, and ``row`` in the quarantine):

* CSV: the 1-based data row, counting the lines after the header (row 1 is line 2);
* JSON Lines: the 1-based line;
* Parquet: the 1-based row.

Blank lines (empty, or only whitespace) are not data: they are skipped silently,
though they keep their numbers. CSV values may not span lines.

``start_row`` skips that many rows, counted as batches count them (``rows_read``:
accepted and quarantined rows, never blank lines), so a run that stopped after some
batches resumes with ``start_row`` = the sum of their ``rows_read``.
"""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from numpy.typing import NDArray

from graph.errors import InvalidInput
from ingest._columns import read_csv_block
from ingest._frame_builder import FramePlan, InputPart, build_frame
from ingest._rows import json_kind, part_from_records
from ingest.frame import FRAME_SCHEMA, FrameBatch, QuarantinedRow
from ingest.mapping import FileFormat, FileMapping, SourceMapping

DEFAULT_CHUNK_ROWS: Final = 100_000
_FIRST_READ: Final = 1 << 20
_MAX_READ: Final = 64 << 20
_SPLIT: Final = 16
"""Pieces a block that Arrow cannot parse is split into; only failing pieces go row by row."""
_PER_ROW: Final = 512
"""Blocks this small that Arrow cannot parse go row by row at once."""
_WHITESPACE: Final = frozenset(b" \t\r\x0b\x0c")


def read_file(
    path: str | Path,
    mapping: SourceMapping,
    *,
    origin: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    start_row: int = 0,
) -> Iterator[FrameBatch]:
    """Read one CSV, JSON Lines or Parquet file with ``mapping``, a chunk at a time.

    ``origin`` names the file in the frame and the quarantine (by default the path as
    given) and picks the file mapping by pattern, as the path's name does.
    ``start_row`` skips that many rows (blank lines not counted), as a resumed run
    that had read batches with that many ``rows_read`` needs. Blank lines are
    skipped silently: they are not data. Raises ``InvalidInput`` when the file cannot
    be opened or lacks a column the mapping names.
    """
    if chunk_rows < 1 or start_row < 0:
        raise InvalidInput("chunk_rows must be at least 1 and start_row at least 0")
    path = Path(path)
    name = origin if origin is not None else str(path)
    file_mapping = _file_mapping(mapping, name, path)
    plan = FramePlan(mapping.source, file_mapping)
    file_format = file_mapping.format_of(path)
    if file_format is FileFormat.PARQUET:
        yield from _read_parquet(path, plan, name, chunk_rows, start_row)
        return
    if plan.mapping.uses_row_objects and file_format is not FileFormat.JSONL:
        raise InvalidInput(f"mapping for {name} reads JSON objects, but the file is {file_format}")
    try:
        stream = path.open("rb")
    except OSError as error:
        raise InvalidInput(f"cannot read {name}: {error}", details={"file": name}) from None
    with stream:
        if file_format is FileFormat.CSV:
            yield from _read_csv(stream, plan, name, chunk_rows, start_row)
        else:
            reader = _JsonLines(plan, name)
            for lines in _line_blocks(stream, first=1, skip=start_row, chunk_rows=chunk_rows):
                yield reader.batch(lines)


def frame_from_records(
    records: Sequence[Mapping[str, Any]],
    mapping: SourceMapping,
    *,
    origin: str,
    first_row: int = 1,
) -> FrameBatch:
    """Already decoded records (the push API, a stream) as a frame and their rejects.

    Record *i* is row ``first_row + i``; anything but a JSON object is quarantined.
    """
    plan = FramePlan(mapping.source, _file_mapping(mapping, origin, None))
    objects: list[Mapping[str, Any]] = []
    rows: list[int] = []
    rejected: list[QuarantinedRow] = []
    for offset, record in enumerate(records):
        row = first_row + offset
        if isinstance(record, Mapping):
            objects.append(record)
            rows.append(row)
        else:
            reason = f"expected a JSON object, got {json_kind(record)}"
            rejected.append(QuarantinedRow(mapping.source, origin, row, _raw(record), [reason]))
    part = part_from_records(objects, plan, rows, lambda index: objects[index])
    frame, quarantined = build_frame(part, plan, origin)
    return FrameBatch(frame, sorted([*rejected, *quarantined], key=lambda found: found.row))


def frame_from_lines(
    lines: Sequence[bytes], mapping: SourceMapping, *, origin: str, first_row: int = 1
) -> FrameBatch:
    """JSON Lines given as raw lines (a stream's messages) as a frame and their rejects.

    Line *i* is row ``first_row + i``; a line that is not a JSON object is quarantined
    by itself, and blank lines are skipped.
    """
    plan = FramePlan(mapping.source, _file_mapping(mapping, origin, None))
    trimmed = [line.rstrip(b"\r\n") for line in lines]
    lengths = np.fromiter((len(line) for line in trimmed), dtype=np.int64, count=len(trimmed))
    ends = np.cumsum(lengths + 1) - 1
    block = _Lines(b"\n".join(trimmed), ends - lengths, ends, first_row + np.arange(len(lines)))
    return _JsonLines(plan, origin).batch(block.without_blank_lines())


def _file_mapping(mapping: SourceMapping, origin: str, path: Path | None) -> FileMapping:
    for candidate in (origin, path.name if path is not None else None):
        if candidate is not None:
            for file_mapping in mapping.files:
                if file_mapping.matches(candidate):
                    return file_mapping
    if path is None and len(mapping.files) == 1:
        return mapping.files[0]
    return mapping.for_file(origin)


def _raw(value: object) -> str | Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):
        return repr(value)


# -- lines of text files -------------------------------------------------------------


@dataclass(frozen=True)
class _Lines:
    """Whole lines of a text file: where each lies in ``data``, and its number."""

    data: bytes
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    """Exclusive ends, before the line break."""
    numbers: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, index: int) -> bytes:
        """The bytes of one line."""
        return self.data[int(self.starts[index]) : int(self.ends[index])]

    def text(self, index: int) -> str:
        """One line as text; bytes that are not UTF-8 are written as escapes (``\\xff``)."""
        return self.line(index).decode("utf-8", "backslashreplace")

    def subset(self, indices: NDArray[np.intp] | slice) -> _Lines:
        """Some of the lines."""
        return _Lines(self.data, self.starts[indices], self.ends[indices], self.numbers[indices])

    def joined(self) -> bytes:
        """The lines as one text, a line break after each."""
        if len(self) == 0:
            return b""
        if self.numbers[-1] - self.numbers[0] == len(self) - 1:
            # Consecutive lines lie back to back in ``data``.
            return self.data[int(self.starts[0]) : int(self.ends[-1])] + b"\n"
        return b"".join(self.line(index) + b"\n" for index in range(len(self)))

    def longest(self) -> int:
        """The length of the longest line."""
        return int((self.ends - self.starts).max()) if len(self) else 0

    def without_blank_lines(self) -> _Lines:
        """The lines that are not empty or whitespace only."""
        lengths = self.ends - self.starts
        if len(self) == 0:
            return self
        first = np.frombuffer(self.data, dtype=np.uint8)[
            np.minimum(self.starts, len(self.data) - 1)
        ]
        doubtful = np.flatnonzero((lengths == 0) | np.isin(first, list(_WHITESPACE)))
        if len(doubtful) == 0:
            return self
        keep = np.ones(len(self), dtype=bool)
        for index in doubtful.tolist():
            if not self.line(index).strip():
                keep[index] = False
        return self.subset(np.flatnonzero(keep))


def _split_lines(data: bytes, first: int) -> _Lines:
    """Every line of ``data`` (which ends at a line break, or at the end of the file)."""
    bytes_ = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(bytes_ == 10).astype(np.int64)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(data)]))
    if len(data) and data[-1:] == b"\n":
        starts, ends = starts[:-1], ends[:-1]
    carriage = (ends > starts) & (bytes_[np.maximum(ends - 1, 0)] == 13)
    ends = ends - carriage
    return _Lines(data, starts, ends, first + np.arange(len(starts), dtype=np.int64))


def _line_blocks(stream: IO[bytes], *, first: int, skip: int, chunk_rows: int) -> Iterator[_Lines]:
    """Non-blank lines in blocks of ``chunk_rows`` (the last may be smaller), numbered
    from ``first``; the first ``skip`` non-blank lines are passed over."""
    number = first
    read_size = _FIRST_READ
    carried = b""
    unfinished: list[bytes] = []
    while True:
        chunk = stream.read(read_size)
        if chunk:
            cut = chunk.rfind(b"\n")
            if cut < 0:
                # A line longer than a read: keep reading until it ends.
                unfinished.append(chunk)
                read_size = min(read_size * 2, _MAX_READ)
                continue
            data = b"".join([carried, *unfinished, chunk[: cut + 1]])
            unfinished = [chunk[cut + 1 :]] if cut + 1 < len(chunk) else []
        else:
            data = b"".join([carried, *unfinished])
            if not data:
                return
        every = _split_lines(data, number)
        lines = every.without_blank_lines()
        if skip:
            passed = min(skip, len(lines))
            lines = lines.subset(slice(passed, None))
            skip -= passed
        ready = len(lines) if not chunk else len(lines) // chunk_rows * chunk_rows
        for start in range(0, ready, chunk_rows):
            yield lines.subset(slice(start, start + chunk_rows))
        if not chunk:
            return
        # Lines short of a whole block wait for the next read.
        carried = b""
        number += len(every)
        if ready < len(lines):
            carried = data[int(lines.starts[ready]) :]
            number = int(lines.numbers[ready])
        if len(every):
            per_line = len(data) / len(every)
            read_size = int(min(max(per_line * chunk_rows, 1 << 16), _MAX_READ))


def _frames(
    parts: list[tuple[InputPart, list[QuarantinedRow]]], plan: FramePlan, origin: str
) -> FrameBatch:
    tables = []
    quarantined: list[QuarantinedRow] = []
    for part, unreadable in parts:
        quarantined += unreadable
        if part.length:
            frame, rejected = build_frame(part, plan, origin)
            tables.append(frame)
            quarantined += rejected
    frame = pa.concat_tables(tables) if tables else FRAME_SCHEMA.empty_table()
    quarantined.sort(key=lambda found: found.row)
    return FrameBatch(frame, quarantined)


class _TextBlocks(ABC):
    """Parses blocks of lines fast with Arrow, and row by row only where Arrow fails."""

    def __init__(self, plan: FramePlan, origin: str, *, by_arrow: bool = True) -> None:
        self.plan = plan
        self.origin = origin
        self.by_arrow = by_arrow
        """Whether Arrow can read these rows at all (not for JSON objects kept whole)."""

    def batch(self, lines: _Lines) -> FrameBatch:
        """One block of lines as a frame and its rejects."""
        return _frames(self._parts(lines), self.plan, self.origin)

    def _parts(self, lines: _Lines) -> list[tuple[InputPart, list[QuarantinedRow]]]:
        if not self.by_arrow:
            return [self.per_row(lines)]
        fast = self.fast(lines)
        if fast is not None:
            return [(fast, [])]
        if len(lines) <= _PER_ROW:
            return [self.per_row(lines)]
        size = -(-len(lines) // _SPLIT)
        parts = []
        for start in range(0, len(lines), size):
            piece = lines.subset(slice(start, start + size))
            piece_fast = self.fast(piece)
            parts.append((piece_fast, []) if piece_fast is not None else self.per_row(piece))
        return parts

    @abstractmethod
    def fast(self, lines: _Lines) -> InputPart | None:
        """The block parsed by Arrow, or ``None`` when Arrow cannot parse all of it."""

    @abstractmethod
    def per_row(self, lines: _Lines) -> tuple[InputPart, list[QuarantinedRow]]:
        """The block read line by line: the readable rows, and the unreadable ones."""

    def reject(self, lines: _Lines, index: int, reason: str) -> QuarantinedRow:
        """A line that cannot be read at all."""
        return QuarantinedRow(
            self.plan.source, self.origin, int(lines.numbers[index]), lines.text(index), [reason]
        )

    def decoded(self, lines: _Lines, index: int) -> str | QuarantinedRow:
        """One line as text, or its rejection when it is not UTF-8."""
        line = lines.line(index)
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as error:
            return self.reject(
                lines,
                index,
                f"row is not valid UTF-8 (byte 0x{line[error.start]:02x} at "
                f"position {error.start + 1})",
            )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _block_size(lines: _Lines) -> int:
    return max(_FIRST_READ, lines.longest() + 2)


# -- CSV -----------------------------------------------------------------------------


def _read_csv(
    stream: IO[bytes], plan: FramePlan, origin: str, chunk_rows: int, start_row: int
) -> Iterator[FrameBatch]:
    first_line = stream.readline()
    if not first_line:
        return
    if not first_line.strip():
        raise InvalidInput(f"{origin}: the first line must be the CSV header, and is blank")
    try:
        header = next(csv.reader([first_line.decode("utf-8-sig").rstrip("\r\n")], strict=True))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidInput(f"{origin}: cannot read the CSV header: {error}") from None
    missing = [name for name in plan.file_columns if name not in header]
    if missing:
        raise InvalidInput(
            f"{origin} has no column {', '.join(map(repr, missing))} that the mapping "
            f"{plan.source}:{plan.mapping.pattern} reads (columns: {', '.join(header)})",
            details={"file": origin, "columns": missing},
        )
    doubled = sorted({name for name in plan.file_columns if header.count(name) > 1})
    if doubled:
        raise InvalidInput(f"{origin}: the header names {', '.join(doubled)} more than once")
    reader = _Csv(plan, origin, header)
    for lines in _line_blocks(stream, first=1, skip=start_row, chunk_rows=chunk_rows):
        yield reader.batch(lines)


class _Csv(_TextBlocks):
    """CSV lines under a header; every column read as text."""

    def __init__(self, plan: FramePlan, origin: str, header: list[str]) -> None:
        super().__init__(plan, origin)
        self.header = header
        self.wanted = list(plan.file_columns)
        self.positions = {name: header.index(name) for name in self.wanted}

    def fast(self, lines: _Lines) -> InputPart | None:
        data = lines.joined()
        # Arrow checks UTF-8 only in the columns it converts; the whole row must be.
        if not _is_utf8(data):
            return None
        try:
            table = read_csv_block(data, self.header, self.wanted, _block_size(lines))
        except (pa.ArrowException, ValueError):
            return None
        if table.num_rows != len(lines):
            return None
        return InputPart(
            columns={name: table.column(name).combine_chunks() for name in self.wanted},
            rows=lines.numbers,
            raw=lines.text,
        )

    def per_row(self, lines: _Lines) -> tuple[InputPart, list[QuarantinedRow]]:
        records: list[dict[str, str]] = []
        kept: list[int] = []
        rejected: list[QuarantinedRow] = []
        for index in range(len(lines)):
            text = self.decoded(lines, index)
            if isinstance(text, QuarantinedRow):
                rejected.append(text)
                continue
            if len(text) > csv.field_size_limit():
                csv.field_size_limit(len(text))  # a huge field is the rules' business
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error as error:
                rejected.append(self.reject(lines, index, f"row is not valid CSV: {error}"))
                continue
            if len(fields) != len(self.header):
                rejected.append(
                    self.reject(
                        lines,
                        index,
                        f"row has {len(fields)} fields, the header has {len(self.header)}",
                    )
                )
                continue
            records.append({name: fields[at] for name, at in self.positions.items()})
            kept.append(index)
        readable = lines.subset(np.asarray(kept, dtype=np.intp))
        part = part_from_records(records, self.plan, readable.numbers, readable.text, all_text=True)
        return part, rejected


# -- JSON Lines ----------------------------------------------------------------------


class _JsonLines(_TextBlocks):
    """JSON Lines, one object a line; columns read as the mapping types them."""

    def __init__(self, plan: FramePlan, origin: str) -> None:
        super().__init__(plan, origin, by_arrow=not plan.mapping.uses_row_objects)
        self.schema = pa.schema([(name, plan.read_type(name)) for name in plan.file_columns])

    def fast(self, lines: _Lines) -> InputPart | None:
        data = lines.joined()
        if not _is_utf8(data):
            return None
        try:
            table = pa_json.read_json(
                cast(Any, pa.BufferReader(data)),
                read_options=pa_json.ReadOptions(block_size=_block_size(lines), use_threads=False),
                parse_options=pa_json.ParseOptions(
                    explicit_schema=self.schema, unexpected_field_behavior="ignore"
                ),
            )
        except (pa.ArrowException, ValueError):
            return None
        if table.num_rows != len(lines):
            return None
        return InputPart(
            columns={name: table.column(name).combine_chunks() for name in self.schema.names},
            rows=lines.numbers,
            raw=lines.text,
        )

    def per_row(self, lines: _Lines) -> tuple[InputPart, list[QuarantinedRow]]:
        records: list[dict[str, Any]] = []
        kept: list[int] = []
        rejected: list[QuarantinedRow] = []
        for index in range(len(lines)):
            text = self.decoded(lines, index)
            if isinstance(text, QuarantinedRow):
                rejected.append(text)
                continue
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError as error:
                rejected.append(self.reject(lines, index, f"row is not valid JSON: {error}"))
                continue
            if not isinstance(record, dict):
                reason = f"expected a JSON object, got {json_kind(record)}"
                rejected.append(self.reject(lines, index, reason))
                continue
            records.append(record)
            kept.append(index)
        readable = lines.subset(np.asarray(kept, dtype=np.intp))
        part = part_from_records(records, self.plan, readable.numbers, readable.text)
        return part, rejected


# -- Parquet -------------------------------------------------------------------------


def _read_parquet(
    path: Path, plan: FramePlan, origin: str, chunk_rows: int, start_row: int
) -> Iterator[FrameBatch]:
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise InvalidInput(f"cannot read {origin} as Parquet: {error}") from None
    with parquet:
        names = parquet.schema_arrow.names
        missing = [name for name in plan.file_columns if name not in names]
        if missing:
            raise InvalidInput(
                f"{origin} has no column {', '.join(map(repr, missing))} that the mapping "
                f"{plan.source}:{plan.mapping.pattern} reads (columns: {', '.join(names)})",
                details={"file": origin, "columns": missing},
            )
        metadata = parquet.metadata
        groups: list[int] = []
        first = 0
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            if first + rows <= start_row:
                first += rows
            else:
                groups.append(group)
        skip = start_row - first
        number = first + 1
        for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=groups):
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                number += batch.num_rows
                continue
            if skip:
                batch = batch.slice(skip)
                number += skip
                skip = 0
            yield _parquet_batch(batch, plan, origin, number)
            number += batch.num_rows


def _parquet_batch(batch: pa.RecordBatch, plan: FramePlan, origin: str, first: int) -> FrameBatch:
    def raw(index: int) -> Mapping[str, Any]:
        row: dict[str, Any] = batch.slice(index, 1).to_pylist()[0]
        return row

    part = InputPart(
        columns={name: batch.column(name) for name in plan.file_columns},
        rows=first + np.arange(batch.num_rows, dtype=np.int64),
        raw=raw,
    )
    return _frames([(part, [])], plan, origin)
