"""Identity resolution: which touchpoints belong to the same customer.

Deterministic (shared identifiers, hub guard, account holders) in ``deterministic``,
probabilistic (Splink) in ``probabilistic``, the pass that links customers with it in
``resolver``, and scores against ground truth in ``evaluation``. Names are imported
on first use, so the deterministic path does not load Splink.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "DeterministicResolver": "ingest.resolution.deterministic",
    "IdentityIndex": "ingest.resolution.deterministic",
    "ResolutionSettings": "ingest.resolution.deterministic",
    "Evaluation": "ingest.resolution.evaluation",
    "evaluate": "ingest.resolution.evaluation",
    "LinkageSettings": "ingest.resolution.probabilistic",
    "ProbabilisticLinker": "ingest.resolution.probabilistic",
    "person_settings": "ingest.resolution.probabilistic",
}

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


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ingest.resolution' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
