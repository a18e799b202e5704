"""The offers catalogue: a product system's export, loaded as ``Offer`` vertices.

Touchpoints only name offers (the ``offer_id`` attribute the frame writer turns into
an ``ABOUT`` edge); what an offer *is* comes from the operator's product catalogue:
one offer a row, in CSV or Parquet.

=====================  ========  ==================================================
column                 required  value
=====================  ========  ==================================================
``offer_id``           yes       the offer's key, as touchpoints spell it
``margin_gbp``         yes       margin over the whole term, a number >= 0
``name``               no        text
``kind``               no        text (``retention``, ``upsell``, ``cross_sell``)
``category``           no        text (``data``, ``roaming``, ``home``, ...)
``monthly_margin_gbp`` no        a number >= 0
``term_months``        no        a whole number >= 1
``launched_at``        no        ISO-8601 date or timestamp; without a zone, UTC
=====================  ========  ==================================================

Other columns are ignored. An empty optional value is no value (the vertex keeps
what it had). A row that breaks a rule (an empty id, a margin that is not a
non-negative number, a date that does not parse, an id given twice) is quarantined
with every reason and its row number (CSV: the data row, line 2 being row 1;
Parquet: the row), and never stops the others.

Each offer becomes the vertex ``graph.model.offer_id(offer_id)`` (``offer:<id>``),
the id the frame writer gives the target of an ``ABOUT`` edge, so the catalogue and
the offers that touchpoints mention meet on one vertex whichever is loaded first.
Upserts merge properties, so loading the same file twice changes nothing.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from graph import GraphStore, InvalidInput, VertexLabel
from graph.errors import MalformedId, UnsupportedProperty
from graph.model import PropertyValue, check_properties, check_vertex_id, offer_id
from ingest.frame import QuarantinedRow
from ingest.quarantine import QuarantineWriter

CATALOGUE_SOURCE: Final = "offer_catalogue"
"""The source name of quarantined catalogue rows (and of their quarantine file)."""
REQUIRED_COLUMNS: Final = ("offer_id", "margin_gbp")
OPTIONAL_COLUMNS: Final = (
    "name",
    "kind",
    "category",
    "monthly_margin_gbp",
    "term_months",
    "launched_at",
)
_TEXT_COLUMNS: Final = ("name", "kind", "category")
_CSV_SUFFIXES: Final = frozenset({".csv"})
_PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})


@dataclass
class CatalogueSummary:
    """What one catalogue load read, wrote and rejected."""

    file: str
    read: int = 0
    """Data rows seen, accepted or not."""
    loaded: int = 0
    """Offers upserted (created, updated or already as given)."""
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[QuarantinedRow] = field(default_factory=list)
    """Every quarantined row with its reasons."""

    @property
    def quarantined(self) -> int:
        """Rows rejected."""
        return len(self.rejected)

    def as_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly view for the CLI."""
        return {
            "file": self.file,
            "read": self.read,
            "loaded": self.loaded,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
        }


def load_offer_catalogue(
    store: GraphStore, path: str | Path, quarantine: str | Path | None = None
) -> CatalogueSummary:
    """Upsert the offers of a CSV or Parquet catalogue as ``Offer`` vertices.

    Good rows are written in one batch; rejected rows are in the summary and, when
    ``quarantine`` names a file, appended to it as JSON Lines (``ingest.quarantine``).
    Raises ``InvalidInput`` when the file cannot be read, is neither CSV nor Parquet,
    or lacks a required column; then nothing is written.
    """
    path = Path(path)
    summary = CatalogueSummary(file=str(path))
    offers: list[tuple[str, dict[str, PropertyValue]]] = []
    first_row: dict[str, int] = {}
    for row in _rows(path):
        summary.read += 1
        reasons = list(row.problems)
        properties = _offer(row.values, reasons) if not reasons else {}
        key = properties.get("offer_id")
        if isinstance(key, str) and not reasons:
            if key in first_row:
                reasons.append(f"offer_id {key!r} was already given in row {first_row[key]}")
            else:
                first_row[key] = row.number
        if reasons:
            summary.rejected.append(
                QuarantinedRow(CATALOGUE_SOURCE, str(path), row.number, row.raw, reasons)
            )
        else:
            offers.append((offer_id(str(key)), properties))
    if offers:
        result = store.upsert_vertices(VertexLabel.OFFER, offers)
        summary.created, summary.updated = result.created, result.updated
        summary.unchanged = result.unchanged
    summary.loaded = len(offers)
    if quarantine is not None and summary.rejected:
        with QuarantineWriter(quarantine) as writer:
            writer.write(summary.rejected)
    return summary


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One data row: its number, its values by column, the row as read, reading problems."""

    number: int
    values: Mapping[str, Any]
    raw: str | Mapping[str, Any]
    problems: tuple[str, ...] = ()


def _rows(path: Path) -> Iterator[_Row]:
    """Every data row of the file, after its header is checked."""
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES | _PARQUET_SUFFIXES:
        raise InvalidInput(
            f"{path}: an offers catalogue must be a .csv or .parquet file",
            details={"file": str(path)},
        )
    if not path.is_file():
        raise InvalidInput(f"{path}: no such offers catalogue file", details={"file": str(path)})
    if suffix in _PARQUET_SUFFIXES:
        return _parquet_rows(path)
    return _csv_rows(path)


def _check_columns(path: Path, columns: list[str]) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InvalidInput(
            f"{path}: the offers catalogue has no {', '.join(map(repr, missing))} column "
            f"(required: {', '.join(REQUIRED_COLUMNS)})",
            details={"file": str(path), "columns": columns},
        )


def _parquet_rows(path: Path) -> Iterator[_Row]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise InvalidInput(
            f"{path}: not a readable Parquet file ({error})", details={"file": str(path)}
        ) from None
    _check_columns(path, table.column_names)
    wanted = [name for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if name in table.schema.names]
    # A catalogue is hundreds of rows: plain Python values are the simple way through.
    records = table.select(wanted).to_pylist()
    return iter(
        [_Row(number, record, _plain(record)) for number, record in enumerate(records, start=1)]
    )


def _csv_rows(path: Path) -> Iterator[_Row]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(
            f"{path}: not a readable UTF-8 CSV file ({error})", details={"file": str(path)}
        ) from None
    reader = csv.reader(lines)
    columns = [name.strip() for name in next(reader, [])]
    _check_columns(path, columns)
    rows = []
    for values in reader:
        if not any(value.strip() for value in values):
            continue  # a blank line is not data, though it keeps its number
        # line_num counts the header too, so row 1 is line 2 (as ingest.readers numbers rows).
        number = reader.line_num - 1
        record = dict(zip(columns, values, strict=False))
        problems: tuple[str, ...] = ()
        if len(values) != len(columns):
            problems = (f"row has {len(values)} values, the header {len(columns)} columns",)
        rows.append(_Row(number, record, lines[reader.line_num - 1], problems))
    return iter(rows)


# -- validating ----------------------------------------------------------------------


def _offer(raw: Mapping[str, Any], reasons: list[str]) -> dict[str, PropertyValue]:
    """The Offer vertex's properties from one row; every problem found goes to ``reasons``."""
    properties: dict[str, PropertyValue] = {}
    key = _text(raw.get("offer_id"))
    if key is None:
        reasons.append("offer_id: missing")
    else:
        try:
            check_vertex_id(VertexLabel.OFFER, offer_id(key))
            properties["offer_id"] = key
        except MalformedId as error:
            reasons.append(f"offer_id: {key!r} cannot be an offer's key ({error.message})")
    if _missing(raw.get("margin_gbp")):
        reasons.append("margin_gbp: missing")
    margin = _amount(raw.get("margin_gbp"), "margin_gbp", reasons)
    if margin is not None:
        properties["margin_gbp"] = margin
    for name in _TEXT_COLUMNS:
        value = _text(raw.get(name))
        if value is not None:
            properties[name] = value
    monthly = _amount(raw.get("monthly_margin_gbp"), "monthly_margin_gbp", reasons)
    if monthly is not None:
        properties["monthly_margin_gbp"] = monthly
    term = _term(raw.get("term_months"), reasons)
    if term is not None:
        properties["term_months"] = term
    launched = _launched_at(raw.get("launched_at"), reasons)
    if launched is not None:
        properties["launched_at"] = launched
    try:
        check_properties("Offer", properties)
    except UnsupportedProperty as error:
        reasons.append(error.message)
    return properties


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str | None:
    """A value as stripped text; empty means missing."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _amount(value: Any, column: str, reasons: list[str]) -> float | None:
    """A non-negative, finite amount of money (None when missing)."""
    if isinstance(value, bool):
        reasons.append(f"{column}: {value!r} is not a number")
        return None
    if _missing(value):
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError):
        reasons.append(f"{column}: {value!r} is not a number")
        return None
    if not math.isfinite(amount) or amount < 0:
        reasons.append(f"{column}: {value!r} is not a non-negative amount")
        return None
    return amount


def _term(value: Any, reasons: list[str]) -> int | None:
    """A term in whole months, at least one (None when missing)."""
    amount = _amount(value, "term_months", reasons)
    if amount is None:
        return None
    if not amount.is_integer() or amount < 1:
        reasons.append(f"term_months: {value!r} is not a whole number of months (1 or more)")
        return None
    return int(amount)


def _launched_at(value: Any, reasons: list[str]) -> datetime | None:
    """A launch moment in UTC: dates are midnight UTC, zoneless times are UTC."""
    if _missing(value):
        return None
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            reasons.append(f"launched_at: {value!r} is not an ISO-8601 date or timestamp")
            return None
    else:
        reasons.append(f"launched_at: {value!r} is not a date")
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _plain(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The row as read, JSON-friendly for the quarantine file."""
    return {
        key: value if value is None or isinstance(value, str | int | float) else str(value)
        for key, value in raw.items()
    }
