"""Probe events in: files and streamed JSON lines as ``PROBE_SCHEMA`` tables, bad rows
quarantined.

Readers yield ``ProbeBatch``es: a table of the accepted events and a
``QuarantinedRow`` (source ``probes``) for every rejected row, with its position, the
row as read and every reason. A bad row never stops the batch. Checks run on whole
columns (Arrow compute and NumPy, ``ingest._columns``); Python looks at single rows
only where a line cannot be parsed at all, and once per distinct subscriber number
that the vectorised E.164 fast path leaves to libphonenumber.

A ``ProbeMapping`` says which input column holds each field. Two are built in
(``PROBE_MAPPINGS``):

* ``canonical``: the fields under their own names, as JSON Lines (the stream form)::

      {"event_id": "p-1", "subscriber": "+447700900123", "cell_id": "234-10-1-2",
       "ts": "2024-05-01T10:00:00Z", "weight": 12, "call_drop_rate": 0.08,
       "call_quality_impairment": 0.02, "low_bitrate_share": null,
       "video_stalling_share": null}

  ``ts`` is ISO-8601 text with a zone (or a zoned timestamp column in Parquet); a
  metric that is absent or null was not measured.
* ``cell_kpis``: the generator's ``network/cell_kpis.parquet`` (one row per
  subscriber, cell and month): ``kpi_id`` becomes the event id the network touchpoint
  has in the graph (``derived_event_id("network", kpi_id)``, so incidents point at
  touchpoints), ``msisdn`` digits the E.164 subscriber, ``period_start`` the time and
  ``calls`` the weight. A period without calls has no call metrics (nothing could
  drop) and weighs 1: its data sessions still measured the two data metrics.

Rules, each failure a reason naming the field, the input column and the value:
``event_id``, ``subscriber``, ``cell_id`` and ``ts`` are required; the subscriber
must be a phone number (normalised to E.164 as ``ingest.identifiers`` does); ``ts``
must lie between 1990 and two days from now; the weight is a number in [0,
``MAX_WEIGHT``] (1 when the mapping has no weight column); a metric, when given, is
a number in [0, 1]; when ``known_cells`` is given, the cell must be one of them
(``known_cells_from_file`` reads the generator's ``truth/cells.parquet``,
``known_cells_from_store`` the graph's Cell vertices).

Positions (``row`` in the quarantine): the 1-based row of a Parquet file, the
1-based data row of a CSV file (the line after the header is row 1), the 1-based
line of a JSON Lines file or stream. Blank lines are not data and are skipped.
"""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Final, NamedTuple, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, field_validator

from engage.model import METRICS, PROBE_SCHEMA, InputCursor
from engage.profiles import MAX_WEIGHT
from graph.errors import InvalidInput
from graph.model import IdentifierKind
from ingest._columns import (
    TEXT,
    ArrowArray,
    Problems,
    as_float,
    as_text,
    as_timestamp,
    labelled,
    longer_than,
    mask_of,
    null_where,
    read_csv_block,
    shown,
    valid,
)
from ingest._frame_builder import MAX_EVENT_ID_LENGTH, derived_event_ids
from ingest._identifier_columns import normalise_identifier_column
from ingest._rows import json_kind
from ingest.frame import QuarantinedRow
from ingest.mapping import TimestampSpec

__all__ = [
    "CANONICAL",
    "CELL_KPIS",
    "DEFAULT_CHUNK_ROWS",
    "PROBE_MAPPINGS",
    "PROBE_SOURCE",
    "ProbeBatch",
    "ProbeMapping",
    "known_cells_from_file",
    "known_cells_from_store",
    "probe_mapping_for",
    "probes_from_lines",
    "probes_from_records",
    "read_probe_file",
    "read_probe_lines",
]

PROBE_SOURCE: Final = "probes"
"""The quarantine's ``source`` for probe events."""
DEFAULT_CHUNK_ROWS: Final = 100_000
_CALL_METRICS: Final = ("call_drop_rate", "call_quality_impairment")
_SPLIT: Final = 16
"""Pieces a block that Arrow cannot parse is split into; failing pieces go row by row."""
_PER_ROW: Final = 256
"""Blocks this small that Arrow cannot parse go row by row at once."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ProbeMapping(BaseModel):
    """Which input column holds each probe field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    event_id: str = "event_id"
    event_source: str | None = None
    """When set, the event id is ``derived_event_id(event_source, <event_id column>)``:
    the id the same record's touchpoint has in the graph."""
    subscriber: str = "subscriber"
    """A phone number in any spelling ``ingest.identifiers`` reads; stored as E.164."""
    cell_id: str = "cell_id"
    ts: str = "ts"
    weight: str | None = "weight"
    """Calls or sessions behind the row; ``None``: every event weighs 1."""
    weight_counts_calls: bool = False
    """The weight column counts calls: a row without calls weighs 1 (its data
    sessions) and its call metrics are null."""
    metrics: dict[str, str] = {metric: metric for metric in METRICS}
    """Metric (of ``METRICS``) -> column; a metric left out is never measured."""

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(
                f"unknown metric(s) {', '.join(unknown)} (one of {', '.join(METRICS)})"
            )
        return value

    @property
    def columns(self) -> list[str]:
        """The input columns read, without repeats."""
        named = [self.event_id, self.subscriber, self.cell_id, self.ts, self.weight]
        named += list(self.metrics.values())
        return list(dict.fromkeys(column for column in named if column is not None))


CANONICAL: Final = ProbeMapping(name="canonical")
CELL_KPIS: Final = ProbeMapping(
    name="cell_kpis",
    event_id="kpi_id",
    event_source="network",
    subscriber="msisdn",
    ts="period_start",
    weight="calls",
    weight_counts_calls=True,
)
PROBE_MAPPINGS: Final[dict[str, ProbeMapping]] = {
    mapping.name: mapping for mapping in (CANONICAL, CELL_KPIS)
}
"""The built-in mappings by name."""


def probe_mapping_for(path: str | Path) -> ProbeMapping:
    """``cell_kpis`` for the generator's ``cell_kpis.*`` files, ``canonical`` otherwise."""
    return CELL_KPIS if Path(path).name.startswith("cell_kpis.") else CANONICAL


class ProbeBatch(NamedTuple):
    """What a reader made of one chunk of input: accepted events, rejects, the input's cursor."""

    table: pa.Table
    """``PROBE_SCHEMA``."""
    quarantined: Sequence[QuarantinedRow] = ()
    cursor: InputCursor | None = None
    """Where the input stands after this chunk, for inputs that can be resumed."""

    @property
    def rows_read(self) -> int:
        """Rows seen in this chunk, accepted or not (blank lines not counted)."""
        return self.table.num_rows + len(self.quarantined)


# -- known cells ---------------------------------------------------------------------


def known_cells_from_file(path: str | Path, column: str = "cell_id") -> pa.Array[Any]:
    """The distinct cell ids in a Parquet or CSV file's ``column`` (the generator's
    ``truth/cells.parquet``)."""
    path = Path(path)
    try:
        if path.suffix == ".csv":
            table = pa_csv.read_csv(
                path, convert_options=pa_csv.ConvertOptions(include_columns=[column])
            )
        else:
            table = pq.read_table(path, columns=[column])
    except (OSError, pa.ArrowException, KeyError) as error:
        raise InvalidInput(
            f"cannot read cell ids from column {column!r} of {path}: {error}",
            details={"file": str(path)},
        ) from None
    cells: pa.Array[Any] = pc.unique(table.column(column).cast(TEXT).drop_null().combine_chunks())
    return cells


def known_cells_from_store(store: Any) -> pa.Array[Any]:
    """The cell ids of the graph's Cell vertices (``graph.GraphStore``)."""
    ids = store.export_vertices("Cell").column("id").combine_chunks()
    cells: pa.Array[Any] = pc.utf8_slice_codeunits(ids, len("cell:"))
    return cells


def _cell_set(known_cells: Collection[str] | pa.Array[Any] | None) -> pa.Array[Any] | None:
    if known_cells is None or isinstance(known_cells, pa.Array):
        return known_cells
    return pa.array(sorted(set(known_cells)), TEXT)


# -- validation ----------------------------------------------------------------------


class _Validation:
    """The column-wise rules of one mapping, turning read columns into a ``ProbeBatch``."""

    def __init__(
        self,
        mapping: ProbeMapping,
        origin: str,
        known_cells: Collection[str] | pa.Array[Any] | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.mapping = mapping
        self.origin = origin
        self.known_cells = _cell_set(known_cells)
        self.clock = clock

    def batch(
        self,
        columns: Mapping[str, ArrowArray],
        rows: NDArray[np.int64],
        raw: Callable[[int], str | Mapping[str, Any]],
        found: Mapping[int, list[str]] | None = None,
        rejected: Sequence[QuarantinedRow] = (),
    ) -> ProbeBatch:
        """``columns`` (the mapping's, as read; absent ones all null) of rows numbered
        ``rows`` as events and rejects. ``found`` holds reasons found while reading
        (by position), ``rejected`` rows that could not be read at all."""
        length = len(rows)
        problems = Problems(found)
        mapping = self.mapping

        def column(name: str | None) -> ArrowArray:
            if name is None or name not in columns:
                return pa.nulls(length, TEXT)
            return columns[name]

        event_id = self._event_ids(column(mapping.event_id), problems)
        subscriber = self._subscribers(column(mapping.subscriber), problems)
        cell_id = self._cells(column(mapping.cell_id), problems)
        mark = problems.mark()
        ts = as_timestamp(
            column(mapping.ts),
            TimestampSpec(column=mapping.ts),
            problems,
            labelled("ts", mapping.ts),
            now_ms=int(self.clock().timestamp() * 1000),
        )
        _required(ts, problems, "ts", mapping.ts, mark)
        weight = self._weights(column(mapping.weight), problems, length)
        metrics = {
            metric: self._share(column(mapping.metrics.get(metric)), problems, metric)
            for metric in METRICS
        }
        if mapping.weight_counts_calls:
            without_calls = mask_of(pc.equal(weight, pa.scalar(0.0)))
            if without_calls.any():
                weight = pc.if_else(pa.array(without_calls), 1.0, weight)
                for metric in _CALL_METRICS:
                    metrics[metric] = null_where(metrics[metric], without_calls)
        table = pa.table(
            {
                "event_id": event_id,
                "subscriber": subscriber,
                "cell_id": cell_id,
                "ts": ts,
                "weight": weight,
                **metrics,
            }
        )
        reasons = problems.by_row()
        quarantined = [
            QuarantinedRow(PROBE_SOURCE, self.origin, int(rows[index]), raw(index), found_reasons)
            for index, found_reasons in sorted(reasons.items())
        ]
        if reasons:
            keep = np.ones(length, bool)
            keep[list(reasons)] = False
            table = table.filter(pa.array(keep))
        quarantined = sorted([*rejected, *quarantined], key=lambda row: row.row)
        return ProbeBatch(table.cast(PROBE_SCHEMA), quarantined)

    def _event_ids(self, array: ArrowArray, problems: Problems) -> ArrowArray:
        name = self.mapping.event_id
        label = labelled("event_id", name)
        mark = problems.mark()
        text = as_text(array, problems, label, trim=self.mapping.event_source is None)
        _required(text, problems, "event_id", name, mark)
        if self.mapping.event_source is not None and valid(text).any():
            present = valid(text)
            derived = derived_event_ids(self.mapping.event_source, text.filter(pa.array(present)))
            positions = np.flatnonzero(present)
            text = _scattered(text, positions, derived)
        too_long = longer_than(text, MAX_EVENT_ID_LENGTH)
        problems.add_where(too_long, f"{label}: longer than {MAX_EVENT_ID_LENGTH} characters")
        return text

    def _subscribers(self, array: ArrowArray, problems: Problems) -> ArrowArray:
        name = self.mapping.subscriber
        label = labelled("subscriber", name)
        mark = problems.mark()
        text = as_text(array, problems, label)
        _required(text, problems, "subscriber", name, mark)
        numbers, errors = normalise_identifier_column(IdentifierKind.MSISDN, text)
        for row, message in errors.items():
            problems.add(np.array([row], np.intp), f"{label}: {message}")
        return numbers

    def _cells(self, array: ArrowArray, problems: Problems) -> ArrowArray:
        name = self.mapping.cell_id
        label = labelled("cell_id", name)
        mark = problems.mark()
        text = as_text(array, problems, label)
        _required(text, problems, "cell_id", name, mark)
        if self.known_cells is not None:
            unknown = valid(text) & ~mask_of(pc.is_in(text, value_set=self.known_cells))
            rows = np.flatnonzero(unknown)
            problems.add(
                rows,
                [f"{label}: unknown cell {shown(value)}" for value in text.take(rows).to_pylist()],
            )
        return text

    def _weights(self, array: ArrowArray, problems: Problems, length: int) -> ArrowArray:
        name = self.mapping.weight
        if name is None:
            return pa.array(np.ones(length))
        label = labelled("weight", name)
        mark = problems.mark()
        weight = as_float(array, problems, label)
        _required(weight, problems, "weight", name, mark)
        values = np.asarray(weight.fill_null(0.0).to_numpy(zero_copy_only=False))
        problems.add_where(
            values < 0,
            lambda rows: [
                f"{label}: {shown(value)} is negative" for value in values[rows].tolist()
            ],
        )
        problems.add_where(
            values > MAX_WEIGHT,
            lambda rows: [
                f"{label}: {shown(value)} is above the largest weight {MAX_WEIGHT:g}"
                for value in values[rows].tolist()
            ],
        )
        return weight

    def _share(self, array: ArrowArray, problems: Problems, metric: str) -> ArrowArray:
        name = self.mapping.metrics.get(metric)
        label = labelled(metric, name) if name is not None else metric
        share = as_float(array, problems, label)
        values = np.asarray(share.fill_null(0.0).to_numpy(zero_copy_only=False))
        problems.add_where(
            (values < 0) | (values > 1),
            lambda rows: [
                f"{label}: {shown(value)} is outside [0, 1]" for value in values[rows].tolist()
            ],
        )
        return share


def _required(array: ArrowArray, problems: Problems, field: str, column: str, since: int) -> None:
    """Rows without a value, except those whose value was there but wrong (found since
    mark ``since``)."""
    missing = ~valid(array) & ~problems.rejected(len(array), since)
    problems.add_where(missing, f"{field}: missing (no value in column {column!r})")


def _scattered(base: ArrowArray, positions: NDArray[np.intp], values: ArrowArray) -> ArrowArray:
    take = np.arange(len(base), dtype=np.int64)
    take[positions] = len(base) + np.arange(len(positions))
    combined: ArrowArray = pa.concat_arrays([base, values.cast(base.type)]).take(
        pa.array(take, pa.int64())
    )
    return combined


# -- records and lines ---------------------------------------------------------------


def probes_from_records(
    records: Sequence[Any],
    mapping: ProbeMapping = CANONICAL,
    *,
    origin: str = "push",
    first_row: int = 1,
    known_cells: Collection[str] | pa.Array[Any] | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> ProbeBatch:
    """Decoded JSON records (a push, a stream's messages) as events and rejects.

    Record *i* is row ``first_row + i``; anything but a JSON object is quarantined.
    """
    validation = _Validation(mapping, origin, known_cells, clock)
    rows = np.arange(first_row, first_row + len(records), dtype=np.int64)
    objects, kept, rejected = [], [], []
    for index, record in enumerate(records):
        if isinstance(record, Mapping):
            objects.append(record)
            kept.append(index)
        else:
            reason = f"expected a JSON object, got {json_kind(record)}"
            rejected.append(
                QuarantinedRow(PROBE_SOURCE, origin, int(rows[index]), _shown_raw(record), [reason])
            )
    columns, found = _columns_of_records(objects, mapping)
    return validation.batch(columns, rows[kept], lambda index: objects[index], found, rejected)


def probes_from_lines(
    lines: Sequence[bytes | str],
    mapping: ProbeMapping = CANONICAL,
    *,
    origin: str = "stream",
    first_row: int = 1,
    known_cells: Collection[str] | pa.Array[Any] | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> ProbeBatch:
    """JSON lines (one micro-batch of a stream) as events and rejects.

    Line *i* is row ``first_row + i``; blank lines are skipped, a line that is not a
    JSON object is quarantined by itself.
    """
    encoded = [line.encode() if isinstance(line, str) else line for line in lines]
    numbered = [
        (first_row + index, line.rstrip(b"\r\n"))
        for index, line in enumerate(encoded)
        if line.strip()
    ]
    validation = _Validation(mapping, origin, known_cells, clock)
    return _JsonLines(validation).batch(numbered)


def read_probe_lines(
    lines: Iterable[bytes | str],
    mapping: ProbeMapping = CANONICAL,
    *,
    batch_size: int = 10_000,
    origin: str = "stdin",
    known_cells: Collection[str] | pa.Array[Any] | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> Iterator[ProbeBatch]:
    """JSON lines (stdin, a followed file) in batches of ``batch_size`` lines.

    For a live stream that should not wait for a full batch, group the lines with
    ``ingest.stream.micro_batches`` and call ``probes_from_lines`` on each group.
    """
    if batch_size < 1:
        raise InvalidInput("batch_size must be at least 1")
    iterator = iter(lines)
    first = 1
    while chunk := list(islice(iterator, batch_size)):
        yield probes_from_lines(
            chunk, mapping, origin=origin, first_row=first, known_cells=known_cells, clock=clock
        )
        first += len(chunk)


# -- files ---------------------------------------------------------------------------


def read_probe_file(
    path: str | Path,
    mapping: ProbeMapping | None = None,
    *,
    origin: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    start_row: int = 0,
    known_cells: Collection[str] | pa.Array[Any] | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> Iterator[ProbeBatch]:
    """Read a Parquet, CSV or JSON Lines file of probe events a chunk at a time.

    ``mapping`` defaults to ``probe_mapping_for(path)``; ``origin`` names the file in
    the quarantine (by default the path as given). ``start_row`` skips that many rows
    (as batches count them in ``rows_read``), so a resumed run goes on where it
    stopped. Raises ``InvalidInput`` when the file cannot be read or lacks a column
    the mapping reads (metric columns may be absent: those metrics were not measured).
    """
    if chunk_rows < 1 or start_row < 0:
        raise InvalidInput("chunk_rows must be at least 1 and start_row at least 0")
    path = Path(path)
    mapping = mapping if mapping is not None else probe_mapping_for(path)
    validation = _Validation(mapping, origin or str(path), known_cells, clock)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        yield from _read_parquet(path, validation, chunk_rows, start_row)
        return
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise InvalidInput(
            f"{path}: unknown probe file type {suffix!r} (.parquet, .csv or .jsonl)",
            details={"file": str(path)},
        )
    try:
        stream = path.open("rb")
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error}", details={"file": str(path)}) from None
    with stream:
        if suffix == ".csv":
            header = _csv_header(stream, validation)
            reader: _TextBlocks = _Csv(validation, header)
        else:
            reader = _JsonLines(validation)
        for lines in _line_blocks(stream, chunk_rows, start_row):
            yield reader.batch(lines)


def _required_columns(mapping: ProbeMapping) -> list[str]:
    named = [mapping.event_id, mapping.subscriber, mapping.cell_id, mapping.ts, mapping.weight]
    return [name for name in named if name is not None]


def _missing_columns(names: Collection[str], validation: _Validation) -> None:
    missing = [name for name in _required_columns(validation.mapping) if name not in names]
    if missing:
        raise InvalidInput(
            f"{validation.origin} has no column {', '.join(map(repr, missing))} that the probe "
            f"mapping {validation.mapping.name!r} reads (columns: {', '.join(names)})",
            details={"file": validation.origin, "columns": missing},
        )


def _read_parquet(
    path: Path, validation: _Validation, chunk_rows: int, start_row: int
) -> Iterator[ProbeBatch]:
    try:
        source = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise InvalidInput(f"cannot read {path}: {error}", details={"file": str(path)}) from None
    names = source.schema_arrow.names
    _missing_columns(names, validation)
    wanted = [name for name in validation.mapping.columns if name in names]
    first = 1
    for record_batch in source.iter_batches(batch_size=chunk_rows, columns=wanted):
        table = pa.Table.from_batches([record_batch])
        if start_row >= table.num_rows:
            start_row -= table.num_rows
            first += table.num_rows
            continue
        table = table.slice(start_row)
        first += start_row
        start_row = 0
        rows = np.arange(first, first + table.num_rows, dtype=np.int64)
        columns = {name: table.column(name).combine_chunks() for name in wanted}

        def raw(index: int, table: pa.Table = table) -> Mapping[str, Any]:
            row: dict[str, Any] = table.slice(index, 1).to_pylist()[0]
            return {key: value if _json_ready(value) else str(value) for key, value in row.items()}

        yield validation.batch(columns, rows, raw)
        first += table.num_rows


def _json_ready(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# -- text files ----------------------------------------------------------------------

_Numbered = list[tuple[int, bytes]]
"""Lines with their 1-based numbers, line breaks removed."""


def _line_blocks(stream: Any, chunk_rows: int, skip: int) -> Iterator[_Numbered]:
    """Non-blank lines in blocks of ``chunk_rows``, numbered from the stream's position
    (line 1 is the next one read); the first ``skip`` non-blank lines are passed over."""
    number = 0
    block: _Numbered = []
    for line in stream:
        number += 1
        if not line.strip():
            continue
        if skip:
            skip -= 1
            continue
        block.append((number, line.rstrip(b"\r\n")))
        if len(block) == chunk_rows:
            yield block
            block = []
    if block:
        yield block


class _TextBlocks(ABC):
    """Parses blocks of lines fast with Arrow, and row by row only where Arrow fails.

    Subclasses give the format: ``_parse`` (a whole block with Arrow) and ``_record``
    (one line by itself, for the rows Arrow could not take)."""

    all_text = True
    """Whether a row read by itself has only text values."""

    def __init__(self, validation: _Validation) -> None:
        self.validation = validation

    def batch(self, lines: _Numbered) -> ProbeBatch:
        """One block of lines as events and rejects."""
        parts = self._parts(lines)
        batches = [
            self.validation.batch(columns, rows, raw, found, rejected)
            for columns, rows, raw, found, rejected in parts
        ]
        tables = [batch.table for batch in batches]
        quarantined = sorted(
            (row for batch in batches for row in batch.quarantined), key=lambda row: row.row
        )
        table = pa.concat_tables(tables) if tables else PROBE_SCHEMA.empty_table()
        return ProbeBatch(table, quarantined)

    def _parts(self, lines: _Numbered) -> list[_Part]:
        fast = self._fast(lines)
        if fast is not None:
            return [fast]
        if len(lines) <= _PER_ROW:
            return [self._per_row(lines)]
        size = -(-len(lines) // _SPLIT)
        parts = []
        for start in range(0, len(lines), size):
            piece = lines[start : start + size]
            parts.append(self._fast(piece) or self._per_row(piece))
        return parts

    def _fast(self, lines: _Numbered) -> _Part | None:
        data = b"\n".join(line for _, line in lines) + b"\n"
        try:
            data.decode("utf-8")
            table = self._parse(data)
        except (UnicodeDecodeError, pa.ArrowException, ValueError):
            return None
        if table.num_rows != len(lines):
            return None
        rows = np.array([number for number, _ in lines], dtype=np.int64)
        columns = {name: table.column(name).combine_chunks() for name in table.column_names}
        return columns, rows, lambda index: _text(lines[index][1]), None, []

    @abstractmethod
    def _parse(self, data: bytes) -> pa.Table:
        """A block of lines (joined, newline-terminated) as a table; raises if Arrow cannot."""

    def _per_row(self, lines: _Numbered) -> _Part:
        records: list[dict[str, Any]] = []
        numbers: list[int] = []
        texts: list[str] = []
        found: dict[int, list[str]] = {}
        rejected: list[QuarantinedRow] = []
        origin = self.validation.origin
        for number, line in lines:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as error:
                reason = (
                    f"row is not valid UTF-8 (byte 0x{line[error.start]:02x} at "
                    f"position {error.start + 1})"
                )
                rejected.append(QuarantinedRow(PROBE_SOURCE, origin, number, _text(line), [reason]))
                continue
            record = self._record(text)
            if isinstance(record, str):
                rejected.append(QuarantinedRow(PROBE_SOURCE, origin, number, text, [record]))
                continue
            values, reasons = record
            if reasons:
                found[len(records)] = reasons
            records.append(values)
            numbers.append(number)
            texts.append(text)
        columns, _ = _columns_of_records(records, self.validation.mapping, all_text=self.all_text)
        rows = np.array(numbers, dtype=np.int64)
        return columns, rows, lambda index: texts[index], found, rejected

    @abstractmethod
    def _record(self, text: str) -> tuple[dict[str, Any], list[str]] | str:
        """One line's values by column and the reasons found, or why it cannot be read."""


_Part = tuple[
    dict[str, ArrowArray],
    NDArray[np.int64],
    Callable[[int], str | Mapping[str, Any]],
    dict[int, list[str]] | None,
    list[QuarantinedRow],
]


def _text(line: bytes) -> str:
    return line.decode("utf-8", "backslashreplace")


def _csv_header(stream: Any, validation: _Validation) -> list[str]:
    first_line = stream.readline()
    if not first_line.strip():
        raise InvalidInput(
            f"{validation.origin}: the first line must be the CSV header",
            details={"file": validation.origin},
        )
    try:
        header = next(csv.reader([first_line.decode("utf-8-sig").rstrip("\r\n")], strict=True))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidInput(f"{validation.origin}: cannot read the CSV header: {error}") from None
    _missing_columns(header, validation)
    return header


class _Csv(_TextBlocks):
    """CSV lines under a header; every column read as text."""

    def __init__(self, validation: _Validation, header: list[str]) -> None:
        super().__init__(validation)
        self.header = header
        self.wanted = [name for name in validation.mapping.columns if name in header]

    def _parse(self, data: bytes) -> pa.Table:
        return read_csv_block(data, self.header, self.wanted, max(1 << 20, len(data) + 1))

    def _record(self, text: str) -> tuple[dict[str, Any], list[str]] | str:
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as error:
            return f"row is not valid CSV: {error}"
        if len(fields) != len(self.header):
            return f"row has {len(fields)} fields, the header has {len(self.header)}"
        values = {name: fields[self.header.index(name)] or None for name in self.wanted}
        return values, []


class _JsonLines(_TextBlocks):
    """JSON Lines, one object a line; numbers where the mapping expects them."""

    all_text = False

    def __init__(self, validation: _Validation) -> None:
        super().__init__(validation)
        self.schema = pa.schema(
            [(name, _json_type(validation.mapping, name)) for name in validation.mapping.columns]
        )

    def _parse(self, data: bytes) -> pa.Table:
        return pa_json.read_json(
            cast(Any, pa.BufferReader(data)),
            read_options=pa_json.ReadOptions(
                block_size=max(1 << 20, len(data) + 1), use_threads=False
            ),
            parse_options=pa_json.ParseOptions(
                explicit_schema=self.schema, unexpected_field_behavior="ignore"
            ),
        )

    def _record(self, text: str) -> tuple[dict[str, Any], list[str]] | str:
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            return f"row is not valid JSON: {error}"
        if not isinstance(record, dict):
            return f"expected a JSON object, got {json_kind(record)}"
        values, reasons = _typed_values(record, self.validation.mapping)
        return values, reasons


def _json_type(mapping: ProbeMapping, column: str) -> pa.DataType:
    numeric = {mapping.weight, *mapping.metrics.values()} - {None}
    return pa.float64() if column in numeric else TEXT


def _typed_values(
    record: Mapping[str, Any], mapping: ProbeMapping
) -> tuple[dict[str, Any], list[str]]:
    """A JSON object's values of the mapping's columns, each of the type its column is
    read as (others become null, with a reason)."""
    values: dict[str, Any] = {}
    reasons: list[str] = []
    for name in mapping.columns:
        value = record.get(name)
        numeric = _json_type(mapping, name) == pa.float64()
        if value is None:
            values[name] = None
        elif numeric and isinstance(value, int | float) and not isinstance(value, bool):
            values[name] = float(value) if abs(value) < 1e308 else float("inf")
        elif numeric and isinstance(value, str):
            values[name] = value  # as_float reads numbers written as text
        elif not numeric and isinstance(value, str):
            values[name] = value
        elif not numeric and isinstance(value, int) and not isinstance(value, bool):
            values[name] = str(value)
        else:
            wanted = "a number" if numeric else "text"
            reasons.append(f"{name}: expected {wanted}, got {json_kind(value)}")
            values[name] = None
    return values, reasons


def _columns_of_records(
    records: Sequence[Mapping[str, Any]], mapping: ProbeMapping, *, all_text: bool = False
) -> tuple[dict[str, ArrowArray], dict[int, list[str]]]:
    """Decoded records as one column per mapped column: text columns as text, numeric
    ones as numbers or text (``as_float`` reads both); the reasons of wrong types."""
    found: dict[int, list[str]] = {}
    rows: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        if all_text:
            rows.append(dict(record))
            continue
        values, reasons = _typed_values(record, mapping)
        if reasons:
            found[index] = reasons
        rows.append(values)
    columns: dict[str, ArrowArray] = {}
    for name in mapping.columns:
        given = [row.get(name) for row in rows]
        if all_text or _json_type(mapping, name) == TEXT:
            columns[name] = pa.array(given, TEXT)
        elif any(isinstance(value, str) for value in given):
            columns[name] = pa.array(
                [None if value is None else str(value) for value in given], TEXT
            )
        else:
            columns[name] = pa.array(given, pa.float64())
    return columns, found


def _shown_raw(value: object) -> str | Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):
        return repr(value)
