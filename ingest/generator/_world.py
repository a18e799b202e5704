"""Generate a world chunk by chunk: to files (``generate_world``) or in memory (``iter_world``).

Customers are made ``CHUNK_SIZE`` at a time from a generator seeded with
``(seed, chunk number)`` and appended to the files, so memory stays flat from 1k
to 1M customers and the same seed always gives the same bytes. Files are written
into a hidden sibling folder that is renamed into place at the end, so a failed or
interrupted run leaves nothing half-written behind.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from graph.errors import InvalidInput
from ingest.generator._formats import Encoded, FileSink, encode
from ingest.generator._journeys import DEFAULT_PARAMETERS, Parameters, simulate
from ingest.generator._plan import WorldPlan, plan_world
from ingest.generator._population import MAX_CUSTOMERS, build_population
from ingest.generator._records import SOURCE_FILES, FileFormat, Records, touchpoints
from ingest.generator._sources import Chunk, billing, care, clickstream, crm, network, retail
from ingest.generator._truth import (
    TRUTH_FILES,
    churn_truth,
    fraud_truth,
    noise_truth,
    offer_catalogue,
    offers_truth,
    persons_truth,
    records_truth,
    world_truth,
)
from ingest.touchpoint import Touchpoint

GENERATOR: Final = "journeygraph.generator"
GENERATOR_VERSION: Final = "1.2.0"
"""Bumped whenever the same seed would give different bytes."""
CHUNK_SIZE: Final = 10_000
"""Customers per chunk; part of the output's identity (record ids carry the chunk)."""
MANIFEST: Final = "manifest.json"
OFFER_CATALOGUE_FILE: Final = "catalogue/offers.csv"
"""The offers catalogue the product system exports, relative to the world folder.

Reference data, not touchpoints: it is not among ``SOURCE_FILES`` and no source
mapping reads it (``ingest.catalogue.load_offer_catalogue`` does)."""

SOURCE_SYSTEMS: Final[dict[str, str]] = {
    "crm": "CRM customer master (CSV)",
    "billing": "Billing: bills, payments, bill-shock alerts, terminations (Parquet)",
    "care": "Care and IVR: calls and CSAT (CSV), tickets (JSON Lines)",
    "retail": "Retail shops: visits keyed in by staff (CSV)",
    "clickstream": "App and web clickstream (JSON Lines)",
    "network": "Network probes: per-subscriber per-cell KPIs (Parquet)",
}


@dataclass
class GenerationSummary:
    """What one ``generate_world`` run wrote, and how fast."""

    out: Path
    customers: int
    seed: int
    window_start: datetime
    window_end: datetime
    rows_by_source: dict[str, int] = field(default_factory=dict)
    rows_by_file: dict[str, int] = field(default_factory=dict)
    truth_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    """Peak resident memory of the calling process (``getrusage``), not only the generator."""
    peak_worker_rss_mb: float = 0.0
    """Peak resident memory of the largest worker process (0 when run in-process)."""
    generator_version: str = GENERATOR_VERSION

    @property
    def customers_per_second(self) -> float:
        """Generation rate over the whole run."""
        return self.customers / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly view for the CLI."""
        result: dict[str, Any] = {
            "out": str(self.out),
            "customers": self.customers,
            "seed": self.seed,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
        }
        result.update({f"rows.{name}": rows for name, rows in self.rows_by_source.items()})
        result["rows.total"] = sum(self.rows_by_source.values())
        result["seconds"] = round(self.seconds, 2)
        result["customers_per_second"] = round(self.customers_per_second)
        result["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        result["peak_worker_rss_mb"] = round(self.peak_worker_rss_mb, 1)
        result["generator_version"] = self.generator_version
        return result


def _check_arguments(customers: int, seed: int) -> None:
    if isinstance(customers, bool) or not isinstance(customers, int):
        raise InvalidInput(f"customers must be an integer, got {type(customers).__name__}")
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise InvalidInput(f"customers must be between 1 and {MAX_CUSTOMERS:,}, got {customers:,}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidInput(f"seed must be an integer between 0 and 2**63 - 1, got {seed!r}")


def _chunk_count(customers: int) -> int:
    return -(-customers // CHUNK_SIZE)


def _chunk(
    plan: WorldPlan, number: int, parameters: Parameters
) -> tuple[Chunk, list[Records], pa.Table]:
    """Generate chunk ``number``: its people, journeys and every source's records."""
    first = number * CHUNK_SIZE
    size = min(CHUNK_SIZE, plan.customers - first)
    rng = np.random.default_rng(np.random.SeedSequence([plan.seed, number + 1]))
    population = build_population(plan, rng, first, size)
    chunk = Chunk(number, plan, population, simulate(plan, population, rng, parameters), rng)
    care_records = care(chunk)
    records = [
        crm(chunk),
        *billing(chunk),
        care_records.calls,
        care_records.tickets,
        care_records.csat,
        retail(chunk),
        clickstream(chunk),
        network(chunk),
    ]
    return chunk, records, care_records.csat_truth


@dataclass
class _EncodedChunk:
    """A chunk ready to append: every file's encoded part and the truth tables."""

    customers: int
    files: dict[str, Encoded]
    truth: dict[str, pa.Table]


@lru_cache(maxsize=2)
def _plan(customers: int, seed: int) -> WorldPlan:
    """The plan, made once per process (worker processes build their own)."""
    return plan_world(customers, seed)


def _encoded_chunk(customers: int, seed: int, number: int, parameters: Parameters) -> _EncodedChunk:
    """Make and encode chunk ``number`` (runs in a worker process when there are several)."""
    plan = _plan(customers, seed)
    chunk, records, csat = _chunk(plan, number, parameters)
    truth = {
        "records": records_truth(records),
        "persons": persons_truth(chunk),
        "churn": churn_truth(chunk),
        "offers": offers_truth(chunk),
        "fraud": fraud_truth(chunk),
        "csat": csat,
        "noise": noise_truth(records),
    }
    files = {batch.file.path: encode(batch.table, batch.file.format) for batch in records}
    return _EncodedChunk(chunk.population.size, files, truth)


def iter_world(
    customers: int, seed: int, parameters: Parameters = DEFAULT_PARAMETERS
) -> Iterator[tuple[str, Touchpoint]]:
    """Every record of the world ``generate_world`` would write, as (person id, Touchpoint).

    Generated chunk by chunk (memory stays flat); within a chunk, file by file.
    Event ids are ``derived_event_id(source, record_id)`` of the written record.
    """
    _check_arguments(customers, seed)
    plan = plan_world(customers, seed)
    for number in range(_chunk_count(customers)):
        _, records, _ = _chunk(plan, number, parameters)
        for batch in records:
            yield from touchpoints(batch)


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_generated(out):
        raise InvalidInput(
            f"output folder {out} is not empty and was not written by the generator; "
            "give an empty or new folder"
        )


def _is_generated(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("generator") == GENERATOR


def _manifest(
    plan: WorldPlan,
    sinks: dict[str, FileSink],
    truth: dict[str, FileSink],
    catalogue: FileSink,
    parameters: Parameters,
) -> str:
    sources: dict[str, Any] = {}
    for file in SOURCE_FILES:
        entry = sources.setdefault(
            file.source, {"system": SOURCE_SYSTEMS[file.source], "rows": 0, "files": []}
        )
        rows = sinks[file.path].rows
        entry["rows"] += rows
        entry["files"].append(
            {
                "path": file.path,
                "format": file.format.value,
                "rows": rows,
                "record_id": file.record_id,
                "key_columns": list(file.key_columns),
                "timestamp_columns": list(file.timestamp_columns),
                "description": file.description,
            }
        )
    manifest = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "seed": plan.seed,
        "customers": plan.customers,
        "chunk_size": CHUNK_SIZE,
        "window": {
            "start": plan.start_datetime.isoformat().replace("+00:00", "Z"),
            "end": plan.end_datetime.isoformat().replace("+00:00", "Z"),
        },
        "event_id": "graph.model.derived_event_id(source, record_id)",
        "parameters": asdict(parameters),
        "sources": sources,
        "catalogue": {
            "offers": {
                "path": OFFER_CATALOGUE_FILE,
                "format": FileFormat.CSV.value,
                "rows": catalogue.rows,
                "description": "The offers catalogue: offer_id, name, kind, category, "
                "monthly_margin_gbp, term_months, margin_gbp, launched_at",
            }
        },
        "truth": {
            name: {
                "path": f"truth/{name}.parquet",
                "rows": sink.rows,
                "description": TRUTH_FILES[name],
            }
            for name, sink in truth.items()
        },
    }
    return json.dumps(manifest, indent=2) + "\n"


def generate_world(
    out: Path,
    customers: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    parameters: Parameters = DEFAULT_PARAMETERS,
) -> GenerationSummary:
    """Write a seeded telco world of ``customers`` people into the folder ``out``.

    Six source systems' files, the offers catalogue (``OFFER_CATALOGUE_FILE``),
    ``truth/`` and ``manifest.json``. ``out`` must be new,
    empty, or an earlier generator output (which is replaced). ``progress`` is called
    with the number of customers done after each chunk. With ``workers`` > 1, that many
    processes make chunks in parallel while this one writes; the bytes written do not
    depend on it. Worker processes re-import the caller's main module, so a script
    using them needs the ``if __name__ == "__main__":`` guard. Raises ``InvalidInput``
    for bad arguments. ``parameters`` tunes the planted patterns (recorded in the manifest).
    """
    _check_arguments(customers, seed)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise InvalidInput(f"workers must be an integer between 1 and 64, got {workers!r}")
    out = Path(out)
    _prepare_out(out)
    began = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        plan = _write(staging, customers, seed, progress, workers, parameters)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    manifest = json.loads((out / MANIFEST).read_text())
    summary = GenerationSummary(
        out=out,
        customers=customers,
        seed=seed,
        window_start=plan.start_datetime,
        window_end=plan.end_datetime,
        rows_by_source={name: entry["rows"] for name, entry in manifest["sources"].items()},
        rows_by_file={
            file["path"]: file["rows"]
            for entry in manifest["sources"].values()
            for file in entry["files"]
        },
        truth_rows={name: entry["rows"] for name, entry in manifest["truth"].items()},
        seconds=time.perf_counter() - began,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        peak_worker_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    )
    return summary


def _made_chunks(
    customers: int, seed: int, workers: int, parameters: Parameters
) -> Iterator[_EncodedChunk]:
    """Encoded chunks in order; with several workers, a bounded number run ahead."""
    count = _chunk_count(customers)
    if workers == 1 or count == 1:
        for number in range(count):
            yield _encoded_chunk(customers, seed, number, parameters)
        return
    # forkserver: forking a parent that runs threads (Arrow's pool, a progress bar) is unsafe.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(min(workers, count), mp_context=context) as pool:
        pending: deque[Future[_EncodedChunk]] = deque()
        for number in range(count):
            pending.append(pool.submit(_encoded_chunk, customers, seed, number, parameters))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _write(
    staging: Path,
    customers: int,
    seed: int,
    progress: Callable[[int], None] | None,
    workers: int,
    parameters: Parameters,
) -> WorldPlan:
    plan = _plan(customers, seed)
    sinks = {file.path: FileSink(staging / file.path, file.format) for file in SOURCE_FILES}
    truth_sinks = {
        name: FileSink(staging / "truth" / f"{name}.parquet", FileFormat.PARQUET)
        for name in TRUTH_FILES
    }
    catalogue = FileSink(staging / OFFER_CATALOGUE_FILE, FileFormat.CSV)
    try:
        catalogue.write(offer_catalogue(plan))
        for name, table in world_truth(plan).items():
            truth_sinks[name].write(table)
        done = 0
        for output in _made_chunks(customers, seed, workers, parameters):
            for path, part in output.files.items():
                sinks[path].append(part)
            for name, table in output.truth.items():
                truth_sinks[name].write(table)
            done += output.customers
            if progress is not None:
                progress(done)
    finally:
        for sink in (*sinks.values(), *truth_sinks.values(), catalogue):
            sink.close()
    (staging / MANIFEST).write_text(_manifest(plan, sinks, truth_sinks, catalogue, parameters))
    return plan


def _replace(staging: Path, out: Path) -> None:
    """Move the finished world into place, replacing an earlier generator output."""
    if not out.exists():
        staging.rename(out)
        return
    retired = out.parent / f".{out.name}.old-{os.getpid()}"
    out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
