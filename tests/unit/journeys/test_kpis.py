"""Every KPI against numbers worked out by hand on the lake of ``test_kpis_lake``."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from graph.errors import InvalidInput
from ingest.lake import Lake
from journeys.kpis import KpiQuery, KpiRunner, UnknownKpi, kpi_definitions, run_kpi
from tests.unit.journeys.test_kpis_lake import MERGE_MAP, build_lake, day

FUNNEL: dict[str, Any] = {"steps": ["bill_shock", "care_call", "port_out_request"]}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return build_lake(tmp_path_factory.mktemp("kpi-lake"))


def rows(
    lake: Lake, name: str, params: dict[str, Any] | None = None, **query: Any
) -> list[tuple[Any, ...]]:
    """(period, segment, dimension, step, numerator, denominator) of each row."""
    result = run_kpi(name, lake, MERGE_MAP, params, **query)
    return [
        (r.period, r.segment, r.dimension, r.step, r.numerator, r.denominator) for r in result.rows
    ]


def values(
    lake: Lake, name: str, params: dict[str, Any] | None = None, **query: Any
) -> list[float | None]:
    return [r.value for r in run_kpi(name, lake, MERGE_MAP, params, **query).rows]


def test_every_shipped_definition_runs_with_its_defaults(lake: Lake) -> None:
    required: dict[str, dict[str, Any]] = {
        "funnel_conversion": FUNNEL,
        "funnel_drop_off": FUNNEL,
        "time_to_milestone": {"milestone": "care_call"},
        "churn_after_milestone": {"milestone": "bill_shock"},
    }
    assert len(kpi_definitions()) >= 9
    for name, definition in kpi_definitions().items():
        result = run_kpi(name, lake, MERGE_MAP, required.get(name), grain="week")
        assert result.rows, name
        assert result.unit == definition.unit and result.title == definition.title


def test_funnel_conversion_within_the_window(lake: Lake) -> None:
    # Entered: ann d2, bob d1, cat d50, eve d46 (dan's bill_shock is of a stale
    # version). Care call: ann d3 yes; bob d40 is past d1 + 30; cat d51 yes; eve's d45
    # came before she entered. Port-out request: ann d10, cat d52 (as cat_old, merged).
    assert rows(lake, "funnel_conversion", FUNNEL) == [
        (None, None, "bill_shock", 1, 4, 4),
        (None, None, "care_call", 2, 2, 4),
        (None, None, "port_out_request", 3, 2, 2),
    ]
    assert values(lake, "funnel_conversion", FUNNEL) == pytest.approx([1, 1 / 2, 1])
    # Five days: ann's port-out request (d10) is past d2 + 5; cat's steps are not.
    narrow = rows(lake, "funnel_conversion", {**FUNNEL, "window_days": 5})
    assert [(r[4], r[5]) for r in narrow] == [(4, 4), (2, 4), (1, 2)]


def test_funnel_by_month_dates_customers_by_entry(lake: Lake) -> None:
    assert rows(lake, "funnel_conversion", FUNNEL, grain="month") == [
        (date(2024, 1, 1), None, "bill_shock", 1, 2, 2),  # ann, bob
        (date(2024, 1, 1), None, "care_call", 2, 1, 2),
        (date(2024, 1, 1), None, "port_out_request", 3, 1, 1),
        (date(2024, 2, 1), None, "bill_shock", 1, 2, 2),  # cat, eve
        (date(2024, 2, 1), None, "care_call", 2, 1, 2),
        (date(2024, 2, 1), None, "port_out_request", 3, 1, 1),
    ]


def test_funnel_drop_off_per_step(lake: Lake) -> None:
    assert rows(lake, "funnel_drop_off", FUNNEL) == [
        (None, None, "care_call", 2, 2, 4),
        (None, None, "port_out_request", 3, 0, 2),
    ]
    assert values(lake, "funnel_drop_off", FUNNEL) == pytest.approx([1 / 2, 0])


def test_time_to_milestone_from_the_first_touchpoint(lake: Lake) -> None:
    # ann: 2021-06-01 09:00 -> 2024-01-11 12:00 is 944 + 10 days and 3 hours;
    # cat: d40 10:00 -> d52 12:00 is 12 days and 2 hours.
    ann, cat = 954 + 3 / 24, 12 + 2 / 24
    (row,) = run_kpi("time_to_milestone", lake, MERGE_MAP, {"milestone": "port_out_request"}).rows
    assert row.count == 2 and row.numerator is None
    assert row.value == pytest.approx((ann + cat) / 2)
    assert row.statistics == pytest.approx(
        {"p50": (ann + cat) / 2, "p90": cat + 0.9 * (ann - cat), "mean": (ann + cat) / 2}
    )


def test_time_to_milestone_from_another_milestone(lake: Lake) -> None:
    # bill_shock -> care_call: ann 1, bob 39, cat 1; eve's care call came before her
    # bill shock; dan's only bill_shock is of a stale version. p90 of [1, 1, 39]:
    # 1 + 0.8 * 38.
    params = {"milestone": "care_call", "from_milestone": "bill_shock"}
    (row,) = run_kpi("time_to_milestone", lake, MERGE_MAP, params).rows
    assert row.count == 3
    assert row.statistics == pytest.approx({"p50": 1.0, "p90": 31.4, "mean": 41 / 3})


def test_repeat_contacts_within_seven_days(lake: Lake) -> None:
    # Repeated: A1 (A2 two days later), B1 (B2 at the same ms), E1, E2, E3 (E3 and E4
    # were eve2's: the merge map puts them on eve's timeline). Not: A2, A3, B2, B3,
    # C1, E4. The ticket and the CSAT answers are not contacts.
    assert rows(lake, "repeat_contacts") == [(None, None, None, None, 5, 11)]
    assert rows(lake, "repeat_contacts", {"days": 20})[0][4:] == (6, 11)  # and A2 (17 d)


def test_repeat_contacts_without_the_merge_map_splits_eve(lake: Lake) -> None:
    result = run_kpi("repeat_contacts", lake, {})
    assert (result.rows[0].numerator, result.rows[0].denominator) == (4, 11)


def test_repeat_contacts_by_week_and_by_reason(lake: Lake) -> None:
    assert rows(lake, "repeat_contacts", grain="week") == [
        (date(2024, 1, 1), None, None, None, 2, 4),  # A1, A2, B1, B2
        (date(2024, 1, 15), None, None, None, 0, 1),  # A3 on Sunday 21 January
        (date(2024, 1, 29), None, None, None, 0, 1),  # B3
        (date(2024, 4, 8), None, None, None, 0, 1),  # C1
        (date(2024, 5, 27), None, None, None, 3, 4),  # E1..E4
    ]
    by_reason = rows(lake, "repeat_contacts", {"by_reason": "true"})
    assert [(r[2], r[4], r[5]) for r in by_reason] == [
        ("bill_dispute", 0, 1),
        ("device_support", 3, 5),
        ("general_enquiry", 1, 3),
        ("network_complaint", 1, 1),
        ("sim_swap", 0, 1),
    ]


def test_a_window_picks_contacts_but_repeats_may_fall_after_it(lake: Lake) -> None:
    # Only A1 is in [2 Jan, 3 Jan); its repeat A2 on 4 January still counts.
    window: dict[str, Any] = {"since": day(1), "until": day(2)}
    assert rows(lake, "repeat_contacts", **window) == [(None, None, None, None, 1, 1)]
    later = rows(lake, "repeat_contacts", since=day(2))  # A1 left out
    assert later[0][4:] == (4, 10)


def test_first_contact_resolution(lake: Lake) -> None:
    # Resolved and not repeated: B2 and C1. A1 was resolved but repeated.
    assert rows(lake, "first_contact_resolution")[0][4:] == (2, 11)
    # Counting the IVR's self-service as resolved adds A3 and E4 (E1..E3 repeat).
    params = {"resolved_outcomes": "resolved,self_service"}
    assert rows(lake, "first_contact_resolution", params)[0][4:] == (4, 11)
    # B1 and B2 share a millisecond: B2 (the later event id) is the one not repeated.
    by_reason = rows(lake, "first_contact_resolution", {"by_reason": True})
    assert {r[2]: (r[4], r[5]) for r in by_reason} == {
        "bill_dispute": (0, 1),
        "device_support": (0, 5),
        "general_enquiry": (2, 3),
        "network_complaint": (0, 1),
        "sim_swap": (0, 1),
    }


def test_digital_containment(lake: Lake) -> None:
    # Visits: ann d5 10:00-10:10, ann d5 11:00 (50 min later), ann d18 (A3 on d20: not
    # contained), bob d5 (retail on d6: not contained), cat d40 (C1 is 60 days later).
    assert rows(lake, "digital_containment")[0][4:] == (3, 5)
    by_month = rows(lake, "digital_containment", grain="month")
    assert [(r[0], r[4], r[5]) for r in by_month] == [
        (date(2024, 1, 1), 2, 4),
        (date(2024, 2, 1), 1, 1),
    ]
    # One visit a day: ann's two d5 visits become one.
    assert rows(lake, "digital_containment", {"visit_gap_minutes": 60})[0][4:] == (2, 4)
    # Assisted within one day only: ann's d18 visit is now contained (A3 is 2 days on).
    assert rows(lake, "digital_containment", {"days": 1})[0][4:] == (4, 5)


def test_channel_mix_leaves_machine_channels_out(lake: Lake) -> None:
    shares = {r[2]: (r[4], r[5]) for r in rows(lake, "channel_mix")}
    assert shares == {
        "app": (4, 25),
        "care": (7, 25),  # the contacts and bob's ticket
        "ivr": (5, 25),
        "retail": (1, 25),
        "sms": (5, 25),  # CSAT answers, scored or not
        "web": (3, 25),
    }
    everything = {r[2]: r[4] for r in rows(lake, "channel_mix", {"exclude_channels": "none"})}
    assert (everything["network"], everything["billing"], everything["crm"]) == (2, 6, 3)


def test_churn_after_a_milestone(lake: Lake) -> None:
    # ann's port-out (d60) is within 90 days of her bill shock (d2); bob and eve never
    # left; cat's cancellation (d200) is 150 days after hers (d50).
    assert rows(lake, "churn_after_milestone", {"milestone": "bill_shock"})[0][4:] == (1, 4)
    # 160 days: cat's and eve's windows end after the lake's last touchpoint (d200).
    mature = rows(lake, "churn_after_milestone", {"milestone": "bill_shock", "days": 160})
    assert mature[0][4:] == (1, 2)
    params = {"milestone": "bill_shock", "days": 160, "mature_only": False}
    assert rows(lake, "churn_after_milestone", params)[0][4:] == (2, 4)


def test_csat_by_the_journey_to_the_contact(lake: Lake) -> None:
    # ann's 2 is about A2 (call_id), her 4 about A3; bob's 4 has no call_id: his latest
    # contact before it is B2 (B1 has the same ms, B2 the later event id); cat's 5
    # has no contact before it. ann's "n/a" has no score.
    assert rows(lake, "csat_by_journey") == [
        (None, None, "(no contact)", None, 5, 1),
        (None, None, "bill_dispute", None, 2, 1),
        (None, None, "device_support", None, 4, 1),
        (None, None, "general_enquiry", None, 4, 1),
    ]
    two = rows(lake, "csat_by_journey", {"journey_steps": 2})
    assert [r[2] for r in two] == [
        "(no contact)",
        "general_enquiry > bill_dispute",
        "login > device_support",
        "network_complaint > general_enquiry",
    ]


def test_segments_break_results_down_in_their_value_order(lake: Lake) -> None:
    # care_intensity: ann and bob medium (3 contacts), cat low (1), eve high (4).
    assert rows(lake, "repeat_contacts", segment="care_intensity") == [
        (None, "low", None, None, 0, 1),
        (None, "medium", None, None, 2, 6),
        (None, "high", None, None, 3, 4),
    ]


def test_result_metadata(lake: Lake) -> None:
    result = run_kpi("repeat_contacts", lake, MERGE_MAP, {"days": "3"}, grain="week")
    assert result.kpi == "repeat_contacts" and result.aggregate == "ratio"
    assert result.parameters == {
        "days": 3,
        "contact_channels": ["care", "ivr"],
        "non_contact_types": ["ticket_opened", "csat_response"],
        "by_reason": False,
    }
    assert result.grain == "week" and result.segment is None
    assert "next care contact" in result.description


def test_an_empty_lake_and_no_milestones_answer_no_rows(tmp_path: Path) -> None:
    empty = Lake(tmp_path)
    for name, params in [("channel_mix", None), ("funnel_conversion", FUNNEL)]:
        assert run_kpi(name, empty, {}, params, segment="tenure_band").rows == []


def test_a_merge_map_function_is_read_at_each_run(lake: Lake) -> None:
    maps = [{}, MERGE_MAP]
    runner = KpiRunner(lake, lambda: maps[0])
    query = KpiQuery(kpi="repeat_contacts")
    assert runner.run(query).rows[0].numerator == 4
    maps[0] = MERGE_MAP
    assert runner.run(query).rows[0].numerator == 5


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        ("repeat_contacts", {"params": {"dayz": 3}}, "no parameter dayz (parameters: by_reason"),
        ("repeat_contacts", {"params": {"days": "soon"}}, "'soon' is not a valid int"),
        ("repeat_contacts", {"params": {"days": 0}}, "below the minimum 1"),
        ("repeat_contacts", {"segment": "age"}, "no segment 'age' (segments: care_intensity"),
        ("repeat_contacts", {"grain": "year"}, "grain: Input should be"),
        ("repeat_contacts", {"since": datetime(2024, 1, 1)}, "timezone"),
        ("repeat_contacts", {"since": day(5), "until": day(1)}, "since must be before until"),
        ("funnel_conversion", {}, "needs parameter steps"),
        ("funnel_conversion", {"params": {"steps": "a"}}, "at least 2 items"),
        ("funnel_conversion", {"params": {"steps": "a,b,a"}}, "must not repeat"),
        ("churn_after_milestone", {"params": {"milestone": "x", "mature_only": "maybe"}}, "bool"),
    ],
)
def test_bad_queries_say_what_is_wrong(
    lake: Lake, name: str, query: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        run_kpi(name, lake, MERGE_MAP, **query)


def test_an_unknown_kpi_is_not_found_and_lists_the_known_ones(lake: Lake) -> None:
    with pytest.raises(UnknownKpi, match="no KPI 'nps' \\(KPIs: channel_mix, churn_after"):
        run_kpi("nps", lake, MERGE_MAP)
