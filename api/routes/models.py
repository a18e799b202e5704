"""Propensity models: request-time prediction and what the registry holds."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import PredictorDep
from api.schemas import ModelCardOut, PredictionOut, PredictRequest
from journeys.customer360 import canonical_customer_id
from models.tasks import TASKS

router = APIRouter(prefix="/models", tags=["models"])
TaskName = Annotated[str, Path(description=f"one of {', '.join(TASKS)}", examples=["churn"])]


@router.post("/{task}/predict", response_model=PredictionOut)
def predict(task: TaskName, request: PredictRequest, predictor: PredictorDep) -> PredictionOut:
    """Score one customer now, from their neighbourhood sampled at request time."""
    customer_id = canonical_customer_id(request.customer_id)
    return PredictionOut.of(predictor.predict(task, customer_id))


@router.get("/{task}", response_model=ModelCardOut)
def current_model(task: TaskName, predictor: PredictorDep) -> ModelCardOut:
    """The promoted model of a task: version, cutoffs, config and hold-out metrics."""
    card = predictor.registry.card(task)
    return ModelCardOut(
        task=card.task,
        version=card.version,
        created_at=card.created_at,
        train_cutoff=card.train_cutoff,
        holdout_cutoff=card.holdout_cutoff,
        data_cutoff=card.data_cutoff,
        code_version=card.code_version,
        # JSON has no NaN: a metric undefined on the hold-out (one class only) is null.
        metrics={
            model: {name: None if math.isnan(value) else value for name, value in values.items()}
            for model, values in card.metrics.items()
        },
        config=card.config,
    )
