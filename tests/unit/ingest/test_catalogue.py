"""The offers catalogue: validated, quarantined, idempotent, and one vertex with ABOUT edges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from api.commands import offers as offers_command
from api.settings import get_settings
from graph import EmbeddedStore, InvalidInput
from ingest.catalogue import CATALOGUE_SOURCE, load_offer_catalogue
from ingest.demo import load_demo
from ingest.generator import OFFER_CATALOGUE_FILE
from ingest.mapping import load_mapping
from ingest.pipeline import Ingestor
from ingest.quarantine import read_quarantine

HEADER = "offer_id,name,kind,category,monthly_margin_gbp,term_months,margin_gbp,launched_at\n"
GOOD = (
    HEADER
    + "UP-DATA-50GB,Extra 50GB data add-on,upsell,data,4.5,6,27,2024-01-09T00:00:00Z\n"
    + "XS-GAMING,Cloud gaming pass,cross_sell,entertainment,3,6,18,2024-12-12\n"
    + "RET-DISC-20,20% off for 12 months,retention,discount,6.5,12,78,\n"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "graph.db") as opened:
        yield opened


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_good_csv_becomes_offer_vertices_with_typed_properties(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    summary = load_offer_catalogue(store, write(tmp_path / "offers.csv", GOOD))
    assert (summary.read, summary.loaded, summary.created, summary.quarantined) == (3, 3, 3, 0)
    (data,) = store.get_vertices(["offer:UP-DATA-50GB"])
    assert data.label == "Offer"
    assert data.properties == {
        "offer_id": "UP-DATA-50GB",
        "name": "Extra 50GB data add-on",
        "kind": "upsell",
        "category": "data",
        "monthly_margin_gbp": 4.5,
        "term_months": 6,
        "margin_gbp": 27.0,
        "launched_at": datetime(2024, 1, 9, tzinfo=UTC),
    }
    assert isinstance(data.properties["margin_gbp"], float)
    (gaming,) = store.get_vertices(["offer:XS-GAMING"])
    assert gaming.properties["launched_at"] == datetime(2024, 12, 12, tzinfo=UTC)
    (retention,) = store.get_vertices(["offer:RET-DISC-20"])
    assert "launched_at" not in retention.properties  # an empty optional value is no value


def test_a_parquet_catalogue_with_only_the_required_columns_and_typed_values(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    table = pa.table(
        {
            "offer_id": ["A", "B"],
            "margin_gbp": pa.array([12, 0], pa.int64()),
            "launched_at": pa.array([date(2024, 5, 1), None], pa.date32()),
            "ignored": ["x", "y"],
        }
    )
    pq.write_table(table, tmp_path / "offers.parquet")
    summary = load_offer_catalogue(store, tmp_path / "offers.parquet")
    assert summary.loaded == 2 and summary.quarantined == 0
    first, second = store.get_vertices(["offer:A", "offer:B"])
    assert first.properties == {
        "offer_id": "A",
        "margin_gbp": 12.0,
        "launched_at": datetime(2024, 5, 1, tzinfo=UTC),
    }
    assert second.properties == {"offer_id": "B", "margin_gbp": 0.0}


def test_bad_rows_are_quarantined_with_their_reasons_and_row_numbers(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    text = (
        "offer_id,margin_gbp,term_months,launched_at\n"
        "GOOD-1,10,12,2024-03-01\n"  # row 1
        ",10,,\n"  # row 2: no id
        "BAD-MARGIN,lots,,\n"  # row 3
        "NEGATIVE,-5,,\n"  # row 4
        "\n"  # a blank line keeps its number (row 5) but is not data
        "BAD-DATE,5,,next tuesday\n"  # row 6
        "BAD-TERM,5,0.5,\n"  # row 7
        "GOOD-1,11,,\n"  # row 8: given twice
        "SHORT,5\n"  # row 9: fewer values than columns
        "NO-MARGIN,,,\n"  # row 10
        "GOOD-2,0.5,,2024-03-01T10:00:00+01:00\n"  # row 11
    )
    quarantine = tmp_path / "quarantine" / f"{CATALOGUE_SOURCE}.jsonl"
    summary = load_offer_catalogue(store, write(tmp_path / "offers.csv", text), quarantine)
    assert (summary.read, summary.loaded, summary.quarantined) == (10, 2, 8)
    reasons = {row.row: row.reasons for row in summary.rejected}
    assert sorted(reasons) == [2, 3, 4, 6, 7, 8, 9, 10]
    assert reasons[2] == ["offer_id: missing"]
    assert reasons[3] == ["margin_gbp: 'lots' is not a number"]
    assert "non-negative" in reasons[4][0]
    assert reasons[6] == ["launched_at: 'next tuesday' is not an ISO-8601 date or timestamp"]
    assert "whole number of months" in reasons[7][0]
    assert reasons[8] == ["offer_id 'GOOD-1' was already given in row 1"]
    assert reasons[9] == ["row has 2 values, the header 4 columns"]
    assert reasons[10] == ["margin_gbp: missing"]
    written = read_quarantine(quarantine)
    assert [(row.source, row.row, row.reasons) for row in written] == [
        (row.source, row.row, list(row.reasons)) for row in summary.rejected
    ]
    # The raw row is the line as read, as the touchpoint readers quarantine CSV rows.
    assert (written[0].origin, written[0].raw) == (str(tmp_path / "offers.csv"), ",10,,")
    assert {v.id for v in store.find_vertices("Offer")} == {"offer:GOOD-1", "offer:GOOD-2"}
    (late,) = store.get_vertices(["offer:GOOD-2"])
    assert late.properties["launched_at"] == datetime(2024, 3, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("offers.csv", "offer_id,name\nA,x\n", "no 'margin_gbp' column"),
        ("offers.csv", "", "no 'offer_id', 'margin_gbp' column"),
        ("offers.txt", GOOD, "must be a .csv or .parquet file"),
        ("offers.parquet", "not parquet", "not a readable Parquet file"),
    ],
)
def test_a_file_without_the_required_columns_is_refused_naming_it(
    tmp_path: Path, store: EmbeddedStore, name: str, text: str, message: str
) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(InvalidInput, match=message) as error:
        load_offer_catalogue(store, path)
    assert str(path) in str(error.value)
    assert store.count("Offer") == 0


def test_a_missing_file_is_refused_naming_it(tmp_path: Path, store: EmbeddedStore) -> None:
    with pytest.raises(InvalidInput, match="no such offers catalogue file") as error:
        load_offer_catalogue(store, tmp_path / "absent.csv")
    assert error.value.details == {"file": str(tmp_path / "absent.csv")}


def test_loading_twice_changes_nothing_and_a_corrected_file_updates(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    path = write(tmp_path / "offers.csv", GOOD)
    load_offer_catalogue(store, path)
    again = load_offer_catalogue(store, path)
    assert (again.loaded, again.created, again.updated, again.unchanged) == (3, 0, 0, 3)
    assert store.count("Offer") == 3
    corrected = write(tmp_path / "offers.csv", GOOD.replace(",27,", ",30,"))
    changed = load_offer_catalogue(store, corrected)
    assert (changed.updated, changed.unchanged) == (1, 2)
    (data,) = store.get_vertices(["offer:UP-DATA-50GB"])
    assert data.properties["margin_gbp"] == 30.0 and data.properties["name"]


def test_about_edges_and_the_catalogue_meet_on_one_offer_vertex(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    events = [
        {
            "event_id": f"e{n}",
            "source": "app",
            "event_type": "offer_accepted",
            "channel": "app",
            "ts": f"2024-06-0{n + 1}T10:00:00+00:00",
            "identifiers": {"msisdn": "07700 900001"},
            "attributes": {"offer_id": offer},
        }
        for n, offer in enumerate(["UP-DATA-50GB", "XS-GAMING", "NOT-IN-CATALOGUE"])
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    ingestor = Ingestor(store, tmp_path / "work")
    try:
        ingestor.ingest_paths([path], load_mapping("canonical"))
    finally:
        ingestor.close()
    assert store.count("Offer") == 3
    summary = load_offer_catalogue(store, write(tmp_path / "offers.csv", GOOD))
    # Two of the three were already there from ABOUT edges: they gain the catalogue's details.
    assert (summary.created, summary.updated) == (1, 2)
    assert store.count("Offer") == 4
    assert store.get_edge("ABOUT", "tp:e0", "offer:UP-DATA-50GB") is not None
    (about,) = store.neighbours("tp:e1", "out", ["ABOUT"])
    assert about.vertex.id == "offer:XS-GAMING"
    assert about.vertex.properties["category"] == "entertainment"
    assert about.vertex.properties["margin_gbp"] == 18.0


def test_a_generated_world_ingests_with_its_catalogue_on_the_offers_touchpoints_name(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    ingestor = Ingestor(store, tmp_path / "work")
    try:
        load_demo(ingestor, 150, 2, tmp_path / "world")
    finally:
        ingestor.close()
    catalogue = pa_csv.read_csv(tmp_path / "world" / OFFER_CATALOGUE_FILE)
    offers = store.find_vertices("Offer")
    assert len(offers) == catalogue.num_rows  # no offer outside the catalogue
    margins = dict(
        zip(
            catalogue.column("offer_id").to_pylist(),
            catalogue.column("margin_gbp").to_pylist(),
            strict=True,
        )
    )
    mentioned = 0
    for offer in offers:
        assert offer.properties["margin_gbp"] == margins[offer.properties["offer_id"]]
        launched = offer.properties["launched_at"]
        assert isinstance(launched, datetime) and launched.tzinfo is not None
        mentioned += bool(store.neighbours(offer.id, "in", ["ABOUT"]))
    assert mentioned >= 10
    assert not (tmp_path / "work" / "quarantine" / f"{CATALOGUE_SOURCE}.jsonl").exists()


# -- the CLI -------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    monkeypatch.setenv("JOURNEYGRAPH_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    root = typer.Typer()
    root.add_typer(offers_command.app, name="offers")
    yield root
    get_settings.cache_clear()


def test_offers_load_prints_the_summary_and_offers_list_the_vertices(
    tmp_path: Path, cli: typer.Typer
) -> None:
    runner = CliRunner()
    path = write(tmp_path / "offers.csv", GOOD + "BAD,lots,,,,,,\n")
    loaded = runner.invoke(cli, ["offers", "load", str(path), "--json"])
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.stdout)
    assert (summary["loaded"], summary["quarantined"]) == (3, 1)
    assert summary["quarantine"].endswith(f"quarantine/{CATALOGUE_SOURCE}.jsonl")
    assert len(read_quarantine(summary["quarantine"])) == 1
    listed = runner.invoke(cli, ["offers", "list", "--json"])
    assert [row["id"] for row in json.loads(listed.stdout)] == [
        "offer:RET-DISC-20",
        "offer:UP-DATA-50GB",
        "offer:XS-GAMING",
    ]
    assert runner.invoke(cli, ["offers", "list"]).exit_code == 0
    missing = runner.invoke(cli, ["offers", "load", str(tmp_path / "absent.csv")])
    assert missing.exit_code == 2
