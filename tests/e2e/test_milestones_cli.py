"""``journeygraph milestones ...`` end to end on a temporary data folder.

These run once ``api/cli.py`` mounts ``api.commands.milestones.app`` as
``milestones`` and ``api.bootstrap`` has ``open_milestones``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.settings import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JOURNEYGRAPH_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    loaded = runner.invoke(app, ["load-demo", "--customers", "40", "--seed", "3", "--json"])
    assert loaded.exit_code == 0, loaded.output
    yield tmp_path / "var"
    get_settings.cache_clear()


def _json(*args: str) -> object:
    result = runner.invoke(app, ["milestones", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_backfill_then_follow_agree_and_rerun_writes_nothing() -> None:
    listed = _json("list")
    assert isinstance(listed, list) and all(m["reached"] == 0 for m in listed)
    followed = _json("follow", "--idle-exit", "0")
    assert isinstance(followed, dict) and followed["new"] > 0
    backfilled = _json("backfill")
    assert isinstance(backfilled, dict)
    assert (backfilled["new"], backfilled["updated"], backfilled["retracted"]) == (0, 0, 0)
    assert backfilled["unchanged"] == followed["new"]
    again = _json("follow", "--idle-exit", "0")
    assert isinstance(again, dict) and again["new"] == again["updated"] == 0
    shown = _json("show", "digital_login")
    assert isinstance(shown, dict) and shown["reached"] > 0


def test_add_dry_run_and_backfill_a_definition(tmp_path: Path) -> None:
    path = tmp_path / "two_logins.yaml"
    path.write_text(
        "name: two_logins\nversion: 1\ndescription: two logins in a week\n"
        "condition:\n  event_type: login\n  count: 2\n  within: 7d\n"
    )
    dry = _json("dry-run", "--file", str(path), "--sample", "2")
    assert isinstance(dry, dict) and dry["milestone"] == "two_logins"
    assert len(dry["sample"]) == min(2, dry["reached"])
    added = _json("add", str(path))
    assert isinstance(added, dict) and added["changed"] is True
    assert _json("dry-run", "two_logins")["reached"] == dry["reached"]  # type: ignore[index]
    done = _json("backfill", "two_logins")
    assert isinstance(done, dict) and done["milestones"] == ["two_logins@1"]
    assert done["new"] == dry["reached"]


def test_a_bad_definition_is_refused_with_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndescription: d\ncondition:\n  count: 3\n  within: soon\n")
    result = runner.invoke(app, ["milestones", "add", str(path)])
    assert result.exit_code == 2
    assert "condition.steps.0.within" in result.output
    unknown = runner.invoke(app, ["milestones", "show", "nothing"])
    assert unknown.exit_code == 2 and "no milestone 'nothing'" in unknown.output
