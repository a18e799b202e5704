"""Source mappings: how the rows of a source system's files become touchpoints.

A ``SourceMapping`` names one source system (``source``, a token such as ``care``) and
holds one ``FileMapping`` per kind of file it exports, picked by a glob ``pattern``
on the file's path relative to the ingest root (or its name). A file mapping says
where each touchpoint field comes from::

    source: care
    files:
      - pattern: care/calls.csv
        record_id: call_id                 # event_id = derived_event_id(source, call_id)
        timestamp: started_at              # ISO-8601 with a zone; or {column, format, timezone}
        event_type: {column: reason}       # a constant (a plain string) or a column
        channel: {column: handled_by, values: {ivr: ivr, agent: care}}
        identifiers: {msisdn: caller_number, account: account_id}
        attributes: {outcome: outcome, duration_s: duration_s}
        column_types: {duration_s: int}    # CSV and JSON Lines columns are strings otherwise

Mappings are YAML files; the built-in ones (``builtin_mappings()``) cover the
generator's six sources and ``canonical``, rows already in the Touchpoint JSON shape.
``load_mapping`` takes a built-in name or a path and reports a wrong mapping as
``InvalidInput`` naming the file and the field.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graph.errors import InvalidInput
from graph.model import IdentifierKind
from ingest.touchpoint import Channel

_TOKEN: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SUFFIX_FORMATS: Final = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
PersonField = Literal["first_name", "last_name", "dob", "postcode", "address"]


class FileFormat(StrEnum):
    """How a file is encoded."""

    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class ColumnType(StrEnum):
    """The type a column's values are read as (``column_types``)."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    TIMESTAMP = "timestamp"


class TimestampFormat(StrEnum):
    """How the timestamp column is written; anything else is a ``strptime`` pattern."""

    ISO = "iso"
    """ISO-8601 text with a zone (``2024-05-01T10:00:00Z``), or a zoned timestamp type."""
    EPOCH_S = "epoch_s"
    EPOCH_MS = "epoch_ms"
    NATIVE = "native"
    """The file's own timestamp type (Parquet); text in such a column is read as ISO."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 lower-case letters, digits or underscores")
    return value


class TimestampSpec(_Strict):
    """The column holding each touchpoint's time, and how to read it."""

    column: str = Field(min_length=1)
    format: str = TimestampFormat.ISO.value
    """``iso``, ``epoch_s``, ``epoch_ms``, ``native`` or a ``strptime`` pattern."""
    timezone: str | None = None
    """IANA zone of values written without one; without it such values are quarantined."""

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in set(TimestampFormat) and "%" not in value:
            known = ", ".join(TimestampFormat)
            raise ValueError(
                f"unknown timestamp format {value!r}: use {known} or a strptime pattern"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {value!r} (use an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _zone_where_needed(self) -> TimestampSpec:
        if self.is_epoch and self.timezone is not None:
            raise ValueError("epoch timestamps are UTC by definition; remove timezone")
        if self.pattern is not None and "%z" not in self.pattern and self.timezone is None:
            raise ValueError(
                f"pattern {self.pattern!r} has no %z, so a timezone is needed "
                "(for example timezone: Europe/London)"
            )
        return self

    @property
    def pattern(self) -> str | None:
        """The ``strptime`` pattern, when the format is one."""
        return None if self.format in set(TimestampFormat) else self.format

    @property
    def is_epoch(self) -> bool:
        """Whether values are numbers of seconds or milliseconds since 1970 (UTC)."""
        return self.format in (TimestampFormat.EPOCH_S, TimestampFormat.EPOCH_MS)


class ValueColumn(_Strict):
    """A value read from a column, translated through ``values`` where listed there."""

    column: str = Field(min_length=1)
    values: dict[str, str] = Field(default_factory=dict)


class ChannelColumn(_Strict):
    """The channel read from a column; ``values`` maps the source's words to channels.

    A value not in ``values`` must itself be a channel name.
    """

    column: str = Field(min_length=1)
    values: dict[str, Channel] = Field(default_factory=dict)


class FileMapping(_Strict):
    """How the rows of the files matching ``pattern`` become touchpoints."""

    pattern: str = Field(min_length=1)
    format: FileFormat | None = None
    """csv, jsonl or parquet; by default from the file's suffix."""
    source: ValueColumn | None = None
    """Read each row's source from a column; by default the mapping's ``source``."""
    event_id: str | None = None
    """Column holding a given event id (used where present)."""
    record_id: str | None = None
    """Column holding the source's record id; the event id is derived from it."""
    timestamp: TimestampSpec
    event_type: str | ValueColumn
    channel: Channel | ChannelColumn
    identifiers: dict[IdentifierKind, str] = Field(default_factory=dict)
    person: dict[PersonField, str] = Field(default_factory=dict)
    dob_format: str = "%Y-%m-%d"
    """``strptime`` pattern of the ``dob`` column; the frame holds ISO ``YYYY-MM-DD``."""
    attributes: dict[str, str] = Field(default_factory=dict)
    """Attribute key -> column."""
    column_types: dict[str, ColumnType] = Field(default_factory=dict)
    """Column -> type. CSV and JSON Lines values are strings unless listed here;
    Parquet columns keep their own type unless listed."""
    identifiers_from: str | None = None
    """A JSON-object column of ``{kind: value}`` identifiers (the canonical shape)."""
    person_from: str | None = None
    """A JSON-object column of person fields (the canonical shape)."""
    attributes_from: str | None = None
    """A JSON-object column of attributes (the canonical shape)."""
    unknown_fields: Literal["ignore", "reject"] = "ignore"
    """``reject`` quarantines JSON rows with fields the mapping does not name."""

    @field_validator("timestamp", mode="before")
    @classmethod
    def _column_shorthand(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value

    @field_validator("event_type")
    @classmethod
    def _event_type_tokens(cls, value: str | ValueColumn) -> str | ValueColumn:
        if isinstance(value, str):
            return _check_token(value, "event_type")
        for target in value.values.values():
            _check_token(target, "event_type value")
        return value

    @field_validator("attributes")
    @classmethod
    def _attribute_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            _check_token(key, "attribute key")
        return value

    @field_validator("dob_format")
    @classmethod
    def _dob_pattern(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError(f"dob_format {value!r} must be a strptime pattern such as %d/%m/%Y")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FileMapping:
        if self.event_id is None and self.record_id is None:
            raise ValueError("give record_id (event ids derived from it) or event_id, or both")
        if self.source is not None:
            for target in self.source.values.values():
                _check_token(target, "source value")
        row_objects = self.uses_row_objects
        suffix_format = _SUFFIX_FORMATS.get(PurePosixPath(self.pattern).suffix.lower())
        declared = self.format.value if self.format is not None else suffix_format
        if row_objects and declared not in (None, FileFormat.JSONL.value):
            raise ValueError(
                "identifiers_from, person_from, attributes_from and unknown_fields: reject "
                "need JSON rows (format: jsonl)"
            )
        return self

    @property
    def uses_row_objects(self) -> bool:
        """Whether rows must be read as JSON objects (canonical shape, or strict fields)."""
        return (
            self.identifiers_from is not None
            or self.person_from is not None
            or self.attributes_from is not None
            or self.unknown_fields == "reject"
        )

    def format_of(self, path: str | PurePosixPath | Path) -> FileFormat:
        """The format of ``path`` under this mapping (declared, or from the suffix)."""
        if self.format is not None:
            return self.format
        suffix = PurePosixPath(str(path)).suffix.lower()
        if suffix not in _SUFFIX_FORMATS:
            raise InvalidInput(
                f"cannot tell the format of {path} from its suffix; "
                f"set format (csv, jsonl or parquet) in the mapping for {self.pattern!r}"
            )
        return FileFormat(_SUFFIX_FORMATS[suffix])

    def matches(self, path: str | PurePosixPath | Path) -> bool:
        """Whether ``path`` (relative to the ingest root, or a file name) matches ``pattern``."""
        posix = PurePosixPath(str(path).replace("\\", "/"))
        return posix.match(self.pattern) or PurePosixPath(posix.name).match(self.pattern)


class SourceMapping(_Strict):
    """One source system and how each of its files maps to touchpoints."""

    source: str
    description: str = ""
    files: list[FileMapping] = Field(min_length=1)

    @field_validator("source")
    @classmethod
    def _source_token(cls, value: str) -> str:
        return _check_token(value, "source")

    def for_file(self, path: str | PurePosixPath | Path) -> FileMapping:
        """The first file mapping whose pattern matches ``path``.

        Raises ``InvalidInput`` naming the patterns when none does.
        """
        for file_mapping in self.files:
            if file_mapping.matches(path):
                return file_mapping
        patterns = ", ".join(repr(file_mapping.pattern) for file_mapping in self.files)
        raise InvalidInput(
            f"no file mapping of source {self.source!r} matches {path} (patterns: {patterns})",
            details={"source": self.source, "path": str(path)},
        )


def mapping_from_dict(data: Mapping[str, Any], *, origin: str = "<mapping>") -> SourceMapping:
    """Validate a mapping given as a dict; ``origin`` names it in error messages."""
    try:
        return SourceMapping.model_validate(data)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"]) or "mapping"
        message = problem["msg"].removeprefix("Value error, ")
        more = len(error.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise InvalidInput(
            f"mapping {origin}: {where}: {message}{suffix}",
            details={"file": origin, "field": where},
        ) from None


def load_mapping(name_or_path: str | Path) -> SourceMapping:
    """A built-in mapping by name (``care``, ``canonical``, ...) or a mapping YAML file."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        return _load_file(Path(name_or_path))
    mappings = builtin_mappings()
    if text not in mappings:
        known = ", ".join(sorted(mappings))
        raise InvalidInput(
            f"no built-in mapping {text!r} (built-in: {known}); or give a YAML file path",
            details={"mapping": text},
        )
    return mappings[text]


@cache
def _builtin() -> dict[str, SourceMapping]:
    folder = resources.files("ingest") / "mappings"
    found: dict[str, SourceMapping] = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            name = entry.name.removesuffix(".yaml")
            found[name] = _parse(entry.read_text(encoding="utf-8"), f"built-in {name}")
    return found


def builtin_mappings() -> dict[str, SourceMapping]:
    """The mappings shipped with journeygraph, by name."""
    return dict(_builtin())


def _load_file(path: Path) -> SourceMapping:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(
            f"cannot read mapping {path}: {error}", details={"file": str(path)}
        ) from None
    return _parse(text, str(path))


def _parse(text: str, origin: str) -> SourceMapping:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidInput(
            f"mapping {origin} is not valid YAML: {error}", details={"file": origin}
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"mapping {origin} must be a YAML mapping with source and files",
            details={"file": origin},
        )
    return mapping_from_dict(data, origin=origin)
