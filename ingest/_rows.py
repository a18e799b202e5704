"""Rows given as Python values (decoded JSON, pushed records, CSV fields) as typed columns.

The per-row path: every value is checked against the type its column is read as
(``FramePlan.read_type``), so a JSON array where text is expected, or a word in a
number column, becomes a reason on that row alone. JSON objects in the canonical
shape (``identifiers``, ``person``, ``attributes``) are opened here too. The result
is an ``InputPart`` for the column-wise rules of ``ingest._frame_builder``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
from numpy.typing import NDArray

from ingest._columns import TEXT, shown
from ingest._frame_builder import TOKEN_PATTERN, FramePlan, InputPart, object_column
from ingest.frame import IDENTIFIER_COLUMNS, PERSON_COLUMNS
from ingest.touchpoint import MAX_ATTRIBUTE_LENGTH

_ATTRIBUTE_KEY: Final = re.compile(TOKEN_PATTERN)
_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class _WrongType(ValueError):
    """A value of the wrong JSON type for its column."""


def json_kind(value: object) -> str:
    """What a decoded JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise _WrongType(f"expected text, got {json_kind(value)}")


def _stamp_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    raise _WrongType(f"expected a timestamp as text, got {json_kind(value)}")


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise _WrongType("expected a whole number, got a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _WrongType(f"{shown(value)} is not a whole number") from None
    if not isinstance(value, int):
        raise _WrongType(f"expected a whole number, got {json_kind(value)}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _WrongType(f"{value} is out of the int64 range")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool):
        raise _WrongType("expected a number, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _WrongType(f"{shown(value)} is not a number") from None
    if not isinstance(value, int | float):
        raise _WrongType(f"expected a number, got {json_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise _WrongType(f"{shown(value)} is not a finite number")
    return number


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _WrongType(f"expected a boolean, got {json_kind(value)}")


_CONVERTERS: Final[dict[pa.DataType, Callable[[object], object]]] = {
    TEXT: _text,
    pa.int64(): _integer,
    pa.float64(): _number,
    pa.bool_(): _boolean,
}


class _Rows:
    """Collects converted values and the reasons rows are wrong."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.problems: dict[int, list[str]] = {}
        self.values: dict[str, list[Any]] = {}
        self.unreadable: dict[str, NDArray[np.bool_]] = {}

    def problem(self, row: int, reason: str) -> None:
        self.problems.setdefault(row, []).append(reason)

    def column(self, name: str) -> list[Any]:
        if name not in self.values:
            self.values[name] = [None] * self.count
        return self.values[name]


def part_from_records(
    records: Sequence[Mapping[str, Any]],
    plan: FramePlan,
    rows: Sequence[int] | NDArray[np.int64],
    raw: Callable[[int], str | Mapping[str, Any]],
    *,
    all_text: bool = False,
) -> InputPart:
    """Records (one ``Mapping`` a row) as an ``InputPart``; ``all_text`` reads CSV fields."""
    collected = _Rows(len(records))
    types = {name: TEXT if all_text else plan.read_type(name) for name in plan.file_columns}
    stamp = plan.mapping.timestamp
    for name, kind in types.items():
        convert = _CONVERTERS[kind]
        if name == stamp.column and kind == TEXT and not all_text:
            convert = _stamp_text
        values = collected.column(name)
        for row, record in enumerate(records):
            value = record.get(name)
            if value is None:
                continue
            try:
                values[row] = convert(value)
            except _WrongType as wrong:
                collected.problem(row, f"column {name!r}: {wrong}")
                unread = collected.unreadable.setdefault(name, np.zeros(len(records), bool))
                unread[row] = True
    mapping = plan.mapping
    if mapping.identifiers_from is not None:
        _open_objects(records, mapping.identifiers_from, IDENTIFIER_COLUMNS, collected)
    if mapping.person_from is not None:
        _open_objects(records, mapping.person_from, PERSON_COLUMNS, collected)
    extra = None
    if mapping.attributes_from is not None:
        extra = pa.array(_attribute_fragments(records, mapping.attributes_from, collected), TEXT)
    if mapping.unknown_fields == "reject":
        known = set(plan.file_columns) | set(plan.object_columns)
        for row, record in enumerate(records):
            for name in record:
                if name not in known:
                    collected.problem(
                        row, f"unknown field {shown(name)} (known: {', '.join(sorted(known))})"
                    )
    columns = {
        name: pa.array(values, types.get(name, TEXT)) for name, values in collected.values.items()
    }
    return InputPart(
        columns=columns,
        rows=np.asarray(rows, dtype=np.int64),
        raw=raw,
        problems=collected.problems,
        unreadable=collected.unreadable,
        extra_attributes=extra,
    )


def _open_objects(
    records: Sequence[Mapping[str, Any]],
    name: str,
    keys: Sequence[str],
    collected: _Rows,
) -> None:
    """Spread the entries of the object column ``name`` over one column per key."""
    for row, record in enumerate(records):
        found = record.get(name)
        if found is None:
            continue
        if not isinstance(found, Mapping):
            collected.problem(row, f"{name}: expected an object, got {json_kind(found)}")
            continue
        for key, value in found.items():
            if key not in keys:
                collected.problem(
                    row, f"{name}: unknown key {shown(key)} (known: {', '.join(keys)})"
                )
            elif value is not None:
                try:
                    collected.column(object_column(name, key))[row] = _text(value)
                except _WrongType as wrong:
                    collected.problem(row, f"{name}.{key}: {wrong}")


def _attribute_fragments(
    records: Sequence[Mapping[str, Any]], name: str, collected: _Rows
) -> list[str]:
    """Each row's attributes object as ``,"key":value...`` JSON text (``""`` when it has
    none), under ``Touchpoint``'s rules: token keys; text, number or boolean values;
    text of at most 4096 characters. Null values are left out."""
    fragments: list[str] = []
    for row, record in enumerate(records):
        found = record.get(name)
        parts: list[str] = []
        if isinstance(found, Mapping):
            for key, value in found.items():
                reason = _attribute_problem(key, value)
                if reason is not None:
                    collected.problem(row, f"{name}.{key}: {reason}")
                elif value is not None and not (isinstance(value, float) and math.isnan(value)):
                    item = value.strip() if isinstance(value, str) else value
                    parts.append(f',"{key}":{orjson.dumps(item).decode()}')
        elif found is not None:
            collected.problem(row, f"{name}: expected an object, got {json_kind(found)}")
        fragments.append("".join(parts))
    return fragments


def _attribute_problem(key: object, value: object) -> str | None:
    if not isinstance(key, str) or not _ATTRIBUTE_KEY.match(key):
        return "attribute keys must be 1-64 lower-case letters, digits or underscores"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if _INT64_MIN <= value <= _INT64_MAX else "out of the int64 range"
    if isinstance(value, str):
        if len(value.strip()) > MAX_ATTRIBUTE_LENGTH:
            return f"longer than {MAX_ATTRIBUTE_LENGTH} characters"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) or math.isnan(value) else "not a finite number"
    return f"expected text, a number or a boolean, got {json_kind(value)}"
