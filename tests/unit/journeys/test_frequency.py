"""The frequency analyzer against a plain-Python reference, and its edge cases."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from graph.errors import InvalidInput
from journeys.frequency import (
    DrillDown,
    FrequencyAnalyzer,
    FrequencyQuery,
    FrequencyResult,
    VariantQuery,
)
from journeys.timelines import Timelines
from tests.unit.journeys import reference
from tests.unit.journeys.reference import Row

EVENTS = ["bill", "call", "login", "offer", "churn"]
CHANNELS = ["app", "care", "web"]
SOURCES = ["billing", "care", "clicks"]
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)


def analyzer(rows: list[Row], segments: dict[str, set[str]] | None = None) -> FrequencyAnalyzer:
    timelines = Timelines.from_table(reference.rows_table(rows))

    def segment_customers(name: str, values: list[str]) -> pa.Array[Any]:
        assert segments is not None
        return pa.array(sorted(c for v in values for c in segments.get(v, set())), pa.string())

    return FrequencyAnalyzer(lambda: timelines, segment_customers)


def run(rows: list[Row], query: Any, segments: dict[str, set[str]] | None = None) -> Any:
    return analyzer(rows, segments).run(query).model_dump()


@st.composite
def touchpoints(draw: st.DrawFn) -> list[Row]:
    """A few customers' touchpoints: small vocabularies, many same-millisecond ties."""
    customers = draw(st.integers(1, 6))
    rows = []
    serial = draw(st.permutations(range(60)))
    for c in range(customers):
        for _ in range(draw(st.integers(0, 10))):
            rows.append(
                Row(
                    customer=f"cust:{c}",
                    event_id=f"e{serial[len(rows)]:03d}",
                    event_type=draw(st.sampled_from(EVENTS)),
                    channel=draw(st.sampled_from(CHANNELS)),
                    source=draw(st.sampled_from(SOURCES)),
                    ts=T0 + 1000 * draw(st.integers(0, 12)),
                )
            )
    return draw(st.permutations(rows))


def present(rows: list[Row], attribute: str, pool: list[str]) -> list[str]:
    return [name for name in pool if any(getattr(r, attribute) == name for r in rows)]


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Row], FrequencyQuery]:
    rows = draw(touchpoints().filter(lambda rows: len(rows) > 0))
    events = present(rows, "event_type", EVENTS)
    direction = draw(st.sampled_from(["start", "end"]))
    window = draw(st.one_of(st.none(), st.tuples(st.integers(0, 6), st.integers(7, 13))))
    query: dict[str, Any] = {
        "anchor": draw(st.sampled_from(events)),
        "direction": direction,
        "max_steps": draw(st.integers(2, 6)),
        "occurrence": draw(st.sampled_from(["first", "every"])),
        "top": draw(st.integers(1, 40)),
        "links": draw(st.booleans()),
        "collapse_repeats": draw(st.booleans()),
        "exclude": draw(st.lists(st.sampled_from(events), max_size=2, unique=True)),
        "session_gap": draw(st.sampled_from([None, timedelta(seconds=2)])),
        "channels": draw(
            st.one_of(
                st.none(),
                st.lists(
                    st.sampled_from(present(rows, "channel", CHANNELS)), min_size=1, unique=True
                ),
            )
        ),
    }
    if window is not None:
        query["since"] = datetime.fromtimestamp((T0 + 1000 * window[0]) / 1000, UTC)
        query["until"] = datetime.fromtimestamp((T0 + 1000 * window[1]) / 1000, UTC)
    if direction == "start" and draw(st.booleans()):
        query["between"] = draw(st.sampled_from(events))
    return rows, FrequencyQuery(**query)


@settings(max_examples=400, deadline=None)
@given(cases())
def test_matches_the_reference(case: tuple[list[Row], FrequencyQuery]) -> None:
    rows, query = case
    assert run(rows, query) == reference.frequency(rows, query)


@settings(max_examples=150, deadline=None)
@given(touchpoints().filter(lambda rows: len(rows) > 0), st.integers(1, 20), st.booleans())
def test_variants_match_the_reference(rows: list[Row], top: int, collapse: bool) -> None:
    query = VariantQuery(top=top, collapse_repeats=collapse, links=top % 2 == 0)
    assert run(rows, query) == reference.frequency(rows, query)


@settings(max_examples=150, deadline=None)
@given(cases(), st.data())
def test_drill_down_matches_the_reference(
    case: tuple[list[Row], FrequencyQuery], data: st.DataObject
) -> None:
    rows, query = case
    found, _ = reference.journeys(rows, query)
    if not found:
        return
    customer, journey = data.draw(st.sampled_from(found))
    steps = [row.event_type for row in journey]
    expected = sorted({c for c, j in found if [r.event_type for r in j] == steps})
    drilled = analyzer(rows).customers(query, DrillDown(journey=steps, limit=1000))
    assert drilled.customers == expected and drilled.total == len(expected)
    k = data.draw(st.integers(0, len(journey) - 1))
    shift = query.max_steps - len(journey) if query.direction == "end" else 0

    def at_step(j: list[Row], step: int, event: str) -> bool:
        offset = query.max_steps - len(j) if query.direction == "end" else 0
        index = step - 1 - offset
        return 0 <= index < len(j) and j[index].event_type == event

    step = shift + k + 1
    expected = sorted({c for c, j in found if at_step(j, step, journey[k].event_type)})
    drill = DrillDown(step=step, event_type=journey[k].event_type, limit=1000)
    assert analyzer(rows).customers(query, drill).customers == expected
    if k + 1 < len(journey):
        target = journey[k + 1].event_type
        expected = sorted(
            {
                c
                for c, j in found
                if at_step(j, step, journey[k].event_type) and at_step(j, step + 1, target)
            }
        )
        drill = DrillDown(step=step, event_type=journey[k].event_type, target=target, limit=1000)
        assert analyzer(rows).customers(query, drill).customers == expected


def row(customer: str, event: str, seconds: int, event_id: str | None = None) -> Row:
    return Row(
        customer=customer,
        event_id=event_id or f"{customer}-{seconds:05d}",
        event_type=event,
        channel="app",
        source="clicks",
        ts=T0 + 1000 * seconds,
    )


ALICE = [row("cust:alice", e, s) for s, e in enumerate(["bill", "call", "call", "churn"])]
BOB = [row("cust:bob", e, s) for s, e in enumerate(["login", "bill", "call", "offer"])]
CAROL = [row("cust:carol", e, s) for s, e in enumerate(["bill", "call", "call", "churn"])]


def test_a_small_case_by_hand() -> None:
    result = run(ALICE + BOB + CAROL, FrequencyQuery(anchor="bill", max_steps=3))
    assert result["journeys"] == [
        {"steps": ["bill", "call", "call"], "count": 2, "customers": 2, "share": 2 / 3},
        {"steps": ["bill", "call", "offer"], "count": 1, "customers": 1, "share": 1 / 3},
    ]
    assert result["links"][0] == {
        "step": 1,
        "source": "bill",
        "target": "call",
        "count": 3,
        "median_seconds": 1.0,
    }
    assert result["total_customers"] == 3 and result["other"]["count"] == 0


def test_ties_in_time_are_ordered_by_event_id() -> None:
    rows = [row("cust:a", "call", 5, "b"), row("cust:a", "bill", 5, "a")]
    result = run(rows, FrequencyQuery(anchor="bill", max_steps=2))
    assert result["journeys"][0]["steps"] == ["bill", "call"]


def test_single_touchpoint_timelines_give_one_step_journeys() -> None:
    result = run([row("cust:a", "bill", 0)], FrequencyQuery(anchor="bill"))
    assert result["journeys"] == [{"steps": ["bill"], "count": 1, "customers": 1, "share": 1.0}]
    assert result["drop_offs"] == [{"step": 1, "event_type": "bill", "count": 1}]


def test_an_anchor_filtered_away_gives_an_empty_answer() -> None:
    query = FrequencyQuery(anchor="churn", exclude=["churn"])
    result = run(ALICE, query)
    assert result["journeys"] == [] and result["total_journeys"] == 0
    assert result["other"] == {"journeys": 0, "count": 0, "customers": 0, "share": 0.0}


def test_an_event_type_that_never_occurs_is_an_error_naming_it() -> None:
    with pytest.raises(InvalidInput, match="'chrun' never occurs"):
        run(ALICE, FrequencyQuery(anchor="chrun"))
    with pytest.raises(InvalidInput, match="channels: 'fax'"):
        run(ALICE, FrequencyQuery(anchor="bill", channels=["fax"]))


def test_shares_with_the_other_bucket_add_up_to_one() -> None:
    rows = ALICE + BOB + CAROL
    result = run(rows, FrequencyQuery(anchor="bill", max_steps=3, top=1))
    shares = sum(j["share"] for j in result["journeys"]) + result["other"]["share"]
    assert shares == pytest.approx(1.0)
    assert result["other"] == {"journeys": 1, "count": 1, "customers": 1, "share": 1 / 3}


def test_a_segment_filters_customers() -> None:
    segments = {"loyal": {"cust:bob"}}
    query = FrequencyQuery.model_validate(
        {"anchor": "bill", "segment": {"name": "tenure_band", "values": ["loyal"]}}
    )
    result = run(ALICE + BOB, query, segments)
    assert [j["steps"] for j in result["journeys"]] == [["bill", "call", "offer"]]


def test_between_keeps_journeys_that_reach_the_end_anchor() -> None:
    query = FrequencyQuery(anchor="bill", between="churn", max_steps=5)
    result = run(ALICE + BOB + CAROL, query)
    assert [j["steps"] for j in result["journeys"]] == [["bill", "call", "call", "churn"]]
    assert result["not_reached"] == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"anchor": "bill", "max_steps": 1}, "max_steps"),
        ({"anchor": "bill", "max_steps": 21}, "max_steps"),
        ({"anchor": "bill", "direction": "end", "between": "churn"}, "between needs"),
        ({"anchor": "bill", "since": "2024-01-02T00:00:00"}, "time zone"),
        (
            {"anchor": "bill", "since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"},
            "before",
        ),
        ({"anchor": ""}, "anchor"),
    ],
)
def test_bad_queries_say_what_is_wrong(query: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FrequencyQuery.model_validate(query)


def test_drill_down_needs_one_target() -> None:
    with pytest.raises(ValidationError, match="either journey"):
        DrillDown()
    with pytest.raises(ValidationError, match="go together"):
        DrillDown(step=1)


def test_answers_are_kept_until_the_timelines_change() -> None:
    rows = [
        Row("cust:a", "e1", "bill", "app", "billing", T0),
        Row("cust:a", "e2", "call", "care", "care", T0 + 1000),
    ]
    later = [*rows, Row("cust:b", "e3", "bill", "web", "billing", T0)]
    current = [Timelines.from_table(reference.rows_table(rows))]
    analyzer = FrequencyAnalyzer(lambda: current[0], cache_size=1)
    query = FrequencyQuery(anchor="bill")
    first = analyzer.run(query)
    assert analyzer.run(FrequencyQuery(anchor="bill")) is first
    other = analyzer.run(FrequencyQuery(anchor="call"))
    assert other.total_journeys == 1
    assert analyzer.run(query) is not first, "the cache holds one answer: bill was evicted"
    assert analyzer.run(query) == first
    current[0] = Timelines.from_table(reference.rows_table(later))
    assert analyzer.run(query).total_customers == 2, "new timelines are counted afresh"


def test_a_query_asked_many_times_at_once_is_counted_once() -> None:
    rows = [
        Row("cust:a", "e1", "bill", "app", "billing", T0),
        Row("cust:a", "e2", "call", "care", "care", T0 + 1000),
    ]
    timelines = Timelines.from_table(reference.rows_table(rows))
    analyzer = FrequencyAnalyzer(lambda: timelines)
    counted = []
    started = threading.Event()
    release = threading.Event()
    count = analyzer._count

    def slow_count(*args: Any) -> FrequencyResult:
        counted.append(1)
        started.set()
        release.wait(5)
        return count(*args)

    analyzer._count = slow_count  # type: ignore[method-assign]
    with ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(analyzer.run, FrequencyQuery(anchor="bill")) for _ in range(4)]
        assert started.wait(5)
        time.sleep(0.05)  # the other three are waiting behind the first count
        release.set()
        results = [answer.result(5) for answer in answers]
    assert len(counted) == 1
    assert all(result is results[0] for result in results)


def test_a_count_that_fails_lets_the_next_ask_count_again() -> None:
    timelines = Timelines.from_table(
        reference.rows_table([Row("cust:a", "e1", "bill", "app", "billing", T0)])
    )
    analyzer = FrequencyAnalyzer(lambda: timelines)
    count = analyzer._count
    failures = iter([RuntimeError("disk went away")])

    def flaky(*args: Any) -> FrequencyResult:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return count(*args)

    analyzer._count = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="disk went away"):
        analyzer.run(FrequencyQuery(anchor="bill"))
    assert analyzer.run(FrequencyQuery(anchor="bill")).total_journeys == 1


def test_cached_answers_only_what_was_counted_on_current_timelines() -> None:
    rows = [Row("cust:a", "e1", "bill", "app", "billing", T0)]
    current: list[Timelines | None] = [Timelines.from_table(reference.rows_table(rows))]
    loaded = current[0]
    assert loaded is not None
    analyzer = FrequencyAnalyzer(lambda: loaded, current=lambda: current[0])
    query = FrequencyQuery(anchor="bill")
    assert analyzer.cached(query) is None, "nothing counted yet"
    answer = analyzer.run(query)
    assert analyzer.cached(query) is answer
    assert analyzer.cached(FrequencyQuery(anchor="bill", top=3)) is None
    current[0] = None  # stale, or being rebuilt
    assert analyzer.cached(query) is None
    current[0] = Timelines.from_table(reference.rows_table(rows))
    assert analyzer.cached(query) is None, "answers of older timelines are not served"
    assert FrequencyAnalyzer(lambda: loaded).cached(query) is None, "no current: no fast path"
