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
    conflicting = _anchor_conflicts(ingestor, across)
    links = across.loc[(across["match_probability"] >= threshold) & ~conflicting]
    review = across.loc[(across["match_probability"] < threshold) | conflicting]
    summary.anchor_conflicts = int(conflicting.sum())
    summary.linked_pairs = len(links)
    merges = _merge_groups(ingestor, links, model_path.stem)
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


def _anchor_conflicts(ingestor: Ingestor, pairs: pd.DataFrame) -> pd.Series:
    """Pairs whose customers each hold a different anchor (MSISDN): two lines are two
    subscribers, however alike their details (family members), so a person decides."""
    index = ingestor.index
    prefix = f"id:{ingestor.resolver.settings.anchor_kind}:"
    anchors: dict[str, frozenset[str]] = {}

    def anchors_of(customer: str) -> frozenset[str]:
        if customer not in anchors:
            anchors[customer] = frozenset(
                key
                for key, link in index.links_of(customer).items()
                if key.startswith(prefix) and link.score > 0
            )
        return anchors[customer]

    flags = [
        bool(anchors_of(str(left)) and anchors_of(str(right)))
        and anchors_of(str(left)) != anchors_of(str(right))
        for left, right in zip(pairs["customer_l"], pairs["customer_r"], strict=True)
    ]
    return pd.Series(flags, index=pairs.index, dtype=bool)


def _merge_groups(ingestor: Ingestor, links: pd.DataFrame, model: str) -> dict[str, str]:
    """Union the linked customers; merge each group into its oldest member.

    The identifiers a loser brings now hang off the survivor because of the model:
    their links say ``method=prob``, the model and the best probability that joined it.
    """
    index = ingestor.index
    parent: dict[str, str] = {}
    best: dict[str, float] = {}

    def root(customer: str) -> str:
        parent.setdefault(customer, customer)
        while parent[customer] != customer:
            parent[customer] = parent[parent[customer]]
            customer = parent[customer]
        return customer

    for left, right, probability in zip(
        links["customer_l"], links["customer_r"], links["match_probability"], strict=True
    ):
        for customer in (str(left), str(right)):
            best[customer] = max(best.get(customer, 0.0), float(probability))
        a, b = root(str(left)), root(str(right))
        if a != b:
            parent[max(a, b)] = min(a, b)
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
                    link.rule, link.method, link.score = model, METHOD, best[loser]
                    index.link(survivor, key, link)
    return merges


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
