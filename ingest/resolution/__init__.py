"""Identity resolution: which touchpoints belong to the same customer.

Deterministic (shared identifiers, hub guard, account holders) in ``deterministic``,
probabilistic (Splink) in ``probabilistic``, the pass that links customers with it in
``resolver``, and scores against ground truth in ``evaluation``.
"""

from ingest.resolution.deterministic import (
    DeterministicResolver,
    IdentityIndex,
    ResolutionSettings,
)
from ingest.resolution.evaluation import Evaluation, evaluate
from ingest.resolution.probabilistic import (
    LinkageSettings,
    ProbabilisticLinker,
    person_settings,
)

__all__ = [
    "DeterministicResolver",
    "Evaluation",
    "IdentityIndex",
    "LinkageSettings",
    "ProbabilisticLinker",
    "ResolutionSettings",
    "evaluate",
    "person_settings",
]
