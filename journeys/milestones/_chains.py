"""The first completion of a condition on one customer's touchpoints, one at a time.

The incremental path's evaluator (the backfill has a vectorised one in
``_vectorised``; both follow the rules below and the tests hold them to a
brute-force reference).

Touchpoints are in ``(ts, event_id)`` order. Step ``k`` is *completed* at touchpoint
``e`` when ``e`` matches the step and, taking the step's group to be ``e`` and the
``count - 1`` touchpoints matching the step just before it:

* the group spans at most ``within`` (last ts minus first ts);
* for ``k > 0``: some touchpoint completing step ``k - 1`` lies strictly before the
  group's first touchpoint, and the latest such one is at most ``max_gap`` before
  ``e``.

The condition holds at ``e`` when ``e`` completes the last step. Its evidence is the
chain: the groups of every step, each step's previous one being that latest
completion before its group. Taking the latest group and the latest previous
completion is never worse than any other choice (they are the closest together), so
"completed" means exactly "some chain of touchpoints satisfies the condition".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from journeys.milestones._matching import CompiledStep


@dataclass(frozen=True, slots=True)
class Completion:
    """A touchpoint completing a step: its position, ts (ms) and evidence positions."""

    position: int
    ts: int
    chain: tuple[int, ...]


def first_completion(
    ts: Sequence[int],
    masks: Sequence[int],
    steps: Sequence[CompiledStep],
    start: int = 0,
) -> Completion | None:
    """The first position at or after ``start`` where the condition holds, or None.

    ``masks[i]`` has bit ``k`` set when touchpoint ``i`` matches step ``k``. Positions
    before ``start`` are read (they may begin chains) but not reported.
    """
    last_step = len(steps) - 1
    latest: list[Completion | None] = [None] * len(steps)
    # Per step, its last `count` matching touchpoints with, for each, the latest
    # completion of the previous step strictly before it.
    groups: list[deque[tuple[int, int, Completion | None]]] = [
        deque(maxlen=step.count) for step in steps
    ]
    for position, mask in enumerate(masks):
        if not mask:
            continue
        now = ts[position]
        # Later steps first, so that latest[k - 1] is still strictly before this touchpoint.
        for index in range(last_step, -1, -1):
            if not mask >> index & 1:
                continue
            step = steps[index]
            group = groups[index]
            group.append((position, now, latest[index - 1] if index else None))
            if len(group) < step.count:
                continue
            _, first_ts, previous = group[0]
            if step.within_ms is not None and now - first_ts > step.within_ms:
                continue
            members = tuple(member[0] for member in group)
            if index:
                if previous is None:
                    continue
                if step.max_gap_ms is not None and now - previous.ts > step.max_gap_ms:
                    continue
                members = previous.chain + members
            completion = Completion(position, now, members)
            latest[index] = completion
            if index == last_step and position >= start:
                return completion
    return None
