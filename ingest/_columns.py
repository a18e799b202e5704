"""Column-wise checks and conversions on Arrow arrays, with a reason for every bad row.

The building blocks of the touchpoint frame (``ingest._frame_builder``): text,
numbers, booleans and timestamps read from whatever type a file gave, each bad value
recorded in ``Problems`` against its row instead of failing the column. Work is done
on whole arrays (Arrow compute, NumPy over the raw buffers); Python runs only where
Arrow cannot decide, once per *distinct* value (``Distinct``).

Text is trimmed as ``Touchpoint`` trims it, and empty text counts as absent (an
empty CSV field is no value).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Final, TypeAlias, TypeVar, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from numpy.typing import NDArray

from ingest.frame import TS_TYPE
from ingest.mapping import TimestampFormat, TimestampSpec
from ingest.touchpoint import EARLIEST, FUTURE_SLACK_DAYS

TEXT: Final = pa.string()
ArrowArray: TypeAlias = "pa.Array[Any]"
BoolMask: TypeAlias = "NDArray[np.bool_]"
Positions: TypeAlias = "NDArray[np.intp]"
T = TypeVar("T")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_MS: Final = timedelta(milliseconds=1)
DAY_MS: Final = 86_400_000
EARLIEST_MS: Final = (EARLIEST - _EPOCH) // _MS
_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})
_INTEGER: Final = re.compile(r"^[+-]?[0-9]+$")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_ISO_DATE_START: Final = re.compile(r"^\d{4}-\d{2}-\d{2}")
_FIRST_DAY: Final = -719_162
"""0001-01-01 in days since 1970: NumPy writes earlier dates with a sign."""
_LAST_DAY: Final = 2_932_896
"""9999-12-31 in days since 1970."""


class Problems:
    """Reasons rows break the rules, gathered column by column."""

    def __init__(self, found: Mapping[int, list[str]] | None = None) -> None:
        self._found: list[tuple[Positions, str | list[str]]] = [
            (np.full(len(reasons), row, dtype=np.intp), list(reasons))
            for row, reasons in (found or {}).items()
        ]

    def add(self, positions: Positions, reasons: str | list[str]) -> None:
        """Record ``reasons`` (one for all, or one per position) against rows ``positions``."""
        if len(positions):
            self._found.append((positions, reasons))

    def add_where(self, mask: BoolMask, reason: str | Callable[[Positions], list[str]]) -> None:
        """Record a reason for the rows where ``mask`` is set (``reason`` may make one each)."""
        positions = np.flatnonzero(mask)
        if len(positions):
            self._found.append(
                (positions, reason if isinstance(reason, str) else reason(positions))
            )

    def mark(self) -> int:
        """A point in the record, for ``rejected`` to count problems from."""
        return len(self._found)

    def rejected(self, length: int, since: int = 0) -> BoolMask:
        """Which of ``length`` rows have a problem (recorded after mark ``since``)."""
        mask = np.zeros(length, dtype=bool)
        for positions, _ in self._found[since:]:
            mask[positions] = True
        return mask

    def by_row(self) -> dict[int, list[str]]:
        """Every reason of every rejected row, in the order found."""
        found: dict[int, list[str]] = {}
        for positions, reasons in self._found:
            for index, row in enumerate(positions.tolist()):
                reason = reasons if isinstance(reasons, str) else reasons[index]
                found.setdefault(row, []).append(reason)
        return found


def shown(value: object) -> str:
    """A value for a reason: its repr, cut short (the quarantined raw row keeps it whole)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:48]}... ({len(str(value))} characters)"


def labelled(field_name: str, column: str) -> str:
    """How a reason names a field and the input column it came from."""
    return f"{field_name} (column {column!r})"


def mask_of(array: Any) -> BoolMask:
    """A boolean Arrow array as a NumPy mask, nulls as False."""
    filled = array.fill_null(False)
    result: BoolMask = np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)
    return result


def concat_text(*pieces: str | ArrowArray) -> ArrowArray:
    """Element-wise concatenation of text arrays and constant strings (null in, null out)."""
    # The stubs only allow all-scalar or all-array arguments; Arrow broadcasts strings.
    joined: ArrowArray = pc.binary_join_element_wise(*pieces, "")  # type: ignore[call-overload]
    return joined


def char_counts(text: ArrowArray) -> NDArray[np.int64]:
    """Characters per value (0 for null)."""
    lengths = pc.utf8_length(cast(Any, text)).fill_null(0)
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)


def valid(array: ArrowArray) -> BoolMask:
    """Where ``array`` has a value."""
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    return mask_of(array.is_valid())


def values_at(array: ArrowArray, positions: Positions) -> list[Any]:
    """The values of ``array`` at ``positions`` as Python objects."""
    taken: list[Any] = array.take(pa.array(positions, pa.int64())).to_pylist()
    return taken


def null_where(array: ArrowArray, mask: BoolMask) -> ArrowArray:
    """``array`` with the rows in ``mask`` set to null."""
    if not mask.any():
        return array
    result: ArrowArray = pc.if_else(pa.array(mask), pa.nulls(len(array), array.type), array)
    return result


def scatter(base: ArrowArray, positions: Positions, values: ArrowArray) -> ArrowArray:
    """``base`` with rows ``positions`` replaced by ``values`` (in order)."""
    if len(positions) == len(base):
        return values.cast(base.type)
    take = np.arange(len(base), dtype=np.int64)
    take[positions] = len(base) + np.arange(len(positions))
    combined = pa.concat_arrays([base, values.cast(base.type)])
    return combined.take(take)


def text_buffers(text: ArrowArray) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """The byte offsets (one more than rows) and the data bytes of a text array."""
    kind = np.int64 if pa.types.is_large_string(text.type) else np.int32
    buffers = text.buffers()
    if buffers[1] is None:
        return np.zeros(len(text) + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(memoryview(buffers[1]), dtype=kind)
    offsets = offsets[text.offset : text.offset + len(text) + 1]
    data = (
        np.zeros(0, dtype=np.uint8)
        if buffers[2] is None
        else np.frombuffer(memoryview(buffers[2]), dtype=np.uint8)
    )
    return offsets.astype(np.int64), data


def byte_lengths(text: ArrowArray) -> NDArray[np.int64]:
    """Bytes per value (an upper bound of its characters)."""
    offsets, _ = text_buffers(text)
    return np.diff(offsets)


def longer_than(text: ArrowArray, limit: int) -> BoolMask:
    """Where text has more than ``limit`` characters."""
    lengths = byte_lengths(text)
    if len(lengths) == 0 or lengths.max() <= limit:
        return np.zeros(len(text), dtype=bool)
    result: BoolMask = char_counts(text) > limit
    return result


def fixed_width_text(characters: NDArray[np.uint8]) -> ArrowArray:
    """Rows of a (rows, width) byte matrix as a text array."""
    count, width = characters.shape
    offsets = np.arange(count + 1, dtype=np.int32) * width
    data = np.ascontiguousarray(characters)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets.data), pa.py_buffer(data.data))


# -- distinct values -----------------------------------------------------------------


@dataclass(frozen=True)
class Distinct:
    """The distinct values of an array and where each row's value is among them."""

    codes: NDArray[np.int64]
    """Position in ``values`` of each row's value; -1 for null."""
    values: ArrowArray

    @classmethod
    def of(cls, array: ArrowArray) -> Distinct:
        """Encode ``array``."""
        encoded: Any = pc.dictionary_encode(array)
        indices = encoded.indices.cast(pa.int64())
        codes = np.asarray(indices.fill_null(-1).to_numpy(zero_copy_only=False))
        return cls(codes, encoded.dictionary)

    def apply(
        self, convert: Callable[[Any], T], error: type[Exception] | tuple[type[Exception], ...]
    ) -> tuple[list[T | None], list[str | None]]:
        """``convert`` each distinct value once: the results, and the errors' messages."""
        results: list[T | None] = []
        errors: list[str | None] = []
        for value in self.values.to_pylist():
            try:
                results.append(convert(value))
                errors.append(None)
            except error as failure:
                results.append(None)
                errors.append(str(failure))
        return results, errors

    def spread(self, per_value: ArrowArray) -> ArrowArray:
        """``per_value`` (one entry per distinct value) spread back over the rows."""
        return per_value.take(pa.array(self.codes, pa.int64(), mask=self.codes < 0))

    def rows_where(self, per_value: BoolMask) -> BoolMask:
        """Rows whose value is flagged in ``per_value``."""
        flagged: BoolMask = np.append(per_value, False)[self.codes]
        return flagged

    def failed_rows(self, errors: list[str | None], label: str) -> tuple[Positions, list[str]]:
        """Rows whose value failed, and each one's reason."""
        failed = np.array([message is not None for message in errors], dtype=bool)
        positions = np.flatnonzero(self.rows_where(failed))
        messages = [f"{label}: {errors[code]}" for code in self.codes[positions].tolist()]
        return positions, messages


# -- plain column types --------------------------------------------------------------


def type_name(kind: pa.DataType) -> str:
    """A type as a reason names it."""
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "a number with a fraction"
    if pa.types.is_boolean(kind):
        return "a boolean"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return "an array"
    if pa.types.is_struct(kind) or pa.types.is_map(kind):
        return "an object"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "a timestamp"
    if pa.types.is_integer(kind):
        return "an integer"
    return f"a value of type {kind}"


def plain(array: ArrowArray) -> ArrowArray:
    """``array`` without dictionary encoding."""
    if pa.types.is_dictionary(array.type):
        decoded: ArrowArray = cast(Any, array).dictionary_decode()
        return decoded
    return array


def as_text(array: ArrowArray, problems: Problems, label: str, *, trim: bool = True) -> ArrowArray:
    """The column as trimmed text (``trim=False``: as written), empty text as null; whole
    numbers are written out."""
    array = plain(array)
    kind = array.type
    if pa.types.is_null(kind):
        return pa.nulls(len(array), TEXT)
    if pa.types.is_integer(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        array = array.cast(TEXT)
    elif not pa.types.is_string(kind):
        problems.add_where(valid(array), f"{label}: expected text, got {type_name(kind)}")
        return pa.nulls(len(array), TEXT)
    offsets, data = text_buffers(array)
    lengths = np.diff(offsets)
    if trim and len(data):
        filled = lengths > 0
        edges = np.concatenate((data[offsets[:-1][filled]], data[offsets[1:][filled] - 1]))
        # Only values that start or end with a space, a control byte or a non-ASCII
        # byte can need trimming; most columns have none and skip the pass.
        if ((edges <= 0x20) | (edges >= 0x80)).any():
            array = pc.utf8_trim_whitespace(array)
            lengths = byte_lengths(array)
    return null_where(array, (lengths == 0) & valid(array))


def as_int(array: ArrowArray, problems: Problems, label: str) -> ArrowArray:
    """The column as 64-bit integers (text and whole floats converted)."""
    array = plain(array)
    kind = array.type
    if pa.types.is_integer(kind):
        try:
            return array.cast(pa.int64())
        except pa.ArrowInvalid:
            numbers = np.asarray(array.fill_null(0).to_numpy(zero_copy_only=False))
            too_big = numbers > _INT64_MAX
            problems.add_where(too_big, f"{label}: out of the int64 range")
            return null_where(array, too_big).cast(pa.int64(), safe=False)
    if pa.types.is_floating(kind):
        values = np.asarray(array.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2**63)
        problems.add_where(
            ~whole & valid(array),
            lambda rows: [f"{label}: {shown(v)} is not a whole number" for v in values[rows]],
        )
        keep = whole & valid(array)
        return pa.array(np.where(keep, values, 0).astype(np.int64), mask=~keep)
    text = as_text(array, problems, label)
    if text.null_count == len(text):
        return pa.nulls(len(array), pa.int64())
    try:
        return text.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        distinct = Distinct.of(text)
        results, errors = distinct.apply(_parse_int, ValueError)
        problems.add(*distinct.failed_rows(errors, label))
        return distinct.spread(pa.array(results, pa.int64()))


def _parse_int(text: str) -> int:
    if not _INTEGER.match(text):
        raise ValueError(f"{shown(text)} is not a whole number")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{shown(text)} is out of the int64 range")
    return value


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{shown(text)} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{shown(text)} is not a finite number")
    return value


def as_float(array: ArrowArray, problems: Problems, label: str) -> ArrowArray:
    """The column as finite 64-bit floats (text and integers converted)."""
    array = plain(array)
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        result = array.cast(pa.float64())
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        text = as_text(array, problems, label)
        if text.null_count == len(text):
            return pa.nulls(len(array), pa.float64())
        try:
            result = text.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            distinct = Distinct.of(text)
            results, errors = distinct.apply(_parse_float, ValueError)
            problems.add(*distinct.failed_rows(errors, label))
            return distinct.spread(pa.array(results, pa.float64()))
    else:
        problems.add_where(valid(array), f"{label}: expected a number, got {type_name(kind)}")
        return pa.nulls(len(array), pa.float64())
    finite = mask_of(pc.is_finite(result)) | ~valid(result)
    if finite.all():
        return result
    values = np.asarray(result.to_numpy(zero_copy_only=False))
    problems.add_where(
        ~finite,
        lambda rows: [f"{label}: {shown(v)} is not a finite number" for v in values[rows]],
    )
    return null_where(result, ~finite)


def as_bool(array: ArrowArray, problems: Problems, label: str) -> ArrowArray:
    """The column as booleans (text ``true``/``false``/``1``/``0`` converted)."""
    array = plain(array)
    if pa.types.is_boolean(array.type):
        return array
    text = as_text(array, problems, label)
    lowered = pc.utf8_lower(text)
    truth = pc.is_in(lowered, value_set=pa.array(sorted(_TRUE)))
    falsity = pc.is_in(lowered, value_set=pa.array(sorted(_FALSE)))
    bad = valid(text) & ~mask_of(truth) & ~mask_of(falsity)
    problems.add_where(
        bad,
        lambda rows: [
            f"{label}: {shown(v)} is not a boolean (true or false)" for v in values_at(text, rows)
        ],
    )
    result: ArrowArray = null_where(truth, ~valid(text) | bad)
    return result


# -- timestamps ----------------------------------------------------------------------


def as_timestamp(
    array: ArrowArray, spec: TimestampSpec, problems: Problems, label: str, *, now_ms: int
) -> ArrowArray:
    """The column as UTC instants (``timestamp[ms, UTC]``), each checked to be possible:
    between ``EARLIEST`` and ``FUTURE_SLACK_DAYS`` days after ``now_ms``."""
    zoned = instants(array, spec, problems, label)
    millis = np.asarray(
        zoned.cast(pa.int64()).fill_null(EARLIEST_MS).to_numpy(zero_copy_only=False)
    )
    latest = now_ms + FUTURE_SLACK_DAYS * DAY_MS
    impossible = (millis < EARLIEST_MS) | (millis > latest)
    problems.add_where(
        impossible,
        lambda rows: [
            f"{label}: impossible timestamp {_iso_of(ms)}: must lie between "
            f"{EARLIEST.date()} and {FUTURE_SLACK_DAYS} days from now"
            for ms in millis[rows].tolist()
        ],
    )
    return null_where(zoned, impossible)


def now_ms() -> int:
    """This moment in milliseconds since 1970."""
    return (datetime.now(UTC) - _EPOCH) // _MS


def _iso_of(millis: int) -> str:
    try:
        return (_EPOCH + millis * _MS).isoformat()
    except OverflowError:
        return f"{millis} ms from 1970"


def instants(array: ArrowArray, spec: TimestampSpec, problems: Problems, label: str) -> ArrowArray:
    """The column as UTC instants; values without a zone are placed in ``spec.timezone``,
    or rejected when the mapping gives none."""
    zoned, naive = _zoned_and_naive(plain(array), spec, problems, label)
    if naive is None:
        return zoned
    has_naive = valid(naive)
    if not has_naive.any():
        return zoned
    if spec.timezone is None:
        problems.add_where(
            has_naive,
            f"{label}: has no timezone; write one (2024-05-01T10:00:00+00:00) "
            "or set timezone in the mapping",
        )
        return zoned
    local = pc.assume_timezone(
        cast(Any, naive), timezone=spec.timezone, ambiguous="earliest", nonexistent="earliest"
    )
    placed: ArrowArray = pc.if_else(pa.array(has_naive), local.cast(TS_TYPE), zoned)
    return placed


def _zoned_and_naive(
    array: ArrowArray, spec: TimestampSpec, problems: Problems, label: str
) -> tuple[ArrowArray, ArrowArray | None]:
    """Instants that carry a zone, and wall-clock times that do not (or ``None``)."""
    kind = array.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        zone = getattr(kind, "tz", None)
        stamps = array.cast(pa.timestamp("ms", tz=zone), safe=False)
        if zone is not None:
            return stamps.cast(TS_TYPE), None
        return pa.nulls(len(array), TS_TYPE), stamps
    if spec.is_epoch:
        numbers = as_float(array, problems, label)
        scale = 1_000.0 if spec.format == TimestampFormat.EPOCH_S else 1.0
        values = np.asarray(numbers.fill_null(0).to_numpy(zero_copy_only=False)) * scale
        fits = np.abs(values) < 2**62
        problems.add_where(~fits & valid(numbers), f"{label}: epoch value out of range")
        millis = np.floor(np.where(fits, values, 0)).astype(np.int64)
        stamps = pa.array(millis, mask=~fits | ~valid(numbers)).cast(TS_TYPE)
        return stamps, None
    if not pa.types.is_string(kind) and not pa.types.is_large_string(kind):
        problems.add_where(
            valid(array), f"{label}: expected a timestamp as text, got {type_name(kind)}"
        )
        return pa.nulls(len(array), TS_TYPE), None
    text = as_text(array, problems, label)
    pattern = spec.pattern
    if pattern is None:
        try:
            # Arrow's ISO-8601 parser takes the whole column when every value has a
            # zone; otherwise Python's, once per distinct value.
            return text.cast(TS_TYPE), None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _per_distinct_instants(text, _parse_iso, problems, label)
    return _per_distinct_instants(
        text, lambda value: _parse_pattern(value, pattern), problems, label
    )


def _per_distinct_instants(
    text: ArrowArray,
    parse: Callable[[str], tuple[int, bool]],
    problems: Problems,
    label: str,
) -> tuple[ArrowArray, ArrowArray]:
    distinct = Distinct.of(text)
    results, errors = distinct.apply(parse, ValueError)
    problems.add(*distinct.failed_rows(errors, label))
    zoned = [value[0] if value is not None and value[1] else None for value in results]
    naive = [value[0] if value is not None and not value[1] else None for value in results]
    return (
        distinct.spread(pa.array(zoned, pa.int64())).cast(TS_TYPE),
        distinct.spread(pa.array(naive, pa.int64())).cast(pa.timestamp("ms")),
    )


def _parse_iso(text: str) -> tuple[int, bool]:
    """Milliseconds since 1970 and whether the text had a zone."""
    if not _ISO_DATE_START.match(text):
        raise ValueError(f"{shown(text)} is not an ISO-8601 timestamp")
    try:
        return _millis(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise ValueError(f"{shown(text)} is not an ISO-8601 timestamp") from None


def _parse_pattern(text: str, pattern: str) -> tuple[int, bool]:
    try:
        return _millis(datetime.strptime(text, pattern))
    except (ValueError, OverflowError):
        raise ValueError(f"{shown(text)} does not match the pattern {pattern!r}") from None


def _millis(moment: datetime) -> tuple[int, bool]:
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return (moment - _EPOCH) // _MS, True
    return (moment.replace(tzinfo=None) - _NAIVE_EPOCH) // _MS, False


@cache
def _clock() -> NDArray[np.uint8]:
    """``THH:MM:SS`` for every second of a day, one row of bytes each."""
    text = "".join(f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400))
    return np.frombuffer(text.encode(), dtype=np.uint8).reshape(86_400, 9)


def iso_text(stamps: ArrowArray, *, utc: bool = True) -> ArrowArray:
    """Instants as ISO-8601 text as the generator writes them (``2024-05-01T10:00:00Z``;
    milliseconds only where there are some). ``utc=False`` writes wall-clock times of a
    zoneless timestamp type as they are, without the ``Z``."""
    if len(stamps) == 0:
        return pa.array([], TEXT)
    millis = np.asarray(stamps.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False))
    days = millis // DAY_MS
    first, last = int(days.min()), int(days.max())
    in_day = millis - days * DAY_MS
    zone = "Z" if utc else ""
    if (in_day % 1000).any() or first < _FIRST_DAY or last > _LAST_DAY:
        texts = [
            None if ms is None else _iso(ms) + zone for ms in stamps.cast(pa.int64()).to_pylist()
        ]
        return pa.array(texts, TEXT)
    if last - first < max(len(days), 1_000):
        # A window of days (the usual case): write each day of it once.
        dates, position = np.arange(first, last + 1), days - first
    else:
        dates, position = np.unique(days, return_inverse=True)
    written = "".join(np.datetime_as_string(dates.astype("datetime64[D]")))
    table = np.frombuffer(written.encode(), dtype=np.uint8).reshape(-1, 10)
    characters = np.empty((len(millis), 19 + len(zone)), dtype=np.uint8)
    characters[:, :10] = table[position]
    characters[:, 10:19] = _clock()[in_day // 1000]
    if utc:
        characters[:, 19] = ord("Z")
    return null_where(fixed_width_text(characters), ~valid(stamps))


def _iso(millis: int) -> str:
    try:
        moment = _EPOCH + millis * _MS
    except OverflowError:
        return f"{millis} ms from 1970"
    fraction = f".{millis % 1000:03d}" if millis % 1000 else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction


# -- JSON text -----------------------------------------------------------------------


def json_escaped(text: ArrowArray) -> ArrowArray:
    """Text escaped for the inside of a JSON string."""
    _, data = text_buffers(text)
    if len(data) == 0:
        return text
    if (data < 0x20).any():
        escaped = [
            None if value is None else orjson.dumps(value).decode()[1:-1]
            for value in text.to_pylist()
        ]
        return pa.array(escaped, TEXT)
    if ((data == ord('"')) | (data == ord("\\"))).any():
        replaced: ArrowArray = pc.replace_substring(
            pc.replace_substring(text, "\\", "\\\\"), '"', '\\"'
        )
        return replaced
    return text


def float_json(floats: ArrowArray) -> ArrowArray:
    """Finite floats as JSON numbers that read back as floats (``12`` written ``12.0``)."""
    distinct = Distinct.of(floats)
    if len(distinct.values) * 4 < len(floats):
        # Repeated values (rounded shares, prices) are written once each.
        return distinct.spread(_float_words(distinct.values))
    return _float_words(floats)


def _float_words(floats: ArrowArray) -> ArrowArray:
    text = floats.cast(TEXT)
    values = np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        whole = np.flatnonzero(np.isfinite(values) & (values == np.floor(values)))
    if len(whole) == 0:
        return text
    written = values_at(text, whole)
    fixed = pa.array([word if "e" in word else word + ".0" for word in written], TEXT)
    return scatter(text, whole, fixed)


def read_csv_block(data: bytes, header: list[str], wanted: list[str], block_size: int) -> pa.Table:
    """Lines of a CSV file (no header line) as text columns ``wanted``, empty cells null.

    One block, on this thread: readers split files into numbered blocks themselves so a
    bad block can fall back to row-by-row parsing. Raises ``pa.ArrowException`` or
    ``ValueError`` where Arrow cannot parse the block.
    """
    return pa_csv.read_csv(
        cast(Any, pa.BufferReader(data)),
        read_options=pa_csv.ReadOptions(
            column_names=header, block_size=block_size, use_threads=False
        ),
        parse_options=pa_csv.ParseOptions(newlines_in_values=False),
        convert_options=pa_csv.ConvertOptions(
            include_columns=wanted,
            column_types={name: TEXT for name in wanted},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            null_values=[""],
        ),
    )
