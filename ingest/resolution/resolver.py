"""The probabilistic pass: Splink links customers that shared identifiers could not.

After deterministic resolution, a CRM duplicate registered without a phone, or a
shop visit where staff typed only a name, a date of birth and a postcode, is a
customer of its own. ``link_customers`` takes every touchpoint of the lake that
carries person details, scores candidate pairs with a ``ProbabilisticLinker``
(trained unsupervised on the same records when no model is given, and saved as
versioned JSON), and then:

* merges the customers of pairs at or above the link threshold (the oldest
  survives; the identifiers moved record ``method=prob``, the model version and the
  pair's probability),
* puts pairs between the review and the link threshold in the review queue,
* relinks the NEXT chains of every customer that changed.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa

from ingest.frame import PERSON_COLUMNS
from ingest.pipeline import Ingestor
from ingest.resolution.probabilistic import ProbabilisticLinker, person_settings

_REVIEW_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS review (
    record_l TEXT NOT NULL,
    record_r TEXT NOT NULL,
    customer_l TEXT NOT NULL,
    customer_r TEXT NOT NULL,
    probability REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    PRIMARY KEY (record_l, record_r)
) WITHOUT ROWID;
"""
_MATCH_COLUMNS: Final = ("msisdn", "email", "national_id_hash")
METHOD: Final = "prob"


@dataclass
class LinkSummary:
    """What one probabilistic pass did."""

    records: int = 0
    candidate_pairs: int = 0
    linked_pairs: int = 0
    customers_merged: int = 0
    review_pairs: int = 0
    anchor_conflicts: int = 0
    model: str = ""
    trained: bool = False
    next_added: int = 0
    next_removed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        result = asdict(self)
        result["seconds"] = round(self.seconds, 3)
        return result


def person_records(ingestor: Ingestor) -> pd.DataFrame:
    """Touchpoints with person details: ``unique_id`` (event id), ``customer`` and the
    compared columns, customers mapped to their survivors."""
    columns = ["event_id", "customer", *PERSON_COLUMNS, *_MATCH_COLUMNS]
    table = ingestor.lake.touchpoints(columns, ingestor.index.merge_map())
    if table.num_rows == 0:
        return pd.DataFrame(columns=["unique_id", *columns[1:]])
    frame = table.to_pandas()
    has_person = frame[["first_name", "last_name", "dob"]].notna().any(axis=1)
    frame = frame.loc[has_person].drop_duplicates("event_id")
    return frame.rename(columns={"event_id": "unique_id"}).reset_index(drop=True)


def link_customers(
    ingestor: Ingestor, model_dir: Path, model_path: Path | None = None
) -> LinkSummary:
    """Run the probabilistic pass over everything ingested so far."""
    started = time.perf_counter()
    summary = LinkSummary()
    records = person_records(ingestor)
    summary.records = len(records)
    if len(records) < 2:
        summary.seconds = time.perf_counter() - started
        return summary
    if model_path is not None:
        linker = ProbabilisticLinker.load(model_path)
    else:
        linker = ProbabilisticLinker(person_settings())
        linker.train(records.drop(columns=["customer"]))
        model_dir.mkdir(parents=True, exist_ok=True)
        model_path = model_dir / f"splink-{time.strftime('%Y%m%dT%H%M%S')}.json"
        linker.save(model_path)
        summary.trained = True
    summary.model = model_path.name
    try:
        pairs = linker.predict(records.drop(columns=["customer"]))
    finally:
        linker.close()
    customer_of = records.set_index("unique_id")["customer"]
    pairs["customer_l"] = customer_of.reindex(pairs["unique_id_l"]).to_numpy()
    pairs["customer_r"] = customer_of.reindex(pairs["unique_id_r"]).to_numpy()
    index = ingestor.index
    pairs["customer_l"] = [index.survivor(c) for c in pairs["customer_l"]]
    pairs["customer_r"] = [index.survivor(c) for c in pairs["customer_r"]]
    across = pairs.loc[pairs["customer_l"] != pairs["customer_r"]]
    summary.candidate_pairs = len(pairs)
    threshold = linker.settings.link_threshold
    merges, review = _decide(ingestor, across, threshold, model_path.stem)
    strong = review["match_probability"] >= threshold
    summary.anchor_conflicts = int(strong.sum())
    summary.linked_pairs = int((across["match_probability"] >= threshold).sum()) - int(strong.sum())
    summary.customers_merged = len(merges)
    summary.review_pairs = _queue_for_review(ingestor.workdir / "review.sqlite", review)
    if merges:
        ingestor.writer.merge(merges)
        survivors = {(index.survivor(s), key) for s in merges.values() for key in index.links_of(s)}
        ingestor.writer.write_links({pair: index.links[pair] for pair in survivors})
        index.commit()
        ingestor.mark_affected(set(merges.values()))
        chains = ingestor.link_chains()
        summary.next_added, summary.next_removed = chains.next_added, chains.next_removed
    summary.seconds = time.perf_counter() - started
    return summary


class IncrementalLinker:
    """The probabilistic stage of the stream: each micro-batch's records with person
    details are scored against every such record seen before (Splink's
    ``find_matches_to_new_records``) and within the batch, with a trained model.

    Links merge customers exactly as the batch pass does (never two customers with
    different MSISDNs; those, and pairs below the link threshold, go to review).
    Plug into a pipeline with ``ingestor.incremental = IncrementalLinker(ingestor, path)``.
    """

    def __init__(self, ingestor: Ingestor, model_path: Path) -> None:
        self.ingestor = ingestor
        self.linker = ProbabilisticLinker.load(model_path)
        self.model = model_path.stem
        self._customer_of: dict[str, str] = {}
        self.records_scored = 0
        self.seconds = 0.0

    def link(self, frame: pa.Table, customers: pa.Array[Any]) -> dict[str, str]:
        """Merge customers this batch links; returns loser -> survivor (index updated)."""
        started = time.perf_counter()
        if not self._customer_of:
            known = person_records(self.ingestor)
            if len(known):
                self.linker.add_known(known.drop(columns=["customer"]))
                self._customer_of.update(zip(known["unique_id"], known["customer"], strict=True))
        batch = _with_person(frame, customers)
        if batch.empty:
            return {}
        pairs = self.linker.predict_incremental(batch.drop(columns=["customer"]))
        self._customer_of.update(zip(batch["unique_id"], batch["customer"], strict=True))
        self.linker.add_known(batch.drop(columns=["customer"]))
        self.records_scored += len(batch)
        merges: dict[str, str] = {}
        if len(pairs):
            index = self.ingestor.index
            pairs["customer_l"] = [
                index.survivor(self._customer_of[u]) for u in pairs["unique_id_l"]
            ]
            pairs["customer_r"] = [
                index.survivor(self._customer_of[u]) for u in pairs["unique_id_r"]
            ]
            across = pairs.loc[pairs["customer_l"] != pairs["customer_r"]]
            threshold = self.linker.settings.link_threshold
            merges, review = _decide(self.ingestor, across, threshold, self.model)
            _queue_for_review(self.ingestor.workdir / "review.sqlite", review)
        self.seconds += time.perf_counter() - started
        return merges

    def close(self) -> None:
        """Release the linker's DuckDB connection."""
        self.linker.close()


def _with_person(frame: pa.Table, customers: pa.Array[Any]) -> pd.DataFrame:
    """A batch's records with person details, as ``person_records`` gives the lake's."""
    columns = ["event_id", *PERSON_COLUMNS, *_MATCH_COLUMNS]
    table = frame.select(columns).append_column("customer", customers)
    records = table.to_pandas()
    records = records.loc[records[["first_name", "last_name", "dob"]].notna().any(axis=1)]
    return records.rename(columns={"event_id": "unique_id"}).reset_index(drop=True)


def _decide(
    ingestor: Ingestor, across: pd.DataFrame, threshold: float, model: str
) -> tuple[dict[str, str], pd.DataFrame]:
    """Merge what the pairs across customers link; return the merges and the review pairs.

    Pairs are taken strongest first. A pair below ``threshold`` goes to review, and so
    does one that would put two different anchors (MSISDNs) into one customer, directly
    or through the pairs before it: two lines are two subscribers, however alike their
    details (family members), so a person decides. Each group merges into its oldest
    member; the identifiers a loser brings say ``method=prob``, the model and the best
    probability that joined it.
    """
    index = ingestor.index
    prefix = f"id:{ingestor.resolver.settings.anchor_kind}:"
    parent: dict[str, str] = {}
    anchors: dict[str, frozenset[str]] = {}
    best: dict[str, float] = {}

    def root(customer: str) -> str:
        if customer not in parent:
            parent[customer] = customer
            anchors[customer] = frozenset(
                key
                for key, link in index.links_of(customer).items()
                if key.startswith(prefix) and link.score > 0
            )
        while parent[customer] != customer:
            parent[customer] = parent[parent[customer]]
            customer = parent[customer]
        return customer

    ordered = across.sort_values("match_probability", ascending=False, kind="stable")
    to_review: list[int] = []
    for position, (left, right, probability) in enumerate(
        zip(ordered["customer_l"], ordered["customer_r"], ordered["match_probability"], strict=True)
    ):
        a, b = root(str(left)), root(str(right))
        if a == b:
            continue
        if probability < threshold or (anchors[a] and anchors[b] and anchors[a] != anchors[b]):
            to_review.append(position)
            continue
        for customer in (str(left), str(right)):
            best[customer] = max(best.get(customer, 0.0), float(probability))
        keep, gone = min(a, b), max(a, b)
        parent[gone] = keep
        anchors[keep] = anchors[keep] | anchors[gone]
    groups: dict[str, list[str]] = {}
    for customer in parent:
        groups.setdefault(root(customer), []).append(customer)
    merges: dict[str, str] = {}
    for members in groups.values():
        survivor = min(members, key=lambda c: index.created.get(c, 0))
        for loser in members:
            if loser == survivor:
                continue
            moved = list(index.links_of(loser))
            index.merge(loser, survivor, f"{METHOD}:{model}")
            merges[loser] = survivor
            for key in moved:
                link = index.links.get((survivor, key))
                if link is not None and link.method != METHOD:
                    link.rule, link.method, link.score = model, METHOD, best.get(loser, 0.0)
                    index.link(survivor, key, link)
    return merges, ordered.iloc[to_review]


def _queue_for_review(path: Path, pairs: pd.DataFrame) -> int:
    """Add pairs to the review queue (already queued pairs keep their status)."""
    db = sqlite3.connect(str(path))
    try:
        db.executescript(_REVIEW_SCHEMA)
        with db:
            db.executemany(
                "INSERT OR IGNORE INTO review(record_l, record_r, customer_l, customer_r, "
                "probability) VALUES (?, ?, ?, ?, ?)",
                zip(
                    pairs["unique_id_l"].astype(str),
                    pairs["unique_id_r"].astype(str),
                    pairs["customer_l"].astype(str),
                    pairs["customer_r"].astype(str),
                    pairs["match_probability"].astype(float),
                    strict=True,
                ),
            )
        return int(db.execute("SELECT count(*) FROM review WHERE status = 'open'").fetchone()[0])
    finally:
        db.close()
