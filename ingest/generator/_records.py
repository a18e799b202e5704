"""Source files, their records, and how each record reads as a canonical Touchpoint.

A ``SourceFile`` says everything about one output file: its source system, path,
format, record-id and key columns, and the ``TouchpointMapping`` an ingestor would
apply to its rows. The same ``Records`` batch is written to disk by
``generate_world`` and turned into ``Touchpoint`` objects by ``iter_world``, so the
two can never drift apart; event ids are ``derived_event_id(source, record_id)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from graph.model import IdentifierKind, derived_event_id
from ingest.generator._arrays import BoolArray, FloatArray, IntArray, Strings
from ingest.generator._noise import NoiseLog
from ingest.touchpoint import AttributeValue, Channel, PersonFields, Touchpoint


class FileFormat(StrEnum):
    """How a source system exports its records."""

    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


@dataclass(frozen=True)
class TouchpointMapping:
    """How one row of a source file becomes a ``Touchpoint``.

    ``event_type`` and ``channel`` are fixed values, or read from a column
    (``event_type_column``; ``channel_column`` through ``channel_values``).
    """

    ts_column: str
    event_type: str | None = None
    event_type_column: str | None = None
    channel: Channel | None = None
    channel_column: str | None = None
    channel_values: dict[str, Channel] = field(default_factory=dict)
    identifiers: tuple[tuple[IdentifierKind, str], ...] = ()
    person: tuple[tuple[str, str], ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SourceFile:
    """One file a source system exports, and what its columns mean."""

    source: str
    path: str
    format: FileFormat
    record_id: str
    key_columns: tuple[str, ...]
    timestamp_columns: tuple[str, ...]
    description: str
    mapping: TouchpointMapping
    id_prefix: str


@dataclass(frozen=True)
class Coded:
    """A string column as positions into a table of distinct values (-1 for null).

    Gathering, sorting and writing codes is far cheaper than moving Python strings,
    which matters for the large files (clickstream, network, billing).
    """

    codes: IntArray
    values: pa.Array[Any]

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows: NDArray[Any]) -> Coded:
        return Coded(self.codes[rows], self.values)

    def arrow(self) -> pa.Array[Any]:
        """The column as a plain Arrow string array."""
        return self.values.take(pa.array(self.codes, pa.int64(), mask=self.codes < 0))

    def strings(self, rows: NDArray[Any]) -> list[str]:
        """The (non-null) values at ``rows`` as Python strings."""
        found = self.values.take(pa.array(self.codes[rows], pa.int64())).to_pylist()
        return [str(value) for value in found]


Column = NDArray[Any] | Coded
"""A draft column: a NumPy array (numbers, epoch seconds, object strings) or ``Coded``."""


def coded(values: Strings | pa.Array[Any], codes: IntArray) -> Coded:
    """Rows ``codes`` of ``values`` as a ``Coded`` column."""
    table = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    return Coded(np.asarray(codes, dtype=np.int64), table)


def fixed_width(prefix: str, numbers: IntArray, digits: int) -> pa.Array[Any]:
    """``prefix`` + each number zero-padded to ``digits``, built straight into Arrow buffers."""
    count = len(numbers)
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    width = len(head) + digits
    # Built one character position per row of a (width, count) array, then transposed:
    # contiguous writes are much faster than filling a column of a (count, width) array.
    characters = np.empty((width, count), dtype=np.uint8)
    characters[: len(head)] = head[:, None]
    rest = np.array(numbers, dtype=np.int64)
    if count and rest.max() < 2**32:
        rest = rest.astype(np.uint32)  # 32-bit division is several times faster
    for position in range(width - 1, len(head) - 1, -1):
        quotient = rest // 10
        characters[position] = rest - quotient * 10 + 48
        rest = quotient
    offsets = np.arange(count + 1, dtype=np.int32) * width
    text = np.ascontiguousarray(characters.T)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets.data), pa.py_buffer(text.data))


@dataclass(frozen=True)
class Records:
    """One chunk's rows of one source file, with the truth about each row."""

    file: SourceFile
    table: pa.Table
    people: IntArray
    """Chunk position of each row's true person."""
    person_ids: pa.Array[Any]
    """Person ids of the chunk, indexed by ``people``."""
    fraud: BoolArray
    """Whether the row was made by a fraudster acting as the person."""
    noise: NoiseLog

    @property
    def person_id(self) -> pa.Array[Any]:
        """The true person id of each row."""
        return self.person_ids.take(pa.array(self.people, pa.int64()))

    @property
    def record_ids(self) -> pa.Array[Any]:
        """The rows' record ids, in file order."""
        return self.table.column(self.file.record_id).combine_chunks()


class Draft:
    """Columns of one source file for one chunk, before they become ``Records``.

    Rows are put in time order and given record ids on creation, so noise added
    afterwards can be logged against the record ids that end up in the file.
    """

    def __init__(
        self,
        file: SourceFile,
        chunk: int,
        people: IntArray,
        person_ids: pa.Array[Any],
        sort_ts: IntArray,
        columns: dict[str, Column],
        *,
        fraud: BoolArray | None = None,
        hidden: dict[str, NDArray[Any]] | None = None,
    ) -> None:
        order = np.argsort(sort_ts, kind="stable")
        self.file = file
        self.order = order
        self.people = people[order]
        """Chunk position of each row's true person."""
        self.person_ids = person_ids
        self.fraud = np.zeros(len(order), dtype=bool) if fraud is None else fraud[order]
        self.hidden = {name: values[order] for name, values in (hidden or {}).items()}
        """Columns that travel with the rows but are not written (truth, links)."""
        self.record_ids = fixed_width(f"{file.id_prefix}{chunk:04d}", np.arange(len(order)), 7)
        self.columns: dict[str, Column] = {
            file.record_id: Coded(np.arange(len(order)), self.record_ids),
            **{name: values[order] for name, values in columns.items()},
        }
        self.noise = NoiseLog()

    def __len__(self) -> int:
        return len(self.order)

    def ids(self, rows: NDArray[Any]) -> Coded:
        """The record ids of ``rows``, to reference them from another file."""
        return Coded(np.asarray(rows, dtype=np.int64), self.record_ids)

    def _log(self, rows: NDArray[Any], field_name: str, kind: str) -> None:
        self.noise.add(self.ids(rows).strings(np.arange(len(rows))), field_name, kind)

    def vary(
        self,
        column: str,
        rate: float | FloatArray,
        change: Callable[[str], str | None],
        rng: np.random.Generator,
        kind: str,
    ) -> None:
        """Change a ``rate`` share of the values of ``column`` with ``change`` and log it.

        ``change`` returns ``None`` where the noise does not apply (a name without a
        nickname); those values stay as they were and are not logged.
        """
        values = self.columns[column]
        present = values.codes >= 0 if isinstance(values, Coded) else values != None  # noqa: E711
        chosen = np.flatnonzero((rng.random(len(values)) < rate) & present)
        if len(chosen) == 0:
            return
        old = values.strings(chosen) if isinstance(values, Coded) else values[chosen].tolist()
        new = [change(value) for value in old]
        keep = np.array([n is not None and n != o for n, o in zip(new, old, strict=True)], bool)
        hits = chosen[keep]
        changed = [n for n, k in zip(new, keep.tolist(), strict=True) if k]
        if isinstance(values, Coded):
            codes = values.codes.copy()
            codes[hits] = len(values.values) + np.arange(len(hits))
            table = pa.concat_arrays([values.values, pa.array(changed, pa.string())])
            self.columns[column] = Coded(codes, table)
        else:
            updated = values.copy()
            updated[hits] = np.array(changed, dtype=object)
            self.columns[column] = updated
        self._log(hits, column, kind)

    def blank(self, column: str, rate: float | FloatArray, rng: np.random.Generator) -> None:
        """Leave a ``rate`` share of ``column`` empty (a field not captured) and log it."""
        values = self.columns[column]
        present = values.codes >= 0 if isinstance(values, Coded) else values != None  # noqa: E711
        chosen = np.flatnonzero((rng.random(len(values)) < rate) & present)
        if isinstance(values, Coded):
            codes = values.codes.copy()
            codes[chosen] = -1
            self.columns[column] = Coded(codes, values.values)
        else:
            updated = values.copy()
            updated[chosen] = None
            self.columns[column] = updated
        self._log(chosen, column, "missing")

    def swap(self, first: str, second: str, rate: float, rng: np.random.Generator) -> None:
        """Swap two object columns in a ``rate`` share of rows (first and last name mixed)."""
        a, b = self.columns[first], self.columns[second]
        if isinstance(a, Coded) or isinstance(b, Coded):
            raise TypeError("swap works on object columns only")
        both = (a != None) & (b != None)  # noqa: E711
        chosen = np.flatnonzero((rng.random(len(a)) < rate) & both)
        a, b = a.copy(), b.copy()
        a[chosen], b[chosen] = b[chosen], a[chosen].copy()
        self.columns[first], self.columns[second] = a, b
        self._log(chosen, f"{first}+{second}", "swapped")

    def records(self) -> Records:
        """Freeze the draft into an Arrow table with typed columns."""
        arrays = {
            name: _arrow(values, name in self.file.timestamp_columns)
            for name, values in self.columns.items()
        }
        return Records(
            file=self.file,
            table=pa.table(arrays),
            people=self.people,
            person_ids=self.person_ids,
            fraud=self.fraud,
            noise=self.noise,
        )


def _arrow(values: Column, timestamp: bool) -> pa.Array[Any]:
    if isinstance(values, Coded):
        return values.arrow()
    if timestamp:
        return pa.array(values, pa.timestamp("s", tz="UTC"), mask=values == 0)
    if values.dtype == object:
        return pa.array(values, pa.string())
    if values.dtype.kind == "f":
        return pa.array(values, pa.float64(), from_pandas=True)
    if values.dtype.kind == "b":
        return pa.array(values, pa.bool_())
    return pa.array(values, pa.int64())


def chunk_random(rng: np.random.Generator) -> random.Random:
    """A ``random.Random`` for per-string noise, seeded from the chunk's generator."""
    return random.Random(int(rng.integers(0, 2**63)))


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _iso(seconds: int) -> str:
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def touchpoints(records: Records) -> Iterator[tuple[str, Touchpoint]]:
    """Each row of ``records`` as the canonical Touchpoint, with its true person id."""
    file, mapping, table = records.file, records.file.mapping, records.table
    columns: dict[str, list[Any]] = {}
    for name in table.column_names:
        column = table.column(name)
        if name in file.timestamp_columns:
            column = column.cast(pa.int64())
        columns[name] = column.to_pylist()
    ids = columns[file.record_id]
    stamps = columns[mapping.ts_column]
    people = [str(person) for person in records.person_id.to_pylist()]
    for row, (record_id, person) in enumerate(zip(ids, people, strict=True)):
        event_type = mapping.event_type or columns[mapping.event_type_column or ""][row]
        if mapping.channel is not None:
            channel = mapping.channel
        else:
            channel = mapping.channel_values[columns[mapping.channel_column or ""][row]]
        identifiers = {
            kind.value: value
            for kind, column_name in mapping.identifiers
            if (value := columns[column_name][row])
        }
        person_fields = {
            name: value
            for name, column_name in mapping.person
            if (value := columns[column_name][row]) is not None
        }
        attributes: dict[str, AttributeValue] = {}
        for key, column_name in mapping.attributes:
            value = columns[column_name][row]
            if value is None:
                continue
            attributes[key] = _iso(value) if column_name in file.timestamp_columns else value
        yield (
            person,
            Touchpoint(
                event_id=derived_event_id(file.source, record_id),
                source=file.source,
                event_type=event_type,
                channel=channel,
                ts=_utc(stamps[row]),
                identifiers=identifiers,
                person=PersonFields(**person_fields),
                attributes=attributes,
            ),
        )


_M = IdentifierKind

CRM_CUSTOMERS: Final = SourceFile(
    source="crm",
    path="crm/customers.csv",
    format=FileFormat.CSV,
    record_id="crm_id",
    key_columns=("crm_id", "account_id", "msisdn", "email"),
    timestamp_columns=("created_at",),
    description="Customer master: one row per subscriber line, some people registered twice",
    id_prefix="CRM",
    mapping=TouchpointMapping(
        ts_column="created_at",
        event_type="customer_registered",
        channel=Channel.CRM,
        identifiers=((_M.ACCOUNT, "account_id"), (_M.MSISDN, "msisdn"), (_M.EMAIL, "email")),
        person=(
            ("first_name", "first_name"),
            ("last_name", "last_name"),
            ("dob", "date_of_birth"),
            ("postcode", "postcode"),
            ("address", "address_line1"),
        ),
        attributes=(("crm_id", "crm_id"), ("title", "title"), ("town", "town")),
    ),
)

BILLS: Final = SourceFile(
    source="billing",
    path="billing/bills.parquet",
    format=FileFormat.PARQUET,
    record_id="bill_id",
    key_columns=("account_id",),
    timestamp_columns=("bill_date", "period_start", "period_end"),
    description="Monthly bills per account (family plans: one bill for several lines)",
    id_prefix="BIL",
    mapping=TouchpointMapping(
        ts_column="bill_date",
        event_type="bill_issued",
        channel=Channel.BILLING,
        identifiers=((_M.ACCOUNT, "account_id"),),
        attributes=(
            ("amount", "amount_gbp"),
            ("roaming_amount", "roaming_gbp"),
            ("lines", "lines"),
        ),
    ),
)

PAYMENTS: Final = SourceFile(
    source="billing",
    path="billing/payments.parquet",
    format=FileFormat.PARQUET,
    record_id="payment_id",
    key_columns=("account_id", "bill_id"),
    timestamp_columns=("paid_at",),
    description="Payments against bills; failed direct debits are retried",
    id_prefix="PAY",
    mapping=TouchpointMapping(
        ts_column="paid_at",
        event_type="payment",
        channel=Channel.BILLING,
        identifiers=((_M.ACCOUNT, "account_id"),),
        attributes=(("amount", "amount_gbp"), ("method", "method"), ("status", "status")),
    ),
)

BILL_SHOCKS: Final = SourceFile(
    source="billing",
    path="billing/bill_shocks.parquet",
    format=FileFormat.PARQUET,
    record_id="alert_id",
    key_columns=("account_id", "bill_id"),
    timestamp_columns=("detected_at",),
    description="Bill-shock alerts: a bill far above the account's usual amount",
    id_prefix="SHK",
    mapping=TouchpointMapping(
        ts_column="detected_at",
        event_type="bill_shock",
        channel=Channel.BILLING,
        identifiers=((_M.ACCOUNT, "account_id"),),
        attributes=(("amount", "amount_gbp"), ("ratio", "ratio")),
    ),
)

TERMINATIONS: Final = SourceFile(
    source="billing",
    path="billing/terminations.parquet",
    format=FileFormat.PARQUET,
    record_id="termination_id",
    key_columns=("account_id", "msisdn"),
    timestamp_columns=("ceased_at",),
    description="Lines ceased: ported out to another operator, or cancelled",
    id_prefix="TRM",
    mapping=TouchpointMapping(
        ts_column="ceased_at",
        event_type_column="reason",
        channel=Channel.BILLING,
        identifiers=((_M.ACCOUNT, "account_id"), (_M.MSISDN, "msisdn")),
        attributes=(("final_amount", "final_bill_gbp"),),
    ),
)

CARE_CALLS: Final = SourceFile(
    source="care",
    path="care/calls.csv",
    format=FileFormat.CSV,
    record_id="call_id",
    key_columns=("caller_number", "account_id"),
    timestamp_columns=("started_at",),
    description="IVR and agent calls; the caller number is written as each switch or desktop "
    "writes it, and is sometimes a household member's phone",
    id_prefix="CALL",
    mapping=TouchpointMapping(
        ts_column="started_at",
        event_type_column="reason",
        channel_column="handled_by",
        channel_values={"ivr": Channel.IVR, "agent": Channel.CARE},
        identifiers=((_M.MSISDN, "caller_number"), (_M.ACCOUNT, "account_id")),
        attributes=(
            ("outcome", "outcome"),
            ("offer_id", "offer_id"),
            ("duration_s", "duration_s"),
            ("agent_id", "agent_id"),
        ),
    ),
)

CARE_TICKETS: Final = SourceFile(
    source="care",
    path="care/tickets.jsonl",
    format=FileFormat.JSONL,
    record_id="ticket_id",
    key_columns=("msisdn", "call_id"),
    timestamp_columns=("opened_at", "closed_at"),
    description="Trouble tickets raised from calls; network tickets name the cell",
    id_prefix="TKT",
    mapping=TouchpointMapping(
        ts_column="opened_at",
        event_type="ticket_opened",
        channel=Channel.CARE,
        identifiers=((_M.MSISDN, "msisdn"),),
        attributes=(
            ("category", "category"),
            ("cell_id", "cell_id"),
            ("closed_at", "closed_at"),
            ("call_id", "call_id"),
        ),
    ),
)

CSAT_RESPONSES: Final = SourceFile(
    source="care",
    path="care/csat.csv",
    format=FileFormat.CSV,
    record_id="response_id",
    key_columns=("msisdn", "call_id"),
    timestamp_columns=("answered_at",),
    description="CSAT survey answers (1-5) sent by SMS after agent calls",
    id_prefix="CSAT",
    mapping=TouchpointMapping(
        ts_column="answered_at",
        event_type="csat_response",
        channel=Channel.SMS,
        identifiers=((_M.MSISDN, "msisdn"),),
        attributes=(("csat", "score"), ("call_id", "call_id")),
    ),
)

SHOP_VISITS: Final = SourceFile(
    source="retail",
    path="retail/shop_visits.csv",
    format=FileFormat.CSV,
    record_id="visit_id",
    key_columns=("msisdn", "email", "account_id", "imei"),
    timestamp_columns=("visited_at",),
    description="Shop visits, purchases, SIM swaps and accepted offers, keyed in by staff; "
    "the till and its IP are shared by everyone served in the shop",
    id_prefix="VST",
    mapping=TouchpointMapping(
        ts_column="visited_at",
        event_type_column="visit_type",
        channel=Channel.RETAIL,
        identifiers=(
            (_M.MSISDN, "msisdn"),
            (_M.EMAIL, "email"),
            (_M.ACCOUNT, "account_id"),
            (_M.IMEI, "imei"),
        ),
        person=(
            ("first_name", "first_name"),
            ("last_name", "last_name"),
            ("dob", "date_of_birth"),
            ("postcode", "postcode"),
        ),
        attributes=(
            ("shop_id", "shop_id"),
            ("till_id", "till_id"),
            ("till_ip", "till_ip"),
            ("product", "product"),
            ("amount", "amount_gbp"),
            ("offer_id", "offer_id"),
        ),
    ),
)

CLICKSTREAM: Final = SourceFile(
    source="clickstream",
    path="clickstream/events.jsonl",
    format=FileFormat.JSONL,
    record_id="hit_id",
    key_columns=("cookie_id", "email", "login_msisdn"),
    timestamp_columns=("ts",),
    description="App and web hits keyed by cookie; logins add an MSISDN or an email",
    id_prefix="HIT",
    mapping=TouchpointMapping(
        ts_column="ts",
        event_type_column="event",
        channel_column="channel",
        channel_values={"app": Channel.APP, "web": Channel.WEB},
        identifiers=(
            (_M.COOKIE, "cookie_id"),
            (_M.EMAIL, "email"),
            (_M.MSISDN, "login_msisdn"),
        ),
        attributes=(
            ("session_id", "session_id"),
            ("page", "page"),
            ("ip", "ip"),
            ("offer_id", "offer_id"),
            ("amount", "amount_gbp"),
        ),
    ),
)

CELL_KPIS: Final = SourceFile(
    source="network",
    path="network/cell_kpis.parquet",
    format=FileFormat.PARQUET,
    record_id="kpi_id",
    key_columns=("imsi", "msisdn", "imei", "cell_id"),
    timestamp_columns=("period_start", "period_end"),
    description="Probe metrics per subscriber, device and cell per month (shares in [0, 1])",
    id_prefix="KPI",
    mapping=TouchpointMapping(
        ts_column="period_start",
        event_type="network_kpi",
        channel=Channel.NETWORK,
        identifiers=((_M.MSISDN, "msisdn"), (_M.IMEI, "imei")),
        attributes=(
            ("cell_id", "cell_id"),
            ("imsi", "imsi"),
            ("period_end", "period_end"),
            ("call_drop_rate", "call_drop_rate"),
            ("call_quality_impairment", "call_quality_impairment"),
            ("low_bitrate_share", "low_bitrate_share"),
            ("video_stalling_share", "video_stalling_share"),
        ),
    ),
)

SOURCE_FILES: Final = (
    CRM_CUSTOMERS,
    BILLS,
    PAYMENTS,
    BILL_SHOCKS,
    TERMINATIONS,
    CARE_CALLS,
    CARE_TICKETS,
    CSAT_RESPONSES,
    SHOP_VISITS,
    CLICKSTREAM,
    CELL_KPIS,
)
"""Every source file the generator writes (paths relative to the output folder)."""
