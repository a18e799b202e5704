"""``GremlinStore``: the graph on a Gremlin server (JanusGraph, Amazon Neptune, TinkerGraph).

Everything is sent as bytecode with bound values; no Groovy script is ever built, so
no input can change what a traversal does. See ``docs/gremlin.md`` for running a
server and for what each dialect can and cannot guarantee.

How the graph is laid out on the server:

* A vertex has its label as ``T.label`` and its project id in the property ``uid``
  (JanusGraph and TinkerGraph assign their own vertex ids; JanusGraph needs a
  composite index on ``uid``). On Neptune the server id is the project id as well.
* There is one edge of a label between two vertices, found by ``mergeE`` on
  ``T.label`` and its ``Direction.OUT``/``Direction.IN`` vertices.
* Every element written carries two change stamps, ``_seq`` (last write) and
  ``_seq:created``: epoch nanoseconds of the batch plus the element's position in it,
  which is what the change feed reads. Deletions leave nothing to read, so the feed
  does not report them.

An upsert batch reads the current elements (chunks of ``batch_size``), compares
them with the input in Python, and sends only the elements that change, through
``mergeV``/``mergeE`` with ``onCreate``/``onMatch`` maps, one request a chunk; keys
set to ``None`` are dropped in the same request (merge maps cannot hold nulls).
Comparing first is what makes the created/updated/unchanged counts exact and a
re-upsert write nothing. A batch of several requests is one remote transaction
where the dialect has them; everywhere, edge endpoints are checked before the
first write.

The store is safe to share between threads. Call it from threads, not from inside
a running asyncio event loop: gremlinpython runs its own loop for every request.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

import aiohttp
import pyarrow as pa
from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
from gremlin_python.driver.protocol import GremlinServerError
from gremlin_python.process.anonymous_traversal import traversal
from gremlin_python.process.graph_traversal import __
from gremlin_python.process.traversal import (
    CardinalityValue,
    Direction,
    Merge,
    Order,
    P,
    T,
)
from gremlin_python.statics import long

from graph._gremlin_auth import SIGNATURE_LIFETIME_S, neptune_sigv4_headers
from graph._gremlin_dialects import Dialect, dialect_named
from graph._gremlin_transport import BoundedTransport
from graph._gremlin_values import (
    CREATED,
    EARLIEST,
    SEQ,
    UID,
    canonical,
    ceil_millisecond,
    decode,
    difference,
    table,
    to_wire,
)
from graph.errors import (
    GraphError,
    GraphUnavailable,
    InvalidInput,
    JourneyGraphError,
    QueryTimeout,
    UnknownVertex,
    UnsupportedProperty,
)
from graph.model import EdgeLabel, PropertyValue, VertexLabel, edge_id
from graph.store import (
    Change,
    ChangeBatch,
    ChangeKind,
    Edge,
    GraphStore,
    Neighbour,
    UpsertResult,
    Vertex,
    WantedChanges,
)
from graph.store import (
    Direction as NeighbourDirection,
)

log = logging.getLogger(__name__)

Result = TypeVar("Result")
Failure = Literal["connection", "timeout", "refused", "invalid", "server"]

_SERVER_TIMEOUT: Final = 598
"""Gremlin Server's status code for a request that ran past its evaluation timeout."""
_AUTHENTICATION: Final = frozenset({401, 403, 407})
_TYPE_CONFLICT: Final = "is not an instance of the expected data type"
"""JanusGraph's refusal of a value whose type differs from its property key's type."""
_LOST_CONNECTION: Final = (
    "Connection was closed by server",
    "Connection was already closed",
    "Received error on read",
    "Failed to connect to server",
    "Client is closed",
)
_CLIENT_GRACE_S: Final = 5.0
"""How much longer than the server's timeout the client waits for an answer."""
_MAX_BACKOFF_S: Final = 10.0
_DROP_CHUNK: Final = 1_000
"""Vertices ``drop_all`` removes a request, so that each stays far inside the server's
timeout (TinkerGraph took about 4 ms a vertex with its edges)."""
_MESSAGE_LIMIT: Final = 500
_POOL_SIZE: Final = 8
"""Connections a store keeps open for concurrent requests (gremlinpython's default)."""
_MAX_MESSAGE_BYTES: Final = 10 * 1024 * 1024
"""Largest response frame accepted: Gremlin Server's usual ``maxContentLength``."""

VertexBatch = list[tuple[str, dict[str, PropertyValue | None]]]
EdgeBatch = list[tuple[str, str, dict[str, PropertyValue | None]]]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _failure(error: BaseException) -> Failure | None:
    """What kind of failure a driver exception is, or ``None`` for a bug of ours."""
    if isinstance(error, GremlinServerError):
        if error.status_code == _SERVER_TIMEOUT:
            return "timeout"
        if error.status_code in _AUTHENTICATION:
            return "refused"
        return "invalid" if _TYPE_CONFLICT in str(error.status_message) else "server"
    # Checked before OSError, of which TimeoutError is a subclass.
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, (OSError, aiohttp.ClientError)):
        return "connection"
    # The driver reports a lost connection in plain RuntimeErrors and Exceptions.
    if type(error) in (RuntimeError, Exception) and str(error).startswith(_LOST_CONNECTION):
        return "connection"
    return None


class _Link:
    """A driver connection and the WebSocket transports it opened.

    The driver loses track of a transport when a request fails in some ways, and a
    transport left to the garbage collector closes itself from whatever event loop
    is running then, which fails; so each one is closed here explicitly.
    """

    def __init__(self) -> None:
        self.driver: Any = None
        self.transports: list[BoundedTransport] = []

    def _can_send(self) -> bool:
        # The driver takes a connection out of its pool for each request and loses it
        # when opening it fails; a session has one, and a request then waits forever
        # for it. Such a session never reached the server: there is nothing to send.
        return bool(self.driver._client.available_pool_size > 0)

    def rollback(self) -> None:
        """Roll the session's transaction back, if its connection still can."""
        if self._can_send():
            # Over a dead connection this fails at once; the server rolls back
            # anyway when the session's connection closes.
            with suppress(Exception):
                self.driver.rollback().all().result()

    def close(self) -> None:
        """Close the driver (and end its server session), then every socket it opened."""
        if self.driver is not None and (not self.driver.is_session_bound() or self._can_send()):
            with suppress(Exception):
                self.driver.close()
        for transport in self.transports:
            with suppress(Exception):
                transport.close()


def _short(error: BaseException) -> str:
    message = error.status_message if isinstance(error, GremlinServerError) else str(error)
    message = message or type(error).__name__
    return message if len(message) <= _MESSAGE_LIMIT else message[:_MESSAGE_LIMIT] + "..."


def _properties() -> Any:
    # valueMap() wraps each vertex property in a list (multi-properties); unfold takes
    # the single value out and leaves edge properties, which are plain, as they are.
    return __.value_map().by(__.unfold())


def _vertex_fields() -> Any:
    return __.project("u", "l", "p").by(UID).by(__.label()).by(_properties())


def _wire(properties: dict[str, PropertyValue]) -> dict[str, Any]:
    return {key: to_wire(value) for key, value in properties.items()}


def _merged(
    stored: dict[str, PropertyValue] | None,
    changed: dict[str, PropertyValue],
    removed: list[str],
) -> dict[str, Any]:
    """The element's whole property map after a write, ready to send."""
    document = {key: value for key, value in (stored or {}).items() if key not in removed}
    return _wire({**document, **changed})


def _vertex(row: dict[str, Any]) -> Vertex:
    return Vertex(row["u"], row["l"], decode(row["p"]))


class _Stamps:
    """Change stamps: epoch nanoseconds, strictly increasing within this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def take(self, count: int) -> Iterator[int]:
        """``count`` consecutive stamps, all above every stamp handed out before."""
        with self._lock:
            first = max(time.time_ns(), self._last + 1)
            self._last = first + count - 1
        return iter(range(first, first + count))


class GremlinStore(GraphStore):
    """A graph store on a Gremlin server, spoken to over WebSocket with gremlinpython.

    ``dialect`` is ``"janusgraph"``, ``"neptune"`` or ``"tinkergraph"``. Upserts go in
    chunks of ``batch_size`` elements a request. Each request may run ``timeout_s``
    on the server (``QueryTimeout`` after that). Connection failures are retried
    ``retries`` times, waiting ``backoff_s``, then twice as long each time, before
    ``GraphUnavailable``. ``neptune_iam=True`` signs the connection with AWS SigV4
    (needs botocore). Nothing is sent until the first call.
    """

    def __init__(
        self,
        url: str,
        *,
        dialect: str = "janusgraph",
        batch_size: int = 200,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        traversal_source: str = "g",
        username: str = "",
        password: str = "",
        neptune_iam: bool = False,
        aws_region: str | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise InvalidInput(f"Gremlin url must start with ws:// or wss://, got {url!r}")
        if batch_size < 1 or min(timeout_s, connect_timeout_s) <= 0 or min(retries, backoff_s) < 0:
            raise InvalidInput("batch_size must be >= 1, timeouts > 0, retries and backoff_s >= 0")
        self.url = url
        self.dialect: Dialect = dialect_named(dialect)
        self.batch_size = batch_size
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._traversal_source = traversal_source
        self._username = username
        self._password = password
        self._neptune_iam = neptune_iam
        self._aws_region = aws_region
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._connected_at = 0.0
        self._closed = False
        self._stamps = _Stamps()

    def __repr__(self) -> str:
        return f"GremlinStore({self.url!r}, dialect={self.dialect.name!r})"

    # --- connections --------------------------------------------------------------

    def _connect(self, session: str | None = None) -> _Link:
        """A new driver connection; bound to a server session when ``session`` is given."""
        headers = neptune_sigv4_headers(self.url, self._aws_region) if self._neptune_iam else None
        wait_s = self._timeout_s + _CLIENT_GRACE_S
        link = _Link()

        def transport() -> BoundedTransport:
            opened = BoundedTransport(
                self._connect_timeout_s,
                read_timeout=wait_s,
                write_timeout=wait_s,
                max_content_length=_MAX_MESSAGE_BYTES,
            )
            link.transports.append(opened)
            return opened

        link.driver = DriverRemoteConnection(
            self.url,
            self._traversal_source,
            transport_factory=transport,
            message_serializer=self.dialect.serializer(),
            pool_size=1 if session else _POOL_SIZE,
            session=session,
            username=self._username,
            password=self._password,
            headers=headers,
            max_content_length=_MAX_MESSAGE_BYTES,
        )
        return link

    def _bound(self, link: _Link) -> Any:
        """A traversal source on ``link`` that asks the server to stop in time."""
        source = traversal().with_remote(link.driver)
        return source.with_("evaluationTimeout", int(self._timeout_s * 1000))

    def _source(self) -> tuple[_Link, Any]:
        """The current connection and a traversal source bound to it."""
        with self._lock:
            if self._closed:
                raise GraphUnavailable(f"{self!r} is closed")
            stale = self._neptune_iam and (
                time.monotonic() - self._connected_at > SIGNATURE_LIFETIME_S
            )
            if self._link is not None and stale:
                self._link.close()
                self._link = None
            if self._link is None:
                self._link = self._connect()
                self._connected_at = time.monotonic()
            link = self._link
        return link, self._bound(link)

    def _reset(self, broken: _Link) -> None:
        """Forget a connection that failed; the next call opens a new one."""
        with self._lock:
            if self._link is broken:
                self._link = None
        # Closing waits for each pooled socket to say goodbye, a second apiece when
        # the server stopped answering: not on the caller's time.
        threading.Thread(target=broken.close, daemon=True).start()

    def close(self) -> None:
        """Close the connections to the server; the store is unusable afterwards."""
        with self._lock:
            self._closed = True
            link, self._link = self._link, None
        if link is not None:
            link.close()

    # --- running traversals ---------------------------------------------------------

    def _run(self, action: str, work: Callable[[Any], Result]) -> Result:
        """Run ``work`` with a traversal source, retrying connection failures.

        ``work`` is run again from the start after a connection failure, so it must
        be repeatable: reads are, and upserts are idempotent.
        """
        attempt = 0
        while True:
            link, g = self._source()
            try:
                return work(g)
            except JourneyGraphError:
                raise
            except Exception as error:
                failure = _failure(error)
                if failure is None:
                    raise
                if failure in ("connection", "timeout"):
                    # A timed-out request may still answer later on that connection.
                    self._reset(link)
                if failure == "connection" and attempt < self._retries:
                    delay = min(self._backoff_s * 2**attempt, _MAX_BACKOFF_S)
                    log.warning(
                        "%s: connection to %s failed (%s); retry %d of %d in %.2f s",
                        action,
                        self.url,
                        _short(error),
                        attempt + 1,
                        self._retries,
                        delay,
                    )
                    time.sleep(delay)
                    attempt += 1
                    continue
                raise self._translate(action, error, failure, attempt + 1) from error

    def _translate(
        self, action: str, error: BaseException, failure: Failure, attempts: int
    ) -> JourneyGraphError:
        where = f"{action} on {self.dialect.name} at {self.url}"
        if failure == "timeout":
            # The server's message repeats the whole request, bound values included.
            who = (
                "the server stopped it"
                if isinstance(error, GremlinServerError)
                else (f"no answer within {self._timeout_s + _CLIENT_GRACE_S:g} s")
            )
            return QueryTimeout(
                f"{where} did not finish within {self._timeout_s:g} s ({who})",
                details={"timeout_s": self._timeout_s},
            )
        if failure == "invalid":
            return UnsupportedProperty(
                f"{where}: the server cannot store a value: {_short(error)}; JanusGraph "
                "fixes a property key's type at its first write, across all labels"
            )
        if failure == "connection":
            return GraphUnavailable(
                f"{where}: the server cannot be reached or dropped the connection "
                f"({_short(error)}); gave up after {attempts} attempt(s)",
                details={"attempts": attempts},
            )
        if failure == "refused":
            return GraphUnavailable(f"{where}: the server refused the credentials: {_short(error)}")
        return GraphError(f"{where} failed: {_short(error)}")

    def _write(self, action: str, work: Callable[[Any, Any], Result], requests: int) -> Result:
        """Run ``work(read, write)``, which sends ``requests`` writes, as one atomic batch.

        The server runs each request in a transaction of its own, so one write needs
        nothing more. Several share one remote transaction where the dialect has
        them: a server session, committed at the end or rolled back. That is what
        ``g.tx()`` does, minus two driver faults: it gives the session the pool size
        of the store's connection, which sessions refuse, and its cleanup after a
        failed connect waits forever. A session costs Gremlin Server about 0.2 s,
        so there is none for a one-request batch.

        Reads go outside the transaction: JanusGraph answers a ``within`` lookup in
        one by checking every vertex the transaction added (2 s a lookup after 1,200
        added, against 10 ms outside). A batch is deduplicated first, so none of its
        reads depends on one of its own writes.
        """
        if not self.dialect.transactions or requests <= 1:
            return self._run(action, lambda g: work(g, g))

        def in_transaction(read: Any) -> Result:
            session = self._connect(session=str(uuid.uuid4()))
            try:
                result = work(read, self._bound(session))
                session.driver.commit().all().result()
                return result
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

        return self._run(action, in_transaction)

    def _by_uid(self, g: Any, ids: list[str]) -> Any:
        """The vertices with these project ids that exist."""
        if self.dialect.client_ids:
            return g.V(*ids)
        if len(ids) == 1:
            return g.V().has(UID, ids[0])
        if self.dialect.index_within:
            return g.V().has(UID, P.within(ids))
        # One indexed equality lookup an id: the index answers no `within`, which
        # would scan every vertex once a chunk.
        return g.inject(0).union(*[__.V().has(UID, vertex_id) for vertex_id in ids])

    def _server_ids(self, g: Any, ids: list[str]) -> dict[str, Any]:
        """Server vertex ids of those of ``ids`` that exist."""
        found: dict[str, Any] = {}
        for chunk in _chunks(ids, self.batch_size):
            rows = self._by_uid(g, chunk).project("u", "i").by(UID).by(__.id_()).to_list()
            found.update((row["u"], row["i"]) for row in rows)
        return found

    def _single(self, properties: dict[str, Any]) -> dict[str, Any]:
        if not self.dialect.single_cardinality:
            return properties
        return {key: CardinalityValue.single(value) for key, value in properties.items()}

    @staticmethod
    def _merge(g: Any, step: str, rows: list[dict[str, Any]], removals: list[Any]) -> None:
        """One request: ``mergeV``/``mergeE`` of rows ``{"match", "create", "update"}``,
        then the ``removals`` traversals, which drop the keys set to ``None``.

        Merge maps cannot hold nulls, hence the drops; they ride in the same request
        so that the server's per-request transaction covers them.
        """
        merged = getattr(g.inject(rows).unfold(), step)(__.select("match"))
        query = merged.option(Merge.on_create, __.select("create")).option(
            Merge.on_match, __.select("update")
        )
        if removals:
            query = query.fold()
            for removal in removals:
                query = query.side_effect(removal)
        query.iterate()

    # --- writes ---------------------------------------------------------------------

    def _upsert_vertices(self, label: VertexLabel, batch: VertexBatch) -> UpsertResult:
        records: dict[str, dict[str, PropertyValue | None]] = {}
        for vertex_id, properties in batch:
            given = {key: None if v is None else canonical(v) for key, v in properties.items()}
            # Repeats within one batch fold into one write, later values winning.
            records[vertex_id] = {**records.get(vertex_id, {}), **given}

        def work(read: Any, write: Any) -> UpsertResult:
            stamps = self._stamps.take(len(records))
            created = updated = unchanged = 0
            for chunk in _chunks(list(records.items()), self.batch_size):
                current = {
                    row["u"]: (row["i"], decode(row["p"]))
                    for row in self._by_uid(read, [vertex_id for vertex_id, _ in chunk])
                    .project("u", "i", "p")
                    .by(UID)
                    .by(__.id_())
                    .by(_properties())
                    .to_list()
                }
                rows: list[dict[str, Any]] = []
                removals: dict[tuple[str, ...], list[Any]] = {}
                for vertex_id, given in chunk:
                    server_id, stored = current.get(vertex_id, (None, None))
                    if stored is None:
                        changed = {k: v for k, v in given.items() if v is not None}
                        removed: list[str] = []
                        created += 1
                    else:
                        changed, removed = difference(stored, given)
                        if not changed and not removed:
                            unchanged += 1
                            continue
                        updated += 1
                    stamp = long(next(stamps))
                    rows.append(self._vertex_row(label, vertex_id, stored, changed, removed, stamp))
                    if removed:
                        removals.setdefault(tuple(sorted(removed)), []).append(server_id)
                if rows:
                    drops = [
                        __.V(*server_ids).properties(*keys).drop()
                        for keys, server_ids in removals.items()
                    ]
                    self._merge(write, "merge_v", rows, drops)
            return UpsertResult(created, updated, unchanged)

        requests = -(-len(records) // self.batch_size)
        return self._write(f"upsert of {len(records)} {label} vertices", work, requests)

    def _vertex_row(
        self,
        label: VertexLabel,
        vertex_id: str,
        stored: dict[str, PropertyValue] | None,
        changed: dict[str, PropertyValue],
        removed: list[str],
        stamp: int,
    ) -> dict[str, Any]:
        match: dict[Any, Any] = {T.label: label.value}
        if self.dialect.client_ids:
            match[T.id] = vertex_id
        else:
            match[UID] = vertex_id
        # onCreate carries the whole merged vertex: without transactions, the vertex
        # read a moment ago may have been deleted by another writer since.
        document = _merged(stored, changed, removed)
        create = {**match, UID: vertex_id, **document, SEQ: stamp, CREATED: stamp}
        update = {**_wire(changed), SEQ: stamp}
        if stored is None:
            # Another writer created it since it was read: our data merges into theirs.
            update[CREATED] = stamp
        return {"match": match, "create": create, "update": self._single(update)}

    def _upsert_edges(self, label: EdgeLabel, batch: EdgeBatch) -> UpsertResult:
        records: dict[tuple[str, str], dict[str, PropertyValue | None]] = {}
        for source, target, properties in batch:
            given = {key: None if v is None else canonical(v) for key, v in properties.items()}
            records[(source, target)] = {**records.get((source, target), {}), **given}

        def work(read: Any, write: Any) -> UpsertResult:
            endpoints = list(dict.fromkeys(v for pair in records for v in pair))
            server_ids = self._server_ids(read, endpoints)
            # Every endpoint is checked before the first write, so that a server
            # without transactions is not left with half a batch.
            for index, (source, target, _) in enumerate(batch):
                for vertex_id in (source, target):
                    if vertex_id not in server_ids:
                        raise UnknownVertex(
                            f"{label} edge {index} points at vertex {vertex_id!r}, which is "
                            "not in the graph; upsert the vertices before the edges",
                            details={"index": index, "id": vertex_id},
                        )
            stamps = self._stamps.take(len(records))
            created = updated = unchanged = 0
            for chunk in _chunks(list(records.items()), self.batch_size):
                pairs = [pair for pair, _ in chunk]
                current = self._edges_between(read, label, pairs, server_ids)
                rows: list[dict[str, Any]] = []
                removals: dict[tuple[str, ...], list[Any]] = {}
                for (source, target), given in chunk:
                    found = current.get((source, target))
                    if found is None:
                        changed = {k: v for k, v in given.items() if v is not None}
                        removed: list[str] = []
                        created += 1
                    else:
                        changed, removed = difference(found[1], given)
                        if not changed and not removed:
                            unchanged += 1
                            continue
                        updated += 1
                        if removed:
                            removals.setdefault(tuple(sorted(removed)), []).append(found[0])
                    stamp = long(next(stamps))
                    document = _merged(found[1] if found else None, changed, removed)
                    update = {**_wire(changed), SEQ: stamp}
                    if found is None:
                        update[CREATED] = stamp
                    match = {
                        T.label: label.value,
                        Direction.OUT: server_ids[source],
                        Direction.IN: server_ids[target],
                    }
                    create = {**document, SEQ: stamp, CREATED: stamp}
                    rows.append({"match": match, "create": create, "update": update})
                if rows:
                    drops = [
                        __.E(*edge_ids).properties(*keys).drop()
                        for keys, edge_ids in removals.items()
                    ]
                    self._merge(write, "merge_e", rows, drops)
            return UpsertResult(created, updated, unchanged)

        requests = -(-len(records) // self.batch_size)
        return self._write(f"upsert of {len(records)} {label} edges", work, requests)

    def _edges_between(
        self,
        g: Any,
        label: EdgeLabel,
        pairs: list[tuple[str, str]],
        server_ids: dict[str, Any],
    ) -> dict[tuple[str, str], tuple[Any, dict[str, PropertyValue]]]:
        """The ``label`` edges among ``pairs``: ``(source, target) -> (edge id, properties)``."""
        sources = list(dict.fromkeys(server_ids[source] for source, _ in pairs))
        targets = list(dict.fromkeys(server_ids[target] for _, target in pairs))
        rows = (
            g.V(*sources)
            .out_e(label.value)
            .where(__.in_v().has_id(P.within(targets)))
            .project("s", "t", "e", "p")
            .by(__.out_v().values(UID))
            .by(__.in_v().values(UID))
            .by(__.id_())
            .by(_properties())
            .to_list()
        )
        # Sources and targets of different pairs can also be joined by an edge.
        wanted = set(pairs)
        return {
            (row["s"], row["t"]): (row["e"], decode(row["p"]))
            for row in rows
            if (row["s"], row["t"]) in wanted
        }

    def _delete_vertices(self, ids: list[str]) -> int:
        unique = list(dict.fromkeys(ids))

        def work(read: Any, write: Any) -> int:
            server_ids = list(self._server_ids(read, unique).values())
            for chunk in _chunks(server_ids, self.batch_size):
                # A vertex's edges go with it on every Gremlin server.
                write.V(*chunk).drop().iterate()
            return len(server_ids)

        requests = -(-len(unique) // self.batch_size)
        return self._write(f"delete of {len(unique)} vertices", work, requests)

    def _delete_edges(self, label: EdgeLabel, pairs: list[tuple[str, str]]) -> int:
        unique = list(dict.fromkeys(pairs))

        def work(read: Any, write: Any) -> int:
            server_ids = self._server_ids(read, list(dict.fromkeys(v for p in unique for v in p)))
            known = [pair for pair in unique if pair[0] in server_ids and pair[1] in server_ids]
            found: list[Any] = []
            for chunk in _chunks(known, self.batch_size):
                found += [
                    edge for edge, _ in self._edges_between(read, label, chunk, server_ids).values()
                ]
            for chunk in _chunks(found, self.batch_size):
                write.E(*chunk).drop().iterate()
            return len(found)

        requests = -(-len(unique) // self.batch_size)
        return self._write(f"delete of {len(unique)} {label} edges", work, requests)

    def drop_all(self) -> None:
        """Delete every vertex and edge on the server (tests and resets; not undoable)."""

        def work(g: Any) -> None:
            while g.V().limit(_DROP_CHUNK).side_effect(__.drop()).count().next():
                pass

        self._run("drop of every element", work)

    # --- reads ----------------------------------------------------------------------

    def _get_vertices(self, ids: list[str]) -> list[Vertex]:
        def work(g: Any) -> list[Vertex]:
            found: list[Vertex] = []
            for chunk in _chunks(ids, self.batch_size):
                rows = self._by_uid(g, chunk).flat_map(_vertex_fields()).to_list()
                found.extend(_vertex(row) for row in rows)
            return found

        return self._run("vertex lookup", work)

    def _get_edge(self, label: EdgeLabel, source: str, target: str) -> Edge | None:
        def work(g: Any) -> list[dict[str, Any]]:
            return list(
                self._by_uid(g, [source])
                .out_e(label.value)
                .where(__.in_v().has(UID, target))
                .flat_map(_properties())
                .to_list()
            )

        rows = self._run("edge lookup", work)
        return Edge(label.value, source, target, decode(rows[0])) if rows else None

    def _find_vertices(
        self, label: VertexLabel, where: dict[str, PropertyValue | None], limit: int
    ) -> list[Vertex]:
        def work(g: Any) -> list[Vertex]:
            query = g.V().has_label(label.value)
            for key, value in where.items():
                if value is None:
                    query = query.has_not(key)
                else:
                    query = query.has(key, to_wire(canonical(value)))
            return [_vertex(row) for row in query.limit(limit).flat_map(_vertex_fields()).to_list()]

        return self._run(f"{label} lookup", work)

    def _neighbours(
        self,
        vertex_id: str,
        direction: NeighbourDirection,
        labels: list[EdgeLabel] | None,
        limit: int | None,
    ) -> list[Neighbour]:
        names = [label.value for label in labels or []]

        def fields(edges: Any, other: Any) -> Any:
            return (
                edges.project("l", "s", "t", "p", "v")
                .by(__.label())
                .by(__.out_v().values(UID))
                .by(__.in_v().values(UID))
                .by(_properties())
                .by(other.flat_map(_vertex_fields()))
            )

        def work(g: Any) -> list[Neighbour]:
            # Out-edges before in-edges, as the embedded store lists them.
            branches = []
            if direction in ("out", "both"):
                branches.append(fields(__.out_e(*names), __.in_v()))
            if direction in ("in", "both"):
                branches.append(fields(__.in_e(*names), __.out_v()))
            query = self._by_uid(g, [vertex_id]).union(*branches)
            if limit is not None:
                query = query.limit(limit)
            return [
                Neighbour(Edge(row["l"], row["s"], row["t"], decode(row["p"])), _vertex(row["v"]))
                for row in query.to_list()
            ]

        return self._run("neighbour lookup", work)

    def _degree(
        self, vertex_id: str, direction: NeighbourDirection, labels: list[EdgeLabel] | None
    ) -> dict[str, int]:
        names = [label.value for label in labels or []]
        steps = {"out": __.out_e, "in": __.in_e, "both": __.both_e}

        def work(g: Any) -> dict[str, int]:
            query = self._by_uid(g, [vertex_id]).flat_map(steps[direction](*names))
            counts = query.group_count().by(__.label()).to_list()
            return {str(name): int(found) for name, found in (counts[0] if counts else {}).items()}

        return self._run("degree", work)

    def _timeline(
        self,
        customer: str,
        start: datetime | None,
        end: datetime | None,
        limit: int | None,
    ) -> list[Vertex]:
        def work(g: Any) -> list[Vertex]:
            query = (
                self._by_uid(g, [customer])
                .out(EdgeLabel.PERFORMED.value)
                .has_label(VertexLabel.TOUCHPOINT.value)
            )
            if start is not None:
                query = query.has("ts", P.gte(ceil_millisecond(start)))
            if end is not None:
                query = query.has("ts", P.lt(ceil_millisecond(end)))
            # A by() that yields nothing drops the traverser (TinkerPop 3.6+), so a
            # touchpoint without ts gets the earliest date instead and sorts first.
            query = query.order().by(__.coalesce(__.values("ts"), __.constant(EARLIEST)), Order.asc)
            query = query.by(UID, Order.asc)
            if limit is not None:
                query = query.limit(limit)
            return [_vertex(row) for row in query.flat_map(_vertex_fields()).to_list()]

        return self._run("timeline", work)

    def _count_vertices(self, label: VertexLabel | None) -> int:
        def work(g: Any) -> int:
            query = g.V() if label is None else g.V().has_label(label.value)
            return int(query.count().next())

        return self._run("count", work)

    def _count_edges(self, label: EdgeLabel | None) -> int:
        def work(g: Any) -> int:
            query = g.E() if label is None else g.E().has_label(label.value)
            return int(query.count().next())

        return self._run("count", work)

    def _changes(
        self, since: int, limit: int, wanted: WantedChanges | None, targets: bool
    ) -> ChangeBatch:
        """Elements whose ``_seq`` stamp is above the cursor, oldest first.

        Deleted elements are gone from the graph and are not reported. Labels and kinds
        (created: ``_seq:created`` above the cursor) are filtered on the server, so
        ``limit`` counts what is returned.
        """
        after = P.gt(long(since))
        vertex_fields = ("s", "c", "l", "u")
        edge_fields = ("s", "c", "l", "o", "i", "t") if targets else ("s", "c", "l", "o", "i")

        def vertices(query: Any) -> Any:
            return query.project(*vertex_fields).by(SEQ).by(CREATED).by(__.label()).by(UID)

        def edges(query: Any) -> Any:
            query = (
                query.project(*edge_fields)
                .by(SEQ)
                .by(CREATED)
                .by(__.label())
                .by(__.out_v().values(UID))
                .by(__.in_v().values(UID))
            )
            return query.by(__.in_v().flat_map(_vertex_fields())) if targets else query

        def branches() -> list[Any]:
            if wanted is None:
                return [vertices(__.V().has(SEQ, after)), edges(__.E().has(SEQ, after))]
            found = []
            for label, kinds in wanted.items():
                created = ChangeKind.CREATED in kinds
                updated = ChangeKind.UPDATED in kinds
                if not created and not updated:
                    continue  # deletions only: there are none to read
                vertex = label in VertexLabel.__members__.values()
                query = (__.V() if vertex else __.E()).has_label(label).has(SEQ, after)
                if not created:
                    query = query.has(CREATED, P.lte(long(since)))
                elif not updated:
                    query = query.has(CREATED, after)
                found.append(vertices(query) if vertex else edges(query))
            return found

        def work(g: Any) -> list[dict[str, Any]]:
            parts = branches()
            if not parts:
                return []
            query = g.inject(0).union(*parts).order().by(__.select("s"), Order.asc)
            return list(query.limit(limit).to_list())

        changes: list[Change] = []
        for row in self._run("change feed", work):
            kind = ChangeKind.CREATED if row["c"] > since else ChangeKind.UPDATED
            if "u" in row:
                changes.append(Change(int(row["s"]), kind, "vertex", row["l"], row["u"]))
            else:
                element_id = edge_id(row["l"], row["o"], row["i"])
                target = _vertex(row["t"]) if targets else None
                changes.append(Change(int(row["s"]), kind, "edge", row["l"], element_id, target))
        return ChangeBatch(changes, changes[-1].cursor if changes else since)

    def _export_vertices(self, label: VertexLabel) -> pa.Table:
        def work(g: Any) -> list[dict[str, Any]]:
            query = g.V().has_label(label.value).project("u", "p").by(UID).by(_properties())
            return list(query.to_list())

        rows = sorted(self._run(f"export of {label}", work), key=lambda row: str(row["u"]))
        return table({"id": [row["u"] for row in rows]}, [decode(row["p"]) for row in rows])

    def _export_edges(self, label: EdgeLabel) -> pa.Table:
        def work(g: Any) -> list[dict[str, Any]]:
            query = (
                g.E()
                .has_label(label.value)
                .project("s", "t", "p")
                .by(__.out_v().values(UID))
                .by(__.in_v().values(UID))
                .by(_properties())
            )
            return list(query.to_list())

        rows = sorted(self._run(f"export of {label}", work), key=lambda row: (row["s"], row["t"]))
        return table(
            {"source": [row["s"] for row in rows], "target": [row["t"] for row in rows]},
            [decode(row["p"]) for row in rows],
        )

    def _ping(self) -> None:
        self._run("ping", lambda g: g.inject(1).next())
