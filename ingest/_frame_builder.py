"""One part of input rows, validated and normalised into a touchpoint frame, column by column.

The rules are ``Touchpoint``'s: a printable event id (given, or derived from the
source and its record id as ``derived_event_id`` does), tokens for source and event
type, a known channel, a zoned timestamp between ``EARLIEST`` and two days from now,
identifiers of 1-256 characters, person fields within their lengths, attribute keys
that are tokens and text attributes of at most 4096 characters. A row that breaks
one is quarantined with every reason found; the others go on.

As in ``frame_from_touchpoints``, an identifier that cannot be normalised keeps its
touchpoint: the identifier is left empty and its raw value kept in the attribute
``invalid_<kind>``. A date of birth that is not a date in the mapping's
``dob_format`` is kept the same way, as ``invalid_dob``. Null attribute values are
left out, as the generator leaves them out.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from graph.model import MAX_ID_LENGTH, derived_event_id
from ingest._columns import (
    TEXT,
    ArrowArray,
    BoolMask,
    Distinct,
    Problems,
    as_bool,
    as_float,
    as_int,
    as_text,
    as_timestamp,
    char_counts,
    concat_text,
    float_json,
    instants,
    iso_text,
    json_escaped,
    labelled,
    longer_than,
    mask_of,
    now_ms,
    null_where,
    plain,
    scatter,
    shown,
    text_buffers,
    type_name,
    valid,
    values_at,
)
from ingest._identifier_columns import normalise_identifier_column
from ingest.frame import (
    FRAME_SCHEMA,
    IDENTIFIER_COLUMNS,
    INVALID_PREFIX,
    PERSON_COLUMNS,
    QuarantinedRow,
)
from ingest.mapping import (
    ChannelColumn,
    ColumnType,
    FileMapping,
    TimestampSpec,
    ValueColumn,
)
from ingest.touchpoint import MAX_ATTRIBUTE_LENGTH, Channel

MAX_EVENT_ID_LENGTH: Final = MAX_ID_LENGTH - 3
MAX_IDENTIFIER_LENGTH: Final = 256
PERSON_LIMITS: Final = {
    "first_name": 200,
    "last_name": 200,
    "dob": 32,
    "postcode": 32,
    "address": 500,
}
TOKEN_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
_TOKEN: Final = re.compile(TOKEN_PATTERN)
_RECORD_ID_BYTES: Final = np.isin(
    np.arange(256), np.frombuffer(string.ascii_letters.encode() + b"0123456789_.-", np.uint8)
)
"""Bytes of the record ids ``derived_event_id`` keeps readable (``<source>-<record id>``),
which have 1 to 64 of them."""
_PRINTABLE_ASCII: Final = r"^[ -~]*$"
_CHANNELS: Final = pa.array([channel.value for channel in Channel], TEXT)
_TOKEN_RULE: Final = "must be 1-64 lower-case letters, digits or underscores"


@dataclass
class InputPart:
    """Rows of one chunk as read, before validation.

    ``columns`` holds the file's columns the mapping reads (a column missing here is
    all null); ``rows`` the origin row of each row; ``raw`` gives a row as read, for
    the quarantine; ``problems`` the reasons found while reading (wrong JSON types).
    """

    columns: dict[str, ArrowArray]
    rows: NDArray[np.int64]
    raw: Callable[[int], str | Mapping[str, Any]]
    problems: dict[int, list[str]] = field(default_factory=dict)
    unreadable: dict[str, BoolMask] = field(default_factory=dict)
    """Per column, the rows whose value was of the wrong type (already in ``problems``)."""
    extra_attributes: ArrowArray | None = None
    """Ready ``,"key":value...`` attribute text per row, or ``""`` (``attributes_from``)."""

    @property
    def length(self) -> int:
        """Rows in the part."""
        return len(self.rows)


def object_column(name: str, key: str) -> str:
    """The column made from entry ``key`` of the JSON-object column ``name``."""
    return f"{name}.{key}"


class _Columns:
    """A part's columns by name (a column the part lacks is all null)."""

    def __init__(self, part: InputPart) -> None:
        self.part = part
        self.length = part.length

    def __call__(self, name: str) -> ArrowArray:
        found = self.part.columns.get(name)
        return pa.nulls(self.length, TEXT) if found is None else found

    def unread(self, *names: str | None) -> BoolMask:
        """Rows where one of ``names`` held a value of the wrong type: it is not missing."""
        mask = np.zeros(self.length, dtype=bool)
        for name in names:
            if name is not None and name in self.part.unreadable:
                mask |= self.part.unreadable[name]
        return mask


class FramePlan:
    """A file mapping compiled for column-wise work: what to read and how to check it."""

    def __init__(self, source: str, mapping: FileMapping) -> None:
        self.source = source
        self.mapping = mapping
        self.identifiers: dict[str, str] = {
            kind.value: column for kind, column in mapping.identifiers.items()
        }
        self.person: dict[str, str] = {str(name): column for name, column in mapping.person.items()}
        if mapping.identifiers_from is not None:
            for kind in IDENTIFIER_COLUMNS:
                self.identifiers.setdefault(kind, object_column(mapping.identifiers_from, kind))
        if mapping.person_from is not None:
            for name in PERSON_COLUMNS:
                self.person.setdefault(name, object_column(mapping.person_from, name))
        named = [
            *(name for name in (mapping.event_id, mapping.record_id) if name is not None),
            *(
                spec.column
                for spec in (mapping.source, mapping.event_type, mapping.channel)
                if isinstance(spec, ValueColumn | ChannelColumn)
            ),
            mapping.timestamp.column,
            *mapping.identifiers.values(),
            *mapping.person.values(),
            *mapping.attributes.values(),
        ]
        self.file_columns: tuple[str, ...] = tuple(dict.fromkeys(named))
        """Columns of the file itself that the mapping reads."""
        self.object_columns: tuple[str, ...] = tuple(
            name
            for name in (mapping.identifiers_from, mapping.person_from, mapping.attributes_from)
            if name is not None
        )
        """JSON-object columns whose entries the mapping reads (the canonical shape)."""

    def read_type(self, column: str) -> pa.DataType:
        """The Arrow type a JSON value of ``column`` is read as (CSV reads only text)."""
        declared = self.mapping.column_types.get(column)
        if declared is ColumnType.INT:
            return pa.int64()
        if declared is ColumnType.FLOAT:
            return pa.float64()
        if declared is ColumnType.BOOL:
            return pa.bool_()
        if declared is None and column == self.mapping.timestamp.column:
            return pa.float64() if self.mapping.timestamp.is_epoch else TEXT
        return TEXT


# -- source, event type, channel -----------------------------------------------------


def _translate(words: ArrowArray, values: Mapping[str, str]) -> ArrowArray:
    if not values:
        return words
    index = pc.index_in(words, value_set=pa.array(list(values), TEXT))
    targets = pa.array(list(values.values()), TEXT).take(index)
    result: ArrowArray = pc.if_else(index.is_valid(), targets, words)
    return result


def _words(
    field_name: str,
    spec: ValueColumn | ChannelColumn,
    columns: _Columns,
    allowed: Callable[[ArrowArray], BoolMask],
    rule: str,
    problems: Problems,
) -> ArrowArray:
    """A column of few distinct words, translated through the spec's ``values`` and
    checked once per distinct word."""
    label = labelled(field_name, spec.column)
    values = {word: str(target) for word, target in spec.values.items()}
    text = as_text(columns(spec.column), problems, label)
    problems.add_where(~valid(text) & ~columns.unread(spec.column), f"{label}: missing")
    distinct = Distinct.of(text)
    words = _translate(distinct.values, values)
    refused = ~allowed(words)
    if not refused.any():
        return distinct.spread(words)
    bad = distinct.rows_where(refused)
    spelled = distinct.values.to_pylist()
    problems.add(
        np.flatnonzero(bad),
        [f"{label}: {shown(spelled[code])} {rule}" for code in distinct.codes[bad].tolist()],
    )
    return null_where(distinct.spread(words), bad)


def _is_token(words: ArrowArray) -> BoolMask:
    return mask_of(pc.match_substring_regex(words, TOKEN_PATTERN))


def _is_channel(words: ArrowArray) -> BoolMask:
    return mask_of(pc.is_in(words, value_set=_CHANNELS))


# -- event ids -----------------------------------------------------------------------


def derived_event_ids(source: str, record_ids: ArrowArray) -> ArrowArray:
    """``derived_event_id(source, record_id)`` for a column of record ids (no nulls)."""
    ids = concat_text(f"{source}-", record_ids)
    readable = _readable_record_ids(record_ids) if _TOKEN.match(source) else ~valid(ids)
    hashed = np.flatnonzero(~readable)
    if len(hashed) == 0:
        return ids
    others = [derived_event_id(source, value) for value in values_at(record_ids, hashed)]
    return scatter(ids, hashed, pa.array(others, TEXT))


def _readable_record_ids(record_ids: ArrowArray) -> BoolMask:
    offsets, data = text_buffers(record_ids)
    lengths = np.diff(offsets)
    readable: BoolMask = (lengths >= 1) & (lengths <= 64)
    refused = ~_RECORD_ID_BYTES[data[offsets[0] : offsets[-1]]]
    if refused.any():
        # Count refused bytes per value through a running sum over the values' bytes.
        running = np.concatenate(([0], np.cumsum(refused)))
        readable &= running[offsets[1:] - offsets[0]] == running[offsets[:-1] - offsets[0]]
    return readable


def _given_event_ids(column: str, array: ArrowArray, problems: Problems) -> ArrowArray:
    label = labelled("event_id", column)
    given = as_text(array, problems, label)
    too_long = longer_than(given, MAX_EVENT_ID_LENGTH)
    problems.add_where(too_long, f"{label}: longer than {MAX_EVENT_ID_LENGTH} characters")
    unusual = valid(given) & ~too_long & ~mask_of(pc.match_substring_regex(given, _PRINTABLE_ASCII))
    if unusual.any():
        positions = np.flatnonzero(unusual)
        printable = np.array([str(v).isprintable() for v in values_at(given, positions)], bool)
        problems.add(
            positions[~printable],
            f"{label}: must not contain control or other non-printable characters",
        )
    return given


def _event_ids(
    mapping: FileMapping,
    source: str | ArrowArray,
    columns: _Columns,
    problems: Problems,
    length: int,
) -> ArrowArray:
    given = (
        pa.nulls(length, TEXT)
        if mapping.event_id is None
        else _given_event_ids(mapping.event_id, columns(mapping.event_id), problems)
    )
    named = " or ".join(repr(name) for name in (mapping.event_id, mapping.record_id) if name)
    missing = f"event_id: missing (no value in column {named})"
    unread = columns.unread(mapping.event_id, mapping.record_id)
    if mapping.record_id is None:
        problems.add_where(~valid(given) & ~unread, missing)
        return given
    # Record ids are hashed as written, as Touchpoint.from_row does.
    record_label = labelled("event_id", mapping.record_id)
    records = as_text(columns(mapping.record_id), problems, record_label, trim=False)
    problems.add_where(~valid(given) & ~valid(records) & ~unread, missing)
    wanted = ~valid(given) & valid(records)
    if isinstance(source, str):
        if wanted.all():
            return derived_event_ids(source, records)
        groups: list[tuple[str, BoolMask]] = [(source, wanted)]
    else:
        wanted &= valid(source)
        by_source = Distinct.of(source.filter(pa.array(wanted)))
        positions = np.flatnonzero(wanted)
        groups = []
        for code, name in enumerate(by_source.values.to_pylist()):
            rows = np.zeros(length, dtype=bool)
            rows[positions[by_source.codes == code]] = True
            groups.append((str(name), rows))
    ids = given
    for name, rows in groups:
        if rows.any():
            derived = derived_event_ids(name, records.filter(pa.array(rows)))
            ids = scatter(ids, np.flatnonzero(rows), derived)
    return ids


# -- identifiers and person fields ---------------------------------------------------


def _identifier_column(
    kind: str, column: str, array: ArrowArray, problems: Problems
) -> tuple[ArrowArray, ArrowArray | None]:
    """The normalised identifiers, and the ``invalid_<kind>`` attribute text of the
    values that cannot be normalised."""
    label = labelled(f"identifiers.{kind}", column)
    text = as_text(array, problems, label)
    too_long = longer_than(text, MAX_IDENTIFIER_LENGTH)
    if too_long.any():
        lengths = char_counts(text)
        problems.add_where(
            too_long,
            lambda rows: [
                f"{label}: must be 1-{MAX_IDENTIFIER_LENGTH} characters, got {count}"
                for count in lengths[rows].tolist()
            ],
        )
        text = null_where(text, too_long)
    normalised, failures = normalise_identifier_column(kind, text)
    if not failures:
        return normalised, None
    failed = np.zeros(len(text), dtype=bool)
    failed[list(failures)] = True
    return normalised, _fragment(f"{INVALID_PREFIX}{kind}", null_where(text, ~failed))


@lru_cache(maxsize=65_536)
def _iso_date(text: str, pattern: str) -> str:
    try:
        return datetime.strptime(text, pattern).date().isoformat()
    except ValueError:
        raise ValueError(f"{shown(text)} is not a date written {pattern}") from None


_DATE_FIELDS: Final = {"%d": r"(\d{2})", "%m": r"(\d{2})", "%Y": r"([1-9]\d{3})"}


@lru_cache(maxsize=64)
def _date_shape(pattern: str) -> tuple[str, str] | None:
    """For a pattern of ``%d``, ``%m`` and ``%Y`` between plain characters, a regex for
    its zero-padded spelling and the replacement that rewrites a match as ISO."""
    pieces = re.split(r"(%.)", pattern)
    if sorted(piece for piece in pieces if piece.startswith("%")) != ["%Y", "%d", "%m"]:
        return None
    if any("%" in piece for piece in pieces if piece not in _DATE_FIELDS):
        return None
    order = [piece for piece in pieces if piece in _DATE_FIELDS]
    regex = "".join(_DATE_FIELDS.get(piece, re.escape(piece)) for piece in pieces)
    group = {name: f"\\{index + 1}" for index, name in enumerate(order)}
    return f"^{regex}$", f"{group['%Y']}-{group['%m']}-{group['%d']}"


def iso_dates(text: ArrowArray, pattern: str) -> ArrowArray:
    """Dates written ``pattern`` as ISO ``YYYY-MM-DD`` (null where the text is no date)."""
    shape = _date_shape(pattern)
    fast: ArrowArray = pa.nulls(len(text), TEXT)
    if shape is not None:
        matched = mask_of(pc.match_substring_regex(text, shape[0]))
        rewritten = null_where(pc.replace_substring_regex(text, shape[0], shape[1]), ~matched)
        try:
            # Arrow's date parser refuses impossible days (31/02), as strptime does.
            rewritten.cast(pa.date32())
            fast = rewritten
        except pa.ArrowInvalid:
            pass
    left = valid(text) & ~valid(fast)
    if not left.any():
        return fast
    distinct = Distinct.of(text.filter(pa.array(left)))
    results, _ = distinct.apply(lambda value: _iso_date(value, pattern), ValueError)
    return scatter(fast, np.flatnonzero(left), distinct.spread(pa.array(results, TEXT)))


def _person_column(
    name: str, column: str, array: ArrowArray, dob_format: str, problems: Problems
) -> tuple[ArrowArray, ArrowArray | None]:
    """The person field; for a date of birth that is no date in ``dob_format``, also the
    ``invalid_dob`` attribute text."""
    label = labelled(f"person.{name}", column)
    text = as_text(array, problems, label)
    limit = PERSON_LIMITS[name]
    too_long = longer_than(text, limit)
    problems.add_where(too_long, f"{label}: longer than {limit} characters")
    if name != "dob" or text.null_count == len(text):
        return text, None
    dates = iso_dates(text, dob_format)
    failed = valid(text) & ~valid(dates) & ~too_long
    if not failed.any():
        return dates, None
    return dates, _fragment(f"{INVALID_PREFIX}dob", null_where(text, ~failed))


# -- attributes ----------------------------------------------------------------------


@dataclass(frozen=True)
class _AttributeJson:
    """One attribute's JSON value text per row (null where the row has none)."""

    key: str
    values: ArrowArray
    quoted: bool


def _attribute(
    key: str,
    column: str,
    array: ArrowArray,
    declared: ColumnType | None,
    zone: str | None,
    problems: Problems,
) -> _AttributeJson | None:
    label = labelled(f"attributes.{key}", column)
    array = plain(array)
    kind = array.type
    native = declared is None
    if declared is ColumnType.STRING or (
        native
        and (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind))
    ):
        text = as_text(array, problems, label)
        too_long = longer_than(text, MAX_ATTRIBUTE_LENGTH)
        problems.add_where(too_long, f"{label}: longer than {MAX_ATTRIBUTE_LENGTH} characters")
        return _AttributeJson(key, json_escaped(null_where(text, too_long)), quoted=True)
    if declared is ColumnType.INT or (native and pa.types.is_integer(kind)):
        return _AttributeJson(key, as_int(array, problems, label).cast(TEXT), quoted=False)
    if declared is ColumnType.FLOAT:
        return _AttributeJson(key, float_json(as_float(array, problems, label)), quoted=False)
    if native and (pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        # NaN in a float column is a missing value, as pandas writes one.
        floats = array.cast(pa.float64())
        finite = null_where(floats, ~mask_of(pc.is_finite(floats)))
        return _AttributeJson(key, float_json(finite), quoted=False)
    if declared is ColumnType.BOOL or (native and pa.types.is_boolean(kind)):
        return _AttributeJson(key, as_bool(array, problems, label).cast(TEXT), quoted=False)
    if native and pa.types.is_date(kind):
        return _AttributeJson(key, array.cast(TEXT), quoted=True)
    if native and pa.types.is_timestamp(kind) and zone is None and kind.tz is None:
        # Wall-clock times of a zoneless column, and no zone in the mapping to place them.
        return _AttributeJson(key, iso_text(array.cast(pa.timestamp("ms")), utc=False), True)
    if declared is ColumnType.TIMESTAMP or (native and pa.types.is_timestamp(kind)):
        stamps = instants(array, TimestampSpec(column=column, timezone=zone), problems, label)
        return _AttributeJson(key, iso_text(stamps), quoted=True)
    problems.add_where(
        valid(array), f"{label}: expected text, a number or a boolean, got {type_name(kind)}"
    )
    return None


def _fragment(key: str, text: ArrowArray) -> ArrowArray:
    """``,"key":"text"`` where text has a value, ``""`` elsewhere."""
    return concat_text(f',"{key}":"', json_escaped(text), '"').fill_null("")


def _json_objects(
    attributes: Sequence[_AttributeJson], fragments: Sequence[ArrowArray], length: int
) -> ArrowArray:
    """The ``attributes`` column: a JSON object a row.

    Attributes every row has are written in one pass with their keys; the others
    (and ``fragments``, ready ``,"key":value`` text or ``""``) each add their own
    leading comma where the row has them.
    """
    always = [item for item in attributes if item.values.null_count == 0]
    optional = [
        concat_text(
            f',"{item.key}":' + ('"' if item.quoted else ""),
            item.values,
            '"' if item.quoted else "",
        ).fill_null("")
        for item in attributes
        if 0 < item.values.null_count < length
    ]
    optional += fragments
    if not always and not optional:
        return pa.repeat(pa.scalar("{}", TEXT), length)
    pieces: list[str | ArrowArray] = []
    literal = "{"
    for index, item in enumerate(always):
        quote = '"' if item.quoted else ""
        literal += ("," if index else "") + f'"{item.key}":{quote}'
        pieces += [literal, item.values]
        literal = quote
    pieces += [literal, *optional, "}"]
    joined = concat_text(*pieces)
    if not always:
        # The first optional attribute of a row opened with a comma: "{," is always
        # the first occurrence, since it starts the object.
        joined = pc.replace_substring(joined, "{,", "{", max_replacements=1)
    return joined


# -- the frame -----------------------------------------------------------------------


def build_frame(
    part: InputPart, plan: FramePlan, origin: str
) -> tuple[pa.Table, list[QuarantinedRow]]:
    """Validate and normalise one part: the accepted rows as a frame, and the rejected."""
    length = part.length
    mapping = plan.mapping
    problems = Problems(part.problems)
    columns = _Columns(part)

    def constant(value: str) -> ArrowArray:
        return pa.repeat(pa.scalar(value, TEXT), length)

    output: dict[str, ArrowArray] = {}
    source: str | ArrowArray = plan.source
    if mapping.source is not None:
        source = _words("source", mapping.source, columns, _is_token, _TOKEN_RULE, problems)
    output["event_id"] = _event_ids(mapping, source, columns, problems, length)
    output["source"] = constant(source) if isinstance(source, str) else source
    if isinstance(mapping.event_type, str):
        output["event_type"] = constant(mapping.event_type)
    else:
        output["event_type"] = _words(
            "event_type", mapping.event_type, columns, _is_token, _TOKEN_RULE, problems
        )
    if isinstance(mapping.channel, Channel):
        output["channel"] = constant(mapping.channel.value)
    else:
        known = ", ".join(channel.value for channel in Channel)
        output["channel"] = _words(
            "channel", mapping.channel, columns, _is_channel, f"is not a channel ({known})",
            problems,
        )  # fmt: skip
    stamp = mapping.timestamp
    stamp_label = labelled("ts", stamp.column)
    mark = problems.mark()
    stamps = as_timestamp(columns(stamp.column), stamp, problems, stamp_label, now_ms=now_ms())
    unexplained = ~problems.rejected(length, since=mark) & ~columns.unread(stamp.column)
    problems.add_where(~valid(stamps) & unexplained, f"{stamp_label}: missing")
    output["ts"] = stamps
    invalid: list[ArrowArray] = []
    for kind in IDENTIFIER_COLUMNS:
        column = plan.identifiers.get(kind)
        output[kind] = pa.nulls(length, TEXT)
        if column is not None:
            output[kind], fragment = _identifier_column(kind, column, columns(column), problems)
            invalid += [] if fragment is None else [fragment]
    for name in PERSON_COLUMNS:
        column = plan.person.get(name)
        output[name] = pa.nulls(length, TEXT)
        if column is not None:
            output[name], fragment = _person_column(
                name, column, columns(column), mapping.dob_format, problems
            )
            invalid += [] if fragment is None else [fragment]
    attributes = []
    for key, column in mapping.attributes.items():
        declared = mapping.column_types.get(column)
        found = _attribute(key, column, columns(column), declared, stamp.timezone, problems)
        if found is not None:
            attributes.append(found)
    extra = [] if part.extra_attributes is None else [part.extra_attributes]
    output["attributes"] = _json_objects(attributes, [*extra, *invalid], length)
    output["origin"] = constant(origin)
    output["origin_row"] = pa.array(part.rows, pa.int64())
    rejected = problems.rejected(length)
    arrays = [output[name] for name in FRAME_SCHEMA.names]
    if rejected.any():
        keep = pa.array(~rejected)
        arrays = [array.filter(keep) for array in arrays]
    frame = pa.Table.from_arrays(arrays, schema=FRAME_SCHEMA)
    quarantined = [
        QuarantinedRow(plan.source, origin, int(part.rows[row]), part.raw(row), reasons)
        for row, reasons in sorted(problems.by_row().items())
    ]
    return frame, quarantined
