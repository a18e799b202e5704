"""The MinHash-LSH index over distinct journeys: build, search, update, persist.

Many customers walk the same journey, so the index holds each distinct journey once
with the list of its customers. The **base** is a set of NumPy arrays:

* ``journeys``: the distinct journey rows (see ``_journeys``), in the index's own
  vocabulary (``vocabulary``, event type names, extended as new types arrive, so a
  new event type never forces a rebuild);
* ``band_keys`` / ``band_ids``: one sorted array of band keys a band, with the
  journey each key came from; a band lookup is two ``searchsorted`` calls. These are
  the LSH hash tables, rebuilt from the keys by one sort a band;
* ``rank_key``: each journey's first MinHash value, which orders candidates that
  collide in as many bands (a property of the journey, not of its position, so an
  updated index ranks exactly like a rebuilt one);
* ``hash_sorted`` / ``hash_ids``: row hashes, to find a journey already indexed;
* ``customers`` (sorted ids), ``journey_of`` and the ``members`` of each journey
  (customer numbers, in id order, ``member_offsets`` apart).

**Updates** (``update``, and ``refresh``, which finds the customers whose journey
changed by comparing rows) go to a small **delta** beside the base: journeys not
seen before are signed and appended with their band keys (searched by a vectorised
comparison), and customers who moved are recorded (``moved``, ``arrived``,
``departed``); a journey nobody walks any more stays in the tables with no members
and is skipped. When the delta passes ``compact_fraction`` of the base, or on
``save``, it is merged into a new base without re-signing anything; when a refresh
finds more than ``rebuild_fraction`` of the customers changed, everything is
re-signed.

**On disk** (``<lake root>/similarity/``): the base arrays as ``.npy`` files, the
customer ids as an Arrow file and ``meta.json`` (format, settings, vocabulary and
the digest of the timelines the index reflects), written to a new folder that is
renamed into place, so a reader sees the old index or the new one, never a mix. No
pickle: arrays are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from graph.errors import InvalidInput
from journeys.similarity._journeys import (
    MAX_CODES,
    CustomerOrder,
    Indices,
    Rows,
    Shaping,
    as_strings,
    distinct,
    lengths_of,
    position_of,
    row_hashes,
    shape,
    timeline_rows,
)
from journeys.similarity._minhash import Signatures, band_keys, signatures, symbols
from journeys.similarity._models import IndexSettings
from journeys.similarity._ranking import Ranking, rank
from journeys.timelines import Timelines

FORMAT_VERSION: Final = 1
FOLDER: Final = "similarity"
Numbers = npt.NDArray[np.int32]
IndexMethod = Literal["lsh", "lsh+exact"]


def timelines_digest(timelines: Timelines) -> str:
    """A digest of what an index depends on: customers, their event codes, the names."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update("\0".join(timelines.event_types).encode())
    customers = timelines.customers
    digest.update(f"{customers.offset}:{len(customers)}".encode())
    for buffer in customers.buffers():
        if buffer is not None:
            digest.update(memoryview(buffer))
    digest.update(np.ascontiguousarray(timelines.offsets).data)
    digest.update(np.ascontiguousarray(timelines.event).data)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Base:
    """The compacted part of the index (see the module docstring)."""

    journeys: Rows
    rank_key: Signatures
    hash_sorted: npt.NDArray[np.uint64]
    hash_ids: Numbers
    band_keys: Signatures
    band_ids: Numbers
    customers: pa.Array[Any]
    journey_of: Numbers
    members: Numbers
    member_offsets: Indices

    @classmethod
    def assemble(
        cls,
        journeys: Rows,
        rank_key: Signatures,
        keys: Signatures,
        customers: pa.Array[Any],
        journey_of: Numbers,
    ) -> _Base:
        """Sort the tables of journeys already signed (``keys``: bands x journeys)."""
        count = len(journeys)
        ids = np.arange(count, dtype=np.uint64)
        band_sorted = np.empty(keys.shape, np.uint32)
        band_ids = np.empty(keys.shape, np.int32)
        for band in range(keys.shape[0]):
            packed = np.sort((keys[band].astype(np.uint64) << np.uint64(32)) | ids)
            band_sorted[band] = packed >> np.uint64(32)
            band_ids[band] = packed & np.uint64(0xFFFFFFFF)
        hashes = row_hashes(journeys)
        hash_ids = np.argsort(hashes, kind="stable").astype(np.int32)
        assigned = np.flatnonzero(journey_of >= 0)
        order = assigned[np.argsort(journey_of[assigned], kind="stable")]
        offsets = np.zeros(count + 1, np.int64)
        np.cumsum(np.bincount(journey_of[assigned], minlength=count), out=offsets[1:])
        return cls(
            journeys=journeys,
            rank_key=rank_key,
            hash_sorted=hashes[hash_ids],
            hash_ids=hash_ids,
            band_keys=band_sorted,
            band_ids=band_ids,
            customers=customers,
            journey_of=journey_of,
            members=order.astype(np.int32),
            member_offsets=offsets,
        )

    def unsorted_keys(self) -> Signatures:
        """The band keys in journey order (bands x journeys), as ``assemble`` takes them."""
        keys = np.empty(self.band_keys.shape, np.uint32)
        for band in range(len(keys)):
            keys[band, self.band_ids[band]] = self.band_keys[band]
        return keys


class SimilarityIndex:
    """MinHash-LSH over the distinct journeys of one representation, kept up to date.

    ``digest`` names the timelines the index reflects (``timelines_digest``);
    ``generation`` counts new bases (builds and compactions), so an owner knows when
    a save would write something new.
    """

    def __init__(
        self, settings: IndexSettings, vocabulary: list[str], base: _Base, digest: str
    ) -> None:
        self.settings = settings
        self.vocabulary = vocabulary
        self.digest = digest
        self.generation = 0
        self._base = base
        self._reset_delta()

    # --- building and persisting ------------------------------------------

    @classmethod
    def build(cls, timelines: Timelines, settings: IndexSettings | None = None) -> SimilarityIndex:
        """Index every customer's journey (signatures computed for all at once)."""
        chosen = settings or IndexSettings()
        empty = _Base.assemble(
            np.zeros((0, chosen.representation.last_steps), np.uint16),
            np.zeros(0, np.uint32),
            np.zeros((chosen.num_perm // chosen.band_rows, 0), np.uint32),
            pa.array([], pa.string()),
            np.zeros(0, np.int32),
        )
        index = cls(chosen, [], empty, "")
        rows = timeline_rows(timelines, index._shaping(timelines.event_types))
        index._rebuild(rows, CustomerOrder.of(timelines.customers))
        index.digest = timelines_digest(timelines)
        return index

    @classmethod
    def open(cls, folder: Path, settings: IndexSettings | None = None) -> SimilarityIndex | None:
        """The index saved in ``folder``, or None if there is none of this format and settings."""
        chosen = settings or IndexSettings()
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != FORMAT_VERSION
            or meta.get("settings") != chosen.model_dump(mode="json")
        ):
            return None
        arrays = {
            # Mapped, not read: pages load as searches touch them. As plain arrays,
            # because np.memmap's Python-level indexing costs microseconds a call.
            field.name: np.asarray(
                np.load(folder / f"{field.name}.npy", mmap_mode="r", allow_pickle=False)
            )
            for field in fields(_Base)
            if field.name != "customers"
        }
        customers = feather.read_table(folder / "customers.arrow", memory_map=True)
        base = _Base(customers=customers.column("customer").combine_chunks(), **arrays)
        return cls(chosen, list(meta["vocabulary"]), base, str(meta["digest"]))

    def save(self, folder: Path) -> None:
        """Write the index (updates merged in) to ``folder``, whole or not at all."""
        self.compact()
        staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for field in fields(_Base):
            if field.name != "customers":
                np.save(staging / f"{field.name}.npy", getattr(self._base, field.name))
        feather.write_feather(
            pa.table({"customer": self._base.customers}),
            staging / "customers.arrow",
            "uncompressed",
        )
        meta = {
            "format": FORMAT_VERSION,
            "settings": self.settings.model_dump(mode="json"),
            "vocabulary": self.vocabulary,
            "digest": self.digest,
            "journeys": len(self._base.journeys),
            "customers": len(self._base.customers),
        }
        (staging / "meta.json").write_text(json.dumps(meta))
        retired = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        if folder.exists():
            os.replace(folder, retired)
        os.replace(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)

    # --- keeping up with the timelines --------------------------------------

    def refresh(self, timelines: Timelines) -> int:
        """Re-index the customers whose journey differs from ``timelines``; how many.

        Compares every customer's journey row with the one indexed (vectorised);
        only changed journeys are signed. Past ``rebuild_fraction`` of the customers,
        everything is re-signed instead.
        """
        digest = timelines_digest(timelines)
        if digest == self.digest:
            return 0
        rows = timeline_rows(timelines, self._shaping(timelines.event_types))
        current = self._rows_of(self._journeys_of(timelines.customers))
        changed = np.flatnonzero(np.any(rows != current, axis=1))
        gone = self._customers_outside(timelines.customers)
        moved = len(changed) + len(gone)
        if moved > self.settings.rebuild_fraction * max(self.customer_count, 1):
            self._rebuild(rows, CustomerOrder.of(timelines.customers))
        elif moved:
            ids = (
                cast(list[str], timelines.customers.take(pa.array(changed, pa.int64())).to_pylist())
                + gone
            )
            empty = np.zeros((len(gone), rows.shape[1]), np.uint16)
            self._assign(ids, np.concatenate([rows[changed], empty]))
        self.digest = digest
        return moved

    def update(self, timelines: Timelines, customers: Iterable[str]) -> int:
        """Re-index these customers' journeys as ``timelines`` has them; journeys signed.

        A customer no longer in the timelines (merged into another) leaves the index.
        """
        ids = list(dict.fromkeys(customers))
        if not ids:
            return 0
        positions = pc.index_in(pa.array(ids, pa.string()), value_set=timelines.customers)
        found = np.asarray(positions.is_valid().to_numpy(zero_copy_only=False), bool)
        rows = np.zeros((len(ids), self.settings.representation.last_steps), np.uint16)
        if found.any():
            where = np.asarray(positions.drop_null().to_numpy(), np.int64)
            shaping = self._shaping(timelines.event_types)
            rows[found] = timeline_rows(timelines, shaping, where)
        return self._assign(ids, rows)

    def compact(self) -> None:
        """Merge the delta into a new base (no journey is signed again)."""
        base = self._base
        if not len(self._delta_rows) and not self._moved:
            return
        alive = self._member_count > 0
        renumber = np.cumsum(alive) - 1
        journeys = np.concatenate([base.journeys, self._delta_rows])[alive]
        rank_key = np.concatenate([base.rank_key, self._delta_rank])[alive]
        keys = np.concatenate([base.unsorted_keys(), self._delta_keys], axis=1)[:, alive]
        newcomers = [c for c, j in self._moved.items() if j >= 0 and c not in self._numbers]
        customers = pa.concat_arrays([base.customers, pa.array(newcomers, pa.string())])
        journey_of = np.concatenate(
            [base.journey_of, np.array([self._moved[c] for c in newcomers], np.int32)]
        ).astype(np.int64)
        for customer, number in self._numbers.items():
            journey_of[number] = self._moved[customer]
        journey_of = np.where(journey_of >= 0, renumber[journey_of], -1).astype(np.int32)
        order = pc.sort_indices(customers)
        self._base = _Base.assemble(
            journeys,
            rank_key,
            keys,
            customers.take(order),
            journey_of[np.asarray(order.to_numpy(), np.int64)],
        )
        self.generation += 1
        self._reset_delta()

    # --- searching ------------------------------------------------------------

    def search(
        self, steps: Sequence[str], top: int, min_similarity: float, exclude: str | None = None
    ) -> tuple[Ranking, IndexMethod]:
        """The ``top`` customers most similar to ``steps`` (a journey already shaped).

        Candidates are the journeys that share a band with it, the ``candidates``
        with most shared bands re-ranked exactly. With fewer than ``top`` customers
        among them (and more in the index), every journey is scanned instead.
        """
        row, symbol_of = self._row(steps)
        query = as_strings(row)[0]
        excluded = self._excluded(exclude)
        signature = signatures(row, lengths_of(row), symbol_of, *self._signing())
        collisions = self._collisions(band_keys(signature, self.settings.band_rows)[:, 0])
        hits = np.flatnonzero(collisions)
        hits = hits[self._member_count[hits] > 0]
        limit = self.settings.candidates
        if len(hits) > limit:
            score = collisions[hits].astype(np.uint64) << np.uint64(32)
            score |= np.uint64(0xFFFFFFFF) - self._rank_keys(hits).astype(np.uint64)
            hits = hits[np.argpartition(score, len(hits) - limit)[len(hits) - limit :]]
        ranking = rank(self, query, hits, top, min_similarity, excluded)
        others = self.customer_count - (excluded is not None)
        if len(ranking.customers) < min(top, others):
            return self.exact(steps, top, min_similarity, exclude), "lsh+exact"
        return ranking, "lsh"

    def exact(
        self, steps: Sequence[str], top: int, min_similarity: float, exclude: str | None = None
    ) -> Ranking:
        """The same answer by scanning every journey (the reference the LSH path meets)."""
        query = as_strings(self._row(steps)[0])[0]
        live = np.flatnonzero(self._member_count)
        return rank(self, query, live, top, min_similarity, self._excluded(exclude))

    def steps_of(self, journey: int) -> list[str]:
        """A journey's event types."""
        row = self._rows_of(np.array([journey]))[0]
        return [self.vocabulary[code - 1] for code in row[row > 0].tolist()]

    def journey_of(self, customer: str) -> int:
        """The journey id of a customer, or -1 if they have none in the index."""
        if customer in self._moved:
            return self._moved[customer]
        number = position_of(self._base.customers, customer)
        return -1 if number < 0 else int(self._base.journey_of[number])

    @property
    def customer_count(self) -> int:
        """Customers with a journey in the index."""
        return int(self._member_count.sum())

    @property
    def journey_count(self) -> int:
        """Distinct journeys that some customer walks."""
        return int(np.count_nonzero(self._member_count))

    # --- the JourneySet protocol (see _ranking) ----------------------------------

    def strings(self, journeys: Indices) -> list[str]:
        """The journeys as strings of code characters."""
        return as_strings(self._rows_of(journeys))

    def member_counts(self) -> Indices:
        """How many customers walk each journey (base, then delta)."""
        return self._member_count

    def first_members(self, journeys: Indices, limit: int) -> list[tuple[str, int]]:
        """The first ``limit`` customers, by id, of all these journeys, with their journey."""
        base = self._base
        inside = journeys[journeys < len(base.journeys)]
        starts = base.member_offsets[inside]
        sizes = base.member_offsets[inside + 1] - starts
        if self._departed:
            extra = np.array([self._departed_from.get(j, 0) for j in inside.tolist()], np.int64)
            sizes = np.minimum(sizes, limit + extra)
        else:
            sizes = np.minimum(sizes, limit)
        firsts = np.cumsum(sizes) - sizes
        positions = np.arange(int(sizes.sum())) + np.repeat(starts - firsts, sizes)
        numbers = np.asarray(base.members[positions], np.int64)
        owners = np.repeat(inside, sizes)
        if self._departed:
            staying = ~np.isin(numbers, np.fromiter(self._departed, np.int64))
            numbers, owners = numbers[staying], owners[staying]
        order = np.argsort(numbers, kind="stable")[:limit]
        ids = cast(list[str], base.customers.take(pa.array(numbers[order], pa.int64())).to_pylist())
        pairs = list(zip(ids, owners[order].tolist(), strict=True))
        if self._arrived:
            pairs += [(c, j) for j in journeys.tolist() for c in self._arrived.get(j, ())]
            pairs.sort()
        return pairs[:limit]

    # --- internals ------------------------------------------------------------

    def _reset_delta(self) -> None:
        rows = self.settings.representation.last_steps
        bands = self.settings.num_perm // self.settings.band_rows
        self._delta_rows: Rows = np.zeros((0, rows), np.uint16)
        self._delta_rank: Signatures = np.zeros(0, np.uint32)
        self._delta_keys: Signatures = np.zeros((bands, 0), np.uint32)
        self._delta_lookup: dict[bytes, int] = {}
        self._moved: dict[str, int] = {}
        """Customer -> journey (-1: none), where it differs from the base."""
        self._numbers: dict[str, int] = {}
        """Base customer number of the moved customers that are in the base."""
        self._arrived: dict[int, set[str]] = {}
        self._departed: set[int] = set()
        self._departed_from: dict[int, int] = {}
        self._member_count: Indices = np.diff(self._base.member_offsets)

    def _rebuild(self, rows: Rows, customers: CustomerOrder) -> None:
        """A new base of every customer's journey (``rows`` in the timelines' order)."""
        rows = customers.sort(rows)
        present = np.flatnonzero(lengths_of(rows) > 0)
        journeys, inverse = distinct(rows[present])
        journey_of = np.full(len(rows), -1, np.int32)
        journey_of[present] = inverse
        signature = signatures(journeys, lengths_of(journeys), self._symbols(), *self._signing())
        keys = band_keys(signature, self.settings.band_rows)
        self._base = _Base.assemble(journeys, signature[0], keys, customers.ids, journey_of)
        self.generation += 1
        self._reset_delta()

    def _signing(self) -> tuple[int, int, int]:
        return self.settings.shingle, self.settings.num_perm, self.settings.seed

    def _symbols(self) -> npt.NDArray[np.uint64]:
        return symbols(tuple(self.vocabulary))

    def _shaping(self, event_types: Sequence[str]) -> Shaping:
        """The representation against ``event_types``, new names added to the vocabulary."""
        representation = self.settings.representation
        excluded = set(representation.exclude)
        known = {name: code for code, name in enumerate(self.vocabulary)}
        translate = np.full(len(event_types), -1, np.int64)
        for code, name in enumerate(event_types):
            if name in excluded:
                continue
            if name not in known:
                if len(self.vocabulary) >= MAX_CODES:
                    raise InvalidInput(f"more than {MAX_CODES} event types cannot be indexed")
                known[name] = len(self.vocabulary)
                self.vocabulary.append(name)
            translate[code] = known[name]
        return Shaping(translate, representation.collapse_repeats, representation.last_steps)

    def _row(self, steps: Sequence[str]) -> tuple[Rows, npt.NDArray[np.uint64]]:
        """One journey row from event type names (shaped already: only coded here).

        A name the index has never seen matches nothing, but still takes a step; the
        symbols returned cover it.
        """
        names = list(self.vocabulary)
        known = {name: code for code, name in enumerate(names)}
        for name in steps:
            if name not in known:
                known[name] = len(names)
                names.append(name)
        if len(names) > MAX_CODES:
            raise InvalidInput(f"more than {MAX_CODES} event types cannot be compared")
        codes = np.array([known[name] for name in steps], np.int64)
        last = self.settings.representation.last_steps
        shaping = Shaping(np.arange(len(names)), False, last)
        row = shape(codes, np.zeros(len(codes), np.int64), 1, shaping)
        return row, symbols(tuple(names))

    def _excluded(self, customer: str | None) -> tuple[str, int] | None:
        return None if customer is None else (customer, self.journey_of(customer))

    def _collisions(self, keys: Signatures) -> Indices:
        """Bands each journey (base, then delta) shares with a query's band ``keys``."""
        base = self._base
        found = []
        for band in range(len(keys)):
            column, key = base.band_keys[band], keys[band : band + 1]
            # The key as a uint32 array: a Python int would convert the whole column.
            low = int(column.searchsorted(key, "left")[0])
            high = int(column.searchsorted(key, "right")[0])
            if high > low:
                found.append(base.band_ids[band, low:high])
        collisions = (
            np.bincount(np.concatenate(found), minlength=len(base.journeys))
            if found
            else np.zeros(len(base.journeys), np.int64)
        )
        if len(self._delta_rows):
            delta = np.count_nonzero(self._delta_keys == keys[:, None], axis=0)
            collisions = np.concatenate([collisions, delta])
        return collisions

    def _rank_keys(self, journeys: Indices) -> Signatures:
        size = len(self._base.journeys)
        inside = journeys < size
        keys = np.empty(len(journeys), np.uint32)
        keys[inside] = self._base.rank_key[journeys[inside]]
        keys[~inside] = self._delta_rank[journeys[~inside] - size]
        return keys

    def _rows_of(self, journeys: Indices) -> Rows:
        """Journey rows by id (-1: an empty row)."""
        size = len(self._base.journeys)
        rows = np.zeros((len(journeys), self.settings.representation.last_steps), np.uint16)
        inside = (journeys >= 0) & (journeys < size)
        rows[inside] = self._base.journeys[journeys[inside]]
        outside = journeys >= size
        rows[outside] = self._delta_rows[journeys[outside] - size]
        return rows

    def _journeys_of(self, customers: pa.Array[Any]) -> Indices:
        """The indexed journey of each of ``customers`` (-1: none)."""
        positions = pc.index_in(customers, value_set=self._base.customers)
        numbers = np.asarray(positions.fill_null(-1).to_numpy(), np.int64)
        journeys = np.where(numbers >= 0, self._base.journey_of[numbers], -1).astype(np.int64)
        if self._moved:
            moved = pc.index_in(pa.array(list(self._moved), pa.string()), value_set=customers)
            where = np.asarray(moved.fill_null(-1).to_numpy(), np.int64)
            targets = np.fromiter(self._moved.values(), np.int64, len(self._moved))
            journeys[where[where >= 0]] = targets[where >= 0]
        return journeys

    def _customers_outside(self, customers: pa.Array[Any]) -> list[str]:
        """Customers the index holds a journey for who are not among ``customers``."""
        base = self._base
        current = base.journey_of.astype(np.int64)
        for customer, number in self._numbers.items():
            current[number] = self._moved[customer]
        absent = ~_flags(pc.is_in(base.customers, value_set=customers))
        gone = base.customers.take(pa.array(np.flatnonzero(absent & (current >= 0)), pa.int64()))
        newcomers = [c for c, j in self._moved.items() if j >= 0 and c not in self._numbers]
        if newcomers:
            arrived = pa.array(newcomers, pa.string())
            absent = ~_flags(pc.is_in(arrived, value_set=customers))
            gone = pa.concat_arrays([gone, arrived.filter(pa.array(absent))])
        return cast(list[str], gone.to_pylist())

    def _assign(self, customers: list[str], rows: Rows) -> int:
        """Point each customer at the journey of their row (empty: none); journeys signed."""
        targets = np.full(len(customers), -1, np.int64)
        present = np.flatnonzero(lengths_of(rows) > 0)
        signed = 0
        if len(present):
            journeys, inverse = distinct(rows[present])
            found = self._find(journeys)
            new = np.flatnonzero(found < 0)
            if len(new):
                found[new] = self._append(journeys[new])
                signed = len(new)
            targets[present] = found[inverse]
        positions = pc.index_in(pa.array(customers, pa.string()), value_set=self._base.customers)
        numbers = np.asarray(positions.fill_null(-1).to_numpy(), np.int64).tolist()
        for customer, number, target in zip(customers, numbers, targets.tolist(), strict=True):
            self._move(customer, number, target)
        base = self._base
        limit = self.settings.compact_fraction
        if len(self._delta_rows) > limit * max(len(base.journeys), 1) or len(
            self._moved
        ) > limit * max(len(base.customers), 1):
            self.compact()
        return signed

    def _find(self, journeys: Rows) -> Indices:
        """The id of each row already indexed (base or delta), else -1."""
        base = self._base
        found = np.full(len(journeys), -1, np.int64)
        size = len(base.hash_sorted)
        if size:
            hashes = row_hashes(journeys)
            at = np.searchsorted(base.hash_sorted, hashes)
            first = np.minimum(at, size - 1)
            same_hash = base.hash_sorted[first] == hashes
            candidate = np.asarray(base.hash_ids[first], np.int64)
            equal = same_hash & np.all(base.journeys[candidate] == journeys, axis=1)
            found[equal] = candidate[equal]
            # Two journeys with one 64-bit hash: never seen, but look past the first.
            for i in np.flatnonzero(same_hash & ~equal).tolist():
                position = int(at[i]) + 1
                while position < size and base.hash_sorted[position] == hashes[i]:
                    other = int(base.hash_ids[position])
                    if np.array_equal(base.journeys[other], journeys[i]):
                        found[i] = other
                        break
                    position += 1
        for i in np.flatnonzero(found < 0).tolist():
            found[i] = self._delta_lookup.get(journeys[i].tobytes(), -1)
        return found

    def _append(self, journeys: Rows) -> Indices:
        """Sign new journeys into the delta; their ids."""
        signature = signatures(journeys, lengths_of(journeys), self._symbols(), *self._signing())
        first = len(self._base.journeys) + len(self._delta_rows)
        ids = np.arange(first, first + len(journeys), dtype=np.int64)
        self._delta_rows = np.concatenate([self._delta_rows, journeys])
        self._delta_rank = np.concatenate([self._delta_rank, signature[0]])
        self._delta_keys = np.concatenate(
            [self._delta_keys, band_keys(signature, self.settings.band_rows)], axis=1
        )
        for row, journey in zip(journeys, ids.tolist(), strict=True):
            self._delta_lookup[row.tobytes()] = journey
        unwalked = np.zeros(len(journeys), np.int64)
        self._member_count = np.concatenate([self._member_count, unwalked])
        return ids

    def _move(self, customer: str, number: int, target: int) -> None:
        """Record that ``customer`` (base number, or -1) now walks journey ``target``."""
        home = int(self._base.journey_of[number]) if number >= 0 else -1
        old = self._moved.get(customer, home)
        if old == target:
            return
        if old >= 0:
            self._member_count[old] -= 1
            self._arrived.get(old, set()).discard(customer)
        if target >= 0:
            self._member_count[target] += 1
        if target == home:
            del self._moved[customer]
            self._numbers.pop(customer, None)
            if number in self._departed:
                self._departed.remove(number)
                self._departed_from[home] -= 1
            return
        self._moved[customer] = target
        if number >= 0:
            self._numbers[customer] = number
        if target >= 0:
            self._arrived.setdefault(target, set()).add(customer)
        if home >= 0 and number not in self._departed:
            self._departed.add(number)
            self._departed_from[home] = self._departed_from.get(home, 0) + 1


def _flags(mask: pa.Array[Any]) -> npt.NDArray[np.bool_]:
    return np.asarray(mask.to_numpy(zero_copy_only=False), bool)
