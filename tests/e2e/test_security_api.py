"""Keys, scopes, limits, request ids, metrics and CORS over the real app."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import verify_embed_token
from api.serving import HeaderDeadline
from api.settings import DEFAULT_SECRET, Settings

# Pages are public HTML: everything they show comes from routes that need a key or token.
OPEN = {
    "/healthz",
    "/readyz",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/dashboard",
}
WIDGET_PAGES = re.compile(r"^/widgets/(static/|\{name\}$)")


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        yield client


def key(client: TestClient, *scopes: str) -> str:
    _, created = client.app.state.guard.keys.create("t", list(scopes))  # type: ignore[attr-defined]
    return str(created)


def test_every_endpoint_but_health_needs_a_key(app_client: TestClient) -> None:
    guarded = []
    for path, operations in app_client.get("/openapi.json").json()["paths"].items():
        if path in OPEN or WIDGET_PAGES.match(path):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in operations:
            response = app_client.request(method.upper(), concrete)
            assert response.status_code == 401, (method, path, response.text)
            error = response.json()["error"]
            assert error["code"] == "unauthorized" and "API key is required" in error["message"]
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            guarded.append(path)
    assert "/api/v1/events" in guarded and "/metrics" in guarded and len(guarded) > 20
    assert app_client.get("/healthz").status_code == 200


def test_scopes_decide_what_a_key_may_call(app_client: TestClient) -> None:
    reader, ingester, admin = (
        key(app_client, "read"),
        key(app_client, "ingest"),
        key(app_client, "admin"),
    )
    body = {"events": []}
    refused = app_client.post("/api/v1/events", json=body, headers={"X-API-Key": reader})
    assert refused.status_code == 403
    assert "lacks the 'ingest' scope" in refused.json()["error"]["message"]
    assert app_client.get("/api/v1/kpis", headers={"X-API-Key": ingester}).status_code == 403
    for presented in (reader, admin):
        assert app_client.get("/api/v1/kpis", headers={"X-API-Key": presented}).status_code == 200
    bearer = {"Authorization": f"Bearer {reader}"}
    assert app_client.get("/api/v1/kpis", headers=bearer).status_code == 200
    wrong = app_client.get("/api/v1/kpis", headers={"X-API-Key": reader[:-2] + "zz"})
    assert (
        wrong.status_code == 401 and wrong.json()["error"]["message"] == "the API key is not valid"
    )
    assert app_client.get("/api/v1/admin/keys", headers={"X-API-Key": reader}).status_code == 403


def test_admin_creates_and_revokes_keys_and_signs_embed_tokens(app_client: TestClient) -> None:
    admin = {"X-API-Key": key(app_client, "admin")}
    created = app_client.post(
        "/api/v1/admin/keys", json={"name": "crm", "scopes": ["read"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    made = created.json()
    assert made["scopes"] == ["read"] and made["key"].startswith(f"jg_{made['id']}_")
    listed = app_client.get("/api/v1/admin/keys", headers=admin).json()
    assert "key" not in listed[-1] and listed[-1]["id"] == made["id"]
    crm = {"X-API-Key": made["key"]}
    assert app_client.get("/api/v1/kpis", headers=crm).status_code == 200
    bad_scope = app_client.post(
        "/api/v1/admin/keys", json={"name": "x", "scopes": ["write"]}, headers=admin
    )
    assert bad_scope.status_code == 422
    signed = app_client.post(
        "/api/v1/admin/embed-tokens",
        json={"widget": "cell-heatmap", "params": {"days": "7"}, "ttl_seconds": 600},
        headers=admin,
    )
    assert signed.status_code == 201, signed.text
    token = signed.json()
    assert token["url"].startswith("/widgets/cell-heatmap?token=")
    claims = verify_embed_token(DEFAULT_SECRET, token["token"])
    assert claims.params == {"days": "7"} and claims.key_id == token["key_id"]
    unknown = app_client.post("/api/v1/admin/embed-tokens", json={"widget": "nope"}, headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_widget"
    revoked = app_client.delete(f"/api/v1/admin/keys/{made['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    after = app_client.get("/api/v1/kpis", headers=crm)
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]
    assert app_client.delete("/api/v1/admin/keys/0123456789ab", headers=admin).status_code == 404
    assert app_client.delete("/api/v1/admin/keys/'%20OR%201", headers=admin).status_code == 422


def test_a_key_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, rate_limit=0.5, rate_burst=2)
    with TestClient(create_app(settings)) as client:
        headers = {"X-API-Key": key(client, "read")}
        statuses = [client.get("/api/v1/kpis", headers=headers).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = client.get("/api/v1/kpis", headers=headers)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        other = {"X-API-Key": key(client, "read")}
        assert client.get("/api/v1/kpis", headers=other).status_code == 200


def test_oversized_bodies_get_413(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, max_body_bytes=2048))) as client:
        headers = {"X-API-Key": key(client, "ingest")}
        big = {"events": [{"event_id": f"e{i}", "padding": "x" * 100} for i in range(40)]}
        response = client.post("/api/v1/events", json=big, headers=headers)
        assert response.status_code == 413
        assert response.json()["error"]["details"]["limit_bytes"] == 2048


def test_malformed_json_and_wrong_types_are_422_not_500(app_client: TestClient) -> None:
    headers = {"X-API-Key": key(app_client, "admin"), "Content-Type": "application/json"}
    broken = app_client.post("/api/v1/journeys/frequency", content=b"{not json", headers=headers)
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_request"
    typed = app_client.post("/api/v1/journeys/frequency", json={"anchor": 5}, headers=headers)
    assert typed.status_code == 422
    assert typed.json()["error"]["details"]["problems"][0]["where"] == "body.anchor"


def test_unknown_paths_and_methods_use_the_error_envelope(app_client: TestClient) -> None:
    missing = app_client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "not_found",
        "message": "nothing is served at /api/v1/nothing-here",
        "details": {},
    }
    wrong = app_client.put("/healthz")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_requests_carry_ids_and_are_counted_in_metrics(app_client: TestClient) -> None:
    generated = app_client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    given = app_client.get("/healthz", headers={"X-Request-ID": "crm-123.4"})
    assert given.headers["X-Request-ID"] == "crm-123.4"
    hostile = app_client.get("/healthz", headers={"X-Request-ID": "a b\tc" * 40})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["X-Request-ID"])
    reader = {"Authorization": f"Bearer {key(app_client, 'read')}"}
    app_client.get("/api/v1/customers/cust:nobody", headers=reader)
    metrics = app_client.get("/metrics", headers=reader)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert re.search(
        r'journeygraph_http_requests_total\{method="GET",route="/api/v1/customers/\{customer_id\}",'
        r'status="404"\} [1-9]',
        metrics.text,
    ), metrics.text[:2000]


def test_cors_allows_only_configured_origins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, cors_origins=["https://crm.example.com"])
    with TestClient(create_app(settings)) as client:
        preflight = {"Access-Control-Request-Method": "GET"}
        allowed = client.options(
            "/api/v1/kpis", headers={"Origin": "https://crm.example.com", **preflight}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://crm.example.com"
        denied = client.options(
            "/api/v1/kpis", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in denied.headers


def test_production_refuses_the_default_secret_and_open_cors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="built-in development secret"):
        create_app(Settings(data_dir=tmp_path, mode="production"))
    for weak in (
        "",
        "x" * 31,
        "journeygraph-development-secret\n",
        "journeygraph-development-secret" + "!" * 8,
    ):
        with pytest.raises(ValueError, match="shorter than 32 bytes"):
            create_app(Settings(data_dir=tmp_path, mode="production", secret_key=weak))
    with pytest.raises(ValueError, match="CORS_ORIGINS contains"):
        create_app(
            Settings(data_dir=tmp_path, mode="production", secret_key="s" * 40, cors_origins=["*"])
        )


class QuickDeadline(HeaderDeadline):
    timeout = 0.5


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[int]:
    """The app under uvicorn on a free port, as ``serve`` runs it, with 0.5 s deadlines."""
    app = create_app(Settings(data_dir=tmp_path, body_timeout=0.5))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    config.http = QuickDeadline
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (b"", "request headers did not arrive"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", "request headers did not arrive"),
        (
            b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"events": [',
            "request body did not arrive",
        ),
    ],
    ids=["nothing", "half the headers", "half the body"],
)
def test_a_slow_client_gets_408_and_is_cut_off(real_server: int, sent: bytes, message: str) -> None:
    with socket.create_connection(("127.0.0.1", real_server), timeout=10) as client:
        client.sendall(sent)
        started = time.monotonic()
        answer = client.recv(4096).decode()
        waited = time.monotonic() - started
        assert client.recv(4096) == b"", "the server closed the connection"
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "request_timeout" in answer and message in answer and waited < 5
    with socket.create_connection(("127.0.0.1", real_server), timeout=10) as healthy:
        healthy.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert healthy.recv(4096).startswith(b"HTTP/1.1 200"), "others are still served"


def test_the_access_log_names_the_request_and_the_key(
    app_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    reader = key(app_client, "read")
    with caplog.at_level(logging.INFO, logger="journeygraph.access"):
        app_client.get("/api/v1/kpis", headers={"X-API-Key": reader, "X-Request-ID": "abc-1"})
    [line] = [r for r in caplog.records if r.name == "journeygraph.access"]
    assert line.getMessage().startswith("request_id=abc-1 GET /api/v1/kpis 200 ")
    assert line.getMessage().endswith(f"key={reader.split('_')[1]}")
    assert line.request_id == "abc-1"  # type: ignore[attr-defined]
