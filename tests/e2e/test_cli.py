"""The journeygraph CLI end to end on a temporary data folder."""

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
    yield tmp_path / "var"
    get_settings.cache_clear()


def test_load_demo_then_status(data_dir: Path) -> None:
    loaded = runner.invoke(app, ["load-demo", "--customers", "60", "--seed", "3", "--json"])
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.stdout)
    assert summary["read"] == summary["accepted"] > 60 * 20
    assert summary["quarantined"] == 0
    status = runner.invoke(app, ["status", "--json"])
    counts = json.loads(status.stdout)
    # Resolution, not the truth, decides: a few keyless records stay customers of their own.
    assert 60 <= counts["Customer"] < 60 * 1.5
    assert counts["Touchpoint"] == summary["accepted"]
    assert counts["PERFORMED"] == counts["Touchpoint"]
    assert counts["NEXT"] == counts["Touchpoint"] - counts["Customer"]
    assert (data_dir / "journeygraph.db").exists()
    assert (data_dir / "ingest" / "lake").is_dir()


def test_ingest_then_evaluate_against_the_truth(data_dir: Path, tmp_path: Path) -> None:
    world = tmp_path / "world"
    assert (
        runner.invoke(app, ["generate", "--customers", "200", "--out", str(world)]).exit_code == 0
    )
    for source in ("crm", "retail", "care", "clickstream", "network", "billing"):
        ingested = runner.invoke(app, ["ingest", str(world), "--source", source, "--json"])
        assert ingested.exit_code == 0, ingested.output
    again = runner.invoke(app, ["ingest", str(world), "--source", "crm", "--json"])
    assert json.loads(again.stdout)["files_skipped"] == 1
    scored = runner.invoke(
        app, ["resolve", "--no-probabilistic", "--evaluate", str(world), "--json"]
    )
    assert scored.exit_code == 0, scored.output
    evaluation = json.loads(scored.stdout)["evaluation"]
    assert evaluation["not_in_lake"] == 0
    assert evaluation["pairwise"]["precision"] > 0.98
    assert evaluation["bcubed"]["f1"] > 0.9
    listed = json.loads(runner.invoke(app, ["customers", "--limit", "3", "--json"]).stdout)
    assert len(listed) == 3 and all(row["id"].startswith("cust:") for row in listed)


def test_ingest_names_a_wrong_source(data_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path), "--source", "nonsense"])
    assert result.exit_code == 2
    assert "nonsense" in result.output


def test_generate_writes_sources_and_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "world"
    result = runner.invoke(app, ["generate", "--customers", "50", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["customers"] == 50


def test_generate_refuses_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = runner.invoke(app, ["generate", "--customers", "10", "--out", str(out)])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (out / "precious.txt").read_text() == "keep me"


def test_keys_are_created_listed_revoked_and_sign_embed_tokens(data_dir: Path) -> None:
    from api.security import verify_embed_token
    from api.settings import DEFAULT_SECRET

    made = runner.invoke(app, ["keys", "create", "crm", "--scope", "read", "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.stdout)
    assert key["scopes"] == "read" and key["key"].startswith(f"jg_{key['id']}_")
    assert key["key"] not in (data_dir / "keys.db").read_bytes().decode("latin-1")
    embed = runner.invoke(
        app,
        [
            "keys", "embed", "cell-heatmap", "--key", key["id"],
            "--param", "days=7", "--ttl", "2h", "--base-url", "https://jg.example", "--json",
        ],
    )  # fmt: skip
    assert embed.exit_code == 0, embed.output
    token = json.loads(embed.stdout)
    assert token["url"].startswith("https://jg.example/widgets/cell-heatmap?token=")
    assert token["iframe"].startswith(f'<iframe src="{token["url"]}"')
    assert verify_embed_token(DEFAULT_SECRET, token["token"]).params == {"days": "7"}
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
    assert [row["id"] for row in listed] == [key["id"]] and "key" not in listed[0]
    revoked = runner.invoke(app, ["keys", "revoke", key["id"], "--json"])
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["revoked_at"]
    again = runner.invoke(app, ["keys", "embed", "cell-heatmap", "--key", key["id"]])
    assert again.exit_code == 2 and "revoked" in again.output


def test_keys_refuse_bad_input_clearly(data_dir: Path) -> None:
    bad_scope = runner.invoke(app, ["keys", "create", "x", "--scope", "write"])
    assert bad_scope.exit_code == 2 and "unknown scope 'write'" in bad_scope.output
    unknown = runner.invoke(app, ["keys", "revoke", "0123456789ab"])
    assert unknown.exit_code == 2 and "no API key has id" in unknown.output
    made = json.loads(
        runner.invoke(app, ["keys", "create", "x", "--scope", "read", "--json"]).stdout
    )
    for args, message in [
        (["nope", "--key", made["id"]], "no widget is named 'nope'"),
        (["cell-heatmap", "--key", made["id"], "--param", "days"], "expected NAME=VALUE"),
        (["cell-heatmap", "--key", made["id"], "--ttl", "soon"], "--ttl 'soon'"),
        (["cell-heatmap", "--key", made["id"], "--ttl", "0"], "between 1 second"),
    ]:
        result = runner.invoke(app, ["keys", "embed", *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_stream_reads_stdin_and_quarantines_a_bad_line(data_dir: Path) -> None:
    lines = [
        json.dumps(
            {
                "event_id": f"s{n:03d}",
                "source": "app",
                "event_type": "app_login",
                "channel": "app",
                "ts": f"2024-03-01T09:{n:02d}:00+00:00",
                "identifiers": {"msisdn": f"+4477009000{n % 4:02d}"},
            }
        )
        for n in range(30)
    ]
    lines.insert(7, "{not json")
    streamed = runner.invoke(
        app,
        ["stream", "--source", "canonical", "--batch-size", "4", "--json"],
        input="\n".join(lines) + "\n",
    )
    assert streamed.exit_code == 0, streamed.output
    summary = json.loads(streamed.stdout)
    assert (summary["read"], summary["accepted"], summary["quarantined"]) == (31, 30, 1)
    assert summary["next_added"] == 30 - 4
    status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert (status["Touchpoint"], status["NEXT"]) == (30, 26)
