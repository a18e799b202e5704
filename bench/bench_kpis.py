"""KPI benchmark: every KPI and segment over a lake of 1M customers / 10M touchpoints.

    .venv/bin/python -m bench.bench_kpis [--customers 1000000] [--runs 3]
        [--cache /tmp/jgbench] [--real /tmp/run10/ingest] [--only NAME ...]

The lake is ``bench.synthetic_lake``'s timelines (about 10 touchpoints a customer,
the generator's event mix with its planted paths) with the attributes KPIs read:
care outcomes (agents resolve most calls, the IVR mostly self-serves), CSAT answers
that name the call they answer (``call_id``), bill amounts; and milestone reaches
(each customer's first bill shock, care call and port-out request) as the milestone
materialisation writes them. It is written once under ``--cache`` and reused.
``--real`` also measures the ingested lake of a generated world (its identity merge
map applied).

Each KPI runs ``--runs`` times in this process, each run a fresh DuckDB session over
the Parquet files (the OS page cache stays warm after the first), at three shapes:
the whole window in one number (``none``); by month and tenure band
(``month_by_tenure``, a fresh runner each time, so the segment is computed too); and
the same on one runner that already holds the segment table
(``month_by_tenure_warm``, what the HTTP app's long-lived runner pays). The medians
are printed as JSON with the machine; the segments are timed alone too (what a
journey analyzer's segment filter pays the first time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.synthetic_lake import VOCABULARY, customer_ids, timelines
from ingest.frame import FRAME_SCHEMA, IDENTIFIER_COLUMNS, PERSON_COLUMNS
from ingest.lake import Lake

LAKE_VERSION: Final = 1
PARAMETERS: Final[dict[str, dict[str, Any]]] = {
    "funnel_conversion": {"steps": ["bill_shock", "care_call", "port_out_request"]},
    "funnel_drop_off": {"steps": ["bill_shock", "care_call", "port_out_request"]},
    "time_to_milestone": {"milestone": "port_out_request"},
    "churn_after_milestone": {"milestone": "bill_shock"},
}
"""What KPIs without defaults for everything are run with."""
SHAPES: Final[dict[str, dict[str, Any]]] = {
    "none": {},
    "month_by_tenure": {"grain": "month", "segment": "tenure_band"},
}
CONTACTS: Final = frozenset(
    {
        "general_enquiry",
        "device_support",
        "bill_dispute",
        "port_out_request",
        "network_complaint",
        "cancellation_request",
        "sim_swap",
    }
)
MILESTONES: Final = {
    "bill_shock": {"bill_shock"},
    "care_call": CONTACTS,
    "port_out_request": {"port_out_request"},
}


def _text(values: npt.NDArray[Any]) -> pa.Array[Any]:
    return _flat(pa.array(values.astype(str), pa.string()))


def _flat(array: Any) -> pa.Array[Any]:
    """One contiguous array (Arrow answers large inputs in chunks)."""
    combined: pa.Array[Any] = (
        array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    )
    return combined


def attributes(
    owner: npt.NDArray[np.int64], event: npt.NDArray[np.int64], rng: np.random.Generator
) -> tuple[pa.Array[Any], pa.Array[Any]]:
    """(event ids, attribute JSON) of every touchpoint, in timeline order."""
    names = np.array([name for name, *_ in VOCABULARY])
    channels = np.array([channel for _, _, channel, _ in VOCABULARY])
    event_type, channel = names[event], channels[event]
    rows = np.arange(len(event))
    is_contact = np.isin(event_type, list(CONTACTS))
    ids = pc.binary_join_element_wise(
        pa.array(np.where(is_contact, "care-CALL", "syn-")), _text(rows), ""
    )
    agent = rng.choice(
        ["resolved", "unresolved", "ticket_raised", "offer_accepted"],
        len(rows),
        p=[0.6, 0.15, 0.15, 0.1],
    )
    ivr = rng.choice(["self_service", "unresolved"], len(rows), p=[0.8, 0.2])
    outcome = np.where(channel == "ivr", ivr, agent)
    care = pc.binary_join_element_wise(
        '{"outcome":"', _text(outcome), '","duration_s":', _text(rng.integers(30, 1800, len(rows))),
        "}", "",
    )  # fmt: skip
    # A CSAT answer names the customer's latest call before it, as the care system does.
    latest = np.maximum.accumulate(np.where(is_contact, rows, -1))
    answered = (event_type == "csat_response") & (latest >= 0)
    answered &= owner[np.maximum(latest, 0)] == owner
    score = rng.choice([1, 2, 3, 4, 5], len(rows), p=[0.1, 0.1, 0.2, 0.3, 0.3])
    csat = pc.binary_join_element_wise(
        '{"csat":', _text(score), ',"call_id":"CALL', _text(latest), '"}', ""
    )
    amount = np.round(rng.lognormal(3.4, 0.5, len(rows)), 2)
    bill = pc.binary_join_element_wise('{"amount":', _text(amount), "}", "")
    kinds = pa.StructArray.from_arrays(
        [pa.array(is_contact), pa.array(answered), pa.array(event_type == "bill_issued")],
        ["care", "csat", "bill"],
    )
    json_text = pc.case_when(kinds, care, csat, bill, pa.scalar("{}"))
    return _flat(ids), _flat(json_text)


def reaches(
    owner: npt.NDArray[np.int64],
    event: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    ids: pa.Array[Any],
    customers: pa.Array[Any],
) -> pa.Table:
    """Each customer's first touchpoint of each milestone's event types, as reaches."""
    names = np.array([name for name, *_ in VOCABULARY])
    parts = []
    for milestone, event_types in MILESTONES.items():
        rows = np.flatnonzero(np.isin(names[event], list(event_types)))
        _, first = np.unique(owner[rows], return_index=True)  # timelines are in time order
        chosen = rows[first]
        parts.append(
            pa.table(
                {
                    "customer": customers.take(pa.array(owner[chosen])),
                    "milestone": pa.array([milestone] * len(chosen), pa.string()),
                    "version": pa.array(np.ones(len(chosen), np.int64)),
                    "reached_at": pa.array(ts[chosen]).cast(pa.timestamp("ms", "UTC")),
                    "evidence": pa.ListArray.from_arrays(
                        pa.array(np.arange(len(chosen) + 1, dtype=np.int32)),
                        ids.take(pa.array(chosen)),
                    ),
                }
            )
        )
    return pa.concat_tables(parts)


def write_kpi_lake(root: Path, customers: int, seed: int) -> Lake:
    """Write (or reuse, if complete) the benchmark lake with its milestone reaches."""
    lake = Lake(root)
    manifest = root / "COMPLETE"
    wanted = {"customers": customers, "seed": seed, "version": LAKE_VERSION}
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return lake
    lake.clear()
    rng = np.random.default_rng(seed)
    owner, event, ts = timelines(customers, 10.0, rng)
    customer_column = _flat(customer_ids(customers, rng))
    ids, json_text = attributes(owner, event, rng)
    names = pa.array([name for name, *_ in VOCABULARY])
    sources = pa.array([source for _, source, *_ in VOCABULARY])
    channels = pa.array([channel for _, _, channel, _ in VOCABULARY])
    (root / "milestones").mkdir(parents=True, exist_ok=True)
    pq.write_table(
        reaches(owner, event, ts, ids, customer_column),
        root / "milestones" / "part-000001.parquet",
    )
    shuffled = rng.permutation(len(owner))  # the lake holds rows in arrival order
    chunk = 1_000_000
    for part, start in enumerate(range(0, len(shuffled), chunk)):
        rows = pa.array(shuffled[start : start + chunk])
        codes = pa.array(event).take(rows)
        nulls = pa.nulls(len(rows), pa.string())
        frame = pa.table(
            {
                "event_id": ids.take(rows),
                "source": sources.take(codes),
                "event_type": names.take(codes),
                "channel": channels.take(codes),
                "ts": pa.array(ts).take(rows).cast(pa.timestamp("ms", "UTC")),
                **{name: nulls for name in IDENTIFIER_COLUMNS},
                **{name: nulls for name in PERSON_COLUMNS},
                "attributes": json_text.take(rows),
                "origin": pa.array(["synthetic"] * len(rows), pa.string()),
                "origin_row": rows,
            }
        ).cast(FRAME_SCHEMA)
        lake.append(frame, customer_column.take(pa.array(owner).take(rows)), f"kpi-{part:04d}", 1)
    manifest.write_text(json.dumps(wanted))
    return lake


def _median_seconds(work: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, answer = [], None
    for _ in range(runs):
        started = time.perf_counter()
        answer = work()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3), answer


def measure(lake: Lake, merge_map: dict[str, str], runs: int, only: list[str]) -> dict[str, Any]:
    """Median seconds of every KPI at every shape, and of every segment alone."""
    from journeys.kpis import KpiQuery, KpiRunner, kpi_definitions, run_kpi
    from journeys.segments import SegmentCache, segment_names

    kpis: dict[str, Any] = {}
    for name in only or sorted(kpi_definitions()):
        kpis[name] = {}
        params = PARAMETERS.get(name)
        for shape, query in SHAPES.items():
            seconds, result = _median_seconds(
                partial(run_kpi, name, lake, merge_map, params, **query), runs
            )
            kpis[name][shape] = {"seconds": seconds, "rows": len(result.rows)}
            if shape == "none" and result.rows:
                kpis[name]["value"] = result.rows[-1].value  # a funnel's last step
            print(f"{name} {shape}: {seconds} s", flush=True)
        # A long-lived runner (the HTTP app's) keeps the segment table between queries.
        runner = KpiRunner(lake, merge_map)
        query = KpiQuery(kpi=name, params=params or {}, **SHAPES["month_by_tenure"])
        runner.run(query)
        seconds, _ = _median_seconds(partial(runner.run, query), runs)
        kpis[name]["month_by_tenure_warm"] = {"seconds": seconds}
        print(f"{name} month_by_tenure_warm: {seconds} s", flush=True)

    def segment(name: str) -> int:
        rows: int = SegmentCache(lake, merge_map).table(name).num_rows
        return rows

    segments = {}
    for name in segment_names():
        seconds, customers = _median_seconds(partial(segment, name), runs)
        segments[name] = {"seconds": seconds, "customers": customers}
    return {"kpis": kpis, "segments": segments}


def main() -> None:
    """Build or reuse the lake, run every KPI, print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/jgbench"))
    parser.add_argument("--real", type=Path, help="an ingest folder (lake/, identity.sqlite)")
    parser.add_argument("--only", nargs="+", default=[], metavar="KPI")
    args = parser.parse_args()
    started = time.perf_counter()
    lake = write_kpi_lake(args.cache / f"kpi-lake-{args.customers}", args.customers, args.seed)
    built = time.perf_counter() - started
    count = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{lake.touchpoint_root}/*/*.parquet')"
    ).fetchone()
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "runs": args.runs,
        "synthetic": {
            "customers": args.customers,
            "touchpoints": count[0] if count else 0,
            "lake_ready_s": round(built, 1),
            **measure(lake, {}, args.runs, args.only),
        },
    }
    if args.real is not None:
        from ingest.resolution.merges import read_merge_map

        real = Lake(args.real / "lake")
        merge_map = read_merge_map(args.real / "identity.sqlite")
        result["real"] = {"lake": str(real.root), **measure(real, merge_map, args.runs, args.only)}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
