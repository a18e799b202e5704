"""The propensity tasks: what each predicts, from which label, judged by which metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
from numpy.typing import NDArray

from graph.errors import InvalidInput

if TYPE_CHECKING:  # torch stays out of the CLI's start-up: it only names the tasks
    import torch
    from torch_geometric.data import HeteroData

TaskKind = Literal["binary", "regression", "ranking"]
Ranking = Literal["revenue", "likelihood"]
RANKINGS: Final = ("revenue", "likelihood")


@dataclass(frozen=True)
class Task:
    """One propensity task: its label on ``data['customer']`` and its primary metric."""

    name: str
    kind: TaskKind
    label: str
    description: str
    mask: str | None = None
    """A boolean attribute that says which customers have a label (CSAT: responders)."""
    metric: str = "auroc"
    higher_is_better: bool = True

    def labelled(self, data: HeteroData) -> torch.Tensor:
        """Customers the task learns from and is judged on: active, and labelled."""
        customer = data["customer"]
        keep: torch.Tensor = customer.active.clone()
        if self.mask is not None:
            keep &= customer[self.mask]
        return keep

    def check_labels(self, data: HeteroData, where: str) -> None:
        """Refuse to train on labels that cannot teach anything."""
        keep = self.labelled(data)
        if not bool(keep.any()):
            raise InvalidInput(f"{self.name}: no labelled customers in the {where} snapshot")
        labels = data["customer"][self.label][keep]
        if self.kind != "regression" and not bool(labels.any()):
            raise InvalidInput(
                f"{self.name}: the {where} snapshot has no positive labels "
                f"({int(keep.sum())} customers, none with a {self.label[2:]} in the label "
                "window): train on more history, or change the horizon"
            )

    def evaluate(
        self,
        truth: NDArray[np.float64] | NDArray[np.bool_],
        scores: NDArray[np.float64],
        margin: NDArray[np.float64] | None = None,
        k: int = 5,
        ranking: Ranking = "revenue",
    ) -> dict[str, float]:
        """The task's metrics of ``scores`` against ``truth`` (rows: labelled customers)."""
        from models.metrics import auprc, auroc, mae, ndcg_at_k, revenue_at_k

        if self.kind == "binary":
            labels = truth.astype(bool)
            return {
                "auroc": auroc(labels, scores),
                "auprc": auprc(labels, scores),
                "positives": float(labels.sum()),
                "customers": float(len(labels)),
            }
        if self.kind == "regression":
            return {"mae": mae(truth.astype(np.float64), scores), "customers": float(len(truth))}
        if margin is None:
            raise ValueError("ranking metrics need the offers' margins")
        accepted = truth.astype(bool)
        likelihood = scores
        monetised = scores * margin
        return {
            f"revenue@{k}": revenue_at_k(
                accepted, monetised if ranking == "revenue" else likelihood, margin, k
            ),
            f"ndcg@{k}": ndcg_at_k(accepted, likelihood, k),
            "accepted": float(accepted.sum()),
            "customers": float(len(accepted)),
        }


TASKS: Final[dict[str, Task]] = {
    "churn": Task(
        "churn", "binary", "y_churn", "churn (port-out or cancellation) within the horizon"
    ),
    "fraud": Task("fraud", "binary", "y_fraud", "confirmed fraud within the horizon"),
    "csat": Task(
        "csat",
        "regression",
        "y_csat",
        "mean CSAT score of survey answers within the horizon",
        mask="csat_mask",
        metric="mae",
        higher_is_better=False,
    ),
    "nbo": Task(
        "nbo",
        "ranking",
        "y_nbo",
        "next-best-offer: which offers the customer accepts within the horizon",
        metric="revenue@5",
    ),
}


def get_task(name: str) -> Task:
    """The task called ``name``; ``InvalidInput`` lists the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise InvalidInput(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
