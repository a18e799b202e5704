"""Exact re-ranking: distinct journeys scored by edit distance, expanded to customers.

Both the index (over its LSH candidates, or over everything as a fallback) and the
exact path (over every journey of a representation the index was not built for)
rank the same way: rapidfuzz's normalised Levenshtein similarity of the journeys'
code strings, then customers in order of similarity descending and customer id
ascending, the querying customer left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import numpy as np
import numpy.typing as npt
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from journeys.similarity._journeys import Indices


class JourneySet(Protocol):
    """Distinct journeys, each with the customers who walked it."""

    def strings(self, journeys: Indices) -> list[str]:
        """The journeys as strings of code characters."""
        ...

    def member_counts(self) -> Indices:
        """How many customers walked each journey (0: no longer anyone's)."""
        ...

    def first_members(self, journeys: Indices, limit: int) -> list[tuple[str, int]]:
        """The first ``limit`` customers, by id, of all these journeys, with their journey."""
        ...


@dataclass(frozen=True)
class Ranking:
    """The most similar customers, and how many are at or above the threshold."""

    customers: list[str]
    similarities: list[float]
    journeys: list[int]
    count: int
    candidates: int


def similarities(query: str, strings: list[str]) -> npt.NDArray[np.float64]:
    """Normalised Levenshtein similarity of ``query`` to each string."""
    if not strings:
        return np.zeros(0, np.float64)
    scores = process.cdist(
        [query], strings, scorer=Levenshtein.normalized_similarity, dtype=np.float64
    )
    return np.asarray(scores[0], np.float64)


def rank(
    journeys: JourneySet,
    query: str,
    candidates: Indices,
    top: int,
    min_similarity: float,
    exclude: tuple[str, int] | None,
) -> Ranking:
    """Score ``candidates`` (journey ids) against ``query`` and pick the ``top`` customers.

    ``exclude`` is the querying customer and their journey id: left out of the
    answer and of the count.
    """
    counts = journeys.member_counts()[candidates]
    live = counts > 0
    candidates, counts = candidates[live], counts[live]
    scores = similarities(query, journeys.strings(candidates))
    above = scores >= min_similarity
    count = int(counts[above].sum())
    if exclude is not None and np.any(above & (candidates == exclude[1])):
        count -= 1
    excluded = exclude[0] if exclude is not None else None
    order = np.lexsort((candidates, -scores))
    ordered = scores[order]
    bounds = [0, *(np.flatnonzero(np.diff(ordered)) + 1).tolist(), len(order)] if len(order) else []
    chosen: list[tuple[str, float, int]] = []
    for start, stop in pairwise(bounds):
        need = top - len(chosen)
        if need <= 0:
            break
        pool = journeys.first_members(candidates[order[start:stop]], need + 1)
        pool = [(customer, journey) for customer, journey in pool if customer != excluded]
        level = float(ordered[start])
        chosen.extend((customer, level, journey) for customer, journey in pool[:need])
    return Ranking(
        customers=[customer for customer, _, _ in chosen],
        similarities=[similarity for _, similarity, _ in chosen],
        journeys=[journey for _, _, journey in chosen],
        count=count,
        candidates=len(candidates),
    )
