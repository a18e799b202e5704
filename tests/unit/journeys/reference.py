"""A plain-Python frequency analyzer: the oracle the vectorised one is checked against.

Written from the semantics in ``journeys/frequency.py`` (and DESIGN.md) as directly
as possible, one customer and one touchpoint at a time.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from journeys.frequency import FrequencyQuery, TimelineOptions, VariantQuery


@dataclass(frozen=True)
class Row:
    customer: str
    event_id: str
    event_type: str
    channel: str
    source: str
    ts: int  # ms


def rows_table(rows: list[Row]) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "customer": [r.customer for r in rows],
            "event_id": [r.event_id for r in rows],
            "event_type": [r.event_type for r in rows],
            "channel": [r.channel for r in rows],
            "source": [r.source for r in rows],
            "ts": pa.array([r.ts for r in rows], pa.int64()),
        }
    )


def timelines(
    rows: list[Row], options: TimelineOptions, segment: set[str] | None = None
) -> list[tuple[str, list[Row]]]:
    """(customer, touchpoints) of every timeline after filters, collapsing and sessions."""
    kept: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if options.since and row.ts < options.since.timestamp() * 1000:
            continue
        if options.until and row.ts >= options.until.timestamp() * 1000:
            continue
        if options.channels is not None and row.channel not in options.channels:
            continue
        if options.sources is not None and row.source not in options.sources:
            continue
        if row.event_type in options.exclude:
            continue
        if options.customers is not None and row.customer not in options.customers:
            continue
        if segment is not None and row.customer not in segment:
            continue
        kept[row.customer].append(row)
    result = []
    for customer in sorted(kept):
        timeline = sorted(kept[customer], key=lambda r: (r.ts, r.event_id))
        if options.collapse_repeats:
            collapsed: list[Row] = []
            for row in timeline:
                if not collapsed or collapsed[-1].event_type != row.event_type:
                    collapsed.append(row)
            timeline = collapsed
        sessions: list[list[Row]] = []
        for row in timeline:
            gap = options.session_gap
            if (
                sessions
                and gap is not None
                and row.ts - sessions[-1][-1].ts > gap.total_seconds() * 1000
            ):
                sessions.append([row])
            elif sessions:
                sessions[-1].append(row)
            else:
                sessions.append([row])
        result.extend((customer, session) for session in sessions)
    return result


def journeys(
    rows: list[Row], query: FrequencyQuery | VariantQuery, segment: set[str] | None = None
) -> tuple[list[tuple[str, list[Row]]], int]:
    """(customer, journey touchpoints) of every anchored journey, and the not reached."""
    found: list[tuple[str, list[Row]]] = []
    not_reached = 0
    for customer, timeline in timelines(rows, query, segment):
        if isinstance(query, VariantQuery):
            found.append((customer, timeline))
            continue
        anchors = [i for i, row in enumerate(timeline) if row.event_type == query.anchor]
        if query.occurrence == "first":
            anchors = anchors[-1:] if query.direction == "end" else anchors[:1]
        for i in anchors:
            if query.direction == "end":
                found.append((customer, timeline[max(0, i - query.max_steps + 1) : i + 1]))
            elif query.between is not None:
                ends = [
                    j
                    for j in range(i + 1, min(len(timeline), i + query.max_steps))
                    if timeline[j].event_type == query.between
                ]
                if ends:
                    found.append((customer, timeline[i : ends[0] + 1]))
                else:
                    not_reached += 1
            else:
                found.append((customer, timeline[i : i + query.max_steps]))
    return found, not_reached


def frequency(
    rows: list[Row], query: FrequencyQuery | VariantQuery, segment: set[str] | None = None
) -> dict[str, Any]:
    """The FrequencyResult the analyzer should give, as plain data."""
    found, not_reached = journeys(rows, query, segment)
    counts: Counter[tuple[str, ...]] = Counter()
    customers: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for customer, journey in found:
        steps = tuple(row.event_type for row in journey)
        counts[steps] += 1
        customers[steps].add(customer)
    ranked = sorted(counts, key=lambda steps: (-counts[steps], steps))
    top, rest = ranked[: query.top], ranked[query.top :]
    total = len(found)
    max_steps = query.max_steps if isinstance(query, FrequencyQuery) else None
    longest = max((len(j) for _, j in found), default=0)
    step_tally: Counter[tuple[int, str]] = Counter()
    link_gaps: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    drops: Counter[tuple[int, str]] = Counter()
    for _, journey in found:
        shift = 0
        if isinstance(query, FrequencyQuery) and query.direction == "end":
            shift = (max_steps or longest) - len(journey)
        for k, row in enumerate(journey):
            step_tally[(shift + k + 1, row.event_type)] += 1
        for k in range(len(journey) - 1):
            key = (shift + k + 1, journey[k].event_type, journey[k + 1].event_type)
            link_gaps[key].append(journey[k + 1].ts - journey[k].ts)
        if max_steps is not None and len(journey) < max_steps:
            if isinstance(query, FrequencyQuery) and query.direction == "end":
                drops[(shift + 1, journey[0].event_type)] += 1
            else:
                drops[(len(journey), journey[-1].event_type)] += 1
    return {
        "journeys": [
            {
                "steps": list(steps),
                "count": counts[steps],
                "customers": len(customers[steps]),
                "share": counts[steps] / total,
            }
            for steps in top
        ],
        "other": {
            "journeys": len(rest),
            "count": sum(counts[s] for s in rest),
            "customers": len({c for s in rest for c in customers[s]}),
            "share": sum(counts[s] for s in rest) / total if total else 0.0,
        },
        "step_counts": [
            {"step": s, "event_type": e, "count": n} for (s, e), n in sorted(step_tally.items())
        ],
        "links": [
            {
                "step": s,
                "source": a,
                "target": b,
                "count": len(gaps),
                "median_seconds": statistics.median(gaps) / 1000,
            }
            for (s, a, b), gaps in sorted(link_gaps.items())
            if query.links
        ],
        "drop_offs": [
            {"step": s, "event_type": e, "count": n} for (s, e), n in sorted(drops.items())
        ],
        "total_journeys": total,
        "total_customers": len({c for c, _ in found}),
        "distinct_journeys": len(counts),
        "not_reached": not_reached,
    }
