"""Property values on their way to and from a Gremlin server, and Arrow exports of them.

Gremlin stores a datetime as ``java.util.Date``: milliseconds since the epoch, no zone.
Datetimes are therefore truncated to the millisecond before they are compared or sent,
so a re-upsert of the value a caller first gave compares equal to what the server
holds, and they come back tz-aware in UTC.

Integers travel as 64-bit longs whatever their size: gremlinpython's GraphBinary writer
sends a plain Python ``int`` as a 32-bit integer and fails above 2**31, and one Java
type for every integer keeps server-side comparisons and sorting uniform.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa
from gremlin_python.statics import long

from graph.model import PropertyValue

UID: Final = "uid"
"""Vertex property holding the project id (servers assign their own vertex ids)."""
SEQ: Final = "_seq"
"""Change stamp of an element's last write: the change feed reads elements above a cursor."""
CREATED: Final = "_seq:created"
"""Change stamp of an element's creation. The colon keeps it outside the keys callers
may use (``graph.model`` allows letters, digits and underscores only)."""
BOOKKEEPING: Final = frozenset({UID, SEQ, CREATED})

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_MILLISECOND: Final = timedelta(milliseconds=1)
EARLIEST: Final = datetime(1, 1, 1, tzinfo=UTC)
"""Sorts a touchpoint without ``ts`` first in a timeline, as the embedded store does."""


def canonical(value: PropertyValue) -> PropertyValue:
    """The value as the server will hold it: datetimes in UTC, truncated to milliseconds."""
    if type(value) is datetime:
        value = value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def ceil_millisecond(value: datetime) -> datetime:
    """The first whole millisecond at or after ``value``, in UTC.

    Stored datetimes are whole milliseconds, so ``ts >= start`` and ``ts < end`` keep
    their meaning when both bounds are rounded up.
    """
    value = value.astimezone(UTC)
    whole = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return whole if whole == value else whole + _MILLISECOND


def to_wire(value: PropertyValue) -> Any:
    """A canonical value in the type gremlinpython should serialise it as."""
    if type(value) is int:
        return long(value)
    return value


def from_wire(value: Any) -> PropertyValue:
    """A value read from the server as the data model's type."""
    if isinstance(value, datetime):
        # gremlinpython returns naive UTC datetimes computed through a float of
        # seconds, which can be a microsecond off; whole milliseconds are exact.
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        milliseconds: int = round((value - _NAIVE_EPOCH) / _MILLISECOND)
        return _EPOCH + milliseconds * _MILLISECOND
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value  # type: ignore[no-any-return]


def decode(properties: dict[str, Any]) -> dict[str, PropertyValue]:
    """A ``valueMap().by(unfold())`` result without the store's bookkeeping keys."""
    return {key: from_wire(value) for key, value in properties.items() if key not in BOOKKEEPING}


def same(stored: PropertyValue, given: PropertyValue) -> bool:
    """Whether writing ``given`` over ``stored`` would change nothing (``True != 1`` here)."""
    return type(stored) is type(given) and stored == given


def difference(
    stored: dict[str, PropertyValue], given: dict[str, PropertyValue | None]
) -> tuple[dict[str, PropertyValue], list[str]]:
    """Properties to set and keys to remove so that ``stored`` takes in ``given``."""
    changed: dict[str, PropertyValue] = {}
    removed: list[str] = []
    for key, value in given.items():
        if value is None:
            if key in stored:
                removed.append(key)
        elif key not in stored or not same(stored[key], value):
            changed[key] = value
    return changed, removed


def _column(values: list[PropertyValue | None]) -> pa.Array[Any]:
    kinds = {type(value) for value in values if value is not None}
    if kinds == {datetime}:
        return pa.array(values, pa.timestamp("us", tz="UTC"))
    if len(kinds) <= 1 or kinds == {int, float}:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    # One property holding different types on different elements: text, as the
    # embedded store exports it.
    return pa.array([None if value is None else str(value) for value in values], pa.string())


def table(keys: dict[str, list[str]], properties: list[dict[str, PropertyValue]]) -> pa.Table:
    """An Arrow table: the ``keys`` columns first, then one column a property.

    A property named like a key column is left out: the structure wins.
    """
    columns: dict[str, pa.Array[Any]] = {
        name: pa.array(values, pa.string()) for name, values in keys.items()
    }
    names = [key for key in dict.fromkeys(k for row in properties for k in row) if key not in keys]
    for name in names:
        columns[name] = _column([row.get(name) for row in properties])
    return pa.table(columns)
