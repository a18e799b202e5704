"""The decision table: the shipped rows, windows, validation and errors that point at the row."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engage.model import DEFAULT_THRESHOLDS, METRICS
from engage.rules import (
    DEFAULT_MIN_WEIGHT,
    MAX_WINDOW,
    DecisionTable,
    Rule,
    default_decision_table,
    load_decision_table,
    parse_window,
)
from graph.errors import InvalidInput

ROW = {"name": "drops", "metric": "call_drop_rate", "threshold": 0.2, "window": "1h"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_table_has_one_rule_per_metric_at_its_default_threshold() -> None:
    table = load_decision_table()
    assert table == default_decision_table()
    assert {rule.metric: rule.threshold for rule in table.rules} == DEFAULT_THRESHOLDS
    assert [rule.metric for rule in table.rules] == list(METRICS)
    assert all(rule.window == timedelta(hours=24) for rule in table.rules)
    assert all(rule.min_weight == DEFAULT_MIN_WEIGHT and rule.enabled for rule in table.rules)
    assert table.longest_window == timedelta(hours=24)


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("24h", 86_400), (" 7d ", 604_800), ("2w", 1_209_600),
     (90, 90), (timedelta(minutes=2), 120)],
)  # fmt: skip
def test_windows_are_written_as_a_number_and_a_unit(written: object, seconds: int) -> None:
    assert parse_window(written) == timedelta(seconds=seconds)


@pytest.mark.parametrize("written", ["1.5h", "h", "", "24 hours", "-1h", True, None, 2.5])
def test_other_windows_are_refused(written: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_window(written)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metric": "dropped_calls"}, "unknown metric 'dropped_calls'"),
        ({"threshold": 1.5}, "less than or equal to 1"),
        ({"threshold": -0.1}, "greater than or equal to 0"),
        ({"window": "0s"}, "longer than zero"),
        ({"window": "31d"}, "longer than 30 days"),
        ({"window": "soon"}, "not a duration"),
        ({"min_weight": -1}, "greater than or equal to 0"),
        ({"name": "Bad Name"}, "lower-case letters"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_a_wrong_row_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate({**ROW, **change})


def test_rule_names_are_unique_and_a_table_has_rows() -> None:
    with pytest.raises(ValidationError, match="row 2: rule name 'drops' is used twice"):
        DecisionTable.model_validate({"rules": [ROW, ROW]})
    with pytest.raises(ValidationError):
        DecisionTable.model_validate({"rules": []})


def test_a_file_is_read_with_optional_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
rules:
  - {name: drops, metric: call_drop_rate, threshold: 0.2, window: 1h, min_weight: 3}
  - name: stalls
    metric: video_stalling_share
    threshold: 0.1
    window: 7d
    description: Stalling over a week
    enabled: false
""",
    )
    table = load_decision_table(path)
    assert [rule.name for rule in table.rules] == ["drops", "stalls"]
    assert table.rules[1].description == "Stalling over a week"
    assert table.rules[1].min_weight == DEFAULT_MIN_WEIGHT
    assert [rule.name for rule in table.enabled_rules] == ["drops"]
    assert table.longest_window == timedelta(hours=1)  # the disabled row does not count
    assert table.rule("stalls").window_seconds == 7 * 86_400


def test_an_error_names_the_file_the_row_and_the_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
rules:
  - {name: drops, metric: call_drop_rate, threshold: 0.2}
  - {name: stalls, metric: video_stalling_share, threshold: 1.5}
""",
    )
    with pytest.raises(InvalidInput) as caught:
        load_decision_table(path)
    message = str(caught.value)
    assert str(path) in message
    assert "row 2 ('stalls'), field threshold" in message
    assert caught.value.details == {
        "file": str(path),
        "row": 2,
        "rule": "stalls",
        "field": "threshold",
    }


def test_an_error_in_a_row_without_a_name_names_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - {metric: call_drop_rate, threshold: 0.2}\n  - 7\n")
    with pytest.raises(InvalidInput, match=r"row 1, field name: Field required \(and \d+ more"):
        load_decision_table(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("- {name: drops}", "must be a YAML mapping with a list of rules"),
        ("rules: {name: drops}", "must be a YAML mapping with a list of rules"),
    ],
)
def test_a_file_that_is_not_a_table_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_decision_table(write(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read decision table"):
        load_decision_table(tmp_path / "absent.yaml")


def test_thresholds_are_overridden_by_metric_or_by_rule_name() -> None:
    table = DecisionTable.model_validate(
        {"rules": [ROW, {**ROW, "name": "drops-week", "window": "7d"}]}
    )
    changed = table.with_thresholds({"call_drop_rate": 0.3, "drops-week": 0.4})
    assert [rule.threshold for rule in changed.rules] == [0.3, 0.4]
    assert [rule.threshold for rule in table.rules] == [0.2, 0.2]
    assert changed.with_thresholds({}) == changed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"dropped": 0.3}, "not a rule of the decision table nor a metric"),
        ({"call_drop_rate": 1.2}, "outside"),
        ({"drops": "high"}, "not a number"),
        ({"drops": True}, "not a number"),
    ],
)
def test_a_wrong_override_is_refused(override: dict[str, object], message: str) -> None:
    table = DecisionTable.model_validate({"rules": [ROW]})
    with pytest.raises(InvalidInput, match=message):
        table.with_thresholds(override)  # type: ignore[arg-type]


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no rule 'other'"):
        default_decision_table().rule("other")


@given(st.integers(1, int(MAX_WINDOW.total_seconds())))
def test_a_table_written_out_reads_back_the_same(seconds: int) -> None:
    table = DecisionTable.model_validate({"rules": [{**ROW, "window": seconds}]})
    assert DecisionTable.model_validate(table.as_dict()) == table
