"""Milestone benchmark: backfill over a lake, and the change-feed follower's throughput.

    .venv/bin/python -m bench.bench_milestones [--lake /tmp/run10/ingest/lake]
        [--identity /tmp/run10/ingest/identity.sqlite] [--synthetic-customers 200000]
        [--runs 3] [--batch-size 20000] [--cache data/bench/milestones] [--only incremental]

Every shipped definition is evaluated. Measured, each the median of ``--runs``:

* ``backfill``: ``evaluate_lake`` (one DuckDB scan, NumPy per definition) over the
  real lake (``--lake``, customers mapped through ``--identity``'s merge map) and
  over a synthetic lake of ``--synthetic-customers`` (``bench.synthetic_lake``'s
  timelines with attributes added: CSAT scores, care outcomes, bill amounts). Peer,
  same run: the plain-Python evaluator (``_chains.first_completion``, one customer at
  a time) over the same rows, read and decoded by DuckDB.
* ``backfill_real_with_writes``: a whole backfill of the real lake (evaluation, the
  reach files, the graph's vertices and edges) into a copy of the store, then again
  (it must write nothing; one run each).
* ``incremental``: a graph store is filled from the lake in time order (as a stream
  would), in batches, once (cached); each run copies it and follows its change feed
  from the start with a fresh cursor: touchpoints/s with the feed read (``step``),
  of the feed read alone (``read``: ``changes`` of the labels and kinds the follower
  needs, with each PERFORMED edge's touchpoint read in the same pass), and of
  evaluation alone (``apply``: matching, the REACHED checks, timeline windows, the
  writes of reaches). Peer: re-running the backfill after every micro-batch, the
  simple way to keep reaches current (its rate: batch size / one backfill).
  ``--only incremental`` measures this alone (no backfills, no peer).

The target (issue 4) is 20,000 touchpoints/s. Results are JSON on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from bench.synthetic_lake import VOCABULARY, customer_ids, timelines
from graph import EmbeddedStore
from ingest.frame import FRAME_SCHEMA, IDENTIFIER_COLUMNS, PERSON_COLUMNS
from ingest.frame_writer import FrameWriter
from ingest.lake import Lake
from ingest.resolution.merges import read_merge_map
from journeys.milestones import (
    FollowCursor,
    MilestoneBackfill,
    MilestoneDefinition,
    MilestoneFollower,
    evaluate_lake,
    shipped_definitions,
)
from journeys.milestones._chains import first_completion
from journeys.milestones._matching import CompiledDefinition

OUTCOMES: Final = ("resolved", "unresolved", "ticket_raised", "offer_accepted", "self_service")
CARE_CALLS: Final = frozenset(
    name for name, source, *_ in VOCABULARY if source == "care" and name != "csat_response"
)


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _timed(action: Callable[[], Any], runs: int) -> tuple[float, Any]:
    seconds, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
    return _median(seconds), result


# --- a synthetic lake with attributes -------------------------------------------------


def synthetic_lake(root: Path, customers: int, seed: int = 11) -> Lake:
    """``bench.synthetic_lake`` timelines plus the attributes the definitions test."""
    lake = Lake(root)
    if (root / "COMPLETE").exists():
        return lake
    lake.clear()
    rng = np.random.default_rng(seed)
    owner, event, ts = timelines(customers, 10.0, rng)
    ids = customer_ids(customers, rng)
    names = [name for name, *_ in VOCABULARY]
    csat = rng.integers(1, 6, len(event))
    outcome = rng.integers(0, len(OUTCOMES), len(event))
    amount = np.round(rng.gamma(2.0, 40.0, len(event)), 2)
    attributes = []
    for code, score, result, money in zip(
        event.tolist(), csat.tolist(), outcome.tolist(), amount.tolist(), strict=True
    ):
        name = names[code]
        if name == "csat_response":
            attributes.append(f'{{"csat":{score}}}')
        elif name in CARE_CALLS:
            attributes.append(f'{{"outcome":"{OUTCOMES[result]}"}}')
        elif name == "bill_shock":
            attributes.append(f'{{"amount":{money}}}')
        else:
            attributes.append("{}")
    size = len(event)
    nulls = pa.nulls(size, pa.string())
    rows = pa.array(np.arange(size))
    frame = pa.table(
        {
            "event_id": pc.binary_join_element_wise(
                pa.scalar("syn-"), rows.cast(pa.string()), pa.scalar("")
            ),
            "source": pa.array([s for _, s, *_ in VOCABULARY]).take(event),
            "event_type": pa.array(names).take(event),
            "channel": pa.array([c for _, _, c, _ in VOCABULARY]).take(event),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ms", "UTC")),
            **{name: nulls for name in IDENTIFIER_COLUMNS},
            **{name: nulls for name in PERSON_COLUMNS},
            "attributes": pa.array(attributes, pa.string()),
            "origin": pa.array(["synthetic"] * size, pa.string()),
            "origin_row": rows,
        }
    ).cast(FRAME_SCHEMA)
    lake.append(frame, ids.take(owner), "synthetic", 1)
    (root / "COMPLETE").touch()
    return lake


# --- backfill ---------------------------------------------------------------------------


def python_peer(lake: Lake, definitions: list[MilestoneDefinition], merge_map: Any) -> int:
    """The plain-Python evaluator over the same lake: reaches found."""
    compiled = [CompiledDefinition.of(definition) for definition in definitions]
    connection = duckdb.connect()
    relation = lake.relation(connection, merge_map)
    assert relation is not None
    columns = "customer, epoch_ms(ts) AS ms, event_id, event_type, source, channel, attributes"
    ordered = relation.select(columns).order("customer, ms, event_id").fetchall()
    connection.close()
    reaches = 0
    start = 0
    while start < len(ordered):
        stop = start
        while stop < len(ordered) and ordered[stop][0] == ordered[start][0]:
            stop += 1
        timeline = ordered[start:stop]
        properties = [
            {"event_type": t[3], "source": t[4], "channel": t[5], **orjson.loads(t[6])}
            for t in timeline
        ]
        ts = [t[1] for t in timeline]
        for definition in compiled:
            masks = [definition.mask(p) for p in properties]
            if first_completion(ts, masks, definition.steps) is not None:
                reaches += 1
        start = stop
    return reaches


def bench_backfill(
    lake: Lake, merge_map: Any, definitions: list[MilestoneDefinition], runs: int, peer: bool
) -> dict[str, Any]:
    seconds, evaluation = _timed(lambda: evaluate_lake(lake, definitions, merge_map), runs)
    reaches = {key: table.num_rows for key, table in evaluation.reaches.items()}
    result: dict[str, Any] = {
        "touchpoints": evaluation.touchpoints,
        "customers": evaluation.customers,
        "seconds": round(seconds, 3),
        "touchpoints_per_s": round(evaluation.touchpoints / seconds),
        "reaches": reaches,
    }
    if peer:
        peer_seconds, found = _timed(lambda: python_peer(lake, definitions, merge_map), 1)
        assert found == sum(reaches.values()), (found, reaches)
        result["peer_plain_python_seconds"] = round(peer_seconds, 2)
        result["peer_plain_python_touchpoints_per_s"] = round(evaluation.touchpoints / peer_seconds)
    return result


# --- incremental ------------------------------------------------------------------------


def filled_store(cache: Path, lake: Lake, merge_map: Any, batch: int) -> tuple[Path, int]:
    """A store holding the lake's touchpoints, written in time order; cached by lake."""
    files = [str(path) for path in lake.files()]
    key = hashlib.blake2b(json.dumps([files, len(merge_map)]).encode(), digest_size=8)
    path = cache / f"graph-{key.hexdigest()}.db"
    done = path.with_suffix(".json")
    if done.exists():
        return path, int(json.loads(done.read_text())["touchpoints"])
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(f"{path.name}*"):
        stale.unlink()
    connection = duckdb.connect()
    relation = lake.relation(connection, merge_map)
    assert relation is not None
    table = relation.order("ts, event_id").to_arrow_table()
    connection.close()
    print(f"writing {table.num_rows:,} touchpoints into {path}", flush=True)
    with EmbeddedStore(path) as store:
        writer = FrameWriter(store)
        for start in range(0, table.num_rows, batch):
            chunk = table.slice(start, batch)
            frame = chunk.select(FRAME_SCHEMA.names).cast(FRAME_SCHEMA)
            writer.write(frame, chunk.column("customer").combine_chunks(), {})
    done.write_text(json.dumps({"touchpoints": table.num_rows}))
    return path, table.num_rows


def _fresh_copy(source: Path, folder: Path) -> EmbeddedStore:
    target = folder / "graph.db"
    shutil.copyfile(source, target)
    return EmbeddedStore(target)


def one_incremental_run(
    source: Path, definitions: list[MilestoneDefinition], batch: int
) -> dict[str, float]:
    """Follow a copy of the store's feed twice: whole steps, then read and apply apart."""
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=source.parent) as folder:
        root = Path(folder)
        with _fresh_copy(source, root) as store:
            follower = MilestoneFollower(
                store, root / "lake-a", definitions, FollowCursor(root / "a.json"), batch
            )
            started = time.perf_counter()
            touchpoints = new = timelines = 0
            while (done := follower.step()).changes:
                touchpoints += done.touchpoints
                new += done.new
                timelines += done.timelines_read
            result["with_feed_seconds"] = time.perf_counter() - started
            result["touchpoints"] = touchpoints
            result["reaches"] = new
            result["timelines_read"] = timelines
        (root / "graph.db").unlink()
        with _fresh_copy(source, root) as store:
            follower = MilestoneFollower(
                store, root / "lake-b", definitions, FollowCursor(root / "b.json"), batch
            )
            started = time.perf_counter()
            batches, cursor = [], 0
            while (feed := follower.read(cursor)).changes:
                batches.append(feed)
                cursor = feed.cursor
            result["feed_read_seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            for feed in batches:
                follower.apply(feed)
            result["evaluation_seconds"] = time.perf_counter() - started
    return result


def bench_backfill_writes(
    source: Path, lake: Lake, merge_map: Any, definitions: list[MilestoneDefinition]
) -> dict[str, Any]:
    """A whole backfill (evaluation, reach files, graph) into a copy of the store, twice."""
    with tempfile.TemporaryDirectory(dir=source.parent) as folder:
        root = Path(folder)
        shutil.copytree(lake.root, root / "lake", ignore=shutil.ignore_patterns("milestones"))
        copy = Lake(root / "lake")
        with _fresh_copy(source, root) as store:
            started = time.perf_counter()
            first = MilestoneBackfill(copy, store).run(definitions, merge_map)
            first_seconds = time.perf_counter() - started
            started = time.perf_counter()
            again = MilestoneBackfill(copy, store).run(definitions, merge_map)
            again_seconds = time.perf_counter() - started
    assert again.new == again.updated == again.retracted == 0
    return {
        "reaches": first.new,
        "first_seconds": round(first_seconds, 2),
        "rerun_seconds": round(again_seconds, 2),
        "rerun_new": again.new,
    }


def bench_incremental(
    source: Path, definitions: list[MilestoneDefinition], runs: int, batch: int
) -> dict[str, Any]:
    done = [one_incremental_run(source, definitions, batch) for _ in range(runs)]
    touchpoints = done[0]["touchpoints"]
    result: dict[str, Any] = {
        "touchpoints": int(touchpoints),
        "reaches": int(done[0]["reaches"]),
        "timelines_read": int(done[0]["timelines_read"]),
    }
    for name in ("with_feed", "feed_read", "evaluation"):
        seconds = _median([run[f"{name}_seconds"] for run in done])
        result[f"{name}_seconds"] = round(seconds, 2)
        result[f"{name}_touchpoints_per_s"] = round(touchpoints / seconds)
    return result


def main() -> None:
    """Run the benchmark and print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", type=Path, default=Path("/tmp/run10/ingest/lake"))
    parser.add_argument("--identity", type=Path, default=Path("/tmp/run10/ingest/identity.sqlite"))
    parser.add_argument("--synthetic-customers", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--cache", type=Path, default=Path("data/bench/milestones"))
    parser.add_argument("--no-peer", action="store_true", help="skip the plain-Python peer")
    parser.add_argument(
        "--only", choices=["incremental"], help="only follow the real lake's feed (no backfills)"
    )
    args = parser.parse_args()
    definitions = shipped_definitions()
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "runs": args.runs,
        "definitions": [definition.key for definition in definitions],
    }
    real = Lake(args.lake)
    if real.files():
        merge_map = read_merge_map(args.identity)
        result["real_lake"] = str(args.lake)
        source, _ = filled_store(args.cache, real, merge_map, args.batch_size)
        if args.only == "incremental":
            result["incremental_real"] = bench_incremental(
                source, definitions, args.runs, args.batch_size
            )
            print(json.dumps(result, indent=2))
            return
        result["backfill_real"] = bench_backfill(
            real, merge_map, definitions, args.runs, not args.no_peer
        )
        result["incremental_real"] = bench_incremental(
            source, definitions, args.runs, args.batch_size
        )
        result["incremental_real"]["peer_backfill_per_batch_touchpoints_per_s"] = round(
            args.batch_size / result["backfill_real"]["seconds"]
        )
        result["backfill_real_with_writes"] = bench_backfill_writes(
            source, real, merge_map, definitions
        )
    elif args.only == "incremental":
        parser.error(f"--only incremental needs the real lake, and {args.lake} has no files")
    synthetic = synthetic_lake(
        args.cache / f"synthetic-{args.synthetic_customers}", args.synthetic_customers
    )
    result["backfill_synthetic"] = bench_backfill(synthetic, {}, definitions, args.runs, False)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
