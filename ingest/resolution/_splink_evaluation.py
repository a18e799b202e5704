"""Measuring probabilistic resolution against ground truth.

Pairwise precision and recall (a pair of records is right when both belong to the same
entity), and the person records of a generated world (its CRM customers and shop
visits, the two sources with names, date of birth and postcode) with each record's true
person and household. The tests and ``bench/bench_splink.py`` use these; so can anyone
tuning ``person_settings`` on a world of their own.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ingest.identifiers import IdentifierError, normalise_identifier
from ingest.resolution._splink_prepare import none_for_missing

Pair = tuple[Hashable, Hashable]


@dataclass(frozen=True)
class PairwiseScores:
    """Counts of predicted, true and correct pairs, and the rates they give."""

    predicted: int
    true: int
    correct: int

    @property
    def precision(self) -> float:
        """Correct pairs over predicted pairs (1.0 when nothing was predicted)."""
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        """Correct pairs over true pairs (1.0 when there are none)."""
        return self.correct / self.true if self.true else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """Counts and rates, rates rounded to four places."""
        return {
            "predicted_pairs": self.predicted,
            "true_pairs": self.true,
            "correct_pairs": self.correct,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def pairwise_scores(predicted: set[Pair], true: set[Pair]) -> PairwiseScores:
    """Scores of ``predicted`` against ``true`` (both as sets of ordered pairs)."""
    return PairwiseScores(len(predicted), len(true), len(predicted & true))


def pairs_in_groups(group_of: pd.Series) -> set[Pair]:
    """Every pair of index values that share a value (a cluster, or a true entity),
    smaller id first."""
    pairs: set[Pair] = set()
    for _, members in group_of.groupby(group_of, sort=False):
        if len(members) > 1:
            pairs.update(itertools.combinations(sorted(members.index), 2))
    return pairs


def ordered_pairs(left: Iterable[Any], right: Iterable[Any]) -> set[Pair]:
    """Pairs with the smaller id first."""
    return {(a, b) if a < b else (b, a) for a, b in zip(left, right, strict=True)}


def world_person_records(folder: Path) -> pd.DataFrame:
    """CRM customers and shop visits of a generated world as person records.

    Columns: ``unique_id`` (the record id), ``source``, the frame's person columns (dob as
    ISO, address from CRM only), ``msisdn`` (E.164, unparseable ones dropped), ``email``,
    ``account``, ``national_id_hash`` (the generator has none), and from the truth tables
    ``person_id``, ``household_id`` and ``fraud`` (typed by an impostor).
    """
    crm = pd.read_csv(folder / "crm" / "customers.csv", dtype=str, keep_default_na=False)
    shop = pd.read_csv(folder / "retail" / "shop_visits.csv", dtype=str, keep_default_na=False)
    shop_dob = pd.to_datetime(shop["date_of_birth"], format="%d/%m/%Y", errors="coerce")
    records = pd.concat(
        [
            _person_frame(crm, "crm", "crm_id", crm["date_of_birth"], crm["address_line1"]),
            _person_frame(shop, "retail", "visit_id", shop_dob.dt.strftime("%Y-%m-%d"), None),
        ],
        ignore_index=True,
    )
    truth = pd.read_parquet(
        folder / "truth" / "records.parquet", columns=["record_id", "person_id", "fraud"]
    ).rename(columns={"record_id": "unique_id"})
    persons = pd.read_parquet(
        folder / "truth" / "persons.parquet", columns=["person_id", "household_id"]
    )
    return records.merge(truth, on="unique_id").merge(persons, on="person_id")


def _person_frame(
    table: pd.DataFrame, source: str, record_id: str, dob: pd.Series, address: pd.Series | None
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "unique_id": table[record_id],
            "source": source,
            "first_name": table["first_name"],
            "last_name": table["last_name"],
            "dob": dob,
            "postcode": table["postcode"],
            "address": address,
            "msisdn": [_normalised("msisdn", value) for value in table["msisdn"]],
            "email": [_normalised("email", value) for value in table["email"]],
            "account": table["account_id"],
            "national_id_hash": None,
        }
    )
    return frame.apply(lambda column: none_for_missing(column.mask(column == "")))


def _normalised(kind: str, value: str) -> str | None:
    if not value:
        return None
    try:
        return normalise_identifier(kind, value)
    except IdentifierError:
        return None
