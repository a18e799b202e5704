"""The evaluation metrics against brute-force plain-Python references (hypothesis).

Scores come from a few distinct values so that ties are common; where a metric's
result depends on how ties are broken (the top ``k``), the references use distinct
scores and the tie cases are checked by properties instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from models.metrics import auprc, auroc, mae, ndcg_at_k, revenue_at_k, top_k

TIED = st.integers(0, 4).map(float)
"""Scores from five values: ties in nearly every example."""

Labelled = tuple[NDArray[np.bool_], NDArray[np.float64]]
Ranked = tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], int]


@st.composite
def labelled_scores(draw: st.DrawFn, scores: st.SearchStrategy[float] = TIED) -> Labelled:
    size = draw(st.integers(1, 30))
    labels = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    values = draw(st.lists(scores, min_size=size, max_size=size))
    return np.array(labels, bool), np.array(values, np.float64)


@st.composite
def rankings(draw: st.DrawFn) -> Ranked:
    """Accepted offers, distinct scores per row, margins and a ``k`` (maybe > offers)."""
    rows, offers = draw(st.integers(1, 8)), draw(st.integers(1, 7))
    accepted = [
        draw(st.lists(st.booleans(), min_size=offers, max_size=offers)) for _ in range(rows)
    ]
    ranking = [draw(st.permutations(range(offers))) for _ in range(rows)]
    margin = draw(st.lists(st.integers(0, 500).map(float), min_size=offers, max_size=offers))
    k = draw(st.integers(1, offers + 2))
    return (
        np.array(accepted, bool),
        np.array(ranking, np.float64) / 2.0,
        np.array(margin, np.float64),
        k,
    )


# -- plain-Python references ------------------------------------------------------------


def reference_auroc(labels: list[bool], scores: list[float]) -> float:
    """The chance a random positive outscores a random negative (ties count half)."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return math.nan
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def reference_auprc(labels: list[bool], scores: list[float]) -> float:
    """Mean, over the positives, of the precision of the list cut at that positive;
    equal scores keep their input order (a stable sort)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, precisions = 0, []
    for position, i in enumerate(order, start=1):
        if labels[i]:
            hits += 1
            precisions.append(hits / position)
    return sum(precisions) / len(precisions) if precisions else math.nan


def reference_top_k(row: list[float], k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda j: -row[j])[:k]


def reference_ndcg(accepted: list[list[bool]], ranking: list[list[float]], k: int) -> float:
    values = []
    for relevant, row in zip(accepted, ranking, strict=True):
        if not any(relevant):
            continue
        dcg = sum(
            1 / math.log2(position + 2)
            for position, j in enumerate(reference_top_k(row, k))
            if relevant[j]
        )
        ideal = sum(1 / math.log2(position + 2) for position in range(min(sum(relevant), k)))
        values.append(dcg / ideal)
    return sum(values) / len(values) if values else math.nan


def reference_revenue(
    accepted: list[list[bool]], ranking: list[list[float]], margin: list[float], k: int
) -> float:
    return sum(
        margin[j]
        for relevant, row in zip(accepted, ranking, strict=True)
        for j in reference_top_k(row, k)
        if relevant[j]
    )


def same(value: float, expected: float) -> bool:
    return (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected)


# -- the properties ---------------------------------------------------------------------


@settings(max_examples=150)
@given(labelled_scores())
def test_auroc_matches_the_pairwise_reference_with_ties(case: Labelled) -> None:
    labels, scores = case
    assert same(auroc(labels, scores), reference_auroc(labels.tolist(), scores.tolist()))


@settings(max_examples=150)
@given(labelled_scores())
def test_auprc_matches_the_reference(case: Labelled) -> None:
    labels, scores = case
    assert same(auprc(labels, scores), reference_auprc(labels.tolist(), scores.tolist()))


@given(labelled_scores(st.floats(-1e6, 1e6, allow_nan=False)))
def test_mae_matches_the_reference(case: Labelled) -> None:
    _, truth = case
    predicted = truth[::-1].copy()
    expected = sum(abs(a - b) for a, b in zip(truth, predicted, strict=True)) / len(truth)
    assert mae(truth, predicted) == pytest.approx(expected)


@settings(max_examples=150)
@given(rankings())
def test_top_k_is_the_best_k_in_order(case: Ranked) -> None:
    _, ranking, _, k = case
    expected = [reference_top_k(row, k) for row in ranking.tolist()]
    assert top_k(ranking, k).tolist() == expected


@settings(max_examples=150)
@given(rankings())
def test_ndcg_matches_the_reference(case: Ranked) -> None:
    accepted, ranking, _, k = case
    expected = reference_ndcg(accepted.tolist(), ranking.tolist(), k)
    assert same(ndcg_at_k(accepted, ranking, k), expected)


@settings(max_examples=150)
@given(rankings())
def test_revenue_matches_the_reference(case: Ranked) -> None:
    accepted, ranking, margin, k = case
    expected = reference_revenue(accepted.tolist(), ranking.tolist(), margin.tolist(), k)
    assert revenue_at_k(accepted, ranking, margin, k) == pytest.approx(expected)


@given(
    st.lists(st.lists(TIED, min_size=4, max_size=4), min_size=1, max_size=6),
    st.integers(1, 6),
)
def test_top_k_with_ties_picks_a_best_k(rows: list[list[float]], k: int) -> None:
    ranking = np.array(rows)
    chosen = top_k(ranking, k)
    assert chosen.shape == (len(rows), min(k, 4))
    for row, picked in zip(rows, chosen.tolist(), strict=True):
        assert len(set(picked)) == len(picked)
        values = [row[j] for j in picked]
        assert values == sorted(values, reverse=True)
        left = [row[j] for j in range(4) if j not in picked]
        assert all(value <= values[-1] for value in left)


# -- edges ------------------------------------------------------------------------------


@given(st.integers(1, 20), st.booleans(), st.lists(TIED, min_size=20, max_size=20))
def test_one_class_gives_nan(size: int, label: bool, values: list[float]) -> None:
    labels = np.full(size, label)
    scores = np.array(values[:size])
    assert math.isnan(auroc(labels, scores))
    if not label:
        assert math.isnan(auprc(labels, scores))


def test_rankings_without_any_acceptance_give_nan_ndcg_and_no_revenue() -> None:
    accepted = np.zeros((3, 4), bool)
    ranking = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert math.isnan(ndcg_at_k(accepted, ranking, 2))
    assert revenue_at_k(accepted, ranking, np.ones(4), 2) == 0.0


def test_no_rows_give_nan_mae() -> None:
    assert math.isnan(mae(np.array([]), np.array([])))


def test_known_values() -> None:
    labels = np.array([True, False, True, False])
    assert auroc(labels, np.array([0.9, 0.1, 0.4, 0.4])) == 0.875
    assert auprc(labels, np.array([0.9, 0.8, 0.1, 0.0])) == pytest.approx((1 + 2 / 3) / 2)
    accepted = np.array([[False, True, False]])
    ranking = np.array([[0.9, 0.5, 0.1]])
    assert ndcg_at_k(accepted, ranking, 2) == pytest.approx(1 / math.log2(3))
    assert revenue_at_k(accepted, ranking, np.array([10.0, 20.0, 30.0]), 1) == 0.0
    assert revenue_at_k(accepted, ranking, np.array([10.0, 20.0, 30.0]), 2) == 20.0


def test_perfect_scores() -> None:
    labels = np.array([False, True, True, False, True])
    scores = labels.astype(np.float64)
    assert auroc(labels, scores) == 1.0 and auprc(labels, scores) == 1.0
    assert auroc(labels, -scores) == 0.0
