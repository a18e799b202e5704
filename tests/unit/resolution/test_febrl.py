"""FEBRL 1-4: unsupervised Splink reaches pairwise F1 >= 0.97 on real labelled benchmarks.

Each model is trained without labels; the record ids (which name the true entity,
``rec-N-org`` / ``rec-N-dup-K``) are replaced by row numbers before the linker sees
them and are used only to score. F1 is over pairs of records put in one cluster at the
link threshold. See ``tests/fixtures/febrl/README.md`` for the data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingest.resolution._splink_evaluation import (
    Pair,
    PairwiseScores,
    pairs_in_groups,
    pairwise_scores,
)
from ingest.resolution.probabilistic import (
    ColumnComparison,
    ColumnRole,
    LinkageSettings,
    ProbabilisticLinker,
)

FEBRL = Path(__file__).parents[2] / "fixtures" / "febrl"
MIN_F1 = 0.97


def febrl_settings() -> LinkageSettings:
    """FEBRL's columns in the roles ``LinkageSettings`` knows (Australian postcodes are
    four digits, so they are compared as identifiers with a typo level)."""
    name, address, identifier = ColumnRole.NAME, ColumnRole.ADDRESS, ColumnRole.IDENTIFIER
    fuzzy_address = (0.9, 0.7)
    return LinkageSettings(
        comparisons=(
            ColumnComparison(
                column="given_name", role=name, term_frequency=True, reversed_with="surname"
            ),
            ColumnComparison(column="surname", role=name, term_frequency=True),
            ColumnComparison(column="dob", role=ColumnRole.DATE, typo_level=True),
            ColumnComparison(column="soc_sec_id", role=identifier, typo_level=True),
            ColumnComparison(column="street_number", role=identifier, typo_level=True),
            ColumnComparison(column="address_1", role=address, similarity_thresholds=fuzzy_address),
            ColumnComparison(column="suburb", role=address, similarity_thresholds=fuzzy_address),
            ColumnComparison(column="postcode", role=identifier, typo_level=True),
            ColumnComparison(column="state", role=identifier),
        ),
        blocking_rules=(("given_name",), ("surname",), ("dob",), ("soc_sec_id",), ("postcode",)),
        training_blocking_rules=(("given_name", "surname"), ("dob",), ("postcode",)),
        deterministic_rules=(("soc_sec_id",), ("given_name", "surname", "dob")),
        deterministic_recall=0.6,
        u_max_pairs=300_000,
        link_threshold=0.9,
        review_threshold=0.5,
    )


def load_febrl(name: str, first_id: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Records with row-number ids, and the true entity (``N`` of ``rec-N-...``) per id."""
    raw = pd.read_csv(
        FEBRL / f"{name}.csv.gz",
        dtype=str,
        skipinitialspace=True,
        keep_default_na=False,
        na_values=[""],
    )
    raw.columns = [column.strip() for column in raw.columns]
    digits = raw["date_of_birth"].fillna("")
    iso = digits.str[:4] + "-" + digits.str[4:6] + "-" + digits.str[6:8]
    ids = pd.RangeIndex(first_id, first_id + len(raw))
    records = raw.drop(columns=["rec_id", "date_of_birth"]).assign(
        unique_id=ids, dob=iso.where(digits.str.len() == 8)
    )
    entity = pd.Series(raw["rec_id"].str.extract(r"^rec-(\d+)-")[0].to_numpy(), index=ids)
    return records, entity


def _report(name: str, scores: PairwiseScores) -> None:
    print(
        f"{name}: precision {scores.precision:.4f} recall {scores.recall:.4f} "
        f"F1 {scores.f1:.4f} ({scores.correct}/{scores.predicted} predicted, "
        f"{scores.true} true pairs)"
    )


@pytest.mark.parametrize("dataset", ["dataset1", "dataset2", "dataset3"])
def test_febrl_dedupe_unsupervised(dataset: str) -> None:
    records, entity = load_febrl(dataset)
    linker = ProbabilisticLinker(febrl_settings())
    linker.train(records)
    clusters = linker.cluster(records, linker.predict(records))
    scores = pairwise_scores(pairs_in_groups(clusters), pairs_in_groups(entity))
    _report(dataset, scores)
    assert scores.f1 >= MIN_F1


def test_febrl4_linkage_unsupervised() -> None:
    left, left_entity = load_febrl("dataset4a")
    right, right_entity = load_febrl("dataset4b", first_id=len(left))
    linker = ProbabilisticLinker(febrl_settings())
    report = linker.train(left, right)
    assert report.link_type == "link_only"
    pairs = linker.link(left, right)
    assert pairs["unique_id_l"].isin(left["unique_id"]).all()
    clusters = linker.cluster(pd.concat([left, right]), pairs)
    left_ids = set(left["unique_id"])

    def across(found: set[Pair]) -> set[Pair]:
        return {pair for pair in found if (pair[0] in left_ids) != (pair[1] in left_ids)}

    truth = across(pairs_in_groups(pd.concat([left_entity, right_entity])))
    scores = pairwise_scores(across(pairs_in_groups(clusters)), truth)
    _report("dataset4a x dataset4b", scores)
    assert scores.f1 >= MIN_F1
