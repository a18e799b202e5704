"""The similarity analyzer against a plain-Python reference, and its edges and errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from graph.errors import InvalidInput, MalformedId, UnknownCustomer
from journeys.similarity import (
    IndexSettings,
    JourneyRepresentation,
    SimilarityAnalyzer,
    SimilarityQuery,
    shared_steps,
)
from journeys.timelines import Timelines

T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000
EVENTS = ["bill", "call", "login", "offer", "port_out", "network_kpi"]


def timelines_of(journeys: Mapping[str, Sequence[str]], spacing: int = HOUR) -> Timelines:
    """Timelines of named customers, each touchpoint ``spacing`` ms after the one before."""
    rows: dict[str, list[object]] = {
        "customer": [],
        "event_id": [],
        "event_type": [],
        "channel": [],
        "source": [],
        "ts": [],
    }
    for customer, steps in journeys.items():
        for n, step in enumerate(steps):
            rows["customer"].append(customer)
            rows["event_id"].append(f"{customer}-{n:04d}")
            rows["event_type"].append(step)
            rows["channel"].append("app")
            rows["source"].append("test")
            rows["ts"].append(T0 + n * spacing)
    table = pa.table(
        {
            name: pa.array(values, pa.int64() if name == "ts" else pa.string())
            for name, values in rows.items()
        }
    )
    return Timelines.from_table(table)


def analyzer_of(journeys: Mapping[str, Sequence[str]], **settings: object) -> SimilarityAnalyzer:
    timelines = timelines_of(journeys)
    return SimilarityAnalyzer(lambda: timelines, settings=IndexSettings.model_validate(settings))


# --- the plain-Python reference ----------------------------------------------


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Edit distance by the textbook dynamic programme."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def reference_journey(steps: Sequence[str], representation: JourneyRepresentation) -> list[str]:
    kept = [step for step in steps if step not in representation.exclude]
    if representation.collapse_repeats:
        kept = [step for step, _ in groupby(kept)]
    return kept[-representation.last_steps :]


def reference(
    journeys: Mapping[str, Sequence[str]], query: SimilarityQuery
) -> tuple[list[tuple[str, float]], int]:
    """(customer, similarity) of the top, most similar first then by id, and the count."""
    representation = query.representation
    shaped = {c: reference_journey(s, representation) for c, s in journeys.items()}
    if query.customer is not None:
        mine = shaped[query.customer]
    else:
        assert query.steps is not None
        mine = reference_journey(query.steps, representation)
    scored = []
    for customer, theirs in shaped.items():
        if customer == query.customer or not theirs:
            continue
        longest = max(len(mine), len(theirs))
        scored.append((customer, 1 - levenshtein(mine, theirs) / longest))
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    count = sum(1 for _, similarity in scored if similarity >= query.min_similarity)
    return scored[: query.top], count


def assert_same(found: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [c for c, _ in found] == [c for c, _ in expected]
    assert [s for _, s in found] == pytest.approx([s for _, s in expected])


# --- properties ----------------------------------------------------------------


@st.composite
def populations(draw: st.DrawFn) -> dict[str, list[str]]:
    """A few customers with short journeys over a small vocabulary (many shared)."""
    count = draw(st.integers(1, 12))
    steps = st.lists(st.sampled_from(EVENTS), min_size=1, max_size=8)
    return {f"cust:{n:02d}": draw(steps) for n in range(count)}


@settings(max_examples=60, deadline=None)
@given(
    populations(),
    st.integers(1, 6),
    st.sampled_from([0.0, 0.5, 0.8]),
    st.booleans(),
    st.integers(2, 6),
    st.sampled_from(["lsh", "exact"]),
)
def test_matches_the_reference(
    journeys: dict[str, list[str]],
    top: int,
    min_similarity: float,
    collapse: bool,
    last_steps: int,
    method: str,
) -> None:
    analyzer = analyzer_of(journeys, candidates=10_000)
    customer = sorted(journeys)[0]
    query = SimilarityQuery(
        customer=customer,
        top=top,
        min_similarity=min_similarity,
        collapse_repeats=collapse,
        last_steps=last_steps,
        method=method,
    )
    if not reference_journey(journeys[customer], query.representation):
        with pytest.raises(InvalidInput, match="no steps left"):
            analyzer.run(query)
        return
    expected, count = reference(journeys, query)
    result = analyzer.run(query)
    found = [(m.customer, m.similarity) for m in result.similar]
    assert len(found) == len(expected)
    if result.method == "lsh":
        # Candidates may miss someone, but what is found is scored and ordered exactly.
        truth = dict(reference(journeys, query.model_copy(update={"top": 100}))[0])
        assert [s for _, s in found] == pytest.approx([truth[c] for c, _ in found])
        assert found == sorted(found, key=lambda pair: (-pair[1], pair[0]))
        assert all(s <= e + 1e-9 for (_, s), (_, e) in zip(found, expected, strict=True))
        assert result.count <= count and not result.count_exact
    else:
        assert_same(found, expected)
        assert result.count == count and result.count_exact


@settings(max_examples=60, deadline=None)
@given(populations(), st.lists(st.sampled_from(EVENTS[:5]), min_size=1, max_size=8))
def test_exact_steps_query_matches_the_reference(
    journeys: dict[str, list[str]], steps: list[str]
) -> None:
    known = sorted({s for j in journeys.values() for s in j})
    steps = [s for s in steps if s in known] or known[:1]
    query = SimilarityQuery(steps=steps, top=5, method="exact", min_similarity=0.5)
    expected, count = reference(journeys, query)
    if not reference_journey(steps, query.representation):
        return
    result = analyzer_of(journeys).run(query)
    assert_same([(m.customer, m.similarity) for m in result.similar], expected)
    assert result.count == count


# --- semantics by example ----------------------------------------------------------


def test_representation_excludes_collapses_and_keeps_the_latest_steps() -> None:
    journeys = {
        "cust:a": ["network_kpi", "bill", "bill", "network_kpi", "bill", "call", "login", "offer"],
        "cust:b": ["bill", "call", "login", "offer"],
        "cust:c": ["call", "login", "offer"],
    }
    analyzer = analyzer_of(journeys)
    result = analyzer.run(SimilarityQuery(customer="cust:a", last_steps=3))
    assert result.steps == ["call", "login", "offer"]
    assert [(m.customer, m.similarity) for m in result.similar] == [
        ("cust:b", 1.0),
        ("cust:c", 1.0),
    ]
    full = analyzer.run(SimilarityQuery(customer="cust:a", exclude=[], collapse_repeats=False))
    assert full.method == "exact"  # another representation than the index's
    assert full.steps == journeys["cust:a"]


def test_ties_are_broken_by_customer_id_and_the_query_customer_is_left_out() -> None:
    journeys = {f"cust:{n}": ["bill", "call", "offer"] for n in (5, 3, 9, 1)}
    journeys["cust:7"] = ["bill", "call"]
    result = analyzer_of(journeys).run(SimilarityQuery(customer="cust:3", top=4))
    assert [m.customer for m in result.similar] == ["cust:1", "cust:5", "cust:9", "cust:7"]
    assert [m.similarity for m in result.similar] == pytest.approx([1, 1, 1, 2 / 3])
    assert result.count == 3  # 2/3 is under the default threshold of 0.7


def test_outcomes_follow_the_latest_marking_touchpoint() -> None:
    journeys = {
        "cust:q": ["bill", "call", "offer"],
        "cust:churned": ["bill", "call", "offer", "port_out"],
        "cust:won_back": ["bill", "port_out", "call", "offer", "offer_accepted"],
        "cust:active": ["bill", "call", "offer", "login"],
    }
    analyzer = analyzer_of(journeys)
    result = analyzer.run(SimilarityQuery(customer="cust:q", top=3, min_similarity=0))
    outcomes = {m.customer: m.outcome for m in result.similar}
    assert outcomes == {
        "cust:churned": "churned",
        "cust:won_back": "accepted_offer",
        "cust:active": "still_active",
    }
    assert result.outcomes == {"churned": 1, "accepted_offer": 1, "still_active": 1}
    quiet = analyzer.run(SimilarityQuery(customer="cust:q", include_outcome=False))
    assert quiet.outcomes is None and all(m.outcome is None for m in quiet.similar)


def test_outcome_rules_are_data() -> None:
    timelines = timelines_of({"cust:a": ["bill", "call"], "cust:b": ["bill", "call", "login"]})
    analyzer = SimilarityAnalyzer(lambda: timelines, outcomes={"engaged": ["login"]})
    result = analyzer.run(SimilarityQuery(customer="cust:a"))
    assert result.similar[0].outcome == "engaged"
    assert result.outcomes == {"engaged": 1, "still_active": 0}


def test_shared_steps_are_the_alignment_matches() -> None:
    ours = ["bill", "call", "login", "offer"]
    theirs = ["bill", "login", "offer", "port_out"]
    assert shared_steps(ours, theirs) == ["bill", "login", "offer"]
    assert shared_steps(ours, []) == []


def test_a_time_window_keeps_only_touchpoints_inside_it() -> None:
    journeys = {"cust:a": ["port_out", "bill", "call"], "cust:b": ["login", "bill", "call"]}
    analyzer = analyzer_of(journeys)
    since = datetime.fromtimestamp(T0 / 1000, UTC) + timedelta(minutes=30)
    result = analyzer.run(SimilarityQuery(customer="cust:a", since=since))
    assert result.method == "exact" and result.steps == ["bill", "call"]
    assert result.similar[0].similarity == 1.0


def test_a_journey_nobody_shares_a_shingle_with_falls_back_to_a_full_scan() -> None:
    journeys = {f"cust:{n}": ["bill", "call", "login"] for n in range(5)}
    journeys["cust:odd"] = ["offer"]
    result = analyzer_of(journeys).run(SimilarityQuery(customer="cust:odd", top=3))
    assert result.method == "lsh+exact" and result.count_exact
    assert [m.customer for m in result.similar] == ["cust:0", "cust:1", "cust:2"]
    assert result.similar[0].similarity == 0.0


def test_top_is_answered_whenever_that_many_customers_exist() -> None:
    journeys = {f"cust:{n}": EVENTS[n % 5 : n % 5 + 2] for n in range(8)}
    result = analyzer_of(journeys).run(SimilarityQuery(customer="cust:0", top=50))
    assert len(result.similar) == 7


def test_customer_ids_with_or_without_the_prefix() -> None:
    analyzer = analyzer_of({"cust:a": ["bill"], "cust:b": ["bill"]})
    assert analyzer.run(SimilarityQuery(customer="a")).similar[0].customer == "cust:b"


# --- errors --------------------------------------------------------------------


def test_an_unknown_customer_is_not_found() -> None:
    with pytest.raises(UnknownCustomer, match="nobody"):
        analyzer_of({"cust:a": ["bill"]}).run(SimilarityQuery(customer="nobody"))


def test_a_malformed_customer_id_is_refused() -> None:
    with pytest.raises(MalformedId):
        analyzer_of({"cust:a": ["bill"]}).run(SimilarityQuery(customer="a\nb"))


def test_unknown_steps_are_named() -> None:
    analyzer = analyzer_of({"cust:a": ["bill", "call"]})
    with pytest.raises(InvalidInput, match="'fax'") as raised:
        analyzer.run(SimilarityQuery(steps=["bill", "fax", "pigeon"]))
    assert raised.value.details["unknown"] == ["fax", "pigeon"]


def test_a_journey_of_machine_events_only_is_refused() -> None:
    analyzer = analyzer_of({"cust:a": ["network_kpi"], "cust:b": ["bill"]})
    with pytest.raises(InvalidInput, match="no steps left"):
        analyzer.run(SimilarityQuery(customer="cust:a"))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"customer": "cust:a", "steps": ["bill"]},
        {"customer": "cust:a", "top": 0},
        {"customer": "cust:a", "min_similarity": 1.5},
        {"customer": "cust:a", "last_steps": 0},
        {"customer": "cust:a", "since": datetime(2024, 1, 1)},
        {"steps": []},
        {"customer": "cust:a", "colour": "blue"},
    ],
)
def test_malformed_queries_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SimilarityQuery.model_validate(fields)


def test_index_settings_must_band_evenly() -> None:
    with pytest.raises(ValidationError):
        IndexSettings(num_perm=64, band_rows=3)


def test_spliced_timelines_answer_like_sorted_ones() -> None:
    """Customers spliced in after a build follow the others, out of id order."""
    from journeys.timelines import splice

    before = {f"cust:{n}": ["bill", "call", "offer"] for n in (2, 4, 6)}
    fresh = {"cust:1": ["bill", "call", "offer"], "cust:4": ["bill", "call"]}
    spliced = splice(timelines_of(before), timelines_of(fresh), pa.array(["cust:4"]))
    assert spliced.customers.to_pylist() == ["cust:2", "cust:6", "cust:1", "cust:4"]
    merged = timelines_of({**before, **fresh})
    for method in ("lsh", "exact"):
        query = SimilarityQuery(customer="cust:4", top=3, min_similarity=0, method=method)
        got = SimilarityAnalyzer(lambda: spliced).run(query)
        want = SimilarityAnalyzer(lambda: merged).run(query)
        assert got == want
        assert [m.customer for m in got.similar] == ["cust:1", "cust:2", "cust:6"]
    windowed = SimilarityQuery(customer="cust:6", last_steps=2, top=3)
    assert SimilarityAnalyzer(lambda: spliced).run(windowed) == SimilarityAnalyzer(
        lambda: merged
    ).run(windowed)
