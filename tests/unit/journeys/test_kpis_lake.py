"""The hand-made lake the KPI and segment tests compute expectations on, and checks of it.

Five customers, times as days after 2024-01-01 00:00 UTC (a Monday). Care contacts
(care/ivr, not tickets or CSAT answers) are marked A1.., B1.., C1, E1..:

ann  registered 2021-06-01 09:00 (crm); A1 d1 10:00 general_enquiry resolved (care);
     A2 d3 10:00 bill_dispute ticket_raised (care); CSAT 2 about A2 (call_id) d4;
     app login d5 10:00, app page_view d5 10:10, web page_view d5 11:00;
     bill 30 d10; app login d18 09:00; A3 d20 10:00 device_support self_service (ivr);
     CSAT 4 about A3 d21 and an unscored CSAT ("n/a") d21; port_out d60 (billing)
bob  registered 2018-01-01 09:00; B1 and B2 at the same millisecond d2 09:00
     (network_complaint resolved, general_enquiry resolved), a ticket d2 09:30;
     CSAT 4 without call_id d3; web page_view d5 10:00; retail enquiry d6; bill 60
     d10; B3 d30 sim_swap sim_swapped (care)
cat  web login d40 10:00, app page_view d40 10:05; CSAT 5 without call_id d41 (no
     contact before it); a network_kpi d41; C1 d100 10:00 general_enquiry resolved
     (care); cancellation d200 12:00 (billing, the lake's latest touchpoint)
dan  registered 2023-01-01 09:00; network_kpi d1; bills 10 and 20 (d10, d40)
eve  E1..E4 d150 10:00, 10:10, 10:20, 10:30 device_support self_service (ivr); E3 and
     E4 were resolved to ``eve2``, merged into eve later (``MERGE_MAP``)

Milestone reaches (12:00 on the day; a customer reaches a milestone version at most
once): bill_shock v2 ann d2, bob d1, cat d50, eve d46 and v1 dan d1 (a stale
version); care_call ann d3, bob d40, cat d51, dan d5, eve d45 (before her bill
shock); port_out_request ann d10 and ``cat_old`` d52 (merged into cat).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.frame import FRAME_SCHEMA
from ingest.lake import Lake
from journeys.milestones import REACH_SCHEMA

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MERGE_MAP = {"eve2": "cust:eve", "cat_old": "cust:cat"}
LAKE_COLUMNS = ["customer", "event_id", "source", "event_type", "channel", "ts", "attributes"]
"""The columns of a ``tp`` row: what KPI and segment SQL reads of the lake."""


def day(days: int, hour: int = 0, minute: int = 0) -> datetime:
    """``days`` after 2024-01-01 at ``hour:minute`` UTC."""
    return T0 + timedelta(days=days, hours=hour, minutes=minute)


def tp(
    customer: str,
    event_id: str,
    event_type: str,
    channel: str,
    ts: datetime,
    source: str | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    """One touchpoint row of the lake (the customer as the resolver wrote it)."""
    return {
        "customer": customer if customer == "eve2" else f"cust:{customer}",
        "event_id": event_id,
        "source": source or channel,
        "event_type": event_type,
        "channel": channel,
        "ts": ts,
        "attributes": json.dumps(attributes),
    }


def _contact(
    customer: str, call: str, event_type: str, channel: str, ts: datetime, outcome: str
) -> dict[str, Any]:
    return tp(customer, f"care-CALL{call}", event_type, channel, ts, "care", outcome=outcome)


TOUCHPOINTS = [
    tp("ann", "crm-ann", "customer_registered", "crm", datetime(2021, 6, 1, 9, tzinfo=UTC)),
    _contact("ann", "A1", "general_enquiry", "care", day(1, 10), "resolved"),
    _contact("ann", "A2", "bill_dispute", "care", day(3, 10), "ticket_raised"),
    tp("ann", "csat-1", "csat_response", "sms", day(4, 10), "care", csat=2, call_id="CALLA2"),
    tp("ann", "web-1", "login", "app", day(5, 10), "clickstream"),
    tp("ann", "web-2", "page_view", "app", day(5, 10, 10), "clickstream"),
    tp("ann", "web-3", "page_view", "web", day(5, 11), "clickstream"),
    tp("ann", "bill-1", "bill_issued", "billing", day(10, 6), amount=30.0),
    tp("ann", "web-4", "login", "app", day(18, 9), "clickstream"),
    _contact("ann", "A3", "device_support", "ivr", day(20, 10), "self_service"),
    tp("ann", "csat-2", "csat_response", "sms", day(21, 10), "care", csat=4, call_id="CALLA3"),
    tp("ann", "csat-3", "csat_response", "sms", day(21, 11), "care", csat="n/a"),
    tp("ann", "bill-2", "port_out", "billing", day(60, 12)),
    tp("bob", "crm-bob", "customer_registered", "crm", datetime(2018, 1, 1, 9, tzinfo=UTC)),
    _contact("bob", "B1", "network_complaint", "care", day(2, 9), "resolved"),
    _contact("bob", "B2", "general_enquiry", "care", day(2, 9), "resolved"),
    tp("bob", "ticket-1", "ticket_opened", "care", day(2, 9, 30), "care", call_id="CALLB1"),
    tp("bob", "csat-4", "csat_response", "sms", day(3, 10), "care", csat=4),
    tp("bob", "web-5", "page_view", "web", day(5, 10), "clickstream"),
    tp("bob", "shop-1", "enquiry", "retail", day(6, 10)),
    tp("bob", "bill-3", "bill_issued", "billing", day(10, 6), amount=60.0),
    _contact("bob", "B3", "sim_swap", "care", day(30, 10), "sim_swapped"),
    tp("cat", "web-6", "login", "web", day(40, 10), "clickstream"),
    tp("cat", "web-7", "page_view", "app", day(40, 10, 5), "clickstream"),
    tp("cat", "csat-5", "csat_response", "sms", day(41, 10), "care", csat=5),
    tp("cat", "net-1", "network_kpi", "network", day(41)),
    _contact("cat", "C1", "general_enquiry", "care", day(100, 10), "resolved"),
    tp("cat", "bill-4", "cancellation", "billing", day(200, 12)),
    tp("dan", "crm-dan", "customer_registered", "crm", datetime(2023, 1, 1, 9, tzinfo=UTC)),
    tp("dan", "net-2", "network_kpi", "network", day(1)),
    tp("dan", "bill-5", "bill_issued", "billing", day(10, 6), amount=10.0),
    tp("dan", "bill-6", "bill_issued", "billing", day(40, 6), amount=20.0),
    _contact("eve", "E1", "device_support", "ivr", day(150, 10), "self_service"),
    _contact("eve", "E2", "device_support", "ivr", day(150, 10, 10), "self_service"),
    _contact("eve2", "E3", "device_support", "ivr", day(150, 10, 20), "self_service"),
    _contact("eve2", "E4", "device_support", "ivr", day(150, 10, 30), "self_service"),
]

REACHES = [
    [
        ("cust:ann", "bill_shock", 2, day(2, 12)),
        ("cust:bob", "bill_shock", 2, day(1, 12)),
        ("cust:cat", "bill_shock", 2, day(50, 12)),
        ("cust:eve", "bill_shock", 2, day(46, 12)),
        ("cust:dan", "bill_shock", 1, day(1, 12)),
    ],
    [
        ("cust:ann", "care_call", 1, day(3, 12)),
        ("cust:bob", "care_call", 1, day(40, 12)),
        ("cust:cat", "care_call", 1, day(51, 12)),
        ("cust:dan", "care_call", 1, day(5, 12)),
        ("cust:eve", "care_call", 1, day(45, 12)),
        ("cust:ann", "port_out_request", 1, day(10, 12)),
        ("cat_old", "port_out_request", 1, day(52, 12)),
    ],
]


def frame(rows: list[dict[str, Any]]) -> pa.Table:
    """Touchpoint rows as a lake frame (identifiers and person fields absent)."""
    columns: dict[str, Any] = {name: [None] * len(rows) for name in FRAME_SCHEMA.names}
    for name in ("event_id", "source", "event_type", "channel", "ts", "attributes"):
        columns[name] = [row[name] for row in rows]
    columns["origin"] = ["hand-made"] * len(rows)
    columns["origin_row"] = list(range(1, len(rows) + 1))
    return pa.table(columns, schema=FRAME_SCHEMA)


def write_reaches(root: Path, files: list[list[tuple[str, str, int, datetime]]]) -> None:
    """Milestone reach files of the materialisation's shape under ``root/milestones``."""
    folder = root / "milestones"
    folder.mkdir(parents=True, exist_ok=True)
    for number, reaches in enumerate(files):
        table = pa.table(
            {
                "customer": [r[0] for r in reaches],
                "milestone": [r[1] for r in reaches],
                "version": [r[2] for r in reaches],
                "reached_at": [r[3] for r in reaches],
                "evidence": [[f"ev-{r[0]}-{r[1]}"] for r in reaches],
            },
            schema=REACH_SCHEMA,
        )
        pq.write_table(table, folder / f"part-{number:06d}.parquet")


def build_lake(root: Path, touchpoints: list[dict[str, Any]] | None = None) -> Lake:
    """The hand-made lake (or ``touchpoints``) and its milestone reaches at ``root``."""
    rows = TOUCHPOINTS if touchpoints is None else touchpoints
    lake = Lake(root)
    half = len(rows) // 2  # two parts, two batches: readers must see the union
    for part, chunk in enumerate((rows[:half], rows[half:])):
        customers = pa.array([row["customer"] for row in chunk], pa.string())
        lake.append(frame(chunk), customers, f"part-{part}", part + 1)
    if touchpoints is None:
        write_reaches(root, REACHES)
    return lake


def test_the_lake_holds_every_touchpoint_once(tmp_path: Path) -> None:
    lake = build_lake(tmp_path)
    table = lake.touchpoints(["event_id", "customer"], MERGE_MAP)
    assert table.num_rows == len(TOUCHPOINTS)
    assert len(set(table.column("event_id").to_pylist())) == len(TOUCHPOINTS)
    customers = set(table.column("customer").to_pylist())
    assert customers == {f"cust:{name}" for name in ("ann", "bob", "cat", "dan", "eve")}
