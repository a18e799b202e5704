"""Label checks, and ``train_run`` on households whose churn is planted relationally.

In the planted graph (``_graphs.planted_churn_graph``) a customer churns in the
window exactly when a member of their household left just before the cutoff; their
own history is the same routine as everyone's. So the GNN, which sees the household
edge, must rank the hold-out's churners well above chance; the LightGBM baseline,
which sees only the customer's own features, cannot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from graph.errors import InvalidInput
from models._tables import GraphTables
from models.export import build_snapshot
from models.tasks import TASKS, get_task
from models.training import (
    TrainConfig,
    TrainingRun,
    _earlier_windows,
    evaluate,
    fit_gnn,
    holdout_cutoffs,
    predict,
    train_run,
)
from tests.unit.models._graphs import PlantedChurn

CONFIG = TrainConfig(
    horizon_days=30,
    hidden=16,
    fanouts=(5, 5),
    batch_size=64,
    epochs=10,
    learning_rate=3e-3,
    dropout=0.2,
    windows=1,
    device="cpu",
)
"""Small and quick: a few hundred customers train in a second or two on one CPU thread."""

Planted = tuple[GraphTables, PlantedChurn]


# -- Task.check_labels ------------------------------------------------------------------


def labelled(
    active: list[bool], churn: list[bool], csat_mask: list[bool] | None = None
) -> HeteroData:
    data = HeteroData()
    customer = data["customer"]
    customer.active = torch.tensor(active)
    customer.y_churn = torch.tensor(churn)
    customer.y_fraud = torch.zeros(len(active), dtype=torch.bool)
    customer.csat_mask = torch.tensor(csat_mask or [True] * len(active))
    customer.y_csat = torch.zeros(len(active))
    customer.y_nbo = torch.zeros(len(active), 3, dtype=torch.bool)
    return data


def test_labels_with_a_positive_pass() -> None:
    TASKS["churn"].check_labels(labelled([True, True], [False, True]), "training")


def test_no_positive_labels_are_refused() -> None:
    with pytest.raises(InvalidInput, match="churn: the training snapshot has no positive"):
        TASKS["churn"].check_labels(labelled([True, True], [False, False]), "training")


def test_positives_only_among_customers_who_already_left_are_refused() -> None:
    data = labelled([True, False], [False, True])
    with pytest.raises(InvalidInput, match="hold-out snapshot has no positive labels"):
        TASKS["churn"].check_labels(data, "hold-out")


def test_no_labelled_customers_are_refused() -> None:
    with pytest.raises(InvalidInput, match="churn: no labelled customers in the training"):
        TASKS["churn"].check_labels(labelled([False, False], [True, True]), "training")
    with pytest.raises(InvalidInput, match="csat: no labelled customers"):
        TASKS["csat"].check_labels(labelled([True], [True], csat_mask=[False]), "training")


def test_other_tasks_check_their_own_labels() -> None:
    data = labelled([True, True], [True, True])
    TASKS["csat"].check_labels(data, "training")  # a regression needs no positives
    for name in ("fraud", "nbo"):
        with pytest.raises(InvalidInput, match=f"{name}: .*no positive labels"):
            TASKS[name].check_labels(data, "training")


def test_unknown_tasks_are_named() -> None:
    with pytest.raises(InvalidInput, match="unknown task 'upsell'; known: churn, fraud"):
        get_task("upsell")


# -- train_run on the planted graph -----------------------------------------------------


@pytest.fixture(scope="module")
def churn_run(planted: Planted) -> TrainingRun:
    tables, _ = planted
    return train_run(tables, TASKS["churn"], CONFIG)


def test_the_cutoffs_are_two_horizons_and_one_before_the_end(planted: Planted) -> None:
    tables, plant = planted
    horizon = timedelta(days=plant.horizon_days)
    assert holdout_cutoffs(tables, horizon) == (plant.train_cutoff, plant.holdout_cutoff)


def test_train_run_reports_both_models_on_the_hold_out(
    planted: Planted, churn_run: TrainingRun
) -> None:
    _, plant = planted
    fates = Counter(house % 3 for house in range(plant.households))
    assert set(churn_run.metrics) == {"gnn", "baseline"}
    for metrics in churn_run.metrics.values():
        assert set(metrics) == {"auroc", "auprc", "positives", "customers"}
        # Hold-out: households of the second third lost one member before the cutoff
        # and lose the other two in the window; the first third left before the
        # cutoff (not labelled); the last third stay.
        assert metrics["positives"] == 2 * fates[1]
        assert metrics["customers"] == 2 * fates[1] + 3 * fates[2]
    assert 1 <= churn_run.best_epoch <= CONFIG.epochs
    assert churn_run.snapshot is not None
    assert churn_run.snapshot.cutoff == churn_run.train_cutoff


def test_the_gnn_learns_the_household_signal(churn_run: TrainingRun) -> None:
    gnn, baseline = churn_run.metrics["gnn"], churn_run.metrics["baseline"]
    assert gnn["auroc"] > 0.8, churn_run.metrics
    assert gnn["auroc"] > baseline["auroc"] + 0.15, churn_run.metrics


def test_earlier_label_windows_add_training_snapshots(
    planted: Planted, churn_run: TrainingRun
) -> None:
    tables, _ = planted
    latest = churn_run.snapshot
    assert latest is not None
    config = replace(CONFIG, windows=3)
    earlier = _earlier_windows(tables, TASKS["churn"], config, latest)
    horizon = timedelta(days=CONFIG.horizon_days)
    # Windows go back one horizon at a time, in the latest's schema, while outcomes exist.
    assert [window.cutoff for window in earlier] == [
        latest.cutoff - step * horizon for step in range(1, len(earlier) + 1)
    ]
    assert all(window.schema == latest.schema for window in earlier)
    assert _earlier_windows(tables, TASKS["churn"], CONFIG, latest) == []
    run = train_run(tables, TASKS["churn"], replace(config, epochs=2))
    assert run.metrics["gnn"]["customers"] == churn_run.metrics["gnn"]["customers"]


def test_train_run_is_deterministic_for_a_seed(planted: Planted, churn_run: TrainingRun) -> None:
    tables, _ = planted
    torch.manual_seed(12345)  # whatever the global generator held before
    again = train_run(tables, TASKS["churn"], CONFIG)
    assert again.metrics == churn_run.metrics
    assert again.best_epoch == churn_run.best_epoch


def test_evaluate_and_predict_agree_with_the_run(planted: Planted, churn_run: TrainingRun) -> None:
    tables, plant = planted
    horizon = timedelta(days=plant.horizon_days)
    assert churn_run.snapshot is not None
    holdout = build_snapshot(tables, plant.holdout_cutoff, horizon, churn_run.snapshot.schema)
    task = TASKS["churn"]
    assert evaluate(churn_run.model, holdout, task, CONFIG) == churn_run.metrics["gnn"]
    customers = np.flatnonzero(task.labelled(holdout.data).numpy())
    first = predict(churn_run.model, holdout, customers, task, CONFIG)
    assert first.shape == (len(customers),)
    assert ((first >= 0) & (first <= 1)).all()
    # Sampling is seeded: the same request gets the same answer every time.
    assert np.array_equal(first, predict(churn_run.model, holdout, customers, task, CONFIG))


def test_a_customer_scores_the_same_alone_or_in_a_batch(
    planted: Planted, churn_run: TrainingRun
) -> None:
    tables, plant = planted
    assert churn_run.snapshot is not None
    holdout = build_snapshot(
        tables,
        plant.holdout_cutoff,
        timedelta(days=plant.horizon_days),
        churn_run.snapshot.schema,
    )
    task = TASKS["churn"]
    customers = np.flatnonzero(task.labelled(holdout.data).numpy())
    batch = predict(churn_run.model, holdout, customers, task, CONFIG)
    alone = [
        predict(churn_run.model, holdout, customers[i : i + 1], task, CONFIG)[0] for i in range(5)
    ]
    assert alone == pytest.approx(batch[:5].tolist(), abs=1e-6)


def test_fit_gnn_is_deterministic_for_a_seed(planted: Planted) -> None:
    tables, plant = planted
    snapshot = build_snapshot(tables, plant.train_cutoff, timedelta(days=plant.horizon_days))
    validation = np.random.default_rng(0).random(snapshot.data["customer"].num_nodes) < 0.1
    config = replace(CONFIG, epochs=1)
    one, _ = fit_gnn([snapshot], TASKS["churn"], config, [validation])
    two, _ = fit_gnn([snapshot], TASKS["churn"], config, [validation])
    for name, weights in one.state_dict().items():
        assert torch.equal(weights, two.state_dict()[name]), name


def test_next_best_offer_reports_ranking_metrics(planted: Planted) -> None:
    tables, _ = planted
    run = train_run(tables, TASKS["nbo"], replace(CONFIG, epochs=1))
    for metrics in run.metrics.values():
        assert set(metrics) == {"revenue@5", "ndcg@5", "accepted", "customers"}
        assert metrics["accepted"] > 0
        assert 0.0 <= metrics["ndcg@5"] <= 1.0


def test_a_task_without_positives_is_refused_before_training(planted: Planted) -> None:
    tables, _ = planted
    with pytest.raises(InvalidInput, match="fraud: the training snapshot has no positive"):
        train_run(tables, TASKS["fraud"], CONFIG)
