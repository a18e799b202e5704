"""GremlinStore against a real server: what the shared contract tests cannot show.

Connection loss, retries, timeouts, transactions over several requests and the
server's millisecond datetimes. Tests marked ``gremlin`` need
``JOURNEYGRAPH_GREMLIN_URL`` (and ``JOURNEYGRAPH_GREMLIN_DIALECT``) and are skipped
with that reason otherwise; the rest (a missing server, settings, Neptune IAM
signing) run everywhere. A small TCP proxy stands between the store and the server
so a test can cut or stall the connection: the server and driver stay real.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from graph import (
    ChangeKind,
    GraphUnavailable,
    InvalidInput,
    QueryTimeout,
    UnknownVertex,
    UnsupportedProperty,
    UpsertResult,
)
from graph.gremlin import GremlinStore

URL = os.environ.get("JOURNEYGRAPH_GREMLIN_URL")
DIALECT = os.environ.get("JOURNEYGRAPH_GREMLIN_DIALECT", "janusgraph")
needs_server = pytest.mark.skipif(
    not URL, reason="needs a Gremlin server: set JOURNEYGRAPH_GREMLIN_URL (docs/gremlin.md)"
)
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


class Proxy:
    """A TCP proxy in front of the Gremlin server that a test can cut or stall."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 8182)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}{parts.path}"
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.sent = 0
        self.cut_after: int | None = None
        """Cut every connection once this many more bytes went to the server."""
        self.refuse = False
        """Hang up on every new connection, as a server that went away."""
        self.refuse_after_cut = False
        self.stall = False
        """Keep connections open but pass no answers back."""
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self._sockets += [client, upstream]
            for source, target, outbound in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, target, outbound), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, outbound: bool) -> None:
        try:
            while data := source.recv(65536):
                if outbound:
                    with self._lock:
                        self.sent += len(data)
                        trigger = self.cut_after is not None and self.sent >= self.cut_after
                    if trigger:
                        self.cut_after = None
                        self.refuse = self.refuse_after_cut
                        self.cut()
                        return
                elif self.stall:
                    continue
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                end.close()

    def cut(self) -> None:
        """Reset every open connection."""
        with self._lock:
            ends, self._sockets = self._sockets, []
        for end in ends:
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def close(self) -> None:
        """Stop listening and reset every connection."""
        self._listener.close()
        self.cut()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    assert URL
    front = Proxy(URL)
    yield front
    front.close()


def remote(url: str | None = None, **settings: object) -> GremlinStore:
    assert URL
    return GremlinStore(url or URL, dialect=DIALECT, **settings)  # type: ignore[arg-type]


@pytest.fixture
def store() -> Iterator[GremlinStore]:
    """A store that writes two elements a request, so every batch spans requests."""
    with remote(batch_size=2) as small:
        small.drop_all()
        yield small
        small.drop_all()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- no server needed -------------------------------------------------------------------


def test_missing_server_is_unavailable_after_bounded_retries() -> None:
    url = f"ws://127.0.0.1:{_free_port()}/gremlin"
    started = time.monotonic()
    with GremlinStore(url, dialect="tinkergraph", retries=2, backoff_s=0.01) as missing:
        with pytest.raises(GraphUnavailable) as caught:
            missing.ping()
    assert caught.value.details["attempts"] == 3
    assert caught.value.__cause__ is not None
    assert url in str(caught.value)
    assert time.monotonic() - started < 10


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidInput, match="known dialects: janusgraph, neptune, tinkergraph"):
        GremlinStore("ws://127.0.0.1:1/gremlin", dialect="orientdb")
    with pytest.raises(InvalidInput):
        GremlinStore("http://127.0.0.1:1/gremlin")
    with pytest.raises(InvalidInput):
        GremlinStore("ws://127.0.0.1:1/gremlin", batch_size=0)


def test_closed_store_is_unavailable() -> None:
    closed = GremlinStore("ws://127.0.0.1:1/gremlin")
    closed.close()
    with pytest.raises(GraphUnavailable, match="closed"):
        closed.count()


def test_neptune_iam_without_botocore_says_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("botocore", "botocore.auth", "botocore.awsrequest", "botocore.session"):
        monkeypatch.setitem(sys.modules, module, None)
    iam = GremlinStore("wss://db.example:8182/gremlin", dialect="neptune", neptune_iam=True)
    with pytest.raises(GraphUnavailable, match="pip install botocore") as caught:
        iam.ping()
    assert isinstance(caught.value.__cause__, ImportError)


def test_neptune_iam_signs_the_handshake(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("botocore", reason="botocore is optional (Neptune IAM auth only)")
    from graph._gremlin_auth import neptune_sigv4_headers

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    headers = neptune_sigv4_headers("wss://db.example:8182/gremlin", "eu-west-1")
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/neptune-db/aws4_request" in authorization
    assert "X-Amz-Date" in headers
    assert headers["Host"] == "db.example:8182"


# --- against a server -------------------------------------------------------------------


@needs_server
@pytest.mark.gremlin
def test_batches_spanning_requests_count_and_merge(store: GremlinStore) -> None:
    rows = [(f"cust:{i}", {"name": f"C{i}", "tier": i}) for i in range(7)]
    assert store.upsert_vertices("Customer", rows) == UpsertResult(created=7)
    assert store.upsert_vertices("Customer", rows) == UpsertResult(unchanged=7)
    changes = [(f"cust:{i}", {"tier": None} if i % 2 else {"tier": i}) for i in range(7)]
    assert store.upsert_vertices("Customer", changes) == UpsertResult(updated=3, unchanged=4)
    assert store.get_vertex("cust:1") is not None
    assert store.get_vertex("cust:1").properties == {"name": "C1"}  # type: ignore[union-attr]
    store.upsert_vertices("Touchpoint", [(f"tp:{i}", {"ts": T0}) for i in range(7)])
    performed = [(f"cust:{i}", f"tp:{i}", {"w": 1}) for i in range(7)]
    assert store.upsert_edges("PERFORMED", performed) == UpsertResult(created=7)
    assert store.upsert_edges("PERFORMED", performed) == UpsertResult(unchanged=7)
    assert store.upsert_edges(
        "PERFORMED", [(f"cust:{i}", f"tp:{i}", {"w": None}) for i in range(3)]
    ) == UpsertResult(updated=3)
    assert store.get_edge("PERFORMED", "cust:0", "tp:0").properties == {}  # type: ignore[union-attr]
    assert store.delete_edges("PERFORMED", [("cust:0", "tp:0"), ("cust:1", "tp:1")]) == 2
    assert store.delete_vertices([f"tp:{i}" for i in range(5)] + ["tp:none"]) == 5
    assert store.count_edges() == 2
    assert store.count() == 9


@needs_server
@pytest.mark.gremlin
def test_repeats_in_one_batch_fold_into_one_write(store: GremlinStore) -> None:
    rows = [("cust:a", {"x": 1}), ("cust:b", {}), ("cust:a", {"y": 2}), ("cust:a", {"x": 3})]
    assert store.upsert_vertices("Customer", rows) == UpsertResult(created=2)
    assert store.get_vertex("cust:a").properties == {"x": 3, "y": 2}  # type: ignore[union-attr]


@needs_server
@pytest.mark.gremlin
def test_missing_endpoint_in_a_later_request_writes_nothing(store: GremlinStore) -> None:
    store.upsert_vertices("Customer", [("cust:a", {})])
    store.upsert_vertices("Touchpoint", [(f"tp:{i}", {}) for i in range(5)])
    edges = [("cust:a", f"tp:{i}", {}) for i in range(5)] + [("cust:a", "tp:gone", {})]
    with pytest.raises(UnknownVertex) as caught:
        store.upsert_edges("PERFORMED", edges)
    assert caught.value.details == {"index": 5, "id": "tp:gone"}
    assert store.count_edges() == 0


@needs_server
@pytest.mark.gremlin
def test_server_failure_in_a_later_request_rolls_back_the_batch(store: GremlinStore) -> None:
    if DIALECT != "janusgraph":
        pytest.skip("needs JanusGraph: it refuses a value of another type than its key's")
    # JanusGraph fixes a key's type at its first write; a text value then fails on the
    # server, in the third request of the batch.
    store.upsert_vertices("Customer", [("cust:typed", {"probe_long": 1})])
    rows = [(f"cust:{i}", {"probe_long": i}) for i in range(4)]
    rows.append(("cust:4", {"probe_long": "not a number"}))
    with pytest.raises(UnsupportedProperty, match="probe_long"):
        store.upsert_vertices("Customer", rows)
    assert store.count() == 1


@needs_server
@pytest.mark.gremlin
def test_datetimes_keep_milliseconds_in_utc(store: GremlinStore) -> None:
    given = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    store.upsert_vertices("Customer", [("cust:t", {})])
    store.upsert_vertices("Touchpoint", [("tp:t", {"ts": given})])
    store.upsert_edges("PERFORMED", [("cust:t", "tp:t", {})])
    stored = store.get_vertex("tp:t").properties["ts"]  # type: ignore[union-attr]
    assert stored == given.replace(microsecond=123000)
    assert stored.tzinfo == UTC
    # The same value again is what the server holds, though it lost its microseconds.
    assert store.upsert_vertices("Touchpoint", [("tp:t", {"ts": given})]) == UpsertResult(
        unchanged=1
    )
    # Bounds keep start <= ts < end against the stored milliseconds.
    assert store.timeline("cust:t", start=given) == []
    assert len(store.timeline("cust:t", start=stored)) == 1
    assert store.timeline("cust:t", end=stored) == []
    assert len(store.timeline("cust:t", end=stored + timedelta(microseconds=1))) == 1


@needs_server
@pytest.mark.gremlin
def test_timeline_puts_touchpoints_without_ts_first(store: GremlinStore) -> None:
    store.upsert_vertices("Customer", [("cust:c", {})])
    store.upsert_vertices("Touchpoint", [("tp:b", {"ts": T0}), ("tp:a", {})])
    store.upsert_edges("PERFORMED", [("cust:c", "tp:b", {}), ("cust:c", "tp:a", {})])
    assert [v.id for v in store.timeline("cust:c")] == ["tp:a", "tp:b"]
    assert [v.id for v in store.timeline("cust:c", start=T0)] == ["tp:b"]


@needs_server
@pytest.mark.gremlin
def test_bookkeeping_stays_on_the_server(store: GremlinStore) -> None:
    store.upsert_vertices("Customer", [("cust:a", {"name": "A"})])
    assert store.get_vertex("cust:a").properties == {"name": "A"}  # type: ignore[union-attr]
    assert store.export_vertices("Customer").column_names == ["id", "name"]


@needs_server
@pytest.mark.gremlin
def test_change_feed_does_not_report_deletions(store: GremlinStore) -> None:
    store.upsert_vertices("Customer", [("cust:a", {}), ("cust:b", {})])
    cursor = store.changes().cursor
    assert store.delete_vertices(["cust:a"]) == 1
    assert store.changes(cursor).changes == []
    store.upsert_vertices("Customer", [("cust:b", {"v": 1})])
    assert [(c.kind, c.id) for c in store.changes(cursor).changes] == [
        (ChangeKind.UPDATED, "cust:b")
    ]


@needs_server
@pytest.mark.gremlin
def test_dropped_connection_mid_batch_is_unavailable_and_writes_nothing(proxy: Proxy) -> None:
    rows = [(f"tp:{i:04d}", {"event_type": "app_login", "n": i}) for i in range(400)]
    with remote() as direct:
        direct.drop_all()
        # The bytes one batch sends, measured on a first store, place the cut mid-batch.
        with remote(proxy.url, batch_size=20) as through:
            before = proxy.sent
            through.upsert_vertices("Touchpoint", rows)
            batch_bytes = proxy.sent - before
        direct.drop_all()
        proxy.cut_after = proxy.sent + batch_bytes // 2
        proxy.refuse_after_cut = True
        with remote(proxy.url, batch_size=20, retries=2, backoff_s=0.05) as through:
            with pytest.raises(GraphUnavailable) as caught:
                through.upsert_vertices("Touchpoint", rows)
        assert caught.value.details["attempts"] == 3
        assert caught.value.__cause__ is not None
        if not direct.dialect.transactions:
            pytest.skip(
                f"{DIALECT} has no transactions: the requests sent before the cut stay "
                "written (docs/gremlin.md)"
            )
        assert direct.count() == 0
        direct.drop_all()


@needs_server
@pytest.mark.gremlin
def test_dropped_connection_is_retried_and_the_batch_completes(proxy: Proxy) -> None:
    rows = [(f"tp:{i:04d}", {"event_type": "app_login", "n": i}) for i in range(400)]
    with remote() as direct:
        direct.drop_all()
        proxy.cut_after = 20_000
        with remote(proxy.url, batch_size=20, retries=3, backoff_s=0.05) as through:
            result = through.upsert_vertices("Touchpoint", rows)
            assert proxy.cut_after is None, "the connection was never cut"
            assert result.written + result.unchanged == 400
            if direct.dialect.transactions:
                assert result == UpsertResult(created=400)
            assert through.count("Touchpoint") == 400
        assert direct.count() == 400
        direct.drop_all()


@needs_server
@pytest.mark.gremlin
def test_long_traversal_is_a_query_timeout() -> None:
    with remote(timeout_s=0.5) as hasty:
        hasty.drop_all()
        hasty.upsert_vertices("Customer", [(f"cust:{i}", {}) for i in range(60)])
        started = time.monotonic()
        with pytest.raises(QueryTimeout, match="the server stopped it") as caught:
            # Four nested scans of 60 vertices: 13 million traversers, seconds of work.
            hasty._run(
                "cross join", lambda g: g.V().as_("a").V().as_("b").V().as_("c").V().count().next()
            )
        assert caught.value.__cause__ is not None
        assert time.monotonic() - started < 5
        hasty.drop_all()


@needs_server
@pytest.mark.gremlin
@pytest.mark.slow
def test_server_that_stops_answering_is_a_query_timeout(proxy: Proxy) -> None:
    with remote(proxy.url, timeout_s=0.2) as through:
        # Every pooled connection open, so the next request goes out on an open one.
        for _ in range(8):
            through.ping()
        proxy.stall = True
        started = time.monotonic()
        with pytest.raises(QueryTimeout, match="no answer within"):
            through.ping()
        assert time.monotonic() - started < 10
        proxy.stall = False
        # The stalled connection was dropped; the next call opens a new one.
        through.ping()


@needs_server
@pytest.mark.gremlin
def test_server_that_never_completes_the_handshake_is_unavailable(proxy: Proxy) -> None:
    proxy.stall = True
    started = time.monotonic()
    with remote(proxy.url, connect_timeout_s=0.3, retries=1, backoff_s=0.01) as through:
        with pytest.raises(GraphUnavailable, match="no WebSocket handshake") as caught:
            through.ping()
    assert caught.value.details["attempts"] == 2
    assert time.monotonic() - started < 5
