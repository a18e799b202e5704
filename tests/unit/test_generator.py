"""The telco world generator: reproducible bytes, honest manifests, noisy keys, planted signals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from graph.errors import InvalidInput
from graph.model import derived_event_id
from ingest.generator import (
    OFFER_CATALOGUE_FILE,
    SOURCE_FILES,
    FileFormat,
    Parameters,
    generate_world,
    iter_world,
)
from ingest.identifiers import IdentifierError, normalise_identifier
from ingest.touchpoint import Touchpoint

CUSTOMERS = 2000
SEED = 11


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "out"
    generate_world(out, CUSTOMERS, SEED)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _read(world: Path, path: str) -> pd.DataFrame:
    """A source file as strings (CSV, JSONL) or typed columns (Parquet)."""
    file = world / path
    if path.endswith(".parquet"):
        return pq.read_table(file).to_pandas()
    if path.endswith(".csv"):
        names = pa_csv.read_csv(file).column_names
        options = pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        return pa_csv.read_csv(file, convert_options=options).to_pandas()
    return pd.DataFrame([json.loads(line) for line in file.read_text().splitlines()])


def _truth(world: Path, name: str) -> pd.DataFrame:
    return pq.read_table(world / "truth" / f"{name}.parquet").to_pandas()


def _manifest(world: Path) -> dict[str, object]:
    manifest: dict[str, object] = json.loads((world / "manifest.json").read_text())
    return manifest


# -- reproducibility -----------------------------------------------------------------


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    generate_world(tmp_path / "a", 300, 5)
    generate_world(tmp_path / "b", 300, 5)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_a_different_seed_gives_a_different_world(tmp_path: Path) -> None:
    generate_world(tmp_path / "a", 300, 5)
    generate_world(tmp_path / "b", 300, 6)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first if "/" in name)


def test_the_window_is_fixed_by_the_seed_not_by_today(world: Path) -> None:
    window = _manifest(world)["window"]
    assert isinstance(window, dict)
    end = datetime.fromisoformat(window["end"])
    assert end == datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=SEED % 365)
    assert datetime.fromisoformat(window["start"]) == end - timedelta(days=365)


@pytest.mark.slow
def test_worker_processes_write_the_same_bytes(tmp_path: Path) -> None:
    # Two chunks (the chunk size is 10,000), made in worker processes or in this one.
    generate_world(tmp_path / "one", 10_050, 3, workers=1)
    generate_world(tmp_path / "two", 10_050, 3, workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


# -- manifest and ground truth -------------------------------------------------------


def test_manifest_row_counts_match_the_files(world: Path) -> None:
    manifest = _manifest(world)
    sources = manifest["sources"]
    assert isinstance(sources, dict)
    assert set(sources) == {"crm", "billing", "care", "retail", "clickstream", "network"}
    assert manifest["seed"] == SEED and manifest["customers"] == CUSTOMERS
    assert manifest["generator_version"]
    formats = set()
    for source in sources.values():
        assert source["rows"] == sum(file["rows"] for file in source["files"])
        for file in source["files"]:
            frame = _read(world, file["path"])
            assert len(frame) == file["rows"] > 0, file["path"]
            assert set(file["key_columns"]) <= set(frame.columns)
            assert frame[file["record_id"]].is_unique
            formats.add(file["format"])
    assert formats == {"csv", "jsonl", "parquet"}
    truth = manifest["truth"]
    assert isinstance(truth, dict)
    for entry in truth.values():
        assert pq.ParquetFile(world / entry["path"]).metadata.num_rows == entry["rows"]


def test_ground_truth_maps_every_record_to_a_known_person(world: Path) -> None:
    records = _truth(world, "records")
    persons = _truth(world, "persons")
    assert len(persons) == CUSTOMERS and persons["person_id"].is_unique
    for file in SOURCE_FILES:
        ids = set(_read(world, file.path)[file.record_id])
        mapped = set(records.loc[records["file"] == file.path, "record_id"])
        assert ids == mapped, file.path
    assert set(records["person_id"]) <= set(persons["person_id"])
    assert records[["source", "record_id"]].drop_duplicates().shape[0] == len(records)


def test_truth_covers_churn_offers_fraud_csat_and_cells(world: Path) -> None:
    persons = _truth(world, "persons")
    churn = _truth(world, "churn")
    assert set(churn["person_id"]) == set(persons.loc[persons["churned_at"].notna(), "person_id"])
    offers = _truth(world, "offers")
    catalogue = _truth(world, "offer_catalogue").set_index("offer_id")
    accepted = offers[offers["accepted"]]
    assert (
        accepted["margin_gbp"] == catalogue.loc[accepted["offer_id"], "margin_gbp"].values
    ).all()
    assert (offers.loc[~offers["accepted"], "margin_gbp"] == 0).all()
    assert len(_truth(world, "fraud")) > 0
    csat = _truth(world, "csat")
    assert csat["score"].between(1, 5).all() and 0 < csat["answered"].mean() < 1
    answers = _read(world, "care/csat.csv")
    assert set(answers["response_id"]) == set(csat["response_id"].dropna())
    cells = _truth(world, "cells")
    incidents = _truth(world, "cell_incidents")
    assert cells["bad"].any() and set(incidents["cell_id"]) <= set(cells["cell_id"])


# -- keys and noise ------------------------------------------------------------------


def test_every_source_knows_people_by_its_own_keys(world: Path) -> None:
    crm = _read(world, "crm/customers.csv")
    assert crm["msisdn"].dropna().str.fullmatch(r"\+447\d{9}").all()
    assert crm["account_id"].str.fullmatch(r"ACC\d{9}").all()
    bills = _read(world, "billing/bills.parquet")
    assert set(bills["account_id"]) <= set(crm["account_id"])
    kpis = _read(world, "network/cell_kpis.parquet")
    assert kpis["msisdn"].str.fullmatch(r"447\d{9}").all()
    assert kpis["imsi"].str.fullmatch(r"23410\d{10}").all()
    assert kpis["imei"].map(lambda imei: normalise_identifier("imei", imei) == imei).all()
    clicks = _read(world, "clickstream/events.jsonl")
    assert clicks["cookie_id"].notna().all()
    assert 0 < clicks["email"].notna().mean() < 0.5
    assert 0 < clicks["login_msisdn"].notna().mean() < 0.5


def test_care_writes_numbers_in_every_spelling_that_normalise_to_the_household(
    world: Path,
) -> None:
    calls = _read(world, "care/calls.csv")
    records = _truth(world, "records").set_index("record_id")
    persons = _truth(world, "persons").set_index("person_id")
    noisy = set(_truth(world, "noise").query("field == 'caller_number'")["record_id"])
    numbers = calls["caller_number"].dropna()
    assert numbers.str.fullmatch(r"447\d{9}").any()  # the switch's bare digits
    assert numbers.str.fullmatch(r"07\d{3} \d{6}").any()  # an agent's desktop
    assert numbers.str.fullmatch(r"\+44 7\d{3} \d{6}").any()
    owner = {msisdn: person for person, msisdn in persons["msisdn"].items()}
    households = persons["household_id"]
    same_household = proxies = 0
    for call in calls.itertuples():
        if (
            call.caller_number is None
            or call.call_id in noisy
            or records.loc[call.call_id, "fraud"]
        ):
            continue
        caller = owner[normalise_identifier("msisdn", call.caller_number)]
        subject = records.loc[call.call_id, "person_id"]
        same_household += households[caller] == households[subject]
        proxies += caller != subject
    assert (
        same_household
        == len(calls)
        - calls["caller_number"].isna().sum()
        - len(noisy & set(calls["call_id"]))
        - records.loc[calls["call_id"], "fraud"].sum()
    )
    assert proxies > 0  # someone rang from a household member's phone


def test_names_and_dates_carry_the_documented_noise(world: Path) -> None:
    noise = _truth(world, "noise")
    kinds = set(zip(noise["source"], noise["field"], noise["noise"], strict=True))
    for expected in [
        ("crm", "first_name", "nickname"),
        ("crm", "first_name", "typo"),
        ("crm", "date_of_birth", "day_month_swapped"),
        ("crm", "email", "missing"),
        ("crm", "address_line1", "abbreviated"),
        ("retail", "first_name+last_name", "swapped"),
        ("retail", "last_name", "upper_case"),
        ("retail", "date_of_birth", "missing"),
        ("clickstream", "email", "typo"),
    ]:
        assert expected in kinds, expected
    persons = _truth(world, "persons").set_index("person_id")
    records = _truth(world, "records").set_index("record_id")
    crm = _read(world, "crm/customers.csv").set_index("crm_id")
    swapped = noise.query("source == 'crm' and noise == 'swapped'")["record_id"]
    for crm_id in swapped:
        person = persons.loc[records.loc[crm_id, "person_id"]]
        row = crm.loc[crm_id]
        assert row["first_name"] == person["last_name"] or row["last_name"] == person["first_name"]
    clean = crm.index.difference(noise.loc[noise["source"] == "crm", "record_id"])
    truth = persons.loc[records.loc[clean, "person_id"]]
    assert (crm.loc[clean, "first_name"].values == truth["first_name"].values).all()
    assert (crm.loc[clean, "date_of_birth"].values == truth["date_of_birth"].values).all()


def test_households_share_addresses_and_shops_share_devices(world: Path) -> None:
    persons = _truth(world, "persons")
    sizes = persons.groupby("household_id")["address_line1"].agg(["size", "nunique"])
    assert (sizes["nunique"] == 1).all() and (sizes["size"] > 1).any()
    visits = _read(world, "retail/shop_visits.csv")
    records = _truth(world, "records").set_index("record_id")
    visits["person_id"] = records.loc[visits["visit_id"], "person_id"].values
    people_per_ip = visits.groupby("till_ip")["person_id"].nunique()
    assert people_per_ip.max() >= 10  # a trap: never a stitching key
    clicks = _read(world, "clickstream/events.jsonl")
    clicks["person_id"] = records.loc[clicks["hit_id"], "person_id"].values
    assert clicks.groupby("cookie_id")["person_id"].nunique().max() >= 3  # shop tablets


def test_timestamps_are_utc_iso_inside_the_window(world: Path) -> None:
    window = _manifest(world)["window"]
    assert isinstance(window, dict)
    start, end = (datetime.fromisoformat(window[key]) for key in ("start", "end"))
    for file in SOURCE_FILES:
        frame = _read(world, file.path)
        for column in file.timestamp_columns:
            values = frame[column].dropna()
            if file.format is not FileFormat.PARQUET:
                assert values.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
                values = pd.to_datetime(values, utc=True)
            assert str(values.dt.tz) == "UTC"
            assert (values <= end).all()
            if column != "created_at":  # the CRM keeps customers who joined years ago
                assert (values >= start - timedelta(days=31)).all(), (file.path, column)


def test_network_shares_lie_in_the_unit_interval(world: Path) -> None:
    kpis = _read(world, "network/cell_kpis.parquet")
    for column in (
        "call_drop_rate", "call_quality_impairment", "low_bitrate_share", "video_stalling_share",
    ):  # fmt: skip
        assert kpis[column].between(0, 1).all()


# -- planted patterns ----------------------------------------------------------------


def _with_person(world: Path, path: str, record_id: str) -> pd.DataFrame:
    frame = _read(world, path)
    records = _truth(world, "records").set_index("record_id")
    frame["person_id"] = records.loc[frame[record_id], "person_id"].values
    return frame


def test_bill_shock_leads_to_port_out_requests(world: Path) -> None:
    bills = _with_person(world, "billing/bills.parquet", "bill_id")
    shocked = set(_read(world, "billing/bill_shocks.parquet")["bill_id"])
    calls = _with_person(world, "care/calls.csv", "call_id")
    requests = calls[calls["reason"] == "port_out_request"].copy()
    requests["at"] = pd.to_datetime(requests["started_at"], utc=True)
    by_person = requests.groupby("person_id")["at"].apply(list).to_dict()

    def asks_within_60_days(bill: pd.Series) -> bool:
        return any(
            bill["bill_date"] <= at <= bill["bill_date"] + timedelta(days=60)
            for at in by_person.get(bill["person_id"], ())
        )

    bills["asks"] = bills.apply(asks_within_60_days, axis=1)
    after_shock = bills.loc[bills["bill_id"].isin(shocked), "asks"].mean()
    after_normal = bills.loc[~bills["bill_id"].isin(shocked), "asks"].mean()
    assert after_shock > 3 * after_normal


def _port_out_within(calls: pd.DataFrame, reasons: tuple[str, ...], days: int) -> float:
    """Share of calls with one of ``reasons`` followed by a port-out request in ``days``."""
    calls = calls.assign(at=pd.to_datetime(calls["started_at"], utc=True))
    requests = calls[calls["reason"] == "port_out_request"].groupby("person_id")["at"].apply(list)
    chosen = calls[calls["reason"].isin(reasons)]
    return float(
        chosen.apply(
            lambda call: any(
                call["at"] <= at <= call["at"] + timedelta(days=days)
                for at in requests.get(call["person_id"], ())
            ),
            axis=1,
        ).mean()
    )


def test_bad_cells_bring_complaints_lower_csat_and_leavers(world: Path) -> None:
    persons = _truth(world, "persons")
    bad = set(_truth(world, "cells").query("bad")["cell_id"])
    on_bad = set(persons.loc[persons["home_cell_id"].isin(bad), "person_id"])
    calls = _with_person(world, "care/calls.csv", "call_id")
    complaints = calls[calls["reason"] == "network_complaint"].groupby("person_id").size()
    rate = complaints.reindex(persons["person_id"], fill_value=0)
    assert rate[list(on_bad)].mean() > 5 * rate.drop(list(on_bad)).mean()
    csat = _truth(world, "csat")
    assert csat[csat["person_id"].isin(on_bad)]["score"].mean() < (
        csat[~csat["person_id"].isin(on_bad)]["score"].mean() - 0.2
    )
    # About a hundred complaints at this size: the direction only (docs/generator.md has
    # the 100k figures: 12.5% of complaints are followed by a port-out request vs 2.6%).
    after_complaint = _port_out_within(calls, ("network_complaint",), 90)
    after_routine = _port_out_within(calls, ("general_enquiry", "device_support"), 90)
    assert after_complaint > after_routine


def test_household_churn_raises_churn(world: Path) -> None:
    persons = _truth(world, "persons")
    persons["churned"] = persons["churned_at"].notna()
    per_household = persons.groupby("household_id")["churned"].agg(["sum", "size"])
    persons = persons.join(per_household, on="household_id")
    multi = persons[persons["size"] > 1]
    others_left = (multi["sum"] - multi["churned"]) > 0
    assert multi.loc[others_left, "churned"].mean() > 2 * multi.loc[~others_left, "churned"].mean()


def test_accepted_retention_offers_keep_customers(world: Path) -> None:
    offers = _truth(world, "offers").query("context == 'port_out_request'")
    churned = _truth(world, "persons").set_index("person_id")["churned_at"].notna()
    accepted = offers.groupby("person_id")["accepted"].any()
    assert (
        churned[accepted[accepted].index].mean() < 0.5 * churned[accepted[~accepted].index].mean()
    )


def test_fraud_is_a_sim_swap_then_a_new_premium_device_within_hours(world: Path) -> None:
    fraud = _truth(world, "fraud")
    gap = fraud["purchase_at"] - fraud["sim_swap_at"]
    # 1-30 hours later, pushed into the next opening hours when bought in a shop.
    assert (gap > timedelta(0)).all() and (gap < timedelta(days=3)).all()
    assert (fraud["amount_gbp"] > 900).all()
    records = _truth(world, "records")
    flagged = records[records["fraud"]]
    assert set(flagged["person_id"]) == set(fraud["person_id"])
    kpis = _read(world, "network/cell_kpis.parquet")
    assert set(fraud["device_imei"]) <= set(kpis["imei"])


def _proactive_offers(world: Path) -> pd.DataFrame:
    """Proactive offers made, with the household's favourite category beside each."""
    offers = _truth(world, "offers").query("context == 'proactive'")
    persons = _truth(world, "persons")[["person_id", "household_id", "favourite_offer_category"]]
    return offers.merge(persons, on="person_id")


def test_households_accept_offers_of_their_favourite_category(world: Path) -> None:
    offers = _proactive_offers(world)
    tasteful = offers[offers["favourite_offer_category"].notna()]
    favourite = tasteful["category"] == tasteful["favourite_offer_category"]
    # Exposure is blind to taste: about one shown offer in seven is of the favourite category.
    shown_share = favourite.mean()
    assert 0.05 < shown_share < 0.25
    accepted_share = favourite[tasteful["accepted"]].mean()
    assert accepted_share > 3 * shown_share
    rate_favourite = tasteful.loc[favourite, "accepted"].mean()
    rate_other = tasteful.loc[~favourite, "accepted"].mean()
    assert rate_favourite > 4 * rate_other
    # A household without a taste takes every category at the everyday rate.
    tasteless = offers[offers["favourite_offer_category"].isna()]
    assert len(tasteless) > 100
    assert tasteless["accepted"].mean() < rate_favourite / 3
    assert abs(tasteless["accepted"].mean() - rate_other) < 0.05


def test_household_members_share_one_favourite_drawn_by_most_households(world: Path) -> None:
    persons = _truth(world, "persons")
    per_household = persons.groupby("household_id")["favourite_offer_category"]
    assert (per_household.nunique(dropna=False) == 1).all()
    tasteful = per_household.first().notna().mean()
    assert 0.7 < tasteful < 0.9  # offer_taste_share = 0.8
    catalogue = _truth(world, "offer_catalogue")
    proactive = set(catalogue.loc[catalogue["kind"] != "retention", "category"])
    assert set(persons["favourite_offer_category"].dropna()) == proactive


def test_without_tastes_acceptance_does_not_depend_on_the_category(tmp_path: Path) -> None:
    generate_world(tmp_path / "w", 1500, 4, parameters=Parameters(offer_taste_share=0.0))
    offers = _proactive_offers(tmp_path / "w")
    assert offers["favourite_offer_category"].isna().all()
    assert offers["accepted"].mean() < 0.12


def test_offers_are_never_shown_before_their_launch(world: Path) -> None:
    catalogue = _truth(world, "offer_catalogue").set_index("offer_id")
    window = _manifest(world)["window"]
    assert isinstance(window, dict)
    start, end = (pd.Timestamp(window[key]) for key in ("start", "end"))
    late = catalogue.index[catalogue["launched_at"] > start]
    assert 2 <= len(late) <= 3
    assert (catalogue.loc[late, "launched_at"] >= end - timedelta(days=61)).all()
    assert (catalogue.loc[late, "kind"] != "retention").all()
    offers = _truth(world, "offers")
    launched = catalogue.loc[offers["offer_id"], "launched_at"].values
    assert (offers["made_at"].values >= launched).all()
    assert set(late) <= set(offers["offer_id"])  # shown once launched


def test_the_offer_catalogue_is_a_product_file_not_a_touchpoint_source(world: Path) -> None:
    manifest = _manifest(world)
    entry = manifest["catalogue"]
    assert isinstance(entry, dict)
    assert entry["offers"]["path"] == OFFER_CATALOGUE_FILE
    assert OFFER_CATALOGUE_FILE not in {file.path for file in SOURCE_FILES}
    text = (world / OFFER_CATALOGUE_FILE).read_text()
    assert text.splitlines()[0] == (
        '"offer_id","name","kind","category","monthly_margin_gbp","term_months",'
        '"margin_gbp","launched_at"'
    )
    catalogue = _read(world, OFFER_CATALOGUE_FILE)
    assert len(catalogue) == entry["offers"]["rows"]
    assert catalogue["launched_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z").all()
    truth = _truth(world, "offer_catalogue")
    assert catalogue["offer_id"].tolist() == truth["offer_id"].tolist()
    assert catalogue["margin_gbp"].astype(float).tolist() == truth["margin_gbp"].tolist()
    margins = dict(zip(truth["offer_id"], truth["margin_gbp"], strict=True))
    assert {offer: margins[offer] for offer in ORIGINAL_MARGINS} == ORIGINAL_MARGINS
    proactive = truth[truth["kind"] != "retention"]
    assert 20 <= len(proactive) <= 24
    per_category = proactive.groupby("category")["margin_gbp"]
    assert len(per_category) == 7
    assert (per_category.size() >= 2).all() and (per_category.nunique() >= 2).all()
    assert proactive["monthly_margin_gbp"].between(1, 20).all()
    assert proactive["term_months"].between(1, 24).all()


ORIGINAL_MARGINS = {
    "RET-DISC-20": 78.0, "RET-DATA-UNL": 108.0, "RET-LOYALTY-60": 48.0, "UP-DATA-50GB": 27.0,
    "UP-ROAM-EU": 9.0, "UP-HANDSET-24": 336.0, "XS-FAMILY-LINE": 180.0, "XS-STREAMING": 30.0,
    "XS-BROADBAND": 198.0, "XS-INSURANCE": 66.0,
}  # fmt: skip
"""The offers of generator 1.0 keep their ids and margins (models trained then still apply)."""


# -- the in-memory world -------------------------------------------------------------


def test_iter_world_yields_every_record_as_a_valid_touchpoint(tmp_path: Path) -> None:
    generate_world(tmp_path / "w", 300, 9)
    records = _truth(tmp_path / "w", "records")
    expected = {
        derived_event_id(source, record_id): person
        for source, record_id, person in zip(
            records["source"], records["record_id"], records["person_id"], strict=True
        )
    }
    seen: dict[str, str] = {}
    for person, touchpoint in iter_world(300, 9):
        assert isinstance(touchpoint, Touchpoint)
        assert touchpoint.ts.tzinfo is not None
        seen[touchpoint.event_id] = person
    assert seen == expected


def test_iter_world_identifiers_normalise_mostly(tmp_path: Path) -> None:
    problems = total = 0
    for _, touchpoint in iter_world(200, 4):
        for kind, raw in touchpoint.identifiers.items():
            total += 1
            try:
                normalise_identifier(kind, raw)
            except IdentifierError:
                problems += 1
    assert total > 0 and problems / total < 0.005  # only the typed-in typos fail


# -- arguments and the output folder ---------------------------------------------------


@pytest.mark.parametrize(
    ("customers", "seed"), [(0, 1), (5_000_001, 1), (True, 1), (10, -1), (10, 2.5)]
)
def test_bad_arguments_are_refused(tmp_path: Path, customers: int, seed: int) -> None:
    with pytest.raises(InvalidInput):
        generate_world(tmp_path / "w", customers, seed)
    assert not (tmp_path / "w").exists()


def test_a_foreign_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "thesis.tex").write_text("keep me")
    with pytest.raises(InvalidInput, match="not empty"):
        generate_world(tmp_path / "w", 10, 1)
    assert (tmp_path / "w" / "thesis.tex").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput):
        generate_world(tmp_path / "file", 10, 1)


def test_an_earlier_world_is_replaced_and_an_empty_folder_used(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    generate_world(tmp_path / "w", 20, 1)
    summary = generate_world(tmp_path / "w", 30, 2)
    assert _manifest(tmp_path / "w")["customers"] == 30
    assert summary.rows_by_source["crm"] >= 30
    assert sorted(path.name for path in tmp_path.iterdir()) == ["w"]


def test_a_failed_run_leaves_nothing_behind(tmp_path: Path) -> None:
    generate_world(tmp_path / "w", 20, 1)
    before = _files(tmp_path / "w")

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_world(tmp_path / "w", 50, 2, progress=interrupt)
    assert _files(tmp_path / "w") == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["w"]


def test_summary_reports_counts_rate_and_progress(tmp_path: Path) -> None:
    done: list[int] = []
    summary = generate_world(tmp_path / "w", 50, 3, progress=done.append)
    assert done == [50]
    report = summary.as_dict()
    assert report["customers"] == 50 and report["rows.total"] == sum(
        summary.rows_by_source.values()
    )
    assert summary.seconds > 0 and summary.peak_rss_mb > 0
    json.dumps(report)


def _pairs(items: Iterator[tuple[str, Touchpoint]]) -> list[tuple[str, str]]:
    return [(person, touchpoint.event_id) for person, touchpoint in items]


def test_iter_world_is_reproducible() -> None:
    assert _pairs(iter_world(50, 8)) == _pairs(iter_world(50, 8))
