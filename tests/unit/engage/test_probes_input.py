"""Probe inputs: a followed file resumes by line; a stream's rows are numbered across batches."""

from __future__ import annotations

import json
from pathlib import Path

from engage.engine import InputCursor
from engage.probes_input import follow_batches, stream_batches


def _line(number: int, drop: float = 0.01) -> bytes:
    event = {
        "event_id": f"e{number}",
        "subscriber": "+447700900001",
        "cell_id": "c1",
        "ts": f"2024-05-01T00:{number:02d}:00+00:00",
        "weight": 6,
        "call_drop_rate": drop,
    }
    return json.dumps(event).encode() + b"\n"


def test_a_followed_file_starts_after_the_applied_lines_and_moves_its_cursor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "probes.jsonl"
    path.write_bytes(b"".join(_line(n) for n in range(5)))
    applied = {f"follow:{path.resolve()}": 2}
    batches = list(follow_batches(path, lambda name: applied.get(name, 0), 2, 0.05, idle_exit=0.2))
    ids = [event for batch in batches for event in batch.table.column("event_id").to_pylist()]
    assert ids == ["e2", "e3", "e4"]
    assert batches[-1].cursor == InputCursor(f"follow:{path.resolve()}", 5)


def test_stream_rows_are_numbered_across_batches_for_the_quarantine() -> None:
    lines = [_line(0), b"not json\n", _line(2), _line(3, drop=7.0)]
    batches = list(stream_batches(iter(lines), 2, 0.05))
    rejected = [row.row for batch in batches for row in batch.quarantined]
    assert rejected == [2, 4]
    assert all(batch.cursor is None for batch in batches)
