"""The touchpoint frame: canonical touchpoints as one Arrow table, a column a field.

Every ingestor (files, the push API, the stream) turns what it read into a frame
and a list of ``QuarantinedRow``s; resolution, the graph writer and the lake take
frames. Columns hold *normalised* values, so nothing downstream parses again:

* ``event_id`` (never null), ``source``, ``event_type``, ``channel``, ``ts`` (UTC, ms)
* one column per identifier kind (``msisdn`` E.164, ``email`` lower case, ``account``
  upper case, ``imei`` 15 digits, ``cookie``, ``national_id_hash``), null when absent
* person fields for probabilistic matching: ``first_name``, ``last_name``, ``dob``
  (ISO ``YYYY-MM-DD``), ``postcode``, ``address``, as the source wrote them
* ``attributes``: a JSON object (offer_id, cell_id, amount, csat, ...)
* ``origin`` and ``origin_row``: the file (or ``push`` / ``stream``) and the 1-based
  row or line number there, so every touchpoint can be traced back to its input
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import pyarrow as pa

from graph.model import IdentifierKind
from ingest.identifiers import IdentifierError, normalise_identifier
from ingest.touchpoint import Touchpoint

IDENTIFIER_COLUMNS: Final[tuple[str, ...]] = tuple(kind.value for kind in IdentifierKind)
PERSON_COLUMNS: Final = ("first_name", "last_name", "dob", "postcode", "address")
TS_TYPE: Final = pa.timestamp("ms", tz="UTC")
INVALID_PREFIX: Final = "invalid_"
"""Attribute prefix for a raw identifier that could not be normalised."""

_FIELDS: Final[list[pa.Field[Any]]] = [
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("channel", pa.string(), nullable=False),
    pa.field("ts", TS_TYPE, nullable=False),
    *(pa.field(name, pa.string()) for name in IDENTIFIER_COLUMNS),
    *(pa.field(name, pa.string()) for name in PERSON_COLUMNS),
    pa.field("attributes", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("origin_row", pa.int64(), nullable=False),
]
FRAME_SCHEMA: Final = pa.schema(_FIELDS)
"""The schema of every touchpoint frame, in column order."""


@dataclass(frozen=True)
class QuarantinedRow:
    """A rejected input row: where it came from, the row as read, and every reason."""

    source: str
    origin: str
    row: int
    raw: str | Mapping[str, Any]
    reasons: Sequence[str]

    def as_dict(self) -> dict[str, Any]:
        """The quarantine file's JSON object for this row."""
        return {
            "source": self.source,
            "file": self.origin,
            "row": self.row,
            "raw": self.raw,
            "reasons": list(self.reasons),
        }


@dataclass
class FrameBatch:
    """What an ingestor made of one chunk of input: accepted touchpoints and rejects."""

    frame: pa.Table
    quarantined: list[QuarantinedRow] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Rows seen in this chunk, accepted or not."""
        return self.frame.num_rows + len(self.quarantined)


def empty_frame() -> pa.Table:
    """A frame with no rows."""
    return FRAME_SCHEMA.empty_table()


def frame_from_touchpoints(
    touchpoints: Iterable[Touchpoint], origin: str, first_row: int = 1
) -> pa.Table:
    """Validated ``Touchpoint`` objects as a frame, identifiers normalised.

    ``origin_row`` counts from ``first_row`` in the order given. An identifier that
    cannot be normalised (a mistyped phone number) cannot stitch, but the touchpoint
    is real: it is kept, and the raw value moves to the attribute ``invalid_<kind>``.
    """
    columns: dict[str, list[Any]] = {name: [] for name in FRAME_SCHEMA.names}
    for offset, touchpoint in enumerate(touchpoints):
        columns["event_id"].append(touchpoint.event_id)
        columns["source"].append(touchpoint.source)
        columns["event_type"].append(touchpoint.event_type)
        columns["channel"].append(touchpoint.channel.value)
        columns["ts"].append(touchpoint.ts)
        attributes = dict(touchpoint.attributes)
        for name in IDENTIFIER_COLUMNS:
            raw = touchpoint.identifiers.get(name)
            value = None
            if raw is not None:
                try:
                    value = normalise_identifier(name, raw)
                except IdentifierError:
                    attributes[f"{INVALID_PREFIX}{name}"] = raw
            columns[name].append(value)
        person = touchpoint.person
        for name in PERSON_COLUMNS:
            columns[name].append(getattr(person, name))
        columns["attributes"].append(orjson.dumps(attributes).decode())
        columns["origin"].append(origin)
        columns["origin_row"].append(first_row + offset)
    return pa.Table.from_pydict(columns, schema=FRAME_SCHEMA)


def attributes_of(frame: pa.Table) -> list[dict[str, Any]]:
    """The ``attributes`` column decoded, one dict a row."""
    return [orjson.loads(text or "{}") for text in frame.column("attributes").to_pylist()]
