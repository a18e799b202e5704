"""KPIs against plain-Python references on random lakes (ties in time included)."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.kpis import run_kpi
from tests.unit.journeys.test_kpis_lake import build_lake, day, tp, write_reaches

CHANNELS = ("care", "ivr", "ivr", "app", "web", "web", "retail", "network")
EVENTS = ("general_enquiry", "device_support", "ticket_opened", "csat_response")
OUTCOMES = ("resolved", "resolved", "unresolved", None)
CONTACT = ("care", "ivr")
WEEK = timedelta(days=7)


@st.composite
def random_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to 50 touchpoints of 3 customers at 40 moments: 10-minute steps on 10 days.

    Whole days and minutes make ties, gaps of exactly 30 minutes and horizons of
    exactly 7 days common, so the boundaries of the definitions are exercised.
    """
    rows = []
    for n in range(draw(st.integers(1, 50))):
        outcome = draw(st.sampled_from(OUTCOMES))
        extra = {} if outcome is None else {"outcome": outcome}
        rows.append(
            tp(
                f"c{draw(st.integers(0, 2))}",
                f"e{draw(st.integers(0, 10**6)):07d}-{n:02d}",
                draw(st.sampled_from(EVENTS)),
                draw(st.sampled_from(CHANNELS)),
                day(draw(st.integers(0, 9))) + timedelta(minutes=10 * draw(st.integers(0, 3))),
                **extra,
            )
        )
    return rows


def timelines(rows: list[dict[str, Any]], keep: Any) -> dict[str, list[dict[str, Any]]]:
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["ts"], r["event_id"])):
        if keep(row):
            by_customer[row["customer"]].append(row)
    return by_customer


def is_contact(row: dict[str, Any]) -> bool:
    return row["channel"] in CONTACT and row["event_type"] not in ("ticket_opened", "csat_response")


def monday(ts: datetime) -> date:
    return ts.date() - timedelta(days=ts.weekday())


def contact_reference(rows: list[dict[str, Any]], days: int) -> dict[date, list[int]]:
    """Per ISO week: [contacts, repeated within ``days``, resolved first time]."""
    weeks: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for contacts in timelines(rows, is_contact).values():
        for here, after in zip(contacts, [*contacts[1:], None], strict=True):
            repeated = after is not None and after["ts"] - here["ts"] <= timedelta(days=days)
            resolved = json.loads(here["attributes"]).get("outcome") == "resolved"
            counts = weeks[monday(here["ts"])]
            counts[0] += 1
            counts[1] += repeated
            counts[2] += resolved and not repeated
    return dict(weeks)


def containment_reference(rows: list[dict[str, Any]]) -> list[int]:
    """[visits, contained visits] with a 30-minute visit gap and a 7-day horizon."""
    assisted = timelines(rows, lambda r: r["channel"] in ("care", "ivr", "retail"))
    visits = contained = 0
    for customer, digital in timelines(rows, lambda r: r["channel"] in ("app", "web")).items():
        spans: list[list[datetime]] = []
        for row in digital:
            if spans and row["ts"] - spans[-1][1] <= timedelta(minutes=30):
                spans[-1][1] = row["ts"]
            else:
                spans.append([row["ts"], row["ts"]])
        for start, end in spans:
            visits += 1
            contained += not any(start <= a["ts"] <= end + WEEK for a in assisted.get(customer, []))
    return [visits, contained]


@settings(max_examples=80, deadline=None)
@given(random_rows(), st.integers(1, 7))
def test_contact_kpis_match_the_reference(rows: list[dict[str, Any]], days: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        lake = build_lake(Path(folder), rows)
        repeat = run_kpi("repeat_contacts", lake, {}, {"days": days}, grain="week").rows
        params = {"days": days}
        resolution = run_kpi("first_contact_resolution", lake, {}, params, grain="week").rows
        containment = run_kpi("digital_containment", lake, {}).rows
    expected = contact_reference(rows, days)
    assert {r.period: [r.denominator, r.numerator] for r in repeat} == {
        week: counts[:2] for week, counts in expected.items()
    }
    assert {r.period: r.numerator for r in resolution} == {
        week: counts[2] for week, counts in expected.items()
    }
    visits, contained = containment_reference(rows)
    assert [(r.denominator, r.numerator) for r in containment] == (
        [(visits, contained)] if visits else []
    )


MILESTONES = ("m1", "m2", "m3")


@st.composite
def random_reaches(draw: st.DrawFn) -> list[tuple[str, str, int, datetime]]:
    """Reaches of m1..m3 by 5 customers, each milestone at most once a customer."""
    keys = st.tuples(st.integers(0, 4), st.sampled_from(MILESTONES))
    reached = draw(st.dictionaries(keys, st.integers(0, 40), max_size=15))
    return [
        (f"cust:c{customer}", milestone, 1, day(days))
        for (customer, milestone), days in reached.items()
    ]


def funnel_reference(reaches: list[tuple[str, str, int, datetime]], window: int) -> list[int]:
    """How many customers reached each step of m1 -> m2 -> m3."""
    times: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for customer, milestone, _, at in reaches:
        times[customer, milestone].append(at)
    reached = [0, 0, 0]
    for customer in {r[0] for r in reaches}:
        if not times[customer, "m1"]:
            continue
        entered = previous = min(times[customer, "m1"])
        reached[0] += 1
        for step, milestone in enumerate(MILESTONES[1:], start=1):
            later = [
                t
                for t in times[customer, milestone]
                if previous <= t <= entered + timedelta(days=window)
            ]
            if not later:
                break
            previous = min(later)
            reached[step] += 1
    return reached


@settings(max_examples=40, deadline=None)
@given(random_reaches(), st.integers(1, 20))
def test_funnel_matches_the_reference(
    reaches: list[tuple[str, str, int, datetime]], window: int
) -> None:
    params = {"steps": list(MILESTONES), "window_days": window}
    with tempfile.TemporaryDirectory() as folder:
        lake = build_lake(Path(folder), [tp("c0", "e1", "login", "app", day(0))])
        write_reaches(Path(folder), [reaches])
        conversion = run_kpi("funnel_conversion", lake, {}, params).rows
        drop_off = run_kpi("funnel_drop_off", lake, {}, params).rows
    reached = funnel_reference(reaches, window)
    if not reached[0]:
        assert conversion == [] and drop_off == []
        return
    assert [(r.step, r.numerator, r.denominator) for r in conversion] == [
        (1, reached[0], reached[0]),
        (2, reached[1], reached[0]),
        (3, reached[2], reached[1]),
    ]
    assert [(r.numerator, r.denominator) for r in drop_off] == [
        (reached[0] - reached[1], reached[0]),
        (reached[1] - reached[2], reached[1]),
    ]
