"""Evaluation metrics, in numpy: AUROC, AUPRC, MAE, NDCG@k and revenue@k.

Written here rather than imported (scikit-learn is not a dependency); each is the
textbook definition and the unit tests check them against brute-force references.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def auroc(labels: BoolArray, scores: FloatArray) -> float:
    """Area under the ROC curve (ties count half); NaN when one class is absent."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def auprc(labels: BoolArray, scores: FloatArray) -> float:
    """Average precision: mean precision at the rank of each positive (ties broken by order)."""
    positives = int(labels.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / positives)


def mae(truth: FloatArray, predicted: FloatArray) -> float:
    """Mean absolute error; NaN for no rows."""
    return float(np.abs(truth - predicted).mean()) if len(truth) else float("nan")


def top_k(ranking: FloatArray, k: int) -> NDArray[np.int64]:
    """Column indices of the ``k`` best entries per row, best first."""
    k = min(k, ranking.shape[1])
    part = np.argpartition(-ranking, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(ranking, part, axis=1), axis=1, kind="stable")
    result: NDArray[np.int64] = np.take_along_axis(part, order, axis=1)
    return result


def ndcg_at_k(accepted: BoolArray, ranking: FloatArray, k: int) -> float:
    """Mean NDCG@k over rows with at least one accepted offer (binary relevance)."""
    rows = accepted.any(axis=1)
    if not rows.any():
        return float("nan")
    accepted, ranking = accepted[rows], ranking[rows]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    picked = np.take_along_axis(accepted, top_k(ranking, k), axis=1)
    dcg = (picked * discounts[: picked.shape[1]]).sum(axis=1)
    ideal_hits = np.minimum(accepted.sum(axis=1), k)
    ideal = np.cumsum(discounts)[ideal_hits - 1]
    return float((dcg / ideal).mean())


def revenue_at_k(accepted: BoolArray, ranking: FloatArray, margin: FloatArray, k: int) -> float:
    """Margin of the accepted offers that made each customer's top ``k``, summed."""
    chosen = top_k(ranking, k)
    hits = np.take_along_axis(accepted, chosen, axis=1)
    return float((hits * margin[chosen]).sum())
