"""The built-in mappings read the generator's files into exactly the touchpoints it meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ingest.frame import attributes_of, frame_from_touchpoints
from ingest.generator import SOURCE_FILES, generate_world, iter_world
from ingest.mapping import builtin_mappings
from ingest.readers import read_file

CUSTOMERS, SEED = 300, 3


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world") / "world"
    generate_world(folder, customers=CUSTOMERS, seed=SEED)
    return folder


def _by_event(frame: pa.Table) -> dict[str, dict[str, Any]]:
    rows = frame.drop_columns(["attributes", "origin", "origin_row"]).to_pylist()
    for row, attributes in zip(rows, attributes_of(frame), strict=True):
        row["attributes"] = attributes
        # Types matter too: an amount read back as 12 instead of 12.0 is a different value.
        row["attribute_types"] = {key: type(value) for key, value in attributes.items()}
    return {row["event_id"]: row for row in rows}


def _iso_dob(frame: pa.Table) -> pa.Table:
    """Shop staff write dates of birth dd/mm/yyyy; the frame holds ISO dates."""
    dob = [
        None
        if value is None
        else f"{value[6:]}-{value[3:5]}-{value[:2]}"
        if "/" in value
        else value
        for value in frame.column("dob").to_pylist()
    ]
    return frame.set_column(frame.schema.get_field_index("dob"), "dob", pa.array(dob, pa.string()))


def test_every_generated_file_reads_back_as_iter_world(world: Path) -> None:
    mappings = builtin_mappings()
    frames = []
    for source_file in SOURCE_FILES:
        batches = list(
            read_file(
                world / source_file.path, mappings[source_file.source], origin=source_file.path
            )
        )
        assert [row for batch in batches for row in batch.quarantined] == []
        frames += [batch.frame for batch in batches]
        read = pa.concat_tables(batch.frame for batch in batches)
        assert read.column("origin_row").to_pylist() == list(range(1, read.num_rows + 1))
        assert set(read.column("origin").to_pylist()) == {source_file.path}
    expected = _iso_dob(
        frame_from_touchpoints((touchpoint for _, touchpoint in iter_world(CUSTOMERS, SEED)), "x")
    )
    got, want = _by_event(pa.concat_tables(frames)), _by_event(expected)
    assert len(got) == sum(frame.num_rows for frame in frames)
    assert got.keys() == want.keys()
    for event_id, row in want.items():
        assert got[event_id] == row, event_id
