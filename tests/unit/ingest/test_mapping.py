"""Source mappings: the built-in ones cover the generator; a wrong one says where it is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from graph.errors import InvalidInput
from ingest.generator import SOURCE_FILES
from ingest.mapping import (
    FileFormat,
    SourceMapping,
    builtin_mappings,
    load_mapping,
    mapping_from_dict,
)
from ingest.touchpoint import Channel

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ingest"


def _file(**overrides: Any) -> dict[str, Any]:
    file = {
        "pattern": "calls.csv",
        "record_id": "call_id",
        "timestamp": "started_at",
        "event_type": "call",
        "channel": "care",
    }
    file.update(overrides)
    return file


def _mapping(**overrides: Any) -> dict[str, Any]:
    return {"source": "care", "files": [_file(**overrides)]}


def test_builtin_mappings_are_the_six_sources_and_canonical() -> None:
    assert set(builtin_mappings()) == {
        "crm", "billing", "care", "retail", "clickstream", "network", "canonical"
    }  # fmt: skip


@pytest.mark.parametrize("source_file", SOURCE_FILES, ids=lambda file: file.path)
def test_every_generated_file_has_a_builtin_mapping(source_file: Any) -> None:
    mapping = builtin_mappings()[source_file.source]
    file_mapping = mapping.for_file(source_file.path)
    assert mapping.source == source_file.source
    assert file_mapping.format_of(source_file.path).value == source_file.format.value
    expected = source_file.mapping
    assert file_mapping.timestamp.column == expected.ts_column
    assert file_mapping.record_id == source_file.record_id
    assert {kind.value: column for kind, column in file_mapping.identifiers.items()} == {
        kind.value: column for kind, column in expected.identifiers
    }
    assert dict(file_mapping.attributes) == dict(expected.attributes)
    assert dict(file_mapping.person) == dict(expected.person)


def test_load_mapping_by_name_or_path(tmp_path: Path) -> None:
    assert load_mapping("care").source == "care"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(_mapping()))
    assert load_mapping(path).files[0].channel is Channel.CARE
    assert load_mapping(str(path)).source == "care"
    assert load_mapping(FIXTURES / "shop.yaml").source == "shop"


def test_an_unknown_builtin_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="no built-in mapping 'billling'.*billing"):
        load_mapping("billling")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"record_id": None}, "files.0", "give record_id"),
        ({"channel": "tv"}, "files.0.channel", "Input should be"),
        ({"event_type": "Bill Issued"}, "files.0.event_type", "lower-case"),
        ({"timestamp": {"column": "t", "format": "when"}}, "files.0.timestamp.format", "when"),
        ({"timestamp": {"column": "t", "format": "%d/%m/%Y %H:%M"}}, "files.0.timestamp", "%z"),
        ({"timestamp": {"column": "t", "timezone": "Mars/Base"}}, "timezone", "Mars/Base"),
        (
            {"timestamp": {"column": "t", "format": "epoch_s", "timezone": "UTC"}},
            "timestamp",
            "UTC",
        ),
        ({"identifiers": {"phone": "caller"}}, "files.0.identifiers.phone", "msisdn"),
        ({"person": {"age": "a"}}, "files.0.person.age", "first_name"),
        ({"attributes": {"Amount": "a"}}, "files.0.attributes", "Amount"),
        ({"column_types": {"a": "decimal"}}, "files.0.column_types.a", "int"),
        ({"dob_format": "dd/mm/yyyy"}, "files.0.dob_format", "strptime"),
        ({"chanel": "care"}, "files.0.chanel", "Extra inputs"),
        ({"attributes_from": "attributes"}, "files.0", "jsonl"),
        ({"channel": {"column": "c", "values": {"x": "tv"}}}, "files.0.channel", "Input should"),
    ],
)
def test_a_wrong_mapping_names_the_file_and_the_field(
    tmp_path: Path, change: dict[str, Any], field: str, message: str
) -> None:
    data = _mapping(**change)
    data["files"][0] = {key: value for key, value in data["files"][0].items() if value is not None}
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidInput) as raised:
        load_mapping(path)
    assert str(path) in str(raised.value)
    assert field in raised.value.details["field"]
    assert message in str(raised.value)


def test_a_bad_source_name_and_no_files_are_refused() -> None:
    with pytest.raises(InvalidInput, match="source"):
        mapping_from_dict({"source": "Care Desk", "files": [_file()]})
    with pytest.raises(InvalidInput, match="files"):
        mapping_from_dict({"source": "care", "files": []})


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("source: care\nfiles: [\n")
    with pytest.raises(InvalidInput, match="broken.yaml is not valid YAML"):
        load_mapping(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(InvalidInput, match="must be a YAML mapping"):
        load_mapping(listed)
    with pytest.raises(InvalidInput, match="cannot read mapping"):
        load_mapping(tmp_path / "absent.yaml")


def test_patterns_match_relative_paths_and_names() -> None:
    mapping = mapping_from_dict(
        {"source": "billing", "files": [
            _file(pattern="billing/bills.parquet"), _file(pattern="*.csv"),
        ]}
    )  # fmt: skip
    assert mapping.for_file("billing/bills.parquet").pattern == "billing/bills.parquet"
    assert mapping.for_file("/data/world/billing/bills.parquet").pattern == "billing/bills.parquet"
    assert mapping.for_file("exports/2024/calls.csv").pattern == "*.csv"
    with pytest.raises(InvalidInput, match="no file mapping of source 'billing'"):
        mapping.for_file("billing/bills.jsonl")


def test_the_format_comes_from_the_suffix_unless_declared() -> None:
    file = SourceMapping.model_validate(_mapping()).files[0]
    assert file.format_of("a/calls.csv") is FileFormat.CSV
    assert file.format_of("a/calls.NDJSON") is FileFormat.JSONL
    with pytest.raises(InvalidInput, match="set format"):
        file.format_of("calls.txt")
    declared = SourceMapping.model_validate(_mapping(format="jsonl")).files[0]
    assert declared.format_of("calls.txt") is FileFormat.JSONL


def test_the_canonical_mapping_reads_the_touchpoint_shape() -> None:
    file = load_mapping("canonical").files[0]
    assert (file.event_id, file.record_id) == ("event_id", "source_record_id")
    assert file.source is not None and file.source.column == "source"
    assert (file.identifiers_from, file.person_from, file.attributes_from) == (
        "identifiers", "person", "attributes"
    )  # fmt: skip
    assert file.unknown_fields == "reject"
    assert file.matches("push") and file.matches("stream")


def test_builtin_mappings_ship_as_package_data() -> None:
    pyproject = (Path(__file__).parents[3] / "pyproject.toml").read_text()
    assert '"*.yaml"' in pyproject
    folder = Path(__file__).parents[3] / "ingest" / "mappings"
    assert {path.stem for path in folder.glob("*.yaml")} == set(builtin_mappings())
