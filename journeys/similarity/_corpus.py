"""Every distinct journey of one representation, for exact search without an index.

The index is built for one representation. A query that shapes journeys another way
(other excluded types, no collapsing, another ``last_steps``, a time window) is
answered by deriving every customer's journey that way (vectorised, a second or two
for a million customers) and scanning them all with rapidfuzz.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa

from journeys.similarity._journeys import (
    CustomerOrder,
    Indices,
    Rows,
    Shaping,
    as_strings,
    distinct,
    lengths_of,
    timeline_rows,
)
from journeys.timelines import Timelines


@dataclass(frozen=True)
class JourneyCorpus:
    """Distinct journeys (codes of ``names``) and their customers (``members``, by id).

    ``customers`` are sorted, so member numbers in order are customers in id order.
    """

    journeys: Rows
    names: tuple[str, ...]
    customers: pa.Array[Any]
    members: Indices
    member_offsets: Indices

    @classmethod
    def of(cls, timelines: Timelines, shaping: Shaping) -> JourneyCorpus:
        """Every customer's journey in ``timelines``, shaped, grouped into distinct ones."""
        customers = CustomerOrder.of(timelines.customers)
        rows = customers.sort(timeline_rows(timelines, shaping))
        present = np.flatnonzero(lengths_of(rows) > 0)
        journeys, inverse = distinct(rows[present])
        order = np.argsort(inverse, kind="stable")
        offsets = np.zeros(len(journeys) + 1, np.int64)
        np.cumsum(np.bincount(inverse, minlength=len(journeys)), out=offsets[1:])
        return cls(
            journeys=journeys,
            names=timelines.event_types,
            customers=customers.ids,
            members=present[order],
            member_offsets=offsets,
        )

    def every_journey(self) -> Indices:
        """The ids of all journeys."""
        return np.arange(len(self.journeys), dtype=np.int64)

    def steps_of(self, journey: int) -> list[str]:
        """A journey's event types."""
        row = self.journeys[journey]
        return [self.names[code - 1] for code in row[row > 0].tolist()]

    def strings(self, journeys: Indices) -> list[str]:
        """The journeys as strings of code characters."""
        return as_strings(self.journeys[journeys])

    def member_counts(self) -> Indices:
        """How many customers walked each journey."""
        return np.diff(self.member_offsets)

    def first_members(self, journeys: Indices, limit: int) -> list[tuple[str, int]]:
        """The first ``limit`` customers, by id, of all these journeys, with their journey."""
        starts = self.member_offsets[journeys]
        sizes = np.minimum(self.member_offsets[journeys + 1] - starts, limit)
        firsts = np.cumsum(sizes) - sizes
        positions = np.arange(int(sizes.sum())) + np.repeat(starts - firsts, sizes)
        numbers = self.members[positions]
        owners = np.repeat(journeys, sizes)
        order = np.argsort(numbers, kind="stable")[:limit]
        ids = cast(list[str], self.customers.take(pa.array(numbers[order], pa.int64())).to_pylist())
        return list(zip(ids, owners[order].tolist(), strict=True))
