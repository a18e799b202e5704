"""Variant counts on two real event logs equal their published figures.

The logs (tests/fixtures/eventlogs, CC BY 4.0) list each case's events with ISO 8601
timestamps; ties keep the file's order, which the row number as event id gives.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as csv
import pytest

from journeys.frequency import FrequencyAnalyzer, FrequencyQuery, VariantQuery
from journeys.timelines import Timelines

LOGS = Path(__file__).parents[2] / "fixtures" / "eventlogs"


def event_log(name: str) -> Timelines:
    table = csv.read_csv(LOGS / f"{name}.csv.gz")
    rows = table.num_rows
    channel = table["channel"] if "channel" in table.column_names else pa.array(["-"] * rows)
    return Timelines.from_table(
        pa.table(
            {
                "customer": table["case_id"],
                "event_id": pc.utf8_lpad(pa.array(range(rows)).cast(pa.string()), 8, "0"),
                "event_type": table["activity"],
                "channel": channel,
                "source": pa.array([name] * rows),
                "ts": table["timestamp"],  # Arrow parses ISO 8601 itself
            }
        )
    )


@pytest.mark.parametrize(
    ("log", "variants", "cases"), [("helpdesk", 226, 4580), ("receipt", 116, 1434)]
)
def test_full_case_variants_equal_the_published_counts(log: str, variants: int, cases: int) -> None:
    timelines = event_log(log)
    result = FrequencyAnalyzer(lambda: timelines).run(VariantQuery(top=10))
    assert result.distinct_journeys == variants
    assert result.total_journeys == result.total_customers == cases


def test_the_ten_most_frequent_helpdesk_variants_cover_about_84_percent() -> None:
    timelines = event_log("helpdesk")
    result = FrequencyAnalyzer(lambda: timelines).run(VariantQuery(top=10))
    covered = sum(j.share for j in result.journeys)
    assert covered == pytest.approx(0.84, abs=0.005)
    assert covered + result.other.share == pytest.approx(1.0)


def test_journeys_from_the_first_activity_on_a_real_log() -> None:
    timelines = event_log("helpdesk")
    query = FrequencyQuery(anchor="Assign seriousness", max_steps=3, top=3)
    result = FrequencyAnalyzer(lambda: timelines).run(query)
    assert result.journeys[0].steps[0] == "Assign seriousness"
    assert sum(s.count for s in result.step_counts if s.step == 1) == result.total_journeys
