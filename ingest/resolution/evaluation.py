"""How good a resolution is, against ground truth.

Three views of the same clustering (record -> predicted customer vs record -> true
person), computed from the contingency table, never from materialised pairs:

* **pairwise**: over all pairs of records, precision = share of predicted
  same-customer pairs that are truly the same person; recall the other way round;
* **cluster**: a predicted customer counts as right only if it holds exactly one true
  person's records, all of them; precision = right / predicted customers, recall =
  right / true persons (the strictest view: one stray record spoils a customer);
* **B-cubed**: per record, the share of its predicted customer that is its person
  (precision) and of its person that is in its predicted customer (recall), averaged.

``blocking_recall`` says what share of true matching pairs a set of candidate pairs
contains (the ceiling for probabilistic linkage).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ingest.lake import Lake


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 of one view."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0 when both are 0)."""
        total = self.precision + self.recall
        return 0.0 if total == 0 else 2 * self.precision * self.recall / total

    def as_dict(self) -> dict[str, float]:
        """Precision, recall and F1, rounded to four places."""
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass(frozen=True)
class Evaluation:
    """Every view of one clustering against the truth."""

    records: int
    predicted_customers: int
    true_persons: int
    pairwise: Scores
    cluster: Scores
    bcubed: Scores

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        result: dict[str, object] = asdict(self)
        for view in ("pairwise", "cluster", "bcubed"):
            result[view] = getattr(self, view).as_dict()
        return result


def _pairs(sizes: pd.Series) -> int:
    counts = sizes.to_numpy(dtype=np.int64)
    return int((counts * (counts - 1) // 2).sum())


def evaluate(predicted: pd.Series, truth: pd.Series) -> Evaluation:
    """Compare a predicted clustering with the truth; both indexed by record id.

    Records missing from either side are an error: an evaluation over a subset
    would silently flatter the result.
    """
    if not predicted.index.is_unique or not truth.index.is_unique:
        raise ValueError("record ids must be unique on both sides")
    missing = truth.index.difference(predicted.index)
    extra = predicted.index.difference(truth.index)
    if len(missing) or len(extra):
        raise ValueError(
            f"{len(missing)} records have no prediction and {len(extra)} have no truth "
            f"(first: {list(missing[:3]) + list(extra[:3])})"
        )
    frame = pd.DataFrame(
        {
            "p": pd.factorize(predicted)[0],
            "t": pd.factorize(truth.reindex(predicted.index))[0],
        }
    )
    joint = frame.groupby(["p", "t"], sort=False).size()
    by_predicted = frame.groupby("p", sort=False).size()
    by_truth = frame.groupby("t", sort=False).size()

    same_both = _pairs(joint)
    same_predicted = _pairs(by_predicted)
    same_truth = _pairs(by_truth)
    pairwise = Scores(
        same_both / same_predicted if same_predicted else 1.0,
        same_both / same_truth if same_truth else 1.0,
    )

    cells = joint.reset_index(name="n")
    cells["p_size"] = by_predicted.reindex(cells["p"]).to_numpy()
    cells["t_size"] = by_truth.reindex(cells["t"]).to_numpy()
    exact = int(((cells["n"] == cells["p_size"]) & (cells["n"] == cells["t_size"])).sum())
    cluster = Scores(exact / len(by_predicted), exact / len(by_truth))

    records = len(frame)
    squares = cells["n"].to_numpy(dtype=np.float64) ** 2
    bcubed = Scores(
        float((squares / cells["p_size"].to_numpy()).sum() / records),
        float((squares / cells["t_size"].to_numpy()).sum() / records),
    )
    return Evaluation(records, len(by_predicted), len(by_truth), pairwise, cluster, bcubed)


def blocking_recall(candidates: pd.DataFrame, truth: pd.Series) -> float:
    """Share of true matching pairs among ``candidates`` (``unique_id_l``/``_r``).

    ``truth`` maps record id -> person id. A blocking scheme can find no more links
    than this share of them.
    """
    left = truth.reindex(candidates["unique_id_l"]).to_numpy()
    right = truth.reindex(candidates["unique_id_r"]).to_numpy()
    pairs = candidates.loc[left == right, ["unique_id_l", "unique_id_r"]]
    found = len(pairs.drop_duplicates())
    wanted = _pairs(truth.value_counts())
    return 1.0 if wanted == 0 else found / wanted


def evaluate_lake(lake: Lake, merge_map: Mapping[str, str], truth_path: Path) -> dict[str, Any]:
    """Score the lake's resolution against a generator truth table.

    The truth (``source``, ``record_id``, ``person_id``) is matched to touchpoints
    by derived event id. Only records that reached the lake are scored; how many
    did not (quarantined, or not ingested yet) is reported beside the scores.
    """
    import pyarrow.parquet as pq

    from graph.model import derived_event_id

    truth_table = pq.read_table(truth_path, columns=["source", "record_id", "person_id"])
    events = [
        derived_event_id(str(source), str(record))
        for source, record in zip(
            truth_table.column("source").to_pylist(),
            truth_table.column("record_id").to_pylist(),
            strict=True,
        )
    ]
    truth = pd.Series(truth_table.column("person_id").to_pylist(), index=events)
    resolved = lake.touchpoints(["event_id", "customer"], merge_map)
    if resolved.num_rows == 0:
        raise ValueError("the lake is empty: ingest something first")
    predicted = pd.Series(
        resolved.column("customer").to_pylist(), index=resolved.column("event_id").to_pylist()
    )
    predicted = predicted[~predicted.index.duplicated()]
    scored = truth.index.intersection(predicted.index)
    if len(scored) == 0:
        raise ValueError(f"no touchpoint in the lake is a record of {truth_path}")
    result = evaluate(predicted.loc[scored], truth.loc[scored]).as_dict()
    result["truth_records"] = len(truth)
    result["not_in_lake"] = len(truth) - len(scored)
    result["not_in_truth"] = len(predicted) - len(scored)
    return result
