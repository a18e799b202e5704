"""A large synthetic lake for the journey benchmarks: millions of touchpoints in seconds.

The generator's world (``ingest.generator``) is realistic but takes minutes per
100k customers through the whole pipeline; the analyzers' targets are stated at
1M customers / 10M touchpoints. This writes such a lake straight into
``ingest.lake.Lake`` files: each customer's timeline is a Markov chain over the
generator's event vocabulary (with planted paths such as bill shock -> care call
-> bill dispute -> port-out request), about 10 touchpoints a customer over two
years, some at the same millisecond (ties that the (ts, event_id) order settles).

    python -m bench.synthetic_lake --customers 1000000 --out /tmp/jgbench/lake-1m
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ingest.frame import FRAME_SCHEMA, IDENTIFIER_COLUMNS, PERSON_COLUMNS
from ingest.lake import Lake

# (event_type, source, channel, base weight): the mix of a real 10k-customer ingest,
# with the machine-generated network KPIs left out.
VOCABULARY: Final = (
    ("customer_registered", "crm", "crm", 2.0),
    ("bill_issued", "billing", "billing", 18.0),
    ("payment", "billing", "billing", 17.0),
    ("bill_shock", "billing", "billing", 0.6),
    ("port_out", "billing", "billing", 0.2),
    ("cancellation", "billing", "billing", 0.05),
    ("csat_response", "care", "sms", 0.8),
    ("general_enquiry", "care", "care", 1.0),
    ("device_support", "care", "ivr", 0.8),
    ("bill_dispute", "care", "care", 0.4),
    ("port_out_request", "care", "care", 0.3),
    ("ticket_opened", "care", "care", 0.3),
    ("network_complaint", "care", "care", 0.2),
    ("cancellation_request", "care", "care", 0.05),
    ("sim_swap", "care", "care", 0.05),
    ("page_view", "clickstream", "web", 14.0),
    ("app_open", "clickstream", "app", 6.0),
    ("login", "clickstream", "app", 5.0),
    ("offer_viewed", "clickstream", "web", 0.5),
    ("device_order", "clickstream", "web", 0.2),
    ("offer_accepted", "clickstream", "app", 0.1),
    ("device_purchase", "retail", "retail", 0.3),
    ("enquiry", "retail", "retail", 0.2),
    ("accessory_purchase", "retail", "retail", 0.15),
)
PLANTED: Final = (
    ("bill_shock", "general_enquiry", 6.0),
    ("general_enquiry", "bill_dispute", 2.0),
    ("bill_dispute", "port_out_request", 2.0),
    ("port_out_request", "port_out", 3.0),
    ("port_out_request", "offer_accepted", 1.5),
    ("network_complaint", "csat_response", 4.0),
    ("login", "page_view", 8.0),
    ("page_view", "offer_viewed", 0.5),
    ("offer_viewed", "offer_accepted", 1.0),
    ("bill_issued", "payment", 10.0),
)
DAY_MS: Final = 86_400_000
START_MS: Final = 1_672_531_200_000  # 2023-01-01T00:00:00Z


def transition_matrix(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Row-stochastic transitions: the base mix, some noise, and the planted paths."""
    names = [name for name, *_ in VOCABULARY]
    base = np.array([weight for *_, weight in VOCABULARY])
    matrix = base[None, :] * rng.uniform(0.5, 1.5, (len(base), len(base)))
    for source, target, weight in PLANTED:
        row = names.index(source)
        matrix[row, names.index(target)] += weight * matrix[row].sum()
    return np.asarray(matrix / matrix.sum(axis=1, keepdims=True), np.float64)


def timelines(
    customers: int, mean_length: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(owner, event code, ts ms) of every touchpoint, grouped by customer in time order."""
    lengths = 1 + rng.poisson(mean_length - 1, customers)
    total = int(lengths.sum())
    owner = np.repeat(np.arange(customers, dtype=np.int64), lengths)
    first = np.zeros(total, bool)
    first[np.cumsum(lengths) - lengths] = True
    cumulative = np.cumsum(transition_matrix(rng), axis=1)
    start_weights = np.array([w for *_, w in VOCABULARY])
    start_cumulative = np.cumsum(start_weights / start_weights.sum())
    draws = rng.random(total)
    event = np.empty(total, np.int64)
    event[first] = np.searchsorted(start_cumulative, draws[first])
    # Step the chains of all customers together: position k of every timeline at once.
    positions = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    for step in range(1, int(lengths.max())):
        at = np.flatnonzero(positions == step)
        if len(at) == 0:
            break
        previous = event[at - 1]
        rows = cumulative[previous]
        event[at] = np.minimum((rows < draws[at, None]).sum(axis=1), len(VOCABULARY) - 1)
    gaps = rng.exponential(3 * DAY_MS, total).astype(np.int64)
    gaps[rng.random(total) < 0.02] = 0  # same-millisecond touchpoints
    starts = START_MS + rng.integers(0, 700 * DAY_MS, customers)
    gaps[first] = 0
    ts = np.cumsum(gaps)
    ts -= np.repeat(ts[first], lengths)
    ts += np.repeat(starts, lengths)
    return owner, event, ts


def customer_ids(customers: int, rng: np.random.Generator) -> pa.Array[Any]:
    """``cust:`` and 32 hex digits, like the resolver's ids."""
    raw = rng.integers(0, 2**63, (customers, 2), dtype=np.int64)
    hexed = [f"cust:{a:016x}{b:016x}" for a, b in raw.tolist()]
    return pa.array(hexed, pa.string())


def write_lake(root: Path, customers: int, mean_length: float = 10.0, seed: int = 7) -> Lake:
    """Write (or reuse, if complete) a synthetic lake at ``root``."""
    lake = Lake(root)
    done = root / "COMPLETE"
    if done.exists():
        return lake
    lake.clear()
    rng = np.random.default_rng(seed)
    owner, event, ts = timelines(customers, mean_length, rng)
    ids = customer_ids(customers, rng)
    names = pa.array([name for name, *_ in VOCABULARY])
    sources = pa.array([source for _, source, *_ in VOCABULARY])
    channels = pa.array([channel for _, _, channel, _ in VOCABULARY])
    shuffled = rng.permutation(len(owner))  # the lake holds rows in arrival order, not sorted
    chunk = 1_000_000
    for part, start in enumerate(range(0, len(shuffled), chunk)):
        rows = shuffled[start : start + chunk]
        codes = event[rows]
        size = len(rows)
        nulls = pa.nulls(size, pa.string())
        row_numbers = pa.array(rows)
        columns: dict[str, Any] = {
            "event_id": pc.binary_join_element_wise(
                pa.scalar("syn-"), row_numbers.cast(pa.string()), pa.scalar("")
            ),
            "source": sources.take(codes),
            "event_type": names.take(codes),
            "channel": channels.take(codes),
            "ts": pa.array(ts[rows], pa.int64()).cast(pa.timestamp("ms", "UTC")),
            **{name: nulls for name in IDENTIFIER_COLUMNS},
            **{name: nulls for name in PERSON_COLUMNS},
            "attributes": pa.array(["{}"] * size, pa.string()),
            "origin": pa.array(["synthetic"] * size, pa.string()),
            "origin_row": row_numbers,
        }
        frame = pa.table(columns).cast(FRAME_SCHEMA)
        lake.append(frame, ids.take(owner[rows]), f"synthetic-{part:04d}", part + 1)
    done.touch()
    return lake


def main() -> None:
    """Write a synthetic lake and say how long it took."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--mean-length", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    write_lake(args.out, args.customers, args.mean_length, args.seed)
    print(f"lake at {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
