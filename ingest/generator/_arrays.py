"""Array type aliases and the few array helpers every part of the generator shares."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Strings = NDArray[np.object_]
"""Python strings (or ``None``) in an object array: small tables and noisy text."""


def where_present(keep: NDArray[np.bool_], values: NDArray[Any]) -> Strings:
    """``values`` where ``keep``, ``None`` elsewhere (a field a source did not capture)."""
    result: Strings = np.full(len(keep), None, dtype=object)
    result[keep] = np.broadcast_to(values, len(keep))[keep]
    return result
