"""The quarantine file: every rejected row, as JSON Lines, beside the ingest.

One line per row: ``{"source", "file", "row", "raw", "reasons"}``
(``QuarantinedRow.as_dict``). Rows are appended, so one file can collect a whole
run, or several; ``flush`` (and closing) makes what was written durable, so a
checkpoint taken after a flush never points past a row that is not on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from graph.errors import InvalidInput
from ingest.frame import QuarantinedRow


class QuarantineWriter:
    """Appends quarantined rows to a JSON Lines file; usable as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = self.path.open("ab")
        self.written = 0
        """Rows written by this writer."""

    def write(self, rows: Iterable[QuarantinedRow]) -> int:
        """Append ``rows``; returns how many were written."""
        count = 0
        for row in rows:
            self._file.write(_line(row))
            count += 1
        self.written += count
        return count

    def flush(self) -> None:
        """Make everything written so far durable (flushed and fsynced)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close; closing twice is harmless."""
        if not self._file.closed:
            self.flush()
            self._file.close()

    def __enter__(self) -> QuarantineWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _line(row: QuarantinedRow) -> bytes:
    record = row.as_dict()
    try:
        return orjson.dumps(record, default=str) + b"\n"
    except (orjson.JSONEncodeError, TypeError):
        # Text orjson refuses (a lone surrogate from a pushed record) is kept escaped.
        return json.dumps(record, default=str, ensure_ascii=True).encode() + b"\n"


def read_quarantine(path: str | Path) -> list[QuarantinedRow]:
    """The rows of a quarantine file, in the order written.

    A last line without its line break (a write cut short) is not a row and is left
    out; any other line that is not a quarantined row raises ``InvalidInput``.
    """
    rows: list[QuarantinedRow] = []
    with Path(path).open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.endswith(b"\n"):
                break
            if not line.strip():
                continue
            try:
                rows.append(_row(_decoded(line)))
            except (KeyError, TypeError, ValueError) as error:
                raise InvalidInput(
                    f"{path}, line {number}: not a quarantined row ({error})",
                    details={"file": str(path), "line": number},
                ) from None
    return rows


def _decoded(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        # Written escaped by ``json`` because orjson refused it (a lone surrogate).
        return json.loads(line)


def _row(record: Any) -> QuarantinedRow:
    if not isinstance(record, dict):
        raise TypeError("expected a JSON object")
    return QuarantinedRow(
        source=str(record["source"]),
        origin=str(record["file"]),
        row=int(record["row"]),
        raw=record["raw"],
        reasons=[str(reason) for reason in record["reasons"]],
    )
