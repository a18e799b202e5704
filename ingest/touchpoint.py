"""The canonical Touchpoint: what every ingestor produces, whatever the source looked like.

``Touchpoint.from_row`` validates one raw row and reports *every* problem of it at
once (as ``RowProblem`` entries with the field and the reason), so a quarantined
row tells its owner everything to fix in one pass.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from graph.model import MAX_ID_LENGTH, IdentifierKind, derived_event_id, touchpoint_id

EARLIEST: Final = datetime(1990, 1, 1, tzinfo=UTC)
"""Touchpoints before this are treated as impossible timestamps (GSM launched 1991)."""
FUTURE_SLACK_DAYS: Final = 2
MAX_ATTRIBUTE_LENGTH: Final = 4096
_TOKEN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_IDENTIFIER_KINDS: Final = frozenset(kind.value for kind in IdentifierKind)

AttributeValue = str | int | float | bool


class Channel(StrEnum):
    """Where a touchpoint happened."""

    RETAIL = "retail"
    CARE = "care"
    IVR = "ivr"
    APP = "app"
    WEB = "web"
    BILLING = "billing"
    NETWORK = "network"
    EMAIL = "email"
    SMS = "sms"
    OUTBOUND = "outbound"
    CRM = "crm"


class PersonFields(BaseModel):
    """Personal details a source knows about the subscriber (for probabilistic matching)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    dob: str | None = Field(default=None, max_length=32)
    postcode: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, max_length=500)


class Touchpoint(BaseModel):
    """One interaction of a subscriber with the operator, normalised."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    event_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH - 3)
    source: str
    event_type: str
    channel: Channel
    ts: datetime
    identifiers: dict[str, str] = Field(default_factory=dict)
    person: PersonFields = Field(default_factory=PersonFields)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    @field_validator("source", "event_type")
    @classmethod
    def _token(cls, value: str) -> str:
        if not _TOKEN.match(value):
            raise ValueError("must be 1-64 lower-case letters, digits or underscores")
        return value

    @field_validator("event_id")
    @classmethod
    def _event_id(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must not contain control or other non-printable characters")
        return value

    @field_validator("ts")
    @classmethod
    def _timestamp(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must carry a timezone (e.g. 2024-05-01T10:00:00+00:00)")
        value = value.astimezone(UTC)
        latest = datetime.now(UTC).timestamp() + FUTURE_SLACK_DAYS * 86_400
        if value < EARLIEST or value.timestamp() > latest:
            raise ValueError(
                f"impossible timestamp {value.isoformat()}: must lie between "
                f"{EARLIEST.date()} and {FUTURE_SLACK_DAYS} days from now"
            )
        return value

    @field_validator("identifiers")
    @classmethod
    def _identifiers(cls, value: dict[str, str]) -> dict[str, str]:
        known = _IDENTIFIER_KINDS
        problems = []
        for kind, raw in value.items():
            if kind not in known:
                problems.append(f"unknown identifier kind {kind!r} (known: {sorted(known)})")
            elif not raw or len(raw) > 256:
                problems.append(f"identifier {kind} must be 1-256 characters, got {len(raw)}")
        if problems:
            raise ValueError("; ".join(problems))
        return {kind: raw for kind, raw in value.items() if raw}

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        for key, item in value.items():
            if not _TOKEN.match(key):
                raise ValueError(f"attribute key {key!r} must be a lower-case token")
            if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_LENGTH:
                raise ValueError(f"attribute {key!r} is longer than {MAX_ATTRIBUTE_LENGTH}")
        return value

    @property
    def vertex_id(self) -> str:
        """The Touchpoint vertex id, ``tp:<event_id>``."""
        return touchpoint_id(self.event_id)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Touchpoint | list[RowProblem]:
        """Validate a row; return the Touchpoint, or every problem found in it.

        A row without ``event_id`` but with ``source`` and ``source_record_id`` gets a
        stable derived event id, so re-ingesting it is idempotent.
        """
        data = dict(row)
        record_id = data.pop("source_record_id", None)
        if not data.get("event_id") and record_id is not None and data.get("source"):
            data["event_id"] = derived_event_id(str(data["source"]), str(record_id))
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            return [
                RowProblem(
                    field=".".join(str(part) for part in problem["loc"]) or "row",
                    reason=problem["msg"].removeprefix("Value error, "),
                )
                for problem in error.errors(include_url=False)
            ]


class RowProblem(BaseModel):
    """One reason a raw row was rejected."""

    model_config = ConfigDict(frozen=True)

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"
