"""Deterministic identity resolution: shared identifiers make one customer.

Touchpoints that share a normalised identifier belong to the same customer
(union-find over rows and identifier values, one pass a batch through
``scipy.sparse.csgraph.connected_components``), with three guards that keep
households and shops apart:

* **Anchor.** Each person has an anchor identifier (the MSISDN by default: one
  line, one subscriber). Any other identifier seen beside more than
  ``hub_threshold`` distinct anchors is a *hub* (a shop's tablet cookie, a family's
  shared email, a phone sold twice) and stops stitching from then on.
* **Account scope.** An account can hold several lines (family plans). An account
  seen beside more than ``hub_threshold`` anchors stitches nothing, and a record
  that names only such an account (a bill) goes to the **account holder**: the
  customer of the earliest record that named the account beside an anchor.
* **Stable ids.** A new customer's id is a hash of the identifier (or event) that
  founded it; when a batch links customers that already exist, the oldest survives,
  the others are recorded as merged into it (``merged_into``), and ids handed out
  before keep resolving to the survivor.

The state lives in an ``IdentityIndex`` (a SQLite file beside the store), so a
stream and successive file runs resolve against everything seen before. Within
one run the result depends on arrival order only where evidence arrives late (a
key that becomes a hub after it has stitched); ``journeygraph resolve`` re-resolves
everything at once.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from graph.errors import InvalidInput
from graph.model import ID_PREFIX, IdentifierKind, VertexLabel
from ingest.frame import IDENTIFIER_COLUMNS
from ingest.resolution.merges import survivor_of

RULE_SHARED: Final = "shared_identifier"
RULE_HOLDER: Final = "account_holder"
RULE_HUB: Final = "hub_identifier"
RULE_NEW: Final = "new_customer"
METHOD: Final = "det"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS keys (
    key      TEXT PRIMARY KEY,
    customer TEXT,
    anchors  TEXT NOT NULL,
    hub      INTEGER NOT NULL,
    holder   TEXT,
    holder_ts INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS customers (
    customer TEXT PRIMARY KEY,
    created  INTEGER NOT NULL,
    merged_into TEXT,
    reason   TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links (
    customer   TEXT NOT NULL,
    key        TEXT NOT NULL,
    rule       TEXT NOT NULL,
    method     TEXT NOT NULL,
    score      REAL NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (customer, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_CHUNK: Final = 900  # values an IN (...) query binds at once
_CUSTOMER_PREFIX: Final = ID_PREFIX[VertexLabel.CUSTOMER]
_IDENTIFIER_PREFIX: Final = ID_PREFIX[VertexLabel.IDENTIFIER]


@dataclass(frozen=True)
class ResolutionSettings:
    """How deterministic resolution stitches: the anchor kind, the account kinds, k."""

    hub_threshold: int = 1
    anchor_kind: str = IdentifierKind.MSISDN.value
    account_kinds: tuple[str, ...] = (IdentifierKind.ACCOUNT.value,)

    def __post_init__(self) -> None:
        if self.hub_threshold < 1:
            raise InvalidInput(f"hub_threshold must be at least 1, got {self.hub_threshold}")
        known = set(IDENTIFIER_COLUMNS)
        for kind in (self.anchor_kind, *self.account_kinds):
            if kind not in known:
                raise InvalidInput(f"unknown identifier kind {kind!r} (known: {sorted(known)})")


@dataclass
class Link:
    """A customer's use of an identifier: the HAS_IDENTIFIER edge's provenance."""

    rule: str
    method: str
    score: float
    first_seen: int
    last_seen: int


@dataclass
class _Key:
    customer: str | None = None
    anchors: set[str] = field(default_factory=set)
    hub: bool = False
    holder: str | None = None
    holder_ts: int | None = None


@dataclass
class Resolution:
    """What resolving one batch decided.

    ``customers`` holds the customer of every row, in row order. ``links`` are the
    (customer, identifier id) pairs the batch touched with their provenance after
    merging with what was known. ``merges`` maps each customer absorbed by this
    batch to its survivor; ``created`` lists customers this batch founded.
    """

    customers: pa.Array[Any]
    links: dict[tuple[str, str], Link]
    created: list[str]
    merges: dict[str, str]


class _ReadThrough(dict[Any, Any]):
    """A dict holding part of a table: a key it lacks is looked up in the table and kept.

    ``fetch`` takes keys and returns the entries it found for them. A key looked up
    and not found (``absent``) is not asked for again; neither is one removed here
    (``pop``), which stays removed until a commit deletes it from the table too.
    Iterating and ``len`` see only what is held.
    """

    def __init__(self, fetch: Callable[[list[Any]], dict[Any, Any]]) -> None:
        super().__init__()
        self._fetch = fetch
        self.absent: set[Any] = set()

    def holds(self, key: Any) -> bool:
        """Whether the entry is here or known not to exist (no lookup either way)."""
        return dict.__contains__(self, key) or key in self.absent

    def prefetch(self, keys: Iterable[Any]) -> None:
        """Look up every key not held yet, in one go."""
        wanted = list({key for key in keys if not self.holds(key)})
        if not wanted:
            return
        found = self._fetch(wanted)
        for key, value in found.items():
            dict.__setitem__(self, key, value)
        self.absent.update(key for key in wanted if key not in found)

    def _look_up(self, key: Any) -> bool:
        if self.holds(key):
            return dict.__contains__(self, key)
        self.prefetch([key])
        return dict.__contains__(self, key)

    def __contains__(self, key: object) -> bool:
        return self._look_up(key)

    def __missing__(self, key: Any) -> Any:
        if key not in self.absent and self._look_up(key):
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        return dict.__getitem__(self, key) if self._look_up(key) else default

    def __setitem__(self, key: Any, value: Any) -> None:
        self.absent.discard(key)
        dict.__setitem__(self, key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if not self._look_up(key):
            self[key] = default
        return dict.__getitem__(self, key)

    def pop(self, key: Any, *default: Any) -> Any:
        self._look_up(key)
        self.absent.add(key)
        return dict.pop(self, key, *default)

    def clear(self) -> None:
        dict.clear(self)
        self.absent.clear()


class IdentityIndex:
    """Which customer holds each identifier, hubs, holders, merges: the resolver's memory.

    A SQLite file, read through: the identifiers, customers and links a batch names
    are fetched when first needed (the resolver prefetches each batch's in a few
    queries) and kept, and changes are written on ``commit``. The merge map is held
    whole (merges are few and every reader of the lake needs them). Past
    ``CACHE_LIMIT`` identifiers held, a commit lets go of everything clean, so the
    memory a long stream or a large store needs stays bounded: holding all of a
    1M-customer index took 25 s to load and several GB. ``path=None`` keeps it in
    memory only (tests, one-off evaluation runs).
    """

    CACHE_LIMIT: Final = 500_000

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        target = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)
        self.keys: dict[str, _Key] = _ReadThrough(self._fetch_keys)
        self.created: dict[str, int] = _ReadThrough(self._fetch_created)
        self.merged_into: dict[str, str] = {}
        self.links: dict[tuple[str, str], Link] = _ReadThrough(self._fetch_links)
        self._links_of: dict[str, set[str]] = _ReadThrough(self._fetch_links_of)
        self._reasons: dict[str, str] = {}
        self._dirty_keys: set[str] = set()
        self._dirty_customers: set[str] = set()
        self._dirty_links: set[tuple[str, str]] = set()
        self._next_created = 0
        self._load()

    def _load(self) -> None:
        for customer, merged_into in self._db.execute(
            "SELECT customer, merged_into FROM customers WHERE merged_into IS NOT NULL"
        ):
            self.merged_into[customer] = merged_into
        (highest,) = self._db.execute("SELECT max(created) FROM customers").fetchone()
        self._next_created = 0 if highest is None else int(highest) + 1

    def _select(self, sql: str, values: list[Any]) -> list[tuple[Any, ...]]:
        """``sql`` (with ``IN ({marks})``) over ``values``, in chunks under SQLite's limit."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            rows += self._db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)
        return rows

    def _fetch_keys(self, keys: list[str]) -> dict[str, _Key]:
        return {
            key: _Key(customer, set(anchors.split("\x1f")) - {""}, bool(hub), holder, holder_ts)
            for key, customer, anchors, hub, holder, holder_ts in self._select(
                "SELECT key, customer, anchors, hub, holder, holder_ts FROM keys "
                "WHERE key IN ({marks})",
                keys,
            )
        }

    def _fetch_created(self, customers: list[str]) -> dict[str, int]:
        return dict(
            self._select(
                "SELECT customer, created FROM customers WHERE customer IN ({marks})", customers
            )
        )

    def _fetch_links_of(self, customers: list[str]) -> dict[str, set[str]]:
        """Each customer's identifiers; their links come along into ``links``."""
        links = cast(_ReadThrough, self.links)
        found: dict[str, set[str]] = {}
        for customer, key, rule, method, score, first, last in self._select(
            "SELECT customer, key, rule, method, score, first_seen, last_seen FROM links "
            "WHERE customer IN ({marks})",
            customers,
        ):
            pair = (customer, key)
            if pair in links.absent:
                continue  # removed here, not committed yet
            if not dict.__contains__(links, pair):
                dict.__setitem__(links, pair, Link(rule, method, score, first, last))
            found.setdefault(customer, set()).add(key)
        return found

    def _fetch_links(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Link]:
        owners = cast(_ReadThrough, self._links_of)
        # A customer whose identifiers are held has no other links in the table.
        unknown = [pair for pair in pairs if not owners.holds(pair[0])]
        if not unknown:
            return {}
        owners.prefetch(customer for customer, _ in unknown)
        links = cast(_ReadThrough, self.links)
        return {
            pair: dict.__getitem__(links, pair)
            for pair in unknown
            if dict.__contains__(links, pair)
        }

    def prefetch(self, keys: Iterable[str] = (), customers: Iterable[str] = ()) -> None:
        """Fetch what resolving a batch will ask of these identifiers and customers, in a
        few queries rather than one each."""
        cast(_ReadThrough, self.keys).prefetch(keys)
        wanted = list(customers)
        cast(_ReadThrough, self.created).prefetch(wanted)
        cast(_ReadThrough, self._links_of).prefetch(wanted)

    # --- reads ------------------------------------------------------------

    def survivor(self, customer: str) -> str:
        """The customer id that ``customer`` resolves to now (itself unless merged)."""
        return survivor_of(self.merged_into, customer)

    def customer_of(self, identifier: str) -> str | None:
        """The customer holding a stitching identifier id, or None (unknown or a hub)."""
        key = self.keys.get(identifier)
        if key is None or key.hub or key.customer is None:
            return None
        return self.survivor(key.customer)

    def is_hub(self, identifier: str) -> bool:
        """Whether an identifier id has been seen beside too many anchors to stitch."""
        key = self.keys.get(identifier)
        return key is not None and key.hub

    def customers(self) -> list[str]:
        """Every live customer id (merged ones excluded), in the order they were founded."""
        stored = dict(self._db.execute("SELECT customer, created FROM customers").fetchall())
        stored |= {c: self.created[c] for c in self._dirty_customers}
        return [c for c in sorted(stored, key=stored.__getitem__) if c not in self.merged_into]

    def merge_map(self) -> dict[str, str]:
        """Every merged customer id and the survivor it resolves to now."""
        return {loser: self.survivor(loser) for loser in self.merged_into}

    def links_of(self, customer: str) -> dict[str, Link]:
        """The identifiers of one customer with their provenance."""
        return {key: self.links[(customer, key)] for key in self._links_of.get(customer, ())}

    # --- writes -----------------------------------------------------------

    def key(self, identifier: str) -> _Key:
        entry = self.keys.get(identifier)
        if entry is None:
            entry = self.keys[identifier] = _Key()
        self._dirty_keys.add(identifier)
        return entry

    def found(self, customer: str) -> None:
        """Record a new customer (its creation order decides who survives a merge)."""
        if customer not in self.created:
            self.created[customer] = self._next_created
            self._next_created += 1
            self._dirty_customers.add(customer)

    def merge(self, loser: str, survivor: str, reason: str) -> None:
        """Record that ``loser`` is now part of ``survivor``; its links move with it."""
        if loser == survivor:
            return
        self.found(loser)
        self.found(survivor)
        self.merged_into[loser] = survivor
        self._dirty_customers.add(loser)
        self._reasons[loser] = reason
        # Keys and holders that name the loser resolve through ``survivor``; links move.
        for key in self._links_of.pop(loser, set()):
            pair = (loser, key)
            self._dirty_links.add(pair)
            self.link(survivor, key, self.links.pop(pair))

    def detach(self, customer: str, identifier: str, new_customer: str) -> None:
        """Give ``identifier`` (and the link) to ``new_customer``; records a split."""
        link = self.links.pop((customer, identifier), None)
        self._links_of.get(customer, set()).discard(identifier)
        self._dirty_links.add((customer, identifier))
        self.found(new_customer)
        entry = self.key(identifier)
        entry.customer = new_customer
        if entry.holder == customer:
            entry.holder = new_customer
        if link is not None:
            self.link(new_customer, identifier, link)

    def link(self, customer: str, identifier: str, link: Link) -> Link:
        """Record or widen a customer's link to an identifier; returns the merged link."""
        pair = (customer, identifier)
        known = self.links.get(pair)
        if known is None:
            self.links[pair] = link
            self._links_of.setdefault(customer, set()).add(identifier)
        else:
            known.first_seen = min(known.first_seen, link.first_seen)
            known.last_seen = max(known.last_seen, link.last_seen)
            # The first provenance stays unless stronger evidence arrives.
            if known.rule == RULE_HUB and link.rule != RULE_HUB:
                known.rule, known.method, known.score = link.rule, link.method, link.score
            link = known
        self._dirty_links.add(pair)
        return link

    def commit(self) -> None:
        """Write every change since the last commit in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO keys VALUES (?, ?, ?, ?, ?, ?)",
                (self._key_row(k) for k in self._dirty_keys),
            )
            db.executemany(
                "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?)",
                (
                    (c, self.created[c], self.merged_into.get(c), self._reasons.get(c))
                    for c in self._dirty_customers
                ),
            )
            gone = [pair for pair in self._dirty_links if pair not in self.links]
            db.executemany("DELETE FROM links WHERE customer = ? AND key = ?", gone)
            db.executemany(
                "INSERT OR REPLACE INTO links VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (c, k, link.rule, link.method, link.score, link.first_seen, link.last_seen)
                    for (c, k) in self._dirty_links
                    if (link := self.links.get((c, k))) is not None
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._dirty_keys.clear()
        self._dirty_customers.clear()
        self._dirty_links.clear()
        self._reasons.clear()
        if len(self.keys) > self.CACHE_LIMIT or len(self.links) > self.CACHE_LIMIT:
            self._shed()

    def _shed(self) -> None:
        """Let go of every entry held (all written): the table has them."""
        for held in (self.keys, self.created, self.links, self._links_of):
            held.clear()

    def _key_row(self, key: str) -> tuple[Any, ...]:
        entry = self.keys[key]
        anchors = "\x1f".join(sorted(entry.anchors))
        return (key, entry.customer, anchors, int(entry.hub), entry.holder, entry.holder_ts)

    def rollback(self) -> None:
        """Forget uncommitted changes: what is held again comes from the table."""
        self._shed()
        self.merged_into.clear()
        self._reasons.clear()
        self._dirty_keys.clear()
        self._dirty_customers.clear()
        self._dirty_links.clear()
        self._load()

    def close(self) -> None:
        """Close the file (uncommitted changes are lost)."""
        self._db.close()


def new_customer_id(founding_key: str) -> str:
    """A stable customer id from the identifier or event that founded the customer."""
    digest = hashlib.blake2b(founding_key.encode(), digest_size=8).hexdigest()
    return f"{_CUSTOMER_PREFIX}{digest}"


class DeterministicResolver:
    """Resolves frames of touchpoints to customers against an ``IdentityIndex``."""

    def __init__(self, index: IdentityIndex, settings: ResolutionSettings | None = None) -> None:
        self.index = index
        self.settings = settings or ResolutionSettings()

    def resolve(self, frame: pa.Table) -> Resolution:
        """Assign every row of ``frame`` a customer, updating the index (not committed).

        Work in Python is per *distinct* identifier, customer and (customer,
        identifier) pair of the batch; per-row work is numpy.
        """
        rows = frame.num_rows
        if rows == 0:
            return Resolution(pa.array([], pa.string()), {}, [], {})
        ts = pc.cast(frame.column("ts"), pa.int64()).to_numpy()
        pairs = _row_keys(frame)
        codes, distinct = pd.factorize(pd.Series(pairs.keys, dtype=object))
        keys = [str(key) for key in distinct]
        self.index.prefetch(keys=keys)
        anchor_codes = self._anchor_codes(frame, pairs.rows, codes, keys, rows)
        self._update_hubs(pairs.rows, codes, keys, anchor_codes)

        index = self.index
        hub = np.fromiter((index.is_hub(key) for key in keys), bool, len(keys))
        stitching = ~hub[codes] if len(codes) else np.zeros(0, bool)
        owners = [None if hub[i] else index.customer_of(key) for i, key in enumerate(keys)]
        owner_codes, owner_ids = pd.factorize(pd.Series(owners, dtype=object))
        index.prefetch(customers=[str(owner) for owner in owner_ids])
        key_nodes = rows + np.arange(len(keys))
        owned = owner_codes >= 0
        sources = np.concatenate([pairs.rows[stitching], key_nodes[owned]])
        targets = np.concatenate([rows + codes[stitching], rows + len(keys) + owner_codes[owned]])
        size = rows + len(keys) + len(owner_ids)
        graph = coo_matrix((np.ones(len(sources), np.int8), (sources, targets)), shape=(size, size))
        _, component = connected_components(graph, directed=False)
        founders = self._founders(component, rows, codes[stitching], keys)
        existing: dict[int, list[str]] = {}
        for number, owner in enumerate(owner_ids):
            existing.setdefault(int(component[rows + len(keys) + number]), []).append(str(owner))
        created: list[str] = []
        merges: dict[str, str] = {}
        by_component: dict[int, str] = {}
        for comp in np.unique(component[:rows]).tolist():
            known = existing.get(comp)
            if known:
                survivor = min(known, key=lambda c: index.created.get(c, 0))
                for loser in known:
                    if loser != survivor:
                        index.merge(loser, survivor, RULE_SHARED)
                        merges[loser] = survivor
                by_component[comp] = survivor
            elif comp in founders:
                by_component[comp] = self._found(new_customer_id(founders[comp]), created)
        customers = np.array(
            [by_component.get(comp) for comp in component[:rows].tolist()], dtype=object
        )
        self._assign_to_holders(pairs.rows, codes, keys, anchor_codes, customers, ts)
        for row in np.flatnonzero(pd.isna(customers)).tolist():
            event = frame.column("event_id")[row].as_py()
            customers[row] = self._found(new_customer_id(f"event:{event}"), created)
        index.prefetch(customers=pd.unique(customers).tolist())
        links = self._record(pairs.rows, codes, keys, hub, customers, ts)
        return Resolution(pa.array(customers.tolist(), pa.string()), links, created, merges)

    def _found(self, customer: str, created: list[str]) -> str:
        customer = self.index.survivor(customer)
        if customer not in self.index.created:
            self.index.found(customer)
            created.append(customer)
        return customer

    def _anchor_codes(
        self,
        frame: pa.Table,
        rows: NDArray[np.int64],
        codes: NDArray[np.intp],
        keys: list[str],
        row_count: int,
    ) -> NDArray[np.intp]:
        """Per row, the code of its anchor identifier, or -1."""
        prefix = f"{_IDENTIFIER_PREFIX}{self.settings.anchor_kind}:"
        is_anchor = np.fromiter((key.startswith(prefix) for key in keys), bool, len(keys))
        anchor = np.full(row_count, -1, np.intp)
        if len(codes):
            hits = is_anchor[codes]
            anchor[rows[hits]] = codes[hits]
        return anchor

    def _update_hubs(
        self,
        rows: NDArray[np.int64],
        codes: NDArray[np.intp],
        keys: list[str],
        anchor_codes: NDArray[np.intp],
    ) -> None:
        """Count the distinct anchors beside each key; too many makes it a hub."""
        if not len(codes):
            return
        anchors = anchor_codes[rows]
        beside = (anchors >= 0) & (anchors != codes)
        seen = np.unique(np.stack([codes[beside], anchors[beside]], axis=1), axis=0)
        limit = self.settings.hub_threshold
        for code, anchor_code in seen.tolist():
            key, anchor = keys[code], keys[anchor_code]
            entry = self.index.keys.get(key)
            if entry is not None and (entry.hub or anchor in entry.anchors):
                continue
            entry = self.index.key(key)
            entry.anchors.add(anchor)
            if len(entry.anchors) > limit:
                entry.hub = True
                entry.anchors = set(sorted(entry.anchors)[: limit + 1])

    @staticmethod
    def _founders(
        component: NDArray[np.int32], rows: int, stitching_codes: NDArray[np.intp], keys: list[str]
    ) -> dict[int, str]:
        """Per component, the smallest identifier in it: a new customer's id comes from it."""
        founders: dict[int, str] = {}
        for code in np.unique(stitching_codes).tolist():
            comp = int(component[rows + code])
            key = keys[code]
            if comp not in founders or key < founders[comp]:
                founders[comp] = key
        return founders

    def _assign_to_holders(
        self,
        rows: NDArray[np.int64],
        codes: NDArray[np.intp],
        keys: list[str],
        anchor_codes: NDArray[np.intp],
        customers: NDArray[np.object_],
        ts: NDArray[np.int64],
    ) -> None:
        """Account holders: earliest customer beside an anchor; keyless rows go to them."""
        if not len(codes):
            return
        index = self.index
        prefixes = tuple(f"{_IDENTIFIER_PREFIX}{kind}:" for kind in self.settings.account_kinds)
        is_account = np.fromiter((key.startswith(prefixes) for key in keys), bool, len(keys))
        account = is_account[codes]
        if not account.any():
            return
        beside = account & (anchor_codes[rows] >= 0) & pd.notna(customers[rows])
        if beside.any():
            seen = pd.DataFrame(
                {"code": codes[beside], "ts": ts[rows[beside]], "row": rows[beside]}
            )
            earliest = seen.sort_values(["ts", "row"]).drop_duplicates("code")
            for code, stamp, row in earliest.itertuples(index=False):
                entry = index.key(keys[code])
                if entry.holder_ts is None or int(stamp) < entry.holder_ts:
                    entry.holder, entry.holder_ts = str(customers[row]), int(stamp)
        open_rows = account & pd.isna(customers[rows])
        for row, code in zip(rows[open_rows].tolist(), codes[open_rows].tolist(), strict=True):
            if customers[row] is not None:
                continue
            holder = index.keys[keys[code]].holder if keys[code] in index.keys else None
            if holder is not None:
                customers[row] = index.survivor(holder)

    def _record(
        self,
        rows: NDArray[np.int64],
        codes: NDArray[np.intp],
        keys: list[str],
        hub: NDArray[np.bool_],
        customers: NDArray[np.object_],
        ts: NDArray[np.int64],
    ) -> dict[tuple[str, str], Link]:
        """Per distinct (customer, identifier): widen its link; stitching keys get owners."""
        index = self.index
        links: dict[tuple[str, str], Link] = {}
        if not len(codes):
            return links
        seen = pd.DataFrame({"customer": customers[rows], "code": codes, "ts": ts[rows]})
        spans = seen.groupby(["customer", "code"], sort=False)["ts"].agg(["min", "max"])
        for (customer, code), first, last in zip(
            spans.index.tolist(), spans["min"].tolist(), spans["max"].tolist(), strict=True
        ):
            key = keys[code]
            if hub[code]:
                rule, score = RULE_HUB, 0.0
            else:
                rule, score = RULE_SHARED, 1.0
                entry = index.key(key)
                if entry.customer is None or index.survivor(entry.customer) != customer:
                    entry.customer = customer
            links[(customer, key)] = index.link(
                customer, key, Link(rule, METHOD, score, int(first), int(last))
            )
        return links


@dataclass
class _RowKeys:
    """The (row, identifier id) pairs of a frame, grouped by kind."""

    rows: NDArray[np.int64]
    keys: list[str]


def _row_keys(frame: pa.Table) -> _RowKeys:
    rows: list[NDArray[np.int64]] = []
    keys: list[str] = []
    for kind in IDENTIFIER_COLUMNS:
        column = frame.column(kind)
        if column.null_count == len(column):
            continue
        present = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False))
        prefix = f"{_IDENTIFIER_PREFIX}{kind}:"
        rows.append(present.astype(np.int64))
        keys.extend(prefix + str(value) for value in pc.drop_null(column).to_pylist())
    if not rows:
        return _RowKeys(np.array([], np.int64), [])
    return _RowKeys(np.concatenate(rows), keys)
