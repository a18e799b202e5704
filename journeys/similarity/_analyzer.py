"""The similarity analyzer: a query in, the most similar customers and their outcomes out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import Levenshtein

from graph.errors import InvalidInput, UnknownCustomer
from journeys.customer360 import canonical_customer_id
from journeys.similarity._corpus import JourneyCorpus
from journeys.similarity._index import SimilarityIndex
from journeys.similarity._journeys import (
    CustomerOrder,
    Shaping,
    as_strings,
    position_of,
    shape,
    timeline_rows,
)
from journeys.similarity._models import (
    DEFAULT_OUTCOMES,
    STILL_ACTIVE,
    IndexSettings,
    Method,
    SimilarCustomer,
    SimilarityQuery,
    SimilarityResult,
)
from journeys.similarity._ranking import Ranking, rank
from journeys.timelines import Timelines


class SimilarityAnalyzer:
    """Runs similarity queries over the current timelines.

    ``timelines`` returns the timelines to read (``TimelineIndex.load``). The index
    lives in ``folder`` (``<lake root>/similarity``; None keeps it in memory only): it
    is opened or built on first use, and whenever ``timelines`` returns new timelines
    it is brought up to date (only changed customers re-signed). It is saved when its
    base is new (built, rebuilt or compacted); smaller updates stay in memory.
    ``outcomes`` maps each outcome to the event types that mark it; a customer's
    outcome is that of their latest marking touchpoint, else ``still_active``.
    """

    def __init__(
        self,
        timelines: Callable[[], Timelines],
        folder: Path | None = None,
        settings: IndexSettings | None = None,
        outcomes: Mapping[str, Sequence[str]] = DEFAULT_OUTCOMES,
    ) -> None:
        self.timelines = timelines
        self.folder = folder
        self.settings = settings or IndexSettings()
        self.outcomes = {name: tuple(types) for name, types in outcomes.items()}
        self._index: SimilarityIndex | None = None
        self._reflects: Timelines | None = None
        self._saved = -1
        """The index generation last saved (or opened)."""
        self._corpus: tuple[tuple[Any, ...], JourneyCorpus] | None = None
        self._order: tuple[Timelines, CustomerOrder] | None = None
        self._marks: tuple[tuple[str, ...], npt.NDArray[np.int64]] | None = None
        # Requests run on a thread pool; an index being refreshed must not be searched.
        self._lock = threading.Lock()

    def warm(self) -> SimilarityIndex:
        """The index, up to date with the current timelines (opened, refreshed or built)."""
        with self._lock:
            return self._current(self.timelines())

    def run(self, query: SimilarityQuery) -> SimilarityResult:
        """The customers whose journeys are most similar to the query's."""
        timelines = self.timelines()
        customer, steps = self._query_journey(timelines, query)
        with self._lock:
            if query.windowed or query.representation != self.settings.representation:
                corpus = self._corpus_of(timelines, query)
                ranking = _exact(corpus, steps, query, customer)
                return self._result(timelines, query, steps, ranking, "exact", corpus.steps_of)
            index = self._current(timelines)
            if query.method == "exact":
                ranking = index.exact(steps, query.top, query.min_similarity, customer)
                return self._result(timelines, query, steps, ranking, "exact", index.steps_of)
            ranking, method = index.search(steps, query.top, query.min_similarity, customer)
            return self._result(timelines, query, steps, ranking, method, index.steps_of)

    def outcome_of(self, timelines: Timelines, customer: str) -> str:
        """The outcome marked by the customer's latest marking touchpoint."""
        position = self._customers(timelines).position(customer)
        if position < 0:
            return STILL_ACTIVE
        marking = self._marking(timelines.event_types)
        start, stop = timelines.offsets[position], timelines.offsets[position + 1]
        events = np.asarray(timelines.event[start:stop], np.int64)
        marked = np.flatnonzero(marking[events] >= 0)
        if not len(marked):
            return STILL_ACTIVE
        return list(self.outcomes)[int(marking[events[marked[-1]]])]

    # --- internals ------------------------------------------------------------

    def _marking(self, event_types: tuple[str, ...]) -> npt.NDArray[np.int64]:
        """For each event code, the outcome (its position in ``outcomes``) it marks, or -1."""
        if self._marks is None or self._marks[0] != event_types:
            marking = np.full(len(event_types), -1, np.int64)
            for outcome, types in enumerate(self.outcomes.values()):
                marking[[code for code, name in enumerate(event_types) if name in types]] = outcome
            self._marks = (event_types, marking)
        return self._marks[1]

    def _customers(self, timelines: Timelines) -> CustomerOrder:
        if self._order is None or self._order[0] is not timelines:
            self._order = (timelines, CustomerOrder.of(timelines.customers))
        return self._order[1]

    def _current(self, timelines: Timelines) -> SimilarityIndex:
        if self._index is not None and self._reflects is timelines:
            return self._index
        if self._index is None and self.folder is not None:
            self._index = SimilarityIndex.open(self.folder, self.settings)
            self._saved = 0
        if self._index is None:
            self._index = SimilarityIndex.build(timelines, self.settings)
        else:
            self._index.refresh(timelines)
        # Only a new base is written: updates since live in memory, and after a restart
        # ``refresh`` finds them again by comparing journeys.
        if self.folder is not None and self._index.generation != self._saved:
            self._index.save(self.folder)
            self._saved = self._index.generation
        self._reflects = timelines
        return self._index

    def _query_journey(
        self, timelines: Timelines, query: SimilarityQuery
    ) -> tuple[str | None, list[str]]:
        """The querying customer (canonical id, or None) and the journey to compare with."""
        shaping = _shaping(timelines, query)
        if query.customer is not None:
            customer = canonical_customer_id(query.customer)
            position = self._customers(timelines).position(customer)
            if position < 0:
                raise UnknownCustomer(f"customer {query.customer!r} has no touchpoints")
            row = timeline_rows(timelines, shaping, np.array([position], np.int64))[0]
            where = f"customer {customer}'s journey"
        else:
            assert query.steps is not None  # one of the two, by validation
            customer = None
            codes = np.array(timelines.codes_of("event", query.steps, "steps"), np.int64)
            row = shape(codes, np.zeros(len(codes), np.int64), 1, shaping)[0]
            where = "steps"
        steps = [timelines.event_types[code - 1] for code in row[row > 0].tolist()]
        if not steps:
            raise InvalidInput(
                f"{where} has no steps left once {list(query.representation.exclude)} are excluded"
                + (" and the time window applied" if query.windowed else ""),
                details={"field": "customer" if customer else "steps"},
            )
        return customer, steps

    def _corpus_of(self, timelines: Timelines, query: SimilarityQuery) -> JourneyCorpus:
        """Every journey shaped the query's way (the last one is kept for the next query)."""
        key = (id(timelines), query.representation, query.since, query.until)
        if self._corpus is not None and self._corpus[0] == key:
            return self._corpus[1]
        corpus = JourneyCorpus.of(timelines, _shaping(timelines, query))
        self._corpus = (key, corpus)
        return corpus

    def _result(
        self,
        timelines: Timelines,
        query: SimilarityQuery,
        steps: list[str],
        ranking: Ranking,
        method: Method,
        steps_of: Callable[[int], list[str]],
    ) -> SimilarityResult:
        similar = []
        for customer, similarity, journey in zip(
            ranking.customers, ranking.similarities, ranking.journeys, strict=True
        ):
            theirs = steps_of(journey)
            similar.append(
                SimilarCustomer(
                    customer=customer,
                    similarity=similarity,
                    steps=theirs,
                    shared_steps=shared_steps(steps, theirs),
                    outcome=self.outcome_of(timelines, customer) if query.include_outcome else None,
                )
            )
        outcomes = None
        if query.include_outcome:
            outcomes = {name: 0 for name in [*self.outcomes, STILL_ACTIVE]}
            for match in similar:
                assert match.outcome is not None
                outcomes[match.outcome] += 1
        return SimilarityResult(
            steps=steps,
            count=ranking.count,
            count_exact=method != "lsh",
            min_similarity=query.min_similarity,
            method=method,
            candidates=ranking.candidates,
            similar=similar,
            outcomes=outcomes,
        )


def shared_steps(ours: list[str], theirs: list[str]) -> list[str]:
    """The steps an optimal edit alignment of two journeys keeps as matches, in order."""
    return [
        step
        for block in Levenshtein.opcodes(ours, theirs)
        if block.tag == "equal"
        for step in ours[block.src_start : block.src_end]
    ]


def _exact(
    corpus: JourneyCorpus, steps: list[str], query: SimilarityQuery, customer: str | None
) -> Ranking:
    codes = {name: code for code, name in enumerate(corpus.names)}
    row = np.zeros((1, corpus.journeys.shape[1]), np.uint16)
    row[0, : len(steps)] = [codes[name] + 1 for name in steps]
    excluded = None if customer is None else (customer, _journey_in(corpus, customer))
    return rank(
        corpus,
        as_strings(row)[0],
        corpus.every_journey(),
        query.top,
        query.min_similarity,
        excluded,
    )


def _journey_in(corpus: JourneyCorpus, customer: str) -> int:
    number = position_of(corpus.customers, customer)
    if number < 0:
        return -1
    where = np.flatnonzero(corpus.members == number)
    if not len(where):
        return -1
    return int(np.searchsorted(corpus.member_offsets, where[0], "right") - 1)


def _shaping(timelines: Timelines, query: SimilarityQuery) -> Shaping:
    """The query's representation against the timelines' own codes."""
    representation = query.representation
    translate = np.array(
        [
            -1 if name in representation.exclude else code
            for code, name in enumerate(timelines.event_types)
        ],
        np.int64,
    )
    return Shaping(
        translate,
        representation.collapse_repeats,
        representation.last_steps,
        _milliseconds(query.since),
        _milliseconds(query.until),
    )


def _milliseconds(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)
