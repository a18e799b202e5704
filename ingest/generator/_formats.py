"""Appending writers for CSV, JSON Lines and Parquet, one chunk at a time.

Text formats carry timestamps as UTC ISO-8601 (``2025-03-01T09:30:00Z``); Parquet
keeps them as ``timestamp[ms, UTC]``. Formatting goes through Arrow compute and two
lookup tables (dates of the window, seconds of the day) because per-value
``strftime`` would dominate the generator's run time.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ingest.generator._records import FileFormat

_DAY = 86_400


def _concat(*parts: str | pa.Array[Any]) -> pa.Array[Any]:
    """Element-wise concatenation of string arrays and constant strings (null in, null out)."""
    # The stubs only allow all-scalar or all-array arguments; Arrow broadcasts the strings.
    joined: pa.Array[Any] = pc.binary_join_element_wise(*parts, "")  # type: ignore[call-overload]
    return joined


@cache
def _clock() -> pa.StringArray:
    """``THH:MM:SSZ`` for every second of a day."""
    return pa.array(
        [f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)],
        pa.string(),
    )


def iso_strings(stamps: pa.Array[Any] | pa.ChunkedArray[Any]) -> pa.Array[Any]:
    """Timestamps (seconds) as ISO-8601 UTC strings; nulls stay null."""
    if isinstance(stamps, pa.ChunkedArray):
        stamps = stamps.combine_chunks()
    if len(stamps) == 0:
        return pa.array([], pa.string())
    seconds = np.asarray(stamps.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False))
    days = seconds // _DAY
    first = int(days.min())
    dates = pa.array(
        np.datetime_as_string(np.arange(first, int(days.max()) + 1).astype("datetime64[D]")),
        pa.string(),
    )
    text = _concat(dates.take(pa.array(days - first)), _clock().take(pa.array(seconds % _DAY)))
    result: pa.Array[Any] = pc.if_else(stamps.is_valid(), text, pa.scalar(None, pa.string()))
    return result


def _text_columns(table: pa.Table) -> pa.Table:
    """Timestamps as ISO strings, everything else as it is."""
    for index, column in enumerate(table.columns):
        if pa.types.is_timestamp(column.type):
            table = table.set_column(index, table.field(index).name, iso_strings(column))
    return table


def _needs_escape(column: pa.Array[Any]) -> bool:
    # A byte search of the data buffer; extra bytes of a sliced buffer can only cause a
    # needless (harmless) escaping pass.
    data = column.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(memoryview(data), dtype=np.uint8)
    return bool(np.any((raw == ord('"')) | (raw == ord("\\"))))


def _json_fragment(name: str, column: pa.Array[Any], first: bool) -> pa.Array[Any]:
    """``,"name":value`` for each valid value, ``""`` for nulls (the key is left out).

    The first column opens the object instead of starting with a comma.
    """
    lead = "{" if first else ","
    if pa.types.is_string(column.type):
        if _needs_escape(column):
            column = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
        fragment = _concat(f'{lead}"{name}":"', column, '"')
    else:
        fragment = _concat(f'{lead}"{name}":', column.cast(pa.string()))
    filled: pa.Array[Any] = fragment.fill_null("")
    return filled


def json_lines(table: pa.Table) -> bytes:
    """The table as JSON Lines; null fields are omitted rather than written as null.

    The first column must have no nulls (it is the record id).
    """
    if table.num_rows == 0:
        return b""
    table = _text_columns(table)
    fragments = [
        _json_fragment(name, column.combine_chunks(), position == 0)
        for position, (name, column) in enumerate(
            zip(table.column_names, table.columns, strict=True)
        )
    ]
    parts: list[str | pa.Array[Any]] = [*fragments, "}\n"]
    lines = _concat(*parts)
    # The lines lie back to back in the array's data buffer: that buffer is the file.
    offsets_buffer, data_buffer = lines.buffers()[1:3]
    if offsets_buffer is None or data_buffer is None:
        raise ValueError("a JSON Lines chunk without data")
    offsets = np.frombuffer(memoryview(offsets_buffer), dtype=np.int32)[lines.offset :]
    data: bytes = data_buffer.to_pybytes()
    return data[offsets[0] : offsets[len(lines)]]


@dataclass(frozen=True)
class Encoded:
    """One chunk of one file, ready to append: Arrow for Parquet, bytes for text formats.

    Encoding is the expensive part of writing, so it happens where the chunk is made
    (possibly a worker process); the writer only appends.
    """

    schema: pa.Schema
    rows: int
    table: pa.Table | None = None
    text: bytes = b""


def encode(table: pa.Table, file_format: FileFormat) -> Encoded:
    """Encode one chunk's table for appending to a file of ``file_format``."""
    if file_format is FileFormat.PARQUET:
        for index, column in enumerate(table.columns):
            if pa.types.is_timestamp(column.type):
                table = table.set_column(
                    index, table.field(index).name, column.cast(pa.timestamp("ms", tz="UTC"))
                )
        return Encoded(table.schema, table.num_rows, table=table)
    if file_format is FileFormat.CSV:
        text_table = _text_columns(table)
        buffer = io.BytesIO()
        pa_csv.write_csv(text_table, buffer, pa_csv.WriteOptions(include_header=False))
        return Encoded(text_table.schema, table.num_rows, text=buffer.getvalue())
    return Encoded(table.schema, table.num_rows, text=json_lines(table))


class FileSink:
    """Appends encoded chunks to one file; the first chunk fixes the schema."""

    def __init__(self, path: Path, file_format: FileFormat) -> None:
        self.path = path
        self.format = file_format
        self.rows = 0
        self._schema: pa.Schema | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._stream: BinaryIO | None = None
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, part: Encoded) -> None:
        """Append one encoded chunk."""
        if self._schema is None:
            self._schema = part.schema
            if self.format is FileFormat.PARQUET:
                self._parquet = pq.ParquetWriter(self.path, part.schema, compression="zstd")
            else:
                self._stream = self.path.open("wb")
                if self.format is FileFormat.CSV:
                    self._stream.write(_csv_header(part.schema))
        self.rows += part.rows
        if self._parquet is not None and part.table is not None:
            self._parquet.write_table(part.table.cast(self._schema))
        elif self._stream is not None:
            self._stream.write(part.text)

    def write(self, table: pa.Table) -> None:
        """Encode and append ``table``."""
        self.append(encode(table, self.format))

    def close(self) -> None:
        """Flush and close; a sink that never got a chunk leaves an empty file."""
        if self._parquet is not None:
            self._parquet.close()
        if self._stream is not None:
            self._stream.close()
        if not self.path.exists():
            self.path.touch()


def _csv_header(schema: pa.Schema) -> bytes:
    buffer = io.BytesIO()
    pa_csv.write_csv(schema.empty_table(), buffer)
    return buffer.getvalue()
