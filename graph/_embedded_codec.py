"""How the embedded store writes properties as JSON documents and reads them back.

A document is the JSON object of an element's properties, as SQLite's ``json_patch``
merges them. Datetimes are stored as ``{"$dt": <microseconds since the epoch, UTC>}``
so they come back as datetimes and export straight into Arrow timestamps. Records are
encoded with orjson; Arrow tables column by column with Arrow kernels, byte for byte
what orjson writes for the same values, so a re-upsert through either path finds the
data unchanged.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from graph.model import INT64_MAX, MAX_STRING_LENGTH, PropertyValue, property_key_valid

DATETIME_TAG: Final = "$dt"
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND: Final = timedelta(microseconds=1)


def micros(value: datetime) -> int:
    """Microseconds since the Unix epoch: exact, and ordered like the instants."""
    return (value - EPOCH) // MICROSECOND


def from_micros(value: int) -> datetime:
    # Multiplying a timedelta is exact and twice as fast as timedelta(microseconds=...).
    return EPOCH + MICROSECOND * value


def _encode_default(value: object) -> object:
    if isinstance(value, datetime):
        return {DATETIME_TAG: micros(value)}
    raise TypeError(f"cannot store {type(value).__name__}")


_ENCODE_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME


def document(properties: dict[str, Any]) -> str:
    """The JSON document of a properties dict (``None`` values written as nulls)."""
    return orjson.dumps(properties, _encode_default, _ENCODE_OPTIONS).decode()


def encode(properties: dict[str, PropertyValue | None]) -> tuple[str, str]:
    """The merge patch for an existing element and the document for a new one."""
    patch = document(properties)
    if None not in properties.values():
        return patch, patch
    return patch, document({key: value for key, value in properties.items() if value is not None})


def decode(text: str) -> dict[str, PropertyValue]:
    """One property document as a dict."""
    return decode_many([text])[0]


def decode_many(texts: list[str]) -> list[dict[str, PropertyValue]]:
    """Property documents as dicts: one orjson call for them all, then the datetimes."""
    decoded: list[dict[str, Any]] = orjson.loads("[" + ",".join(texts) + "]")
    for properties in decoded:
        for key, value in properties.items():
            if type(value) is dict:
                properties[key] = from_micros(value[DATETIME_TAG])
    return decoded


def prepend(table: pa.Table, columns: list[tuple[str, pa.Array[Any]]]) -> pa.Table:
    """``table`` with ``columns`` first (replacing property columns of the same name)."""
    if table.num_columns == 0:
        # No element has a property: Arrow's reader gives a table without rows.
        return pa.table(dict(columns))
    for position, (name, column) in enumerate(columns):
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.add_column(position, name, column)
    return table


def properties_table(texts: list[str]) -> pa.Table:
    """Property JSON objects as columns: Arrow's JSON reader in C, Python as fallback.

    The fast path fails when one property holds different types on different
    vertices; then each column is built on its own and mixed ones become text.
    """
    if not texts:
        return pa.table({})
    try:
        table = pa_json.read_json(
            io.BytesIO("\n".join(texts).encode()),
            read_options=pa_json.ReadOptions(block_size=1 << 26),
        )
        columns = [_datetime_column(table[name]) for name in table.column_names]
        return pa.Table.from_arrays(columns, names=table.column_names)
    except pa.ArrowInvalid:
        return _properties_table_slow(texts)


def _datetime_column(column: pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    if pa.types.is_struct(column.type) and [f.name for f in column.type] == [DATETIME_TAG]:
        struct: pa.StructArray = column.combine_chunks()  # type: ignore[assignment]
        values = struct.field(DATETIME_TAG).cast(pa.int64())
        return pa.chunked_array([values.cast(pa.timestamp("us", tz="UTC"))])
    return column


def _properties_table_slow(texts: list[str]) -> pa.Table:
    decoded = decode_many(texts)
    names = list(dict.fromkeys(key for item in decoded for key in item))
    columns: dict[str, pa.Array[Any]] = {}
    for name in names:
        values = [item.get(name) for item in decoded]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array(
                [None if value is None else str(value) for value in values], pa.string()
            )
    return pa.table(columns)


# --- columnar writes --------------------------------------------------------------

_JSON_ESCAPES: Final = {
    "\\": "\\\\",  # first, so the backslashes of the other escapes stay as they are
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
} | {chr(code): f"\\u{code:04x}" for code in range(32) if code not in (8, 9, 10, 12, 13)}
"""What orjson escapes in a string, and how; no other character is escaped."""


def table_documents(table: pa.Table, key_columns: tuple[str, ...]) -> pa.Array[Any] | str | None:
    """Each row's property columns as the JSON document the records path would store.

    Built column by column in Arrow kernels, byte for byte what orjson writes for the
    same values, so re-upserting through either path finds the data unchanged. One
    string (``"{}"``) when no row has a property; None when a column is one the
    records path must check (a bad name, an unsupported type, a value out of range).
    """
    parts: list[Any] = ["{"]
    for name in table.column_names:
        if name in key_columns:
            continue
        column = table[name].combine_chunks()
        if pa.types.is_null(column.type):
            continue
        member = _json_member(name, column) if property_key_valid(name) else None
        if member is None:
            return None
        # A column without nulls joins straight into the documents; one with nulls is
        # joined first, so that a null takes the property's name and comma with it.
        for part in member if column.null_count == 0 else [concat(*member)]:
            # A join costs about the same for each part, constant or not, so
            # neighbouring constants (a comma and the next name) become one.
            if isinstance(part, str) and isinstance(parts[-1], str):
                parts[-1] += part
            else:
                parts.append(part)
    if len(parts) == 1:
        return "{}"
    if isinstance(parts[-1], str):
        # The last property is in every row: its comma is where the brace goes.
        parts[-1] = parts[-1][:-1] + "}"
        return concat(*parts, skip_nulls=True)
    # Each member ends with a comma and nulls join as nothing, which skips the
    # properties a row has no value for; the last comma then gives way to the brace.
    joined = concat(*parts, skip_nulls=True)
    return concat(pc.utf8_rtrim(joined, characters=","), "}")


def _json_member(name: str, column: pa.Array[Any]) -> list[Any] | None:
    """Parts whose element-wise join is ``"name":value,`` per value as orjson writes it
    (null for nulls), the name and punctuation as constants; None if unsupported."""
    kind = column.type
    head = f'"{name}":'
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if (pc.max(pc.utf8_length(column)).as_py() or 0) > MAX_STRING_LENGTH:  # type: ignore[call-overload]
            return None
        if _needs_escape(column):
            for char, escape in _JSON_ESCAPES.items():
                column = pc.replace_substring(column, char, escape)
        return [head + '"', column, '",']
    if pa.types.is_boolean(kind):
        return [pc.if_else(column, head + "true,", head + "false,")]
    if pa.types.is_integer(kind):
        if pa.types.is_uint64(kind) and (pc.max(column).as_py() or 0) > INT64_MAX:
            return None
        return [head, column.cast(pa.string()), ","]
    if pa.types.is_floating(kind):
        values = column.cast(pa.float64())
        if not pc.all(pc.is_finite(values), min_count=0).as_py():
            return None
        return [head, _float_texts(values), ","]
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        stamps = micros_array(column).cast(pa.string())
        return [f'{head}{{"{DATETIME_TAG}":', stamps, "},"]
    return None


def _needs_escape(column: pa.Array[Any]) -> bool:
    """Whether any string of ``column`` holds a character JSON escapes (see _JSON_ESCAPES).

    Three vectorised passes over the column's bytes, ten times faster than a regular
    expression per string. Bytes of null slots may count too; escaping then is only
    wasted work.
    """
    _, offsets, data = column.buffers()
    if offsets is None or data is None or len(column) == 0:
        return False
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    bounds = np.frombuffer(memoryview(offsets), width)[[column.offset, column.offset + len(column)]]
    raw = np.frombuffer(memoryview(data), np.uint8)[bounds[0] : bounds[1]]
    return bool((raw < 32).any() or (raw == ord('"')).any() or (raw == ord("\\")).any())


def _float_texts(values: pa.Array[Any]) -> pa.Array[Any]:
    """orjson's text of each float64 value (null for nulls), cut from one serialisation.

    Arrow formats floats its own way; orjson writes a NumPy array byte for byte as
    it writes the same Python floats, without making them, and the text between
    the commas of that list is what the records path stores.
    """
    numbers = values.to_numpy(zero_copy_only=False)  # nulls become NaN, written "null"
    text = np.frombuffer(orjson.dumps(numbers, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
    body = text[1:-1]
    commas = np.flatnonzero(body == ord(","))
    # Dropping the commas moves each value's start back by the commas before it.
    offsets = np.concatenate(([0], commas + 1 - np.arange(1, len(commas) + 1), [0]))
    offsets[-1] = len(body) - len(commas)
    data = body[body != ord(",")]
    written = pa.StringArray.from_buffers(
        len(numbers), pa.py_buffer(offsets.astype(np.int32).tobytes()), pa.py_buffer(data.tobytes())
    )
    return cast("pa.Array[Any]", pc.if_else(values.is_valid(), written, None))


def json_array(strings: pa.Array[Any]) -> str:
    """A string column as one JSON array (joined in Arrow: no Python string a value)."""
    if _needs_escape(strings):
        return orjson.dumps(strings.to_pylist()).decode()
    listed = pa.ListArray.from_arrays(pa.array([0, len(strings)], pa.int32()), strings)
    joined = cast("pa.Array[Any]", pc.binary_join(listed, '","'))
    return '["' + cast(str, joined[0].as_py()) + '"]'


def concat(*parts: Any, skip_nulls: bool = False) -> pa.Array[Any]:
    """Strings joined element-wise, constants repeated; a null part makes the result
    null, or with ``skip_nulls`` counts as empty."""
    if skip_nulls:
        joined = pc.binary_join_element_wise(
            *parts, "", null_handling="replace", null_replacement=""
        )
    else:
        joined = pc.binary_join_element_wise(*parts, "")
    return cast("pa.Array[Any]", joined)


def strings(column: pa.Array[Any] | pa.ChunkedArray[Any]) -> list[str]:
    """The values of a string column that has no nulls."""
    return cast(list[str], column.to_pylist())


def micros_array(column: pa.Array[Any]) -> pa.Array[Any]:
    """A timestamp column as microseconds since the epoch, floored like ``micros``."""
    values = column.cast(pa.int64())
    unit = column.type.unit
    if unit == "s":
        return pc.multiply_checked(values, 1_000_000)
    if unit == "ms":
        return pc.multiply_checked(values, 1000)
    if unit == "ns":
        # Integer division truncates towards zero; floor the negative ones.
        quotient = pc.divide(values, 1000)
        below = pc.greater(pc.multiply(quotient, 1000), values)
        return pc.subtract(quotient, below.cast(pa.int64()))
    return values
