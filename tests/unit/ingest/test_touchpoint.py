"""The canonical Touchpoint: valid rows parse, bad rows report every problem at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingest.touchpoint import RowProblem, Touchpoint

GOOD: dict[str, Any] = {
    "event_id": "crm-1",
    "source": "crm",
    "event_type": "care_call",
    "channel": "care",
    "ts": "2024-05-01T10:00:00+02:00",
    "identifiers": {"msisdn": "07700 900123"},
    "person": {"first_name": "Ann", "last_name": "Lee"},
    "attributes": {"csat": 4, "cell_id": "C1"},
}


def test_a_good_row_parses_and_is_normalised_to_utc() -> None:
    touchpoint = Touchpoint.from_row(GOOD)
    assert isinstance(touchpoint, Touchpoint)
    assert touchpoint.ts == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert touchpoint.vertex_id == "tp:crm-1"


def test_every_problem_of_a_row_is_reported_at_once() -> None:
    row = {
        **GOOD,
        "event_type": "Care Call!",
        "channel": "pigeon",
        "ts": "2024-05-01T10:00:00",
        "identifiers": {"shoe_size": "9"},
        "surprise": 1,
    }
    problems = Touchpoint.from_row(row)
    assert isinstance(problems, list)
    fields = {problem.field for problem in problems}
    assert {"event_type", "channel", "ts", "identifiers", "surprise"} <= fields
    assert all(isinstance(p, RowProblem) and p.reason for p in problems)


def test_impossible_timestamps_are_refused() -> None:
    for ts in ("1970-01-01T00:00:00+00:00", (datetime.now(UTC) + timedelta(days=30)).isoformat()):
        problems = Touchpoint.from_row({**GOOD, "ts": ts})
        assert isinstance(problems, list)
        assert problems[0].field == "ts" and "impossible" in problems[0].reason


def test_missing_event_id_is_derived_stably_from_source_and_record() -> None:
    row = {k: v for k, v in GOOD.items() if k != "event_id"} | {"source_record_id": 77}
    first, second = Touchpoint.from_row(row), Touchpoint.from_row(dict(row))
    assert isinstance(first, Touchpoint) and isinstance(second, Touchpoint)
    assert first.event_id == second.event_id and first.event_id.startswith("crm-")


def test_a_huge_identifier_is_a_problem_not_a_crash() -> None:
    problems = Touchpoint.from_row({**GOOD, "identifiers": {"email": "x" * 10_000}})
    assert isinstance(problems, list) and problems[0].field == "identifiers"


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text())))
def test_arbitrary_rows_never_raise(row: dict[str, Any]) -> None:
    result = Touchpoint.from_row(row)
    assert isinstance(result, Touchpoint | list)
    if isinstance(result, list):
        assert result, "a rejected row must say why"
