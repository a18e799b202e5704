"""GNN propensity models (churn, next-best-offer, fraud, CSAT): not built yet (see the issues)."""

__all__: list[str] = []
