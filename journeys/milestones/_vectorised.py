"""The first completion of a condition for every customer at once, in NumPy.

The backfill's evaluator: the rules of ``_chains`` (read its docstring) applied a
step at a time to all customers' touchpoints together. Touchpoints come sorted by
(customer, ts, event_id), so each customer's are one run of positions, and "the
latest completion of the previous step before position p" is a binary search in
the sorted positions of that step's completions, checked to be the same customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from journeys.milestones._matching import CompiledStep

Positions = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FirstReaches:
    """For each customer who reaches the milestone: the completing position and evidence.

    ``evidence`` has one row per reach and one column per touchpoint of the chain
    (the steps' counts summed), in time order; its last column is ``completion``.
    """

    completion: Positions
    evidence: npt.NDArray[np.int64]


@dataclass(frozen=True)
class _StepCompletions:
    matching: Positions  # positions matching the step, ascending
    completed: npt.NDArray[np.bool_]  # per matching position: does it complete the step
    previous: Positions  # per matching position: the previous step's completion used (-1)


def first_reaches(
    customers: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    masks: Sequence[npt.NDArray[np.bool_]],
    steps: Sequence[CompiledStep],
) -> FirstReaches:
    """Evaluate a condition over touchpoints sorted by (customer, ts, event_id).

    ``customers`` are integer codes (equal codes, same customer), ``ts`` milliseconds,
    ``masks[k]`` whether each touchpoint matches step ``k``.
    """
    done: list[_StepCompletions] = []
    previous_completions: Positions | None = None
    for index, step in enumerate(steps):
        matching = np.flatnonzero(masks[index]).astype(np.int64)
        count = step.count
        first = np.full(len(matching), -1, np.int64)
        if len(matching) >= count:
            first[count - 1 :] = matching[: len(matching) - count + 1]
        has_group = first >= 0
        first_safe = np.where(has_group, first, 0)
        completed = has_group & (customers[first_safe] == customers[matching])
        if step.within_ms is not None:
            completed &= ts[matching] - ts[first_safe] <= step.within_ms
        used = np.full(len(matching), -1, np.int64)
        if index:
            assert previous_completions is not None
            latest = np.searchsorted(previous_completions, first_safe, side="left") - 1
            found = latest >= 0
            before = previous_completions[np.where(found, latest, 0)] if found.any() else first
            completed &= found & (customers[before] == customers[matching])
            if step.max_gap_ms is not None:
                completed &= ts[matching] - ts[before] <= step.max_gap_ms
            used = np.where(completed, before, -1)
        done.append(_StepCompletions(matching, completed, used))
        previous_completions = matching[completed]
    assert previous_completions is not None
    finals = previous_completions
    if len(finals) == 0:
        width = sum(step.count for step in steps)
        return FirstReaches(np.empty(0, np.int64), np.empty((0, width), np.int64))
    _, first_of_customer = np.unique(customers[finals], return_index=True)
    completion = finals[first_of_customer]
    columns: list[npt.NDArray[np.int64]] = []
    tail = completion
    for index in range(len(steps) - 1, -1, -1):
        step_done = done[index]
        rank = np.searchsorted(step_done.matching, tail)
        group = step_done.matching[rank[:, None] + np.arange(1 - steps[index].count, 1)]
        columns.insert(0, group)
        tail = step_done.previous[rank]
    return FirstReaches(completion, np.concatenate(columns, axis=1))
