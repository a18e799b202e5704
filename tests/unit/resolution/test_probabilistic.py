"""Probabilistic resolution: the default settings on a generated world, the model file,
incremental scoring, review bands and input checks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from graph.errors import InvalidInput
from ingest.generator import generate_world
from ingest.resolution._splink_evaluation import (
    ordered_pairs,
    pairs_in_groups,
    pairwise_scores,
    world_person_records,
)
from ingest.resolution.probabilistic import (
    MODEL_FORMAT,
    MODEL_VERSION,
    ColumnComparison,
    ColumnRole,
    LinkageSettings,
    ProbabilisticLinker,
    person_settings,
)

CUSTOMERS = 1000
SEED = 7


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """CRM customers and shop visits of a small world, with their true person."""
    world = tmp_path_factory.mktemp("splink") / "world"
    generate_world(world, CUSTOMERS, SEED)
    return world_person_records(world)


@pytest.fixture(scope="module")
def linker(records: pd.DataFrame) -> ProbabilisticLinker:
    """The default settings trained on ``records``, without their labels."""
    trained = ProbabilisticLinker(person_settings())
    trained.train(records.drop(columns=["person_id", "household_id", "fraud"]))
    return trained


@pytest.fixture(scope="module")
def pairs(linker: ProbabilisticLinker, records: pd.DataFrame) -> pd.DataFrame:
    return linker.predict(records)


def test_defaults_link_precisely_on_a_generated_world(
    linker: ProbabilisticLinker, records: pd.DataFrame, pairs: pd.DataFrame
) -> None:
    # Measured on this world (seed 7, 1,000 customers): links precision 0.996, recall
    # 0.971; clusters 0.988 / 0.988. Households share surname, postcode and sometimes an
    # email, so precision is what the defaults are tuned for.
    truth = pairs_in_groups(records.set_index("unique_id")["person_id"])
    links = pairs.loc[pairs["decision"] == "link"]
    linked = pairwise_scores(ordered_pairs(links["unique_id_l"], links["unique_id_r"]), truth)
    clustered = pairwise_scores(pairs_in_groups(linker.cluster(records, pairs)), truth)
    print("links", linked.as_dict(), "clusters", clustered.as_dict())
    assert linked.precision >= 0.99
    assert linked.recall >= 0.96
    assert clustered.precision >= 0.98
    assert clustered.recall >= 0.98


def test_training_reports_parameters_and_timings(linker: ProbabilisticLinker) -> None:
    report = linker.model.training
    assert 0 < report["probability_two_random_records_match"] < 0.01
    assert set(report["seconds"]) == {"prior", "u", "m", "total"}
    weights = {
        (level["comparison"], level["level"]): level["match_weight"]
        for level in report["parameters"]
    }
    assert weights[("dob", "Exact match on dob")] > 5
    assert weights[("first_name", "All other comparisons")] < -2
    # The generator has no national id: its levels are neutral, and the report says so.
    assert weights[("national_id_hash", "Exact match on national_id_hash")] == 0
    assert any("national_id_hash" in warning for warning in report["warnings"])


def test_training_is_deterministic(records: pd.DataFrame) -> None:
    settings = person_settings().model_copy(update={"u_max_pairs": 20_000})
    sample = records.head(500)
    first, second = ProbabilisticLinker(settings), ProbabilisticLinker(settings)
    first.train(sample)
    second.train(sample)
    assert first.model.splink == second.model.splink
    assert first.model.term_frequencies == second.model.term_frequencies


def test_save_and_load_round_trip(
    linker: ProbabilisticLinker, records: pd.DataFrame, pairs: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "model.json"
    linker.save(path)
    document = json.loads(path.read_text())
    assert document["format"] == MODEL_FORMAT
    assert document["version"] == MODEL_VERSION
    assert {"created_at", "splink_version", "settings", "splink"} <= set(document)
    loaded = ProbabilisticLinker.load(path)
    assert loaded.settings == linker.settings
    assert loaded.model.splink == linker.model.splink
    pd.testing.assert_frame_equal(loaded.predict(records), pairs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": MODEL_VERSION + 1}, "version 2 linkage model"),
        ({"format": "splink-settings"}, "not a journeygraph linkage model"),
        ({"splink_version": "3.9.15"}, "trained with Splink 3.9.15"),
        ({"settings": {"comparisons": []}}, "damaged"),
    ],
)
def test_load_refuses_other_files(
    linker: ProbabilisticLinker, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = tmp_path / "model.json"
    linker.save(path)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(InvalidInput, match=message):
        ProbabilisticLinker.load(path)


def test_load_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("format: journeygraph-splink-model")
    with pytest.raises(InvalidInput, match="cannot read a linkage model"):
        ProbabilisticLinker.load(path)


def test_missing_columns_are_named(linker: ProbabilisticLinker, records: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput, match="dob, email") as raised:
        linker.predict(records.drop(columns=["dob", "email"]))
    assert raised.value.details["missing"] == ["dob", "email"]


def test_repeated_unique_ids_are_refused(
    linker: ProbabilisticLinker, records: pd.DataFrame
) -> None:
    with pytest.raises(InvalidInput, match="repeat unique_id"):
        linker.predict(pd.concat([records.head(3), records.head(1)]))


def test_an_untrained_linker_says_so(records: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput, match="no model yet"):
        ProbabilisticLinker(person_settings()).predict(records)


def test_incremental_pairs_equal_batch_pairs(
    linker: ProbabilisticLinker, records: pd.DataFrame, pairs: pd.DataFrame
) -> None:
    known, first, second = records.iloc[:900], records.iloc[900:1150], records.iloc[1150:]
    streamed = ProbabilisticLinker(linker.settings, linker.model)
    found = [streamed.predict_incremental(first, existing=known)]
    streamed.add_known(first)
    found.append(streamed.predict_incremental(second))
    assert streamed.known_count == len(known) + len(first)
    streamed.close()

    incremental = pd.concat(found).sort_values(["unique_id_l", "unique_id_r"])
    new_ids = set(first["unique_id"]) | set(second["unique_id"])
    touching_new = pairs["unique_id_l"].isin(new_ids) | pairs["unique_id_r"].isin(new_ids)
    batch = pairs.loc[touching_new]
    assert len(batch) > 50
    pd.testing.assert_frame_equal(
        incremental.reset_index(drop=True), batch.reset_index(drop=True), check_exact=True
    )


def test_known_records_refuse_a_repeated_id(
    linker: ProbabilisticLinker, records: pd.DataFrame
) -> None:
    streamed = ProbabilisticLinker(linker.settings, linker.model)
    streamed.add_known(records.head(10))
    with pytest.raises(InvalidInput, match="known already"):
        streamed.add_known(records.iloc[5:15])
    streamed.close()


def test_pairs_are_banded_by_the_thresholds(
    linker: ProbabilisticLinker, records: pd.DataFrame
) -> None:
    # Thresholds are not part of training: a trained model can be rebanded.
    settings = linker.settings.model_copy(update={"link_threshold": 0.99, "review_threshold": 0.3})
    banded = ProbabilisticLinker(settings, linker.model).predict(records, min_probability=0.0)
    probability, decision = banded["match_probability"], banded["decision"]
    assert set(decision) == {"link", "review", "non_link"}
    assert (probability[decision == "link"] >= 0.99).all()
    review = probability[decision == "review"]
    assert ((review >= 0.3) & (review < 0.99)).all()
    assert (probability[decision == "non_link"] < 0.3).all()
    default_floor = ProbabilisticLinker(settings, linker.model).predict(records)
    assert len(default_floor) == (probability >= 0.3).sum()


def test_clusters_are_connected_components_named_by_their_smallest_id(
    linker: ProbabilisticLinker,
) -> None:
    records = pd.DataFrame({"unique_id": ["e", "d", "c", "b", "a"]})
    pairs = pd.DataFrame(
        {
            "unique_id_l": ["a", "b", "d"],
            "unique_id_r": ["b", "c", "e"],
            "match_probability": [0.999, 0.9999, 0.5],
            "match_weight": [10.0, 13.0, 0.0],
        }
    )
    clusters = linker.cluster(records, pairs)
    assert clusters.to_dict() == {"e": "e", "d": "d", "c": "a", "b": "a", "a": "a"}
    assert linker.cluster(records, pairs, threshold=0.4)["e"] == "d"


def test_settings_are_checked() -> None:
    base = person_settings().model_dump()
    with pytest.raises(ValidationError, match="review_threshold"):
        LinkageSettings.model_validate({**base, "review_threshold": 0.999})
    with pytest.raises(ValidationError, match="not compared"):
        LinkageSettings.model_validate({**base, "blocking_rules": [["surname"]]})
    with pytest.raises(ValidationError, match="name columns only"):
        ColumnComparison(column="dob", role=ColumnRole.DATE, reversed_with="first_name")
