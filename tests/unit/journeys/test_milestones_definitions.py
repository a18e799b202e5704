"""The condition language: parsing, clear errors, the catalog, and filters in two forms."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.errors import InvalidInput
from journeys.milestones import (
    MilestoneCatalog,
    UnknownMilestone,
    parse_definition,
    parse_definition_text,
    shipped_definitions,
)
from journeys.milestones._matching import (
    CompiledDefinition,
    TouchpointMatcher,
    step_predicate,
    step_sql,
)
from tests.unit.journeys.test_milestones_reference import definition

SHIPPED = {
    "churned",
    "digital_login",
    "first_bill_shock",
    "first_care_contact",
    "low_csat",
    "offer_accepted",
    "port_out_after_incident",
    "repeat_care_3_in_7d",
}


def test_shipped_definitions_parse_and_round_trip() -> None:
    shipped = shipped_definitions()
    assert SHIPPED <= {d.name for d in shipped}
    for milestone in shipped:
        assert parse_definition(json.loads(milestone.to_json())) == milestone
        assert parse_definition_text(milestone.to_yaml()) == milestone


def test_shipped_care_calls_and_incident_window() -> None:
    by_name = {d.name: d for d in shipped_definitions()}
    care = by_name["repeat_care_3_in_7d"].condition.steps[0]
    assert care.count == 3 and care.within == timedelta(days=7)
    assert care.event_type is not None and care.event_type.not_in == (
        "csat_response",
        "ticket_opened",
    )
    port_out = by_name["port_out_after_incident"].condition
    assert port_out.horizon == timedelta(days=30)
    assert by_name["first_bill_shock"].condition.horizon == timedelta(0)


def test_single_step_shorthand_and_durations() -> None:
    milestone = definition({"event_type": "call", "count": 2, "within": "36h"})
    assert milestone.condition.steps[0].within == timedelta(hours=36)
    assert milestone.document()["condition"] == {
        "steps": [{"event_type": {"in": ["call"]}, "count": 2, "within": "36h"}]
    }
    assert definition({"event_type": "a", "count": 2, "within": 90}).condition.horizon == (
        timedelta(seconds=90)
    )


@pytest.mark.parametrize(
    ("condition", "field", "words"),
    [
        ({"event_type": "a", "count": 2, "within": "7 days"}, "condition.steps.0.within", "unit"),
        ({"event_type": "a", "within": "7d"}, "condition.steps.0", "count of 2 or more"),
        ({"steps": [{"event_type": "a", "max_gap": "1d"}]}, "condition", "no previous step"),
        ({"attributes": {"csat": {"le": "two"}}}, "condition.steps.0.attributes.csat.le", "number"),
        ({"attributes": {"csat": {"about": 2}}}, "condition.steps.0.attributes.csat.about", ""),
        ({"attributes": {"source": "care"}}, "condition.steps.0.attributes", "touchpoint field"),
        ({"attributes": {"9lives": 1}}, "condition.steps.0.attributes", "attribute name"),
        ({"event_type": {"in": []}}, "condition.steps.0.event_type.in", ""),
        ({"event_type": {"in": ["a"], "not_in": ["b"]}}, "condition.steps.0.event_type", "one of"),
        ({"event_typ": "a"}, "condition.steps.0.event_typ", ""),
        ({"steps": []}, "condition.steps", ""),
        ({"event_type": "a", "count": 0}, "condition.steps.0.count", ""),
    ],
)
def test_a_bad_definition_names_the_milestone_and_the_field(
    condition: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_definition(
            {"name": "broken", "version": 2, "description": "d", "condition": condition},
            origin="broken.yaml",
        )
    error = caught.value
    assert error.details["milestone"] == "broken"
    assert error.details["field"] == field
    assert "milestone 'broken' (broken.yaml)" in error.message
    assert words in error.message


def test_bad_names_versions_and_documents() -> None:
    with pytest.raises(InvalidInput, match="name"):
        parse_definition({"name": "Bad Name", "description": "d", "condition": {}})
    with pytest.raises(InvalidInput, match="version"):
        parse_definition({"name": "ok", "version": 0, "description": "d", "condition": {}})
    with pytest.raises(InvalidInput, match="mapping"):
        parse_definition(["not", "a", "mapping"])
    with pytest.raises(InvalidInput, match="not valid YAML"):
        parse_definition_text("name: [unclosed")


def test_the_folder_overrides_shipped_definitions_and_add_guards_versions(tmp_path: Path) -> None:
    catalog = MilestoneCatalog(tmp_path / "mine")
    shipped = catalog.get("churned")
    same, changed = catalog.add(shipped)
    assert not changed and not same.exists()
    different = definition({"event_type": "port_out"}, name="churned", version=shipped.version)
    with pytest.raises(InvalidInput, match="version 2 or higher") as caught:
        catalog.add(different)
    assert caught.value.details["field"] == "version"
    newer = definition({"event_type": "port_out"}, name="churned", version=2)
    path, changed = catalog.add(newer)
    assert changed and path.name == "churned.yaml"
    assert catalog.get("churned") == newer
    assert MilestoneCatalog(tmp_path / "mine", shipped=False).definitions() == [newer]
    with pytest.raises(UnknownMilestone, match="known: .*churned"):
        catalog.get("nothing")


def test_two_files_defining_one_milestone_are_refused(tmp_path: Path) -> None:
    text = definition({"event_type": "a"}, name="twice").to_yaml()
    (tmp_path / "one.yaml").write_text(text)
    (tmp_path / "two.json").write_text(json.dumps(parse_definition_text(text).document()))
    with pytest.raises(InvalidInput, match="defined twice"):
        MilestoneCatalog(tmp_path).definitions()


def test_the_matcher_finds_steps_by_event_type_and_wildcard() -> None:
    milestones = [
        definition({"steps": [{"event_type": "a"}, {"event_type": ["a", "b"]}]}, name="x"),
        definition({"source": "care", "event_type": {"not_in": ["a"]}}, name="y"),
    ]
    matcher = TouchpointMatcher([CompiledDefinition.of(m) for m in milestones])
    assert matcher.masks({"event_type": "a", "source": "care"}) == {0: 0b11}
    assert matcher.masks({"event_type": "b", "source": "care"}) == {0: 0b10, 1: 0b1}
    assert matcher.masks({"event_type": "c", "source": "web"}) == {}


SCALARS = st.one_of(
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False).map(lambda x: round(x, 1)),
    st.sampled_from(["x", "y", "", "3"]),
    st.booleans(),
)


@st.composite
def attribute_tests(draw: st.DrawFn) -> Any:
    operator = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "bare"]))
    if operator in ("lt", "le", "gt", "ge"):
        return {operator: draw(st.integers(-3, 3) | st.floats(-3, 3, allow_nan=False))}
    if operator in ("in", "not_in"):
        return {operator: draw(st.lists(SCALARS, min_size=1, max_size=3))}
    if operator == "bare":
        return draw(SCALARS)
    return {operator: draw(SCALARS)}


@settings(max_examples=300, deadline=None)
@given(
    attribute_tests(),
    st.one_of(SCALARS, st.none(), st.just({"nested": 1}), st.just([1, 2]), st.just("missing")),
)
def test_python_and_sql_filters_agree(test: Any, value: Any) -> None:
    """The graph's property dict and the lake's JSON text give the same answer."""
    step = definition({"attributes": {"v": test}}).condition.steps[0]
    missing = value == "missing"
    attributes = {} if missing else {"v": value}
    # The graph keeps no nulls, objects or arrays among a touchpoint's properties.
    kept = not missing and value is not None and not isinstance(value, dict | list)
    properties = {"event_type": "e"} | ({"v": value} if kept else {})
    params: list[Any] = []
    sql = step_sql(step, params)
    row = duckdb.execute(
        f"SELECT {sql} FROM (SELECT 'e' AS event_type, ? AS attributes)",
        [*params, json.dumps(attributes)],
    ).fetchone()
    assert row is not None
    assert bool(row[0]) == step_predicate(step)(properties)
