"""The property-graph data model: labels, their ids, properties and edge endpoints.

Ids are deterministic strings with a prefix per label (``tp:<event_id>``,
``id:msisdn:+447700900123``), so re-ingesting the same input writes the same
elements and changes nothing. This module is the single place that knows the
shape of the graph; both backends validate against it.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from graph.errors import MalformedId, UnknownLabel, UnsupportedProperty

PropertyValue = str | int | float | bool | datetime
"""The value types a vertex or edge property may hold (datetimes must be tz-aware)."""


class VertexLabel(StrEnum):
    """Vertex labels of the journey graph."""

    CUSTOMER = "Customer"
    IDENTIFIER = "Identifier"
    TOUCHPOINT = "Touchpoint"
    MILESTONE = "Milestone"
    OFFER = "Offer"
    CELL = "Cell"
    DEVICE = "Device"


class EdgeLabel(StrEnum):
    """Edge labels of the journey graph."""

    HAS_IDENTIFIER = "HAS_IDENTIFIER"
    PERFORMED = "PERFORMED"
    NEXT = "NEXT"
    REACHED = "REACHED"
    EVIDENCED_BY = "EVIDENCED_BY"
    ABOUT = "ABOUT"
    AT_CELL = "AT_CELL"
    USES = "USES"


class IdentifierKind(StrEnum):
    """Kinds of identifier a source system may know a subscriber by."""

    MSISDN = "msisdn"
    EMAIL = "email"
    ACCOUNT = "account"
    IMEI = "imei"
    COOKIE = "cookie"
    NATIONAL_ID_HASH = "national_id_hash"


ID_PREFIX: Final[dict[VertexLabel, str]] = {
    VertexLabel.CUSTOMER: "cust:",
    VertexLabel.IDENTIFIER: "id:",
    VertexLabel.TOUCHPOINT: "tp:",
    VertexLabel.MILESTONE: "ms:",
    VertexLabel.OFFER: "offer:",
    VertexLabel.CELL: "cell:",
    VertexLabel.DEVICE: "dev:",
}
"""Every vertex id starts with the prefix of its label."""


@dataclass(frozen=True)
class EdgeType:
    """Which vertex labels an edge label connects."""

    label: EdgeLabel
    source: VertexLabel
    target: VertexLabel


EDGE_TYPES: Final[dict[EdgeLabel, EdgeType]] = {
    edge.label: edge
    for edge in (
        EdgeType(EdgeLabel.HAS_IDENTIFIER, VertexLabel.CUSTOMER, VertexLabel.IDENTIFIER),
        EdgeType(EdgeLabel.PERFORMED, VertexLabel.CUSTOMER, VertexLabel.TOUCHPOINT),
        EdgeType(EdgeLabel.NEXT, VertexLabel.TOUCHPOINT, VertexLabel.TOUCHPOINT),
        EdgeType(EdgeLabel.REACHED, VertexLabel.CUSTOMER, VertexLabel.MILESTONE),
        EdgeType(EdgeLabel.EVIDENCED_BY, VertexLabel.MILESTONE, VertexLabel.TOUCHPOINT),
        EdgeType(EdgeLabel.ABOUT, VertexLabel.TOUCHPOINT, VertexLabel.OFFER),
        EdgeType(EdgeLabel.AT_CELL, VertexLabel.TOUCHPOINT, VertexLabel.CELL),
        EdgeType(EdgeLabel.USES, VertexLabel.CUSTOMER, VertexLabel.DEVICE),
    )
}

MAX_ID_LENGTH: Final = 512
MAX_STRING_LENGTH: Final = 65_536
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_PROPERTY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED_KEYS: Final = frozenset({"id", "uid", "label", "T", "_seq"})
"""Keys the backends use for bookkeeping; callers may not set them."""


def vertex_label(value: str) -> VertexLabel:
    """Parse a vertex label, raising ``UnknownLabel`` with the known labels."""
    try:
        return VertexLabel(value)
    except ValueError:
        known = ", ".join(label.value for label in VertexLabel)
        raise UnknownLabel(f"unknown vertex label {value!r}; known labels: {known}") from None


def edge_label(value: str) -> EdgeLabel:
    """Parse an edge label, raising ``UnknownLabel`` with the known labels."""
    try:
        return EdgeLabel(value)
    except ValueError:
        known = ", ".join(label.value for label in EdgeLabel)
        raise UnknownLabel(f"unknown edge label {value!r}; known labels: {known}") from None


def label_of(vertex_id: str) -> VertexLabel:
    """The vertex label an id belongs to, read from its prefix."""
    for label, prefix in ID_PREFIX.items():
        if vertex_id.startswith(prefix):
            return label
    raise MalformedId(
        f"vertex id {vertex_id[:80]!r} has no known label prefix",
        details={"prefixes": sorted(ID_PREFIX.values())},
    )


def check_vertex_id(label: VertexLabel, vertex_id: object) -> str:
    """Validate a vertex id for ``label`` and return it."""
    prefix = ID_PREFIX[label]
    if (
        type(vertex_id) is str
        and len(prefix) < len(vertex_id) <= MAX_ID_LENGTH
        and vertex_id.startswith(prefix)
        and vertex_id.isprintable()
        and not vertex_id[-1].isspace()
    ):
        return vertex_id
    if not isinstance(vertex_id, str):
        raise MalformedId(f"{label} id must be a string, got {type(vertex_id).__name__}")
    if len(vertex_id) > MAX_ID_LENGTH:
        raise MalformedId(
            f"{label} id is {len(vertex_id)} characters long; the limit is {MAX_ID_LENGTH}",
            details={"id": vertex_id[:80] + "..."},
        )
    if not vertex_id.startswith(prefix) or len(vertex_id) == len(prefix):
        raise MalformedId(
            f"{label} id {vertex_id!r} must start with {prefix!r} followed by a key",
        )
    if not vertex_id.isprintable() or vertex_id != vertex_id.strip():
        raise MalformedId(f"{label} id {vertex_id!r} has control characters or edge whitespace")
    return vertex_id


def vertex_ids_valid(label: VertexLabel, ids: Sequence[Any]) -> bool:
    """Whether ``check_vertex_id(label, ...)`` would accept every one of ``ids``.

    The batch form for bulk writes: a few passes in C over the ids joined into one
    string, where a Python call per id costs more than the rest of the write. It only
    says yes or no; callers find and report a bad id with ``check_vertex_id``.
    """
    if not ids:
        return True
    prefix = ID_PREFIX[label]
    try:
        joined = "\n".join(ids)  # TypeError unless every id is a str
    except TypeError:
        return False
    lengths = list(map(len, ids))
    return (
        len(prefix) < min(lengths)
        and max(lengths) <= MAX_ID_LENGTH
        and "".join(ids).isprintable()
        # No id holds a newline (they are printable), so every id starts with the
        # prefix exactly when the text does and the prefix follows every separator.
        and joined.startswith(prefix)
        and joined.count("\n" + prefix) == len(ids) - 1
        # The ASCII space is the only printable whitespace.
        and not joined.endswith(" ")
        and " \n" not in joined
    )


def arrow_ids_valid(label: VertexLabel, ids: pa.ChunkedArray[Any]) -> bool:
    """Whether every value of an Arrow column is an id ``check_vertex_id`` accepts.

    The columnar form of ``vertex_ids_valid``, in Arrow compute kernels. It answers
    yes only for ASCII ids (Arrow's notion of a printable character differs from
    Python's beyond ASCII); callers check the others value by value.
    """
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        return False
    if ids.null_count:
        return False
    if len(ids) == 0:
        return True
    prefix = ID_PREFIX[label]
    lengths = pc.utf8_length(ids)
    return bool(
        pc.all(pc.string_is_ascii(ids), min_count=0).as_py()
        and pc.all(pc.ascii_is_printable(ids), min_count=0).as_py()
        and pc.all(pc.starts_with(ids, prefix), min_count=0).as_py()
        and pc.min(lengths).as_py() > len(prefix)
        and pc.max(lengths).as_py() <= MAX_ID_LENGTH
        and not pc.any(pc.ends_with(ids, " ")).as_py()
    )


_CHECKED_KEYS: set[str] = set()
"""Property keys already found valid; keys repeat on every row, so check each once."""


def property_key_valid(key: object) -> bool:
    """Whether ``key`` may name a property (valid keys are remembered)."""
    if not isinstance(key, str) or not _PROPERTY_KEY.match(key) or key in RESERVED_KEYS:
        return False
    if len(_CHECKED_KEYS) < 100_000:
        _CHECKED_KEYS.add(key)
    return True


def _check_key(owner: str, key: object) -> None:
    if not property_key_valid(key):
        raise UnsupportedProperty(
            f"property key {key!r} of {owner} is not allowed: keys are 1-64 letters, "
            f"digits or underscores, not starting with a digit, and not one of "
            f"{sorted(RESERVED_KEYS)}"
        )


def _check_value(owner: str, key: str, value: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise UnsupportedProperty(f"property {key!r} of {owner}: integer out of 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnsupportedProperty(
                f"property {key!r} of {owner} is {value}; only finite numbers are storable"
            )
    elif isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise UnsupportedProperty(
                f"property {key!r} of {owner} is {len(value)} characters long; "
                f"the limit is {MAX_STRING_LENGTH}"
            )
    elif isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise UnsupportedProperty(
                f"property {key!r} of {owner} is a naive datetime; give a timezone"
            )
    else:
        raise UnsupportedProperty(
            f"property {key!r} of {owner} has unsupported type {type(value).__name__}; "
            "use str, int, float, bool or a timezone-aware datetime"
        )


def check_properties(owner: str, properties: object) -> dict[str, PropertyValue | None]:
    """Validate property keys and value types; ``None`` values mean "remove".

    This runs for every element of every batch, so the common types are tested
    with ``type() is`` before the general checks.
    """
    if type(properties) is not dict:
        if not isinstance(properties, dict):
            raise UnsupportedProperty(
                f"properties of {owner} must be a mapping, got {type(properties).__name__}"
            )
        properties = dict(properties)
    for key, value in properties.items():
        if key not in _CHECKED_KEYS:
            _check_key(owner, key)
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING_LENGTH:
                _check_value(owner, key, value)
        elif kind is datetime:
            if value.tzinfo is None:
                _check_value(owner, key, value)
        elif kind is not bool:
            _check_value(owner, key, value)
    return properties


_DICTS: Final = frozenset({dict})


def plain_properties(batch: Sequence[Any]) -> bool:
    """Whether ``check_properties`` would accept every item of ``batch`` as it is.

    The batch form for bulk writes: true when each item is a ``dict`` with valid keys
    and values of the common types, in range. Anything else (a bad key, another
    mapping, a subclass, a bad value) answers false, and callers check item by item
    with ``check_properties`` to report it.
    """
    if not _DICTS.issuperset(map(type, batch)):
        return False
    if not any(batch):
        return True  # no properties at all, as on most edges
    known_keys = _CHECKED_KEYS
    for properties in batch:
        if not known_keys.issuperset(properties) and not all(map(property_key_valid, properties)):
            return False
        for value in properties.values():
            kind = type(value)
            if kind is str:
                if len(value) > MAX_STRING_LENGTH:
                    return False
            elif kind is datetime:
                if value.tzinfo is None:
                    return False
            elif kind is int:
                if not INT64_MIN <= value <= INT64_MAX:
                    return False
            elif kind is float:
                if not math.isfinite(value):
                    return False
            elif kind is not bool and value is not None:
                return False
    return True


def edge_id(label: EdgeLabel | str, source: str, target: str) -> str:
    """The deterministic id of the one ``label`` edge from ``source`` to ``target``."""
    return f"{label}:{source}>{target}"


def _key(*parts: str) -> str:
    return ":".join(parts)


def customer_id(key: str) -> str:
    """Id of the Customer vertex for a resolved person key."""
    return "cust:" + key


def identifier_id(kind: IdentifierKind | str, normalised_value: str) -> str:
    """Id of an Identifier vertex: ``id:<kind>:<normalised value>``."""
    return _key("id", str(kind), normalised_value)


def touchpoint_id(event_id: str) -> str:
    """Id of a Touchpoint vertex: ``tp:<event_id>``."""
    return "tp:" + event_id


def milestone_id(name: str) -> str:
    """Id of a Milestone vertex: ``ms:<name>``."""
    return "ms:" + name


def offer_id(offer_key: str) -> str:
    """Id of an Offer vertex: ``offer:<offer id>``."""
    return "offer:" + offer_key


def cell_id(cell_key: str) -> str:
    """Id of a Cell vertex: ``cell:<cell id>``."""
    return "cell:" + cell_key


def device_id(imei: str) -> str:
    """Id of a Device vertex: ``dev:<imei>``."""
    return "dev:" + imei


_EVENT_SOURCE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_RECORD_TOKEN: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def derived_event_id(source: str, source_record_id: str) -> str:
    """A stable event id for sources that give none, readable where it can be.

    ``<source>-<record id>`` (``billing-BIL00030000123``) when the source is a token
    (a lower-case letter, then up to 63 lower-case letters, digits or underscores, as
    Touchpoint sources are) and the record id a short safe token (1-64 ASCII letters,
    digits, ``_``, ``.`` or ``-``). Otherwise ``<source>~<24 hex digits>``, a BLAKE2b
    hash of both. Readable ids keep a source's records in record-id order, which
    sources mostly issue in sequence: a bulk load then writes its Touchpoint ids
    near each other instead of at random places of the store's id index, several
    times faster at millions of touchpoints (docs/benchmarks.md).

    Distinct inputs give distinct ids: a readable id has no ``~`` and a hashed one
    always has; the first ``-`` of a readable id ends its source (a token has none);
    and a hashed id's source is all but its last 25 characters.
    """
    if _EVENT_SOURCE.fullmatch(source) and _RECORD_TOKEN.fullmatch(source_record_id):
        return f"{source}-{source_record_id}"
    digest = hashlib.blake2b(f"{source}\x1f{source_record_id}".encode(), digest_size=12)
    return f"{source}~{digest.hexdigest()}"
