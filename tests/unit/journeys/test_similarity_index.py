"""The MinHash-LSH index: signatures as datasketch's, incremental == rebuilt, persistence."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys.similarity import (
    IndexSettings,
    JourneyRepresentation,
    SimilarityAnalyzer,
    SimilarityIndex,
    SimilarityQuery,
)
from journeys.similarity._journeys import distinct, lengths_of
from journeys.similarity._minhash import END, GOLDEN, MULTIPLIER, START, signatures, symbols
from journeys.timelines import Timelines
from tests.unit.journeys.test_similarity import EVENTS, timelines_of

MASK = 2**64 - 1
steps_lists = st.lists(st.sampled_from(EVENTS), min_size=1, max_size=12)


def reference_shingles(steps: list[str], k: int, width: int) -> list[int]:
    """The folded 32-bit shingle hashes of one journey, one shingle at a time."""
    names = [
        int.from_bytes(hashlib.blake2b(step.encode(), digest_size=8).digest(), "little")
        for step in steps
    ]
    marked = [START, *names, END] + [0] * (width - len(steps))
    count = max(1, len(steps) + 3 - k)
    windows = [marked[i : i + k] for i in range(count)]
    packed = []
    for window in windows:
        value = 0
        for symbol in window:
            value = (value * MULTIPLIER + symbol) & MASK
        packed.append(((value * GOLDEN) & MASK) >> 32)
    return packed


@settings(max_examples=50, deadline=None)
@given(
    st.lists(steps_lists, min_size=1, max_size=6),
    st.integers(1, 4),
    st.sampled_from([8, 64, 128]),
    st.integers(0, 2**16),
)
def test_signatures_are_datasketch_minhashes(
    journeys: list[list[str]], k: int, num_perm: int, seed: int
) -> None:
    width = 12
    vocabulary = tuple(sorted(set(EVENTS)))
    rows = np.zeros((len(journeys), width), np.uint16)
    for i, steps in enumerate(journeys):
        rows[i, : len(steps)] = [vocabulary.index(s) + 1 for s in steps]
    signed = signatures(rows, lengths_of(rows), symbols(vocabulary), k, num_perm, seed)
    for i, steps in enumerate(journeys):
        minhash = MinHash(num_perm=num_perm, seed=seed, hashfunc=lambda value: value)
        minhash.update_batch(reference_shingles(steps, k, width))
        assert np.array_equal(signed[:, i], minhash.hashvalues)
        # And the signature is a valid datasketch sketch (LSH structures take these).
        lean = LeanMinHash(seed=seed, hashvalues=signed[:, i], scheme="affine32")
        assert lean.jaccard(LeanMinHash(minhash)) == 1.0


def test_signing_many_journeys_at_once_equals_one_at_a_time() -> None:
    """Large batches go through the blocked loop, single journeys the one-shot path."""
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 21, 20_000)
    rows = np.zeros((len(lengths), 20), np.uint16)
    for i, length in enumerate(lengths):
        rows[i, :length] = rng.integers(1, 7, length)
    vocabulary = symbols(tuple(EVENTS))
    together = signatures(rows, lengths_of(rows), vocabulary, 3, 64, 1)
    for i in rng.choice(len(rows), 200, replace=False).tolist():
        alone = signatures(rows[i : i + 1], lengths_of(rows[i : i + 1]), vocabulary, 3, 64, 1)
        assert np.array_equal(together[:, i], alone[:, 0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=3, max_size=3), max_size=30))
def test_distinct_groups_equal_rows(raw: list[list[int]]) -> None:
    rows = np.array(raw, np.uint16).reshape(len(raw), 3)
    unique, inverse = distinct(rows)
    assert np.array_equal(unique[inverse], rows)
    assert len({tuple(row) for row in unique.tolist()}) == len(unique) == len(set(map(tuple, raw)))


# --- incremental updates ---------------------------------------------------------


def customers_of(index: SimilarityIndex, customers: list[str]) -> dict[str, list[str]]:
    """Each customer's indexed journey (customers without one left out)."""
    found = {}
    for customer in customers:
        journey = index.journey_of(customer)
        if journey >= 0:
            found[customer] = index.steps_of(journey)
    return found


def answers(index: SimilarityIndex, queries: list[list[str]]) -> list[Any]:
    out = []
    for steps in queries:
        ranking, method = index.search(steps, 4, 0.5)
        out.append((ranking.customers, ranking.similarities, ranking.count, method))
    return out


def tables(index: SimilarityIndex) -> set[tuple[tuple[str, ...], tuple[int, ...], int]]:
    """Every live journey with its band keys and its number of customers."""
    index.compact()
    base = index._base
    keys = base.unsorted_keys()
    counts = index.member_counts()
    return {
        (tuple(index.steps_of(j)), tuple(keys[:, j].tolist()), int(counts[j]))
        for j in range(len(base.journeys))
    }


populations = st.dictionaries(
    st.sampled_from([f"cust:{n:02d}" for n in range(16)]), steps_lists, min_size=1
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    populations,
    populations,
    st.lists(steps_lists, min_size=1, max_size=3),
    st.sampled_from([0.01, 0.5, 10.0]),
)
def test_incremental_updates_equal_a_rebuild(
    before: dict[str, list[str]],
    changes: dict[str, list[str]],
    queries: list[list[str]],
    compact_fraction: float,
) -> None:
    """Update some customers (new, changed, gone; new event types) = build from scratch."""
    after = dict(before)
    for n, (customer, steps) in enumerate(changes.items()):
        if n % 4 == 3:
            after.pop(customer, None)  # merged away
        else:
            after[customer] = [*steps, "roaming"] if n % 5 == 1 else steps
    chosen = IndexSettings(
        compact_fraction=compact_fraction,
        rebuild_fraction=100,
        representation=JourneyRepresentation(last_steps=6),
    )
    updated = SimilarityIndex.build(timelines_of(before), chosen)
    target = timelines_of(after)
    updated.update(target, list(changes))
    rebuilt = SimilarityIndex.build(target, chosen)
    everyone = sorted(set(before) | set(after))
    assert customers_of(updated, everyone) == customers_of(rebuilt, everyone)
    assert updated.customer_count == rebuilt.customer_count
    assert updated.journey_count == rebuilt.journey_count
    assert answers(updated, queries) == answers(rebuilt, queries)
    assert tables(updated) == tables(rebuilt)
    assert answers(updated, queries) == answers(rebuilt, queries)

    refreshed = SimilarityIndex.build(timelines_of(before), chosen)
    refreshed.refresh(target)
    assert customers_of(refreshed, everyone) == customers_of(rebuilt, everyone)
    assert answers(refreshed, queries) == answers(rebuilt, queries)
    assert tables(refreshed) == tables(rebuilt)


def test_update_signs_only_new_journeys() -> None:
    before = {"cust:a": ["bill", "call"], "cust:b": ["bill", "login"], "cust:c": ["offer"]}
    index = SimilarityIndex.build(timelines_of(before))
    after = {**before, "cust:a": ["bill", "login"], "cust:d": ["port_out", "call"]}
    assert index.update(timelines_of(after), ["cust:a", "cust:d"]) == 1  # only d's is new
    assert index.steps_of(index.journey_of("cust:a")) == ["bill", "login"]
    assert index.journey_of("cust:a") == index.journey_of("cust:b")
    ranking, _ = index.search(["bill", "call"], 5, 0.0)
    assert ranking.similarities[0] == 0.5  # bill > call is nobody's journey any more


def test_a_big_change_rebuilds_everything() -> None:
    before = {f"cust:{n}": ["bill", "call"] for n in range(10)}
    index = SimilarityIndex.build(timelines_of(before), IndexSettings(rebuild_fraction=0.2))
    after = {f"cust:{n}": ["login", "offer"] for n in range(10)}
    assert index.refresh(timelines_of(after)) == 10
    assert not index._moved and len(index._delta_rows) == 0  # re-signed into a new base
    assert index.refresh(timelines_of(after)) == 0  # same digest: nothing to do


# --- persistence ---------------------------------------------------------------------


def test_saved_index_answers_the_same(tmp_path: Path) -> None:
    journeys = {f"cust:{n}": EVENTS[n % 4 : n % 4 + 3] for n in range(20)}
    index = SimilarityIndex.build(timelines_of(journeys))
    index.update(timelines_of({**journeys, "cust:new": ["bill", "port_out"]}), ["cust:new"])
    queries = [["bill", "call"], ["login", "offer", "port_out"], ["bill", "port_out"]]
    expected = answers(index, queries)
    index.save(tmp_path / "similarity")
    opened = SimilarityIndex.open(tmp_path / "similarity")
    assert opened is not None
    assert answers(opened, queries) == expected
    assert opened.digest == index.digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["similarity"]  # no staging left
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "similarity").iterdir())


def test_an_index_of_other_settings_or_format_is_not_opened(tmp_path: Path) -> None:
    folder = tmp_path / "similarity"
    SimilarityIndex.build(timelines_of({"cust:a": ["bill"]})).save(folder)
    assert SimilarityIndex.open(folder, IndexSettings(num_perm=32)) is None
    assert SimilarityIndex.open(tmp_path / "missing") is None
    (folder / "meta.json").write_text('{"format": 0}')
    assert SimilarityIndex.open(folder) is None


def test_a_failed_save_leaves_the_previous_index(tmp_path: Path, monkeypatch: Any) -> None:
    folder = tmp_path / "similarity"
    SimilarityIndex.build(timelines_of({"cust:a": ["bill"], "cust:b": ["bill"]})).save(folder)
    bigger = SimilarityIndex.build(timelines_of({f"cust:{n}": ["call"] for n in range(5)}))
    saved = np.save
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        saved(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(folder)
    monkeypatch.undo()
    opened = SimilarityIndex.open(folder)
    assert opened is not None and opened.customer_count == 2


def test_the_analyzer_keeps_its_index_beside_the_lake(tmp_path: Path, monkeypatch: Any) -> None:
    folder = tmp_path / "similarity"
    current: dict[str, Timelines] = {
        "now": timelines_of({"cust:a": ["bill", "call"], "cust:b": ["bill", "call"]})
    }
    analyzer = SimilarityAnalyzer(lambda: current["now"], folder=folder)
    assert analyzer.run(SimilarityQuery(customer="cust:a")).similar[0].customer == "cust:b"
    assert (folder / "meta.json").exists()

    current["now"] = timelines_of(
        {"cust:a": ["bill", "call"], "cust:b": ["login"], "cust:c": ["bill", "call"]}
    )
    first = analyzer.run(SimilarityQuery(customer="cust:a")).similar[0]
    assert (first.customer, first.similarity) == ("cust:c", 1.0)

    def no_build(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the saved index should have been opened")

    monkeypatch.setattr(SimilarityIndex, "build", no_build)
    reopened = SimilarityAnalyzer(lambda: current["now"], folder=folder)
    assert reopened.warm().digest == analyzer.warm().digest
    assert reopened.run(SimilarityQuery(customer="cust:a")).similar[0].customer == "cust:c"


def test_an_empty_lake_gives_an_empty_index(tmp_path: Path) -> None:
    empty = timelines_of({})
    analyzer = SimilarityAnalyzer(lambda: empty, folder=tmp_path / "similarity")
    assert analyzer.warm().customer_count == 0
    assert SimilarityIndex.open(tmp_path / "similarity") is not None
    ranking, method = analyzer.warm().search(["bill"], 10, 0.5)
    assert (ranking.customers, ranking.count, method) == ([], 0, "lsh")
