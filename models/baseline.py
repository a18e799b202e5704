"""The LightGBM baseline: gradient boosting on per-customer aggregate features only.

It sees exactly the customer features the GNN starts from (``Snapshot.customer_features``)
but none of the neighbours, so the gap between the two is what the graph adds. For
next-best-offer it learns from (customer, offer) pairs with the offer's features beside
the customer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from models.export import Snapshot
from models.tasks import Task

PARAMETERS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbosity": -1,
    "num_threads": 0,
}
ROUNDS = 400
CHUNK = 10_000
"""Customers scored per LightGBM call for next-best-offer (bounded memory)."""
NON_ACCEPTING = 20_000
EARLY_STOP = 30


@dataclass
class Baseline:
    """A trained LightGBM booster for one task."""

    task: Task
    booster: lgb.Booster

    @classmethod
    def fit(
        cls,
        task: Task,
        snapshots: Sequence[Snapshot],
        validations: Sequence[NDArray[np.bool_]],
        seed: int,
    ) -> Baseline:
        """Train on the snapshots' labelled customers, early-stopping on ``validations``."""
        parts = [_rows(task, snapshot) for snapshot in snapshots]
        features = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        held_out = np.concatenate(
            [validation[part[2]] for part, validation in zip(parts, validations, strict=True)]
        )
        objective = {"binary": "binary", "regression": "l2", "ranking": "binary"}[task.kind]
        parameters = PARAMETERS | {"objective": objective, "seed": seed}
        train = lgb.Dataset(features[~held_out], labels[~held_out])
        valid = lgb.Dataset(features[held_out], labels[held_out], reference=train)
        booster = lgb.train(
            parameters,
            train,
            ROUNDS,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)],
        )
        return cls(task, booster)

    def predict(self, snapshot: Snapshot, customers: NDArray[np.int64]) -> NDArray[np.float64]:
        """Scores of customer nodes ``customers`` (``[customers, offers]`` for NBO)."""
        features = snapshot.customer_features.iloc[customers].to_numpy(np.float64)
        if self.task.kind != "ranking":
            scores: NDArray[np.float64] = np.asarray(self.booster.predict(features))
            return scores
        offers = _offer_matrix(snapshot)
        parts = [
            np.asarray(self.booster.predict(_pairs(features[start : start + CHUNK], offers)))
            for start in range(0, len(features), CHUNK)
        ]
        flat = np.concatenate(parts) if parts else np.zeros(0)
        return flat.reshape(len(customers), len(offers))


def _rows(
    task: Task, snapshot: Snapshot
) -> tuple[NDArray[np.float64], NDArray[Any], NDArray[np.int64]]:
    """Feature rows, labels, and for each row the customer node it belongs to."""
    keep = task.labelled(snapshot.data).numpy()
    if task.kind == "ranking":
        keep = _sample_customers(keep, snapshot.data["customer"][task.label].numpy())
    customers = np.flatnonzero(keep)
    features = snapshot.customer_features.iloc[customers].to_numpy(np.float64)
    labels = snapshot.data["customer"][task.label].numpy()[customers]
    if task.kind != "ranking":
        return features, labels.astype(np.float64), customers
    offers = _offer_matrix(snapshot)
    launched = snapshot.data["offer"].launched.numpy()
    pairs = _pairs(features, offers)
    chosen = np.tile(launched, len(customers))
    rows = np.repeat(customers, len(offers))
    return pairs[chosen], labels.reshape(-1)[chosen].astype(np.float64), rows[chosen]


def _sample_customers(keep: NDArray[np.bool_], accepted: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Every customer who accepted an offer, and at most ``NON_ACCEPTING`` others.

    Pairs are customers x offers wide: at 100k customers and 25 offers all of them take
    several GB. Leaving most non-accepting customers out changes every offer's odds for
    a customer by the same factor, so the ranking within a customer is unchanged.
    """
    positive = keep & accepted.any(axis=1)
    others = np.flatnonzero(keep & ~positive)
    if len(others) > NON_ACCEPTING:
        others = np.random.default_rng(0).choice(others, NON_ACCEPTING, replace=False)
    chosen = positive.copy()
    chosen[others] = True
    return chosen


def _offer_matrix(snapshot: Snapshot) -> NDArray[np.float64]:
    matrix: NDArray[np.float64] = snapshot.data["offer"].x.numpy().astype(np.float64)
    return matrix


def _pairs(customers: NDArray[np.float64], offers: NDArray[np.float64]) -> NDArray[np.float64]:
    """Every (customer, offer) pair as one row: customer features, then offer features."""
    left = np.repeat(customers.astype(np.float32), len(offers), axis=0)
    right = np.tile(offers.astype(np.float32), (len(customers), 1))
    return np.hstack([left, right])
